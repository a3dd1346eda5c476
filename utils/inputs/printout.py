"""Draw a 12-lead ECG as an electrocardiograph prints it: the red 1 mm / 5 mm grid, 3 rows x 4 columns of 2.5 s
(I, aVR, V1, V4 / II, aVL, V2, V5 / III, aVF, V3, V6) and a 10 s lead II rhythm strip below, at 25 mm/s and
10 mm/mV, lead labels, a 1 mV calibration pulse at the start of each row, the speed and gain printed.

Physical scale: everything is laid out in millimetres on a `Sheet` (A4 landscape, 297 x 210 mm) and drawn at
`px_per_mm` pixels per millimetre (10 by default: 2970 x 2100 px). The page is a palette image (one index per
colour, `INK`), drawn with numpy (grid, traces) and PIL (text, unantialiased so every pixel keeps its meaning);
PNGs are saved with `dpi` = px_per_mm x 25.4 (254 dpi), so they print at physical size, and `pdf_pages` writes
A4 pages. This module knows nothing of models or answers (utils/report/ adds the header): it can draw training
pictures in the printed look too (`ecg_image`).
"""
import importlib.util
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..ecg.io import FS, LEADS

# Palette: index -> RGB. Distinct indices for things of one colour, so a page's pixels say what they are.
INK = {"paper": 0, "minor": 1, "major": 2, "trace": 3, "text": 4, "muted": 5, "wrong": 6, "right": 7,
       "wrong_bg": 8, "box": 9}
PALETTE = {"paper": (255, 255, 255), "minor": (250, 200, 200), "major": (232, 110, 110), "trace": (0, 0, 0),
           "text": (0, 0, 0), "muted": (95, 95, 95), "wrong": (200, 0, 0), "right": (0, 125, 45),
           "wrong_bg": (255, 228, 228), "box": (150, 150, 150)}

LAYOUT_3X4 = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
RHYTHM = ("II",)  # leads of the 10 s strips below the 3 x 4 block
PULSE_S = 0.2  # the calibration pulse's width in time, at any paper speed


@dataclass(frozen=True)
class Sheet:
    """A page's geometry, in millimetres (x from the left edge, y from the top), and its resolution."""

    px_per_mm: int = 10
    width_mm: float = 297.0  # A4 landscape
    height_mm: float = 210.0
    speed: float = 25.0  # mm/s
    gain: float = 10.0  # mm/mV
    grid_left: float = 18.0
    grid_top: float = 60.0  # the header is above
    row_height: float = 35.0  # 3 lead rows + len(RHYTHM) rhythm rows
    baseline: float = 20.0  # a row's 0 mV line, below its top (on a 5 mm line)
    cal_width: float | None = None  # the calibration pulse's space at a row's start, the traces after it (None:
    # 2 mm, the pulse's 0.2 s, 3 mm: 10 mm at 25 mm/s)
    seconds: float = 10.0  # the rhythm strip; each of the 4 columns shows a quarter
    line_px: int = 3  # trace thickness in pixels (0.3 mm at 10 px/mm)

    def __post_init__(self):
        if self.cal_width is None:
            object.__setattr__(self, "cal_width", 5.0 + PULSE_S * self.speed)
        if self.cal_width < 3.0 + PULSE_S * self.speed:  # e.g. dataclasses.replace(A4, speed=50): pass cal_width=None
            raise ValueError(f"Sheet: cal_width {self.cal_width:g} mm cannot hold the 0.2 s calibration pulse at "
                             f"{self.speed:g} mm/s (at least {3.0 + PULSE_S * self.speed:g} mm)")

    @property
    def dpi(self):
        return self.px_per_mm * 25.4

    @property
    def size(self):
        """(width, height) in pixels."""
        return round(self.width_mm * self.px_per_mm), round(self.height_mm * self.px_per_mm)

    @property
    def n_rows(self):
        return len(LAYOUT_3X4) + len(RHYTHM)

    @property
    def grid_width(self):
        return self.cal_width + self.seconds * self.speed  # 10 + 250 mm at 25 mm/s

    @property
    def grid_bottom(self):
        return self.grid_top + self.n_rows * self.row_height

    def px(self, mm):
        return int(round(mm * self.px_per_mm))

    def baseline_y(self, row):
        """Pixel row of row `row`'s 0 mV line."""
        return self.px(self.grid_top + row * self.row_height + self.baseline)

    def trace_x(self, t):
        """Pixel column of time `t` seconds on a row."""
        return self.px(self.grid_left + self.cal_width + t * self.speed)

    def cells(self):
        """(lead name, row, start s, end s) of every trace on the page: the 3 x 4 block, then the rhythm strips."""
        quarter = self.seconds / 4
        out = [(lead, r, c * quarter, (c + 1) * quarter) for r, row in enumerate(LAYOUT_3X4) for c, lead in enumerate(row)]
        return out + [(lead, len(LAYOUT_3X4) + k, 0.0, self.seconds) for k, lead in enumerate(RHYTHM)]


