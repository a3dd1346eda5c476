"""Draw a record as one of many electrocardiographs would print it, with its ground truth (utils/paper/__init__.py).

`draw_page(sig, style, seed)` -> (PIL RGB image, truth dict, mask): the page `style` (a `PageStyle`) describes,
drawn at `style.px_per_mm`; `seed` draws only what a style leaves open (the header's made-up patient, device and
date, the exact tints). `random_style(rng, **fixed)` draws a realistic mix of styles: mostly A4/Letter landscape,
3 x 4 + 1 at 25 mm/s and 10 mm/mV on a red or pink grid, with every other choice of the issue's list some of the
time. `make_page` adds distortions (utils/paper/distort.py) and keeps the truth in step.

The look is this project's own: everything is laid out in millimetres (`page_geometry`) and drawn at the style's
resolution; the grid as antialiased lines (their coverage of each pixel, so 0.1 mm lines stay faint at 75 dpi),
text antialiased through PIL with the fonts matplotlib ships (utils/inputs/printout.font's DejaVu, and its
siblings), traces with utils/inputs/printout.draw_trace (hard-edged, as a thermal head prints).

The mask is the lead traces only (255 where a lead's trace is inked, the union where traces overlap): not the
calibration pulses, the separator ticks or the text, which are drawn in the same ink but are not signal. A cell's
box is its column's time span times its row's band (the rows share the trace area equally); a trace that reaches
beyond its row (tall QRS, 20 mm/mV) overlaps its neighbours unless `clip="row"`.
"""
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..ecg.io import FS, LEADS, N_SAMPLES
from ..inputs.printout import _font_path, draw_trace, font as default_font
from .layouts import LAYOUT_MIX, LAYOUTS, cells

PAPERS = {"A4": (210.0, 297.0), "Letter": (215.9, 279.4)}  # mm: short side, long side
# grid colour -> (minor RGB, major RGB) on white paper; `grid_strength` scales their distance from white
GRID_COLORS = {
    "red": ((246, 186, 186), (226, 96, 96)),
    "pink": ((251, 214, 226), (236, 150, 180)),
    "orange": ((250, 212, 170), (236, 146, 70)),
    "green": ((196, 228, 200), (104, 170, 118)),
    "grey": ((214, 214, 214), (150, 150, 150)),
    "none": (None, None),
    "bw": ((185, 185, 185), (70, 70, 70)),  # a monochrome print: the page ends black or white, pixel by pixel
}
GRID_KINDS = ("lines", "dots", "major", "dots5")  # 1 + 5 mm lines; 1 mm dots + 5 mm lines; 5 mm lines; 5 mm dots
TRACE_COLORS = {"black": (22, 22, 26), "darkblue": (22, 34, 104)}
FONTS = {"sans": "DejaVuSans.ttf", "sans-bold": "DejaVuSans-Bold.ttf", "serif": "DejaVuSerif.ttf",
         "serif-bold": "DejaVuSerif-Bold.ttf", "mono": "DejaVuSansMono.ttf", "mono-bold": "DejaVuSansMono-Bold.ttf",
         "stix": "STIXGeneral.ttf", "stix-bold": "STIXGeneralBol.ttf"}
CHOICES = {"paper": tuple(PAPERS), "orientation": ("landscape", "portrait"), "header": ("none", "brief", "full"),
           "label_place": ("inside", "left", "above"), "grid_color": tuple(GRID_COLORS), "grid_kind": GRID_KINDS,
           "grid_extent": ("page", "traces"), "trace_color": tuple(TRACE_COLORS), "cal": ("each", "first"),
           "cal_shape": ("square", "step"), "tick": ("center", "above"), "baseline": ("stretch", "record"),
           "clip": ("none", "row"), "layout": tuple(LAYOUTS), "header_font": tuple(FONTS),
           "label_font": tuple(FONTS), "speed": (25.0, 50.0), "gain": (5.0, 10.0, 20.0)}
MAX_SECONDS = N_SAMPLES / FS  # a row never spans more than the record


@dataclass(frozen=True)
class PageStyle:
    """Everything that decides a page's look. Lengths in mm, colours by name."""

    paper: str = "A4"
    orientation: str = "landscape"
    margins: tuple = (8.0, 8.0, 8.0, 8.0)  # left, top, right, bottom
    header: str = "full"  # none | brief (one or two lines) | full (patient, measurements, device blocks)
    header_font: str = "sans"
    header_size: float = 2.6  # text height
    footer: bool = True  # the speed / gain / filter line under the traces
    label_place: str = "inside"  # inside the cell's top left | left of the row (a gutter) | above the trace's start
    label_font: str = "sans-bold"
    label_size: float = 3.4
    grid_color: str = "red"
    grid_kind: str = "lines"
    grid_extent: str = "page"  # the grid covers the page inside the margins, or only the trace rows
    grid_strength: float = 1.0  # 0.5: a pale grid, 1.3: a strong one
    minor_width: float = 0.1
    major_width: float = 0.22
    paper_tint: tuple = (255, 255, 255)
    trace_width: float = 0.3
    trace_color: str = "black"
    cal: str = "each"  # a 1 mV pulse at each row's start, or only the first row's
    cal_shape: str = "square"  # up 0.2 s then down; or a step up held to the end of the pulse's space
    cal_width: float = 10.0  # the space before the traces
    tick: str = "center"  # the separator tick between cells: centred on the 0 line or standing on it
    tick_height: float = 4.0
    baseline: str = "stretch"  # the lead's median over the printed stretch, or over the record, on the 0 line
    zero_at: float = 0.6  # the 0 line's height in its row, from the top (fraction of the row)
    clip: str = "none"  # none: traces overlap neighbouring rows; row: each trace is cut at its row's band
    layout: str = "3x4+1"
    speed: float = 25.0  # mm/s
    gain: float = 10.0  # mm/mV
    px_per_mm: float = 8.0  # 203 dpi

    def __post_init__(self):
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"PageStyle.{name} = {getattr(self, name)!r}; allowed: {', '.join(map(str, allowed))}")
        if not 2.0 <= self.px_per_mm <= 24.0:
            raise ValueError(f"PageStyle.px_per_mm = {self.px_per_mm}: 2 to 24 (51 to 610 dpi)")
        if len(self.margins) != 4 or min(self.margins) < 0:
            raise ValueError(f"PageStyle.margins = {self.margins}: four lengths >= 0 (left, top, right, bottom)")

    @property
    def dpi(self):
        return self.px_per_mm * 25.4


# -- geometry (mm) ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Geometry:
    """Where things sit on the page, in mm from the top-left corner."""

    width: float
    height: float
    header: tuple  # x0, y0, x1, y1 of the header block (empty when there is none)
    grid: tuple  # x0, y0, x1, y1 of the gridded area
    gutter: float  # x of the calibration pulses' space (after the labels' gutter, if any)
    x_start: float  # x of t = 0 on every row
    seconds: float  # the time a row spans
    rows_top: float
    row_height: float
    n_rows: int
    footer_y: float
    zero_at: float
    speed: float

    def x(self, t):
        return self.x_start + t * self.speed

    def row_top(self, row):
        return self.rows_top + row * self.row_height

    def zero(self, row):
        """y of row `row`'s 0 mV line."""
        return self.row_top(row) + self.zero_at * self.row_height