A4 = Sheet()


def palette_bytes():
    """The palette for PIL's putpalette: 256 RGB entries, unused ones white."""
    pal = [255] * 768
    for name, i in INK.items():
        pal[3 * i:3 * i + 3] = PALETTE[name]
    return pal


@lru_cache(maxsize=None)
def _font_path(bold):
    """DejaVu Sans from matplotlib's own data (a requirement), found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "fonts" / "ttf" / (
            "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
        if path.is_file():
            return str(path)
    return None


@lru_cache(maxsize=None)
def font(size_px, bold=False):
    path = _font_path(bold)
    return ImageFont.truetype(path, size_px) if path else ImageFont.load_default(size_px)


class Canvas:
    """A palette page: `ink` (H, W) uint8 indices into INK, drawn on with numpy, and `text` (PIL, no
    antialiasing) at millimetre positions."""

    def __init__(self, sheet=A4):
        self.sheet = sheet
        w, h = sheet.size
        self._ink = np.zeros((h, w), np.uint8)
        self._image = None  # while PIL draws: the page as a PIL image

    @property
    def ink(self):
        """The page's indices (H, W) uint8 for numpy drawing."""
        if self._image is not None:
            self._ink = np.array(self._image)
            self._image = None
        return self._ink

    @ink.setter
    def ink(self, value):
        self._image = None
        self._ink = value

    def _draw(self):
        if self._image is None:
            self._image = Image.fromarray(self._ink)
            self._pil = ImageDraw.Draw(self._image)
            self._pil.fontmode = "1"  # no antialiasing: every pixel is one INK index
        return self._pil

    def text(self, x_mm, y_mm, text, size_mm=3.0, ink="text", bold=False, anchor="la"):
        """Draw `text` with its top-left (anchor "la") at (x, y) mm; returns its right edge in mm."""
        f = font(self.sheet.px(size_mm), bold)
        d = self._draw()
        d.text((self.sheet.px(x_mm), self.sheet.px(y_mm)), text, fill=INK[ink], font=f, anchor=anchor)
        return x_mm + d.textlength(text, font=f) / self.sheet.px_per_mm

    def text_width(self, text, size_mm=3.0, bold=False):
        return self._draw().textlength(text, font=font(self.sheet.px(size_mm), bold)) / self.sheet.px_per_mm

    def rect(self, x0, y0, x1, y1, ink, outline=None, width_px=2):
        """A filled rectangle (mm), optionally outlined."""
        self._draw().rectangle([self.sheet.px(x0), self.sheet.px(y0), self.sheet.px(x1), self.sheet.px(y1)],
                               fill=INK[ink], outline=INK[outline] if outline else None, width=width_px)

    def image(self):
        """PIL palette image ('P')."""
        im = Image.fromarray(self.ink)
        im.putpalette(palette_bytes())
        return im


@lru_cache(maxsize=4)
def _grid(sheet):
    """The grid alone (cached per process): minor lines every 1 mm, major (2 px) every 5 mm."""
    w, h = sheet.size
    ink = np.zeros((h, w), np.uint8)
    x0, x1 = sheet.px(sheet.grid_left), sheet.px(sheet.grid_left + sheet.grid_width)
    y0, y1 = sheet.px(sheet.grid_top), sheet.px(sheet.grid_bottom)
    p = sheet.px_per_mm
    xs, ys = np.arange(x0, x1 + 1, p), np.arange(y0, y1 + 1, p)
    ink[y0:y1 + 1, xs] = INK["minor"]
    ink[ys, x0:x1 + 1] = INK["minor"]
    for k in (0, 1):  # major lines: 2 px, from the 5 mm position rightwards/downwards (the last one inwards)
        mx = np.minimum(xs[::5] + k, x1)
        my = np.minimum(ys[::5] + k, y1)
        ink[y0:y1 + 1, mx] = INK["major"]
        ink[my, x0:x1 + 1] = INK["major"]
    ink.setflags(write=False)
    return ink


def draw_grid(canvas):
    """The grid onto `canvas`, under anything drawn before (its indices are the lowest); returns the indices."""
    ink = canvas.ink
    np.maximum(ink, _grid(canvas.sheet), out=ink)
    return ink