def page_geometry(style):
    """The page's Geometry. Raises ValueError when the style leaves no room for the traces."""
    short, long_ = PAPERS[style.paper]
    w, h = (long_, short) if style.orientation == "landscape" else (short, long_)
    left, top, right, bottom = style.margins
    line = style.header_size * 1.45
    header_h = {"none": 0.0, "brief": 2 * line + 2.0, "full": 5 * line + 3.0}[style.header]
    footer_h = style.header_size * 1.9 if style.footer else 0.0
    gutter = left + (style.label_size * 2.3 if style.label_place == "left" else 0.0)
    x_start = gutter + style.cal_width
    avail = w - right - x_start - 1.0
    seconds = min(MAX_SECONDS, np.floor(avail / style.speed / 0.2 + 1e-9) * 0.2)
    if seconds < 1.0:
        raise ValueError(f"{style.paper} {style.orientation}: {avail:.0f} mm for traces, "
                         f"not 1 s at {style.speed:g} mm/s")
    rows_top = top + header_h
    rows_bottom = h - bottom - footer_h
    n_rows = len(LAYOUTS[style.layout])
    row_h = (rows_bottom - rows_top) / n_rows
    if row_h < 8.0:
        raise ValueError(f"{style.layout} on {style.paper} {style.orientation}: rows of {row_h:.1f} mm")
    grid = (left, top, w - right, h - bottom) if style.grid_extent == "page" else \
        (left, rows_top, w - right, rows_bottom)
    return Geometry(w, h, (left, top, w - right, top + header_h), grid, gutter, x_start, float(round(seconds, 1)),
                    rows_top, row_h, n_rows, rows_bottom + 0.6, style.zero_at, style.speed)


def _px(mm, ppm):
    return int(round(mm * ppm))


# -- fonts --------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def page_font(name, size_px):
    """One of FONTS (matplotlib's data folder, where utils/inputs/printout finds DejaVu Sans); printout.font if
    that folder is missing."""
    base = _font_path(False)
    if base:
        path = Path(base).parent / FONTS[name]
        if path.is_file():
            return ImageFont.truetype(str(path), max(4, size_px))
    return default_font(max(4, size_px), bold=name.endswith("bold"))


# -- the header's made-up contents --------------------------------------------------------------------------------
DEVICES = ("Cardiolith R12", "ECG-1210 rest", "Vantra 12C", "Heartline HL-6", "Medigraph 300", "Sinoscribe 12",
           "Pulsar ECG 8", "Rhythmic CX", "Ordo 12-lead")
FILTERS = ("0.05-150 Hz", "0.05-100 Hz", "0.5-40 Hz", "0.15-100 Hz", "0.05-40 Hz")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _date(rng):
    y, mo, d, hh, mm, ss = (int(rng.integers(2003, 2025)), int(rng.integers(1, 13)), int(rng.integers(1, 29)),
                            int(rng.integers(0, 24)), int(rng.integers(0, 60)), int(rng.integers(0, 60)))
    return [f"{y}-{mo:02d}-{d:02d} {hh:02d}:{mm:02d}:{ss:02d}", f"{d:02d}/{mo:02d}/{y} {hh:02d}:{mm:02d}",
            f"{MONTHS[mo - 1]} {d} {y}  {hh % 12 or 12}:{mm:02d} {'AM' if hh < 12 else 'PM'}",
            f"{d:02d}.{mo:02d}.{y}  {hh:02d}:{mm:02d}"][int(rng.integers(4))]


def _rate(sig):
    """A rough ventricular rate (bpm) from lead II's steepest deflections: only the header prints it."""
    x = np.abs(np.diff(np.asarray(sig[1], np.float64)))
    if not np.isfinite(x).all() or x.max() <= 0:
        return None
    peaks = np.flatnonzero((x > 0.5 * np.percentile(x, 99.5)) & (x >= np.maximum(np.roll(x, 1), np.roll(x, -1))))
    if len(peaks) < 2:
        return None
    beats = peaks[np.insert(np.diff(peaks) > 0.25 * FS, 0, True)]
    return int(round(60.0 * FS / np.median(np.diff(beats)))) if len(beats) > 1 else None