def draw_trace(ink, x0, y, px_per_sample, color, line_px=3, clip=(0, None)):
    """Ink a trace into `ink`: sample k of `y` (pixel rows, float) at column x0 + k * px_per_sample. Each pixel
    column is inked from the lowest to the highest row its samples reach, joined to the previous column's last
    sample (spikes kept), thickened to `line_px` vertically and horizontally; rows are clipped to `clip`."""
    y = np.asarray(y, np.float64)
    up = max(1, int(np.ceil(2 * px_per_sample)))  # at least 2 points per column
    if up > 1:
        y = np.interp(np.arange((len(y) - 1) * up + 1) / up, np.arange(len(y)), y)
        px_per_sample /= up
    col = np.floor(np.arange(len(y)) * px_per_sample + 1e-9).astype(int)
    width = int(col[-1]) + 1
    starts = np.searchsorted(col, np.arange(width))
    lo, hi = np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
    ends = np.append(starts[1:], len(y)) - 1
    prev = np.concatenate([y[:1], y[ends[:-1]]])
    half = (line_px - 1) / 2.0
    top, bottom = clip[0], (ink.shape[0] - 1 if clip[1] is None else clip[1])
    lo = np.clip(np.floor(np.minimum(lo, prev) - half + 0.5), top, bottom).astype(int)
    hi = np.clip(np.ceil(np.maximum(hi, prev) + half - 0.5), top, bottom).astype(int)
    r0, r1 = int(lo.min()), int(hi.max())
    rows = np.arange(r0, r1 + 1)[:, None]
    mask = (rows >= lo) & (rows <= hi)
    grow = int(line_px // 2)
    if grow:  # horizontal thickness: steep strokes would otherwise be one column wide
        wide = mask.copy()
        for k in range(1, grow + 1):
            wide[:, k:] |= mask[:, :-k]
            wide[:, :-k] |= mask[:, k:]
        mask = wide
    x1 = min(x0 + width, ink.shape[1])
    region = ink[r0:r1 + 1, x0:x1]
    region[mask[:, :x1 - x0]] = INK[color] if isinstance(color, str) else color


def calibration_pulse(sheet=A4, fs=FS):
    """The 1 mV pulse drawn in a row's first `cal_width` mm, as samples at `fs` (mV): 2 mm of baseline, 0.2 s at
    1 mV (5 mm at 25 mm/s, 10 at 50: the convention a reader takes the speed from), then baseline to 1 mm before
    the traces."""
    up = np.zeros(int(round((sheet.cal_width - 1) / sheet.speed * fs)) + 1)  # samples from the row's start
    start = int(np.ceil(2.0 / sheet.speed * fs - 1e-9))
    up[start:start + int(round(PULSE_S * fs))] = 1.0
    return up


def finite_runs(known, min_len=2):
    """[(start, end)] of the runs of True in `known` at least `min_len` long."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], known.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_len]


def draw_ecg(canvas, sig, fs=FS, labels=True):
    """Grid, traces, lead labels, calibration pulses and the speed/gain line of `sig` (12, N) mV onto `canvas`.
    Each lead's median is removed (its baseline sits on its row's 0 mV line); nothing is filtered or scaled:
    10 mm is 1 mV on every lead. NaN samples (not recorded) are left blank."""
    s = canvas.sheet
    ink = draw_grid(canvas)
    sig = np.asarray(sig, np.float64)
    known = np.isfinite(sig)  # NaN: not recorded (a record read from paper): left blank
    sig = sig - np.nan_to_num(np.nanmedian(np.where(known.any(1, keepdims=True), sig, 0), axis=1, keepdims=True))
    lead_index = {name: i for i, name in enumerate(LEADS)}
    clip = (s.px(s.grid_top), s.px(s.grid_bottom))
    px_per_sample = s.speed * s.px_per_mm / fs
    mm_px = s.gain * s.px_per_mm  # pixels per mV
    for row in range(s.n_rows):
        base = s.baseline_y(row)
        draw_trace(ink, s.px(s.grid_left), base - calibration_pulse(s, fs) * mm_px, px_per_sample, "trace",
                   s.line_px, clip)
    for lead, row, t0, t1 in s.cells():
        i0, i1 = int(round(t0 * fs)), min(int(round(t1 * fs)), sig.shape[1])
        if i1 - i0 < 2:
            continue
        for a, b in finite_runs(known[lead_index[lead], i0:i1]):
            draw_trace(ink, s.trace_x(t0 + a / fs), s.baseline_y(row) - sig[lead_index[lead], i0 + a:i0 + b] * mm_px,
                       px_per_sample, "trace", s.line_px, clip)
        if t0 > 0:  # a short bar where one lead's window ends and the next begins
            x, base = s.trace_x(t0), s.baseline_y(row)
            ink[base - s.px(4):base - s.px(1), x - 1:x + 2] = INK["trace"]
    if labels:
        draw_labels(canvas)
        draw_scale_line(canvas)
    return canvas


def draw_labels(canvas):
    """Lead names at each trace's top left."""
    s = canvas.sheet
    for lead, row, t0, _ in s.cells():
        canvas.text(s.grid_left + s.cal_width + t0 * s.speed + 1.5, s.grid_top + row * s.row_height + 2.0, lead,
                    size_mm=3.5, bold=True)