def header_lines(rng, style, sig, record):
    """The header's text blocks: [[line, ...], ...] left to right."""
    rate = _rate(sig) or int(rng.integers(55, 100))
    pr, qrs = int(rng.integers(120, 210)), int(rng.integers(78, 118))
    qtc = int(rng.integers(380, 465))
    qt = int(round(qtc * np.sqrt(60.0 / min(max(rate, 30), 200))))
    device = DEVICES[int(rng.integers(len(DEVICES)))]
    patient = f"{int(rng.integers(10, 99))}{int(rng.integers(100000, 999999))}"
    sex = ("M", "F")[int(rng.integers(2))]
    age = int(rng.integers(19, 92))
    date = _date(rng)
    if style.header == "brief":
        return [[f"ID {patient}   {sex}   {age} y   {date}   {record}".strip(),
                 f"HR {rate} bpm   PR {pr} ms   QRS {qrs} ms   QT/QTc {qt}/{qtc} ms   {device}"]]
    blocks = [[f"Patient ID: {patient}", f"Sex: {sex}    Age: {age} y", f"Record: {record or '-'}", date],
              [f"Vent. rate   {rate} bpm", f"PR interval  {pr} ms", f"QRS duration {qrs} ms",
               f"QT/QTc       {qt}/{qtc} ms", f"P-R-T axes   {int(rng.integers(-20, 80))} "
                                              f"{int(rng.integers(-30, 90))} {int(rng.integers(-10, 80))}"],
              [device, ("Resting 12-lead", "12-lead ECG", "Rest ECG")[int(rng.integers(3))],
               ("Unconfirmed report", "Not reviewed", "Technician: -", "Room 4")[int(rng.integers(4))]]]
    order = rng.permutation(3) if rng.random() < 0.3 else np.arange(3)
    return [blocks[i] for i in order]


# -- drawing ------------------------------------------------------------------------------------------------------
def _line_cover(n_px, ppm, lo_mm, hi_mm, step_mm, width_mm, origin_mm):
    """Coverage (n_px,) float32 in [0, 1] of lines `width_mm` wide at origin + k * step within [lo, hi] mm."""
    cover = np.zeros(n_px + 8, np.float32)
    k0 = int(np.ceil((lo_mm - origin_mm) / step_mm - 1e-6))
    k1 = int(np.floor((hi_mm - origin_mm) / step_mm + 1e-6))
    if k1 < k0:
        return cover[:n_px]
    centre = (origin_mm + np.arange(k0, k1 + 1) * step_mm) * ppm
    half = max(width_mm * ppm, 0.35) / 2
    a, b = centre - half, centre + half
    first = np.floor(a).astype(int)
    for off in range(int(np.ceil(2 * half)) + 2):
        i = first + off
        overlap = np.clip(np.minimum(b, i + 1) - np.maximum(a, i), 0, 1).astype(np.float32)
        ok = (i >= 0) & (i < n_px)
        np.add.at(cover, i[ok], overlap[ok])
    return np.minimum(cover[:n_px], 1.0)


def _inside(n_px, ppm, lo_mm, hi_mm):
    idx = (np.arange(n_px) + 0.5) / ppm
    return ((idx >= lo_mm - 0.5 / ppm) & (idx <= hi_mm + 0.5 / ppm)).astype(np.float32)


def _grid_image(style, g, rng, W, H):
    """The paper and its grid, (H, W, 3) uint8. The grid is separable: a pixel row is fixed by whether it is in
    the gridded area and by its coverage by horizontal minor and major lines (quantised to 1/32), so only the few
    distinct rows are computed, then gathered."""
    ppm = style.px_per_mm
    paper = np.asarray(style.paper_tint, np.float32)
    minor_rgb, major_rgb = GRID_COLORS[style.grid_color]
    if minor_rgb is None:
        return np.broadcast_to(np.round(paper).astype(np.uint8), (H, W, 3)).copy()
    s = style.grid_strength * rng.uniform(0.92, 1.08)
    jitter = rng.uniform(-6, 6, 3).astype(np.float32)

    def tint(rgb):
        return np.clip(paper - s * (paper - np.asarray(rgb, np.float32)) + jitter, 0, 255)

    x0, y0, x1, y1 = g.grid
    inx, iny = _inside(W, ppm, x0, x1), _inside(H, ppm, y0, y1)
    kind = style.grid_kind
    minor_w = style.minor_width if kind == "lines" else max(2.2 * style.minor_width, 0.18)
    major_w = max(2.0 * style.major_width, 0.4) if kind == "dots5" else style.major_width
    zeros_x, zeros_y = np.zeros(W, np.float32), np.zeros(H, np.float32)
    has_minor = kind in ("lines", "dots")
    mx = _line_cover(W, ppm, x0, x1, 1.0, minor_w, x0) * inx if has_minor else zeros_x
    my = _line_cover(H, ppm, y0, y1, 1.0, minor_w, y0) * iny if has_minor else zeros_y
    Mx = _line_cover(W, ppm, x0, x1, 5.0, major_w, x0) * inx
    My = _line_cover(H, ppm, y0, y1, 5.0, major_w, y0) * iny
    keys = np.stack([iny, np.round(my * 32), np.round(My * 32)], 1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    ins, a, b = uniq[:, :1], uniq[:, 1:2] / 32, uniq[:, 2:3] / 32  # (U, 1) each
    if kind == "lines":
        c_minor = 1.0 - (1.0 - mx[None] * ins) * (1.0 - a * inx[None])
    else:
        c_minor = a * mx[None]  # dots (zero when there is no minor grid)
    c_major = a * 0 + (b * Mx[None] if kind == "dots5" else 1.0 - (1.0 - Mx[None] * ins) * (1.0 - b * inx[None]))
    pat = paper + c_minor[..., None] * (tint(minor_rgb) - paper)
    pat += c_major[..., None] * (tint(major_rgb) - pat)
    pat = np.clip(pat + 0.5, 0, 255).astype(np.uint8)
    return pat[inverse.ravel()]


class _Text:
    """An antialiased text layer (coverage), positions in mm."""

    def __init__(self, size, ppm):
        self.layer = Image.new("L", size, 0)
        self.draw = ImageDraw.Draw(self.layer)
        self.ppm = ppm

    def text(self, x, y, text, name, size_mm, anchor="la"):
        f = page_font(name, _px(size_mm, self.ppm))
        self.draw.text((x * self.ppm, y * self.ppm), text, fill=255, font=f, anchor=anchor)
        return x + self.draw.textlength(text, font=f) / self.ppm


def _draw_header(txt, style, g, rng, sig, record):
    if style.header == "none":
        return
    x0, y0, x1, _ = g.header
    line = style.header_size * 1.45
    blocks = header_lines(rng, style, sig, record)
    bold = style.header_font if style.header_font.endswith("bold") else f"{style.header_font}-bold" \
        if f"{style.header_font}-bold" in FONTS else style.header_font
    width = (x1 - x0) / len(blocks)
    for b, block in enumerate(blocks):
        for k, text in enumerate(block):
            name = bold if (k == 0 and style.header == "full" and rng.random() < 0.5) else style.header_font
            txt.text(x0 + 1.0 + b * width, y0 + 1.0 + k * line, text, name, style.header_size)


def _draw_footer(txt, style, g, rng):
    if not style.footer:
        return
    parts = [f"{style.speed:g} mm/s", f"{style.gain:g} mm/mV", FILTERS[int(rng.integers(len(FILTERS)))]]
    if rng.random() < 0.6:
        parts.append(("50 Hz", "60 Hz", "~50 Hz")[int(rng.integers(3))])
    if rng.random() < 0.5:
        parts.append(DEVICES[int(rng.integers(len(DEVICES)))])
    txt.text(g.grid[0] + 1.0, g.footer_y, "    ".join(parts), style.header_font, style.header_size * 0.9)


def _pulse(style):
    """The calibration pulse in a row's first cal_width mm, as samples at FS (1 where the pulse is up, 1 mV)."""
    n = max(2, int(round((style.cal_width - 1.0) / style.speed * FS)))
    t_mm = np.arange(n) * style.speed / FS  # mm from the pulse space's start
    rise = min(1.5, 0.2 * style.cal_width)
    width = min(0.2 * style.speed, style.cal_width - rise - 1.5)  # 0.2 s
    up = t_mm >= rise
    if style.cal_shape == "square":
        up &= t_mm < rise + width
    return up.astype(np.float64)


def draw_page(sig, style, seed, record=""):
    """(PIL RGB image, truth dict, mask (H, W) uint8) of record `sig` (12, 5000) mV printed in `style`."""
    img, truth, labels = _draw(sig, style, seed, record)
    return img, truth, np.where(labels > 0, 255, 0).astype(np.uint8)


def draw_page_labels(sig, style, seed, record=""):
    """draw_page's image and truth, and a label map (H, W) uint8: k + 1 where truth['leads'][k]'s trace is inked
    (the later one where traces overlap), 0 elsewhere."""
    return _draw(sig, style, seed, record)


def _draw(sig, style, seed, record):
    sig = np.asarray(sig, np.float64)
    if sig.shape != (len(LEADS), N_SAMPLES):
        raise ValueError(f"signal of shape {sig.shape}, expected {(len(LEADS), N_SAMPLES)}")
    rng = np.random.default_rng(seed)
    g = page_geometry(style)
    ppm = style.px_per_mm
    W, H = _px(g.width, ppm), _px(g.height, ppm)
    img = _grid_image(style, g, rng, W, H)

    txt = _Text((W, H), ppm)
    _draw_header(txt, style, g, rng, sig, record)
    _draw_footer(txt, style, g, rng)

    labels = np.zeros((H, W), np.uint8)
    other = np.zeros((H, W), np.uint8)  # calibration pulses and separator ticks: trace ink, not signal
    line_px = max(1, int(round(style.trace_width * ppm)))
    pps = style.speed * ppm / FS
    mm_px = style.gain * ppm  # pixels per mV
    lead_index = {name: i for i, name in enumerate(LEADS)}
    pulse = _pulse(style)
    rows = range(g.n_rows) if style.cal == "each" else range(1)
    for row in rows:
        draw_trace(other, _px(g.gutter + 0.5, ppm), g.zero(row) * ppm - pulse * mm_px, pps, 1, line_px)

    leads = []
    for k, c in enumerate(cells(style.layout, g.seconds)):
        i0 = int(round(c.t0 * FS))
        i1 = min(int(round(c.t1 * FS)), N_SAMPLES - 1)
        x = sig[lead_index[c.lead]]
        base = float(np.median(x[i0:i1] if style.baseline == "stretch" else x))
        zero_px = g.zero(c.row) * ppm
        top, bottom = g.row_top(c.row), g.row_top(c.row) + g.row_height
        clip = (_px(top, ppm), _px(bottom, ppm) - 1) if style.clip == "row" else (0, H - 1)
        x0 = _px(g.x(c.t0), ppm)
        draw_trace(labels, x0, zero_px - (x[i0:i1 + 1] - base) * mm_px, pps, k + 1, line_px, clip)
        if c.col > 0:  # the separator tick where one lead's stretch ends and the next begins
            half = max(1, line_px) // 2
            if style.tick == "center":
                ya, yb = zero_px - style.tick_height * ppm / 2, zero_px + style.tick_height * ppm / 2
            else:
                ya, yb = zero_px - style.tick_height * ppm, zero_px
            other[max(0, int(ya)):int(yb) + 1, max(0, x0 - half):x0 - half + max(1, line_px)] = 1
        _draw_label(txt, style, g, c)
        leads.append({"lead": c.lead, "row": c.row, "col": c.col, "t0": round(c.t0, 4), "t1": round(c.t1, 4),
                      "box": [x0, _px(top, ppm), _px(g.x(c.t1), ppm), _px(bottom, ppm)],
                      "baseline": round(base, 5)})

    ink = np.clip(np.asarray(TRACE_COLORS[style.trace_color], np.float32) + rng.uniform(-8, 8, 3), 0, 255)
    text = np.asarray(txt.layer)
    at = np.nonzero(text)
    cover = text[at].astype(np.float32)[:, None] / 255.0
    img[at] = np.round(img[at] * (1.0 - cover) + cover * ink * 0.8).astype(np.uint8)
    img[(labels > 0) | (other > 0)] = np.round(ink).astype(np.uint8)
    if style.grid_color == "bw":
        grey = img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114
        img[:] = np.where(grey < rng.uniform(170, 215), 0, 255).astype(np.uint8)[..., None]
    image = Image.fromarray(img, "RGB")
    truth = {"record": record, "layout": style.layout, "speed": style.speed, "gain": style.gain,
             "px_per_mm": style.px_per_mm, "seconds_shown": g.seconds, "distortions": {}, "size": [W, H],
             "seed": int(seed), "leads": leads, "style": style_dict(style)}
    return image, truth, labels


def _draw_label(txt, style, g, c):
    x, top, zero = g.x(c.t0), g.row_top(c.row), g.zero(c.row)
    size = style.label_size
    if style.label_place == "left" and c.col == 0:
        txt.text(style.margins[0] + 0.8, zero - 0.5 * size, c.lead, style.label_font, size, anchor="lm")
    elif style.label_place == "above":
        txt.text(x + 0.8, zero - max(3.0, 0.4 * (zero - top)), c.lead, style.label_font, size, anchor="ls")
    else:
        txt.text(x + 1.0, top + 1.0, c.lead, style.label_font, size)


def style_dict(style):
    d = asdict(style)
    d["margins"], d["paper_tint"] = list(style.margins), list(style.paper_tint)
    return d


def style_from_dict(d):
    d = dict(d)
    d["margins"], d["paper_tint"] = tuple(d["margins"]), tuple(d["paper_tint"])
    return PageStyle(**d)


# -- a realistic mix ------------------------------------------------------------------------------------------------
def _pick(rng, options, weights):
    p = np.asarray(weights, np.float64)
    return options[int(rng.choice(len(options), p=p / p.sum()))]


def random_style(rng, **fixed):
    """A PageStyle drawn from a realistic mix; keyword arguments fix fields (PageStyle's names). Choices that
    depend on others (portrait pages for 12 rows, smaller labels at 20 mm/mV...) follow the fixed ones."""
    names = {f.name for f in fields(PageStyle)}
    unknown = set(fixed) - names
    if unknown:
        raise TypeError(f"random_style: no PageStyle field {', '.join(sorted(unknown))}")
    d = dict(fixed)

    def put(name, draw):
        if name not in d:
            d[name] = draw()

    put("layout", lambda: _pick(rng, tuple(LAYOUT_MIX), tuple(LAYOUT_MIX.values())))
    put("speed", lambda: _pick(rng, (25.0, 50.0), (88, 12)))
    tall = d["layout"] in ("12x1", "6x2")
    put("orientation", lambda: _pick(rng, ("landscape", "portrait"), (45, 55) if tall else (88, 12)))
    gains = {"3x4+1": (78, 11, 11), "3x4": (76, 10, 14), "3x4+3": (80, 15, 5), "6x2": (75, 20, 5),
             "12x1": (50, 50, 0) if d["orientation"] == "landscape" else (65, 30, 5)}[d["layout"]]
    put("gain", lambda: _pick(rng, (10.0, 5.0, 20.0), gains))
    put("paper", lambda: _pick(rng, ("A4", "Letter"), (65, 35)))
    put("px_per_mm", lambda: float(round(np.exp(rng.uniform(np.log(3.0), np.log(12.0))), 1)))
    put("header", lambda: _pick(rng, ("full", "brief", "none"), (60, 25, 15)))
    put("header_font", lambda: _pick(rng, ("sans", "serif", "mono", "stix", "sans-bold"), (40, 15, 25, 12, 8)))
    put("header_size", lambda: float(round(rng.uniform(2.0, 3.4), 2)))
    put("footer", lambda: bool(rng.random() < 0.75))
    put("label_place", lambda: _pick(rng, ("inside", "left", "above"), (55, 20, 25)))
    put("label_font", lambda: _pick(rng, ("sans-bold", "sans", "serif-bold", "mono-bold", "stix-bold"),
                                    (40, 20, 12, 16, 12)))
    put("label_size", lambda: float(round(rng.uniform(2.4, 4.4), 2)))
    put("grid_color", lambda: _pick(rng, ("red", "pink", "orange", "green", "grey", "none", "bw"),
                                    (38, 20, 10, 7, 11, 6, 8)))
    put("grid_kind", lambda: _pick(rng, GRID_KINDS, (70, 12, 10, 8)))
    put("grid_extent", lambda: _pick(rng, ("page", "traces"), (60, 40)))
    put("grid_strength", lambda: float(round(rng.uniform(0.55, 1.3), 2)))
    put("minor_width", lambda: float(round(rng.uniform(0.05, 0.16), 3)))
    put("major_width", lambda: float(round(rng.uniform(max(0.12, d["minor_width"] * 1.2), 0.38), 3)))
    put("paper_tint", lambda: (255, 255, 255) if rng.random() < 0.6 else
        tuple(int(v) for v in np.clip(255 - rng.uniform(0, 12) * np.array([0.4, 0.7, 1.4]), 0, 255)))
    put("trace_width", lambda: float(round(rng.uniform(0.15, 0.5), 3)))
    put("trace_color", lambda: _pick(rng, ("black", "darkblue"), (85, 15)))
    put("cal", lambda: _pick(rng, ("each", "first"), (75, 25)))
    put("cal_shape", lambda: _pick(rng, ("square", "step"), (75, 25)))
    put("cal_width", lambda: float(round(rng.uniform(7.0, 12.0) if d["speed"] == 25.0 else rng.uniform(12.0, 14.0), 1)))
    put("tick", lambda: _pick(rng, ("center", "above"), (60, 40)))
    put("tick_height", lambda: float(round(rng.uniform(2.0, 6.0), 1)))
    put("baseline", lambda: _pick(rng, ("stretch", "record"), (60, 40)))
    put("zero_at", lambda: float(round(rng.uniform(0.5, 0.68), 3)))
    put("clip", lambda: _pick(rng, ("none", "row"), (75, 25)))
    if "margins" not in d:  # landscape pages at 25 mm/s: margins that leave room for the full 10 s, as printers do
        m = rng.uniform(3.0, 14.0, 4)
        short, long_ = PAPERS[d["paper"]]
        width = long_ if d["orientation"] == "landscape" else short
        gutter = d["label_size"] * 2.3 if d["label_place"] == "left" else 0.0
        spare = width - 1.0 - d["cal_width"] - gutter - MAX_SECONDS * d["speed"]
        if 0 < spare < m[0] + m[2]:
            m[[0, 2]] *= spare / (m[0] + m[2]) * 0.98
        elif spare <= 0 and d["orientation"] == "landscape" and d["speed"] == 25.0 and gutter > 0:
            d["label_place"] = "inside"  # the gutter is what does not fit
            spare += gutter
            if spare > 0:
                m[[0, 2]] = np.minimum(m[[0, 2]], spare / 2 * 0.98)
        d["margins"] = tuple(float(round(v, 1)) for v in m)
    return PageStyle(**d)


# -- with distortions -----------------------------------------------------------------------------------------------
def make_page(sig, style, seed, kind_levels=None, record="", jpeg_roundtrip=True):
    """draw_page, then distort.distort with `kind_levels` ({kind: level}, seeded by `seed`): (image, truth, mask),
    the truth's boxes, size and distortions those of the final picture."""
    from .distort import distort

    image, truth, mask = draw_page(sig, style, seed, record)
    if kind_levels:
        rng = np.random.default_rng([int(seed), 7])
        boxes = [e["box"] for e in truth["leads"]]
        image, mask, boxes, applied = distort(image, mask, boxes, kind_levels, rng, px_per_mm=style.px_per_mm,
                                              jpeg_roundtrip=jpeg_roundtrip)
        for e, b in zip(truth["leads"], boxes):
            e["box"] = [int(round(v)) for v in b]
        truth["distortions"] = applied
        truth["size"] = [image.width, image.height]
    return image, truth, mask