def draw_scale_line(canvas):
    """The speed, gain, grid and resolution, printed under the grid."""
    s = canvas.sheet
    canvas.text(s.grid_left, s.grid_bottom + 1.5,
                f"{s.speed:g} mm/s   {s.gain:g} mm/mV   grid 1 mm / 5 mm   calibration pulse 1 mV   "
                f"each lead's median removed, no filter   {s.px_per_mm} px/mm ({s.dpi:g} dpi): print at 100 % on A4 "
                f"landscape", size_mm=2.6, ink="muted")


def ecg_image(sig, sheet=A4, fs=FS, labels=True):
    """A record in the printed look, no header: a PIL palette image of the whole sheet."""
    return draw_ecg(Canvas(sheet), sig, fs, labels).image()


# -- files ------------------------------------------------------------------------------------------------------
BITS = 4  # INK has at most 16 colours: files store 2 pixels per byte (half the data to compress)


def save_png(image, path, sheet=A4, compress_level=1):
    """A page as a 4-bit palette PNG carrying its resolution (pHYs), so it prints at physical size."""
    image.save(path, format="PNG", dpi=(sheet.dpi, sheet.dpi), compress_level=compress_level, bits=BITS)


def pdf_page(image, level=1):
    """(width px, height px, compressed 4-bit palette indices, palette) of a page, for `PdfWriter.add_page`."""
    ink = np.asarray(image)
    if ink.shape[1] % 2:
        ink = np.pad(ink, ((0, 0), (0, 1)))
    packed = (ink[:, 0::2] << 4) | ink[:, 1::2]
    palette = bytes(image.getpalette()[:3 * 2 ** BITS])
    return image.width, image.height, zlib.compress(np.ascontiguousarray(packed).tobytes(), level), palette


class PdfWriter:
    """A minimal PDF of full-page images, streamed page by page: each page is `sheet`'s size in points
    (A4 landscape: 841.89 x 595.28 pt), the image filling it, lossless (4-bit indexed colour, Flate)."""

    def __init__(self, path, sheet=A4):
        self.path, self.sheet = Path(path), sheet
        self.f = open(self.path, "wb")
        self.offsets = {}
        self.page_ids = []
        self.next_id = 3  # 1: catalog, 2: pages (written last)
        self.f.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")

    def _obj(self, num, body, stream=None):
        self.offsets[num] = self.f.tell()
        self.f.write(f"{num} 0 obj\n".encode() + body)
        if stream is not None:
            self.f.write(b"\nstream\n" + stream + b"\nendstream")
        self.f.write(b"\nendobj\n")

    def add_page(self, page):
        w, h, data, palette = page
        img, content, pg = self.next_id, self.next_id + 1, self.next_id + 2
        self.next_id += 3
        n_colors = len(palette) // 3
        self._obj(img, (f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /BitsPerComponent {BITS} "
                        f"/ColorSpace [/Indexed /DeviceRGB {n_colors - 1} <{palette.hex()}>] /Filter /FlateDecode "
                        f"/Length {len(data)} >>").encode(), data)
        # the exact size in points, rounded down at the 4th decimal: rendered at the page's own dpi it is its pixels
        pw, ph = (int(v * 72 / 25.4 * 1e4) / 1e4 for v in (self.sheet.width_mm, self.sheet.height_mm))
        ops = f"q {pw:.4f} 0 0 {ph:.4f} 0 0 cm /Im0 Do Q".encode()
        self._obj(content, f"<< /Length {len(ops)} >>".encode(), ops)
        self._obj(pg, (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {pw:.4f} {ph:.4f}] "
                       f"/Resources << /XObject << /Im0 {img} 0 R >> >> /Contents {content} 0 R >>").encode())
        self.page_ids.append(pg)

    def close(self):
        kids = " ".join(f"{p} 0 R" for p in self.page_ids)
        self._obj(2, f"<< /Type /Pages /Kids [{kids}] /Count {len(self.page_ids)} >>".encode())
        self._obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
        xref = self.f.tell()
        n = self.next_id
        self.f.write(f"xref\n0 {n}\n0000000000 65535 f \n".encode())
        for num in range(1, n):
            self.f.write(f"{self.offsets.get(num, 0):010d} 00000 n \n".encode())
        self.f.write(f"trailer\n<< /Size {n} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:
            self.f.close()
