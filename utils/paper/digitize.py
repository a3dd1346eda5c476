"""Read a picture of a printed 12-lead ECG back into a record: `digitize(image) -> Digitized`.

The classical path (docs/methods.md, "Paper ECGs: the digitiser"), every scale read from the picture itself,
never from a renderer's colours, line widths, margins, page size or resolution:

0. a photo of a sheet on a background (its edges found) is first resampled fronto-parallel: perspective and lens
   undone, the desk left out (utils/paper/dewarp.py); any other picture goes on unchanged;
1. ink: each pixel's darkness against the paper (a blockwise bright percentile, so uneven light divides out), in
   its brightest channel (the trace: the darkest, least saturated ink) and in its dimmest (a red, pink, orange,
   green or grey grid is dark only there); the trace threshold is Otsu's between the inks;
2. deskew: the angle (+-5 deg) that makes a projection of the grid pixels sharpest (the trace's when there is
   hardly any grid), coarse then fine; the picture is turned back by it;
3. grid period: the smallest strong peak of the autocorrelation of the grid's column (row) profile is the 5 mm
   period, refined to ~0.01 px from its multiples; pixels per mm = period / 5, across and down separately. A
   black-and-white page's grid is in the trace ink: its lines (long straight runs on a regular lattice) give the
   period and are taken out of the trace ink, but where the trace passes through them. A page without a grid
   takes its scale from its calibration pulse (1 mV high, 0.2 s wide), found at a scale guessed from the rows;
4. rows: the peaks of the row projection of long trace strokes (text is short), kept when their ink covers most
   columns of a long stretch;
5. trace following: per pixel column the vertical runs of trace ink in each row's lane, strokes thinned across by
   the pen's width; dynamic programming picks one run per column, continuous with the previous one and weakly
   drawn to the row's baseline (through neighbouring rows' tall waves); the runs give a centre line (the levels
   where columns meet, and the peaks);
6. the calibration pulse before each row: a 1 mV plateau; its height gives the gain, its foot the 0 mV level, a
   square pulse's width (0.2 s) the speed; the trace starts after the gap that follows it;
7. speed (the pulse, else 25 mm/s, or 50 when the rows are too long for 10 s at 25), checked against the beats
   (the QRS spikes' width and the rate); the time a row spans; the layout from the number of rows (6 rows:
   3x4+3 when the strips repeat the block's V1, II and V5, else by the separator ticks; rows cut at the picture's
   right edge taken as 10 s); each cell's lead and
   time from layouts.cells;
8. each cell sampled at 500 Hz at its true times: mV = (0 mV level - y) / (gain x px per mm down); NaN where not
   printed or more than 1.5 mm from any ink;
9. the limb leads read at the same samples made consistent (III = II - I and the augmented leads: two signals),
   a misread one of four or more taken from the rest.

"refused" (with a one-line reason): no or too much dark ink (blank, noise, photographs), no grid and no
calibration pulse, a black-and-white page whose lines are not found both ways, a non-square grid, fewer than 2 px
per mm, no trace rows or a row count of no known layout, a calibration pulse of non-standard height or width, rows
too long for 10 s, a speed the beats contradict. "failed": not a readable image.
"""
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage
from scipy.signal import find_peaks, peak_widths
from scipy.stats import t as t_dist

from ..ecg.io import FS, LEADS, SHAPE
from . import STATUSES
from .dewarp import dewarp
from .layouts import cells

Image.MAX_IMAGE_PIXELS = 200_000_000  # a 600 dpi A3 scan is 70 Mpx; beyond this PIL refuses (decompression bomb)

GAINS = (2.5, 5.0, 10.0, 20.0, 40.0)  # mm/mV an electrocardiograph prints
SPEEDS = (12.5, 25.0, 50.0)  # mm/s
PULSE_S = 0.2  # the calibration pulse's usual width
MAX_ROTATION = 5.0  # degrees searched
MAX_PIXELS = 13e6  # larger pictures are read reduced by a whole factor (speed: at most 3 s a page)
LEAD_INDEX = {name: i for i, name in enumerate(LEADS)}
# the six limb leads from leads I and II (Einthoven, Goldberger): every electrocardiograph derives III, aVR, aVL
# and aVF from two measured leads, so three or more printed at the same time hold two signals
SAME_ONE = 0.95  # 6 rows: 3x4+3 when one strip matches its block lead this closely (6x2 pages' best: 0.77)
LIMB = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0], [-0.5, -0.5], [1.0, -0.5], [-0.5, 1.0]])


@dataclass
class Digitized:
    """One picture read back: `signal` (12, 5000) float32 mV, NaN where not printed or not read."""

    signal: np.ndarray = field(default_factory=lambda: np.full(SHAPE, np.nan, np.float32))
    status: str = "failed"  # one of STATUSES
    error: str = ""  # the reason when not "ok"; a note when "ok" (e.g. a default assumed)
    speed: float = float("nan")  # mm/s
    gain: float = float("nan")  # mm/mV
    px_per_mm: float = float("nan")  # across (time axis), after deskew
    rotation: float = float("nan")  # degrees the page was turned (counter-clockwise positive); undone before reading
    layout: str = ""  # a layouts.LAYOUTS key
    quality: float = 0.0  # 0-1: the share of each printed stretch followed through ink, times the checks' trust
    seconds: float = float("nan")  # time one row spans
    boxes: list = field(default_factory=list)  # [(lead, t0, t1, x0, y0, x1, y1)] in the deskewed picture

    def __post_init__(self):
        assert self.status in STATUSES, self.status

    def row(self, name):
        """The digitize.csv row (utils.paper.DIGITIZE_COLUMNS) as text."""
        def num(v, fmt):
            return "" if v is None or not np.isfinite(v) else format(v, fmt)
        return {"name": name, "status": self.status, "speed": num(self.speed, "g"), "gain": num(self.gain, "g"),
                "px_per_mm": num(self.px_per_mm, ".3f"), "rotation": num(self.rotation, ".2f"),
                "layout": self.layout, "quality": num(self.quality, ".3f"), "error": self.error}


class Refused(Exception):
    """The picture is not a page this reads (the message says why, in one line)."""


# -- loading ------------------------------------------------------------------------------------------------------
def load_rgb(image):
    """An RGB uint8 array (H, W, 3) from a path, a PIL image or an array (grey or RGB[A]). Raises ValueError with a
    one-line reason when the file is not a readable image."""
    if isinstance(image, np.ndarray):
        a = image
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] not in (3, 4):
            raise ValueError(f"not an image array (shape {a.shape})")
        if a.dtype != np.uint8:
            a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(a[..., :3])
    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as im:
                im.load()
                return _pil_rgb(im)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise ValueError(f"not a readable image ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                             ) from e
    if isinstance(image, Image.Image):
        return _pil_rgb(image)
    raise TypeError(f"digitize() takes a path, a PIL image or an array, not {type(image).__name__}")


def clear_edges(rgb, debug=None, dark=0.75, line_share=0.3, band=0.02):
    """The picture with a dark strip along its sides made paper: what is clearly darker than the paper (`dark` of
    its median brightness), on a side's outermost line for at least `line_share` of it, and connected to that
    line through dark pixels within `band` of the side. A photo whose sheet nearly fills the frame shows such a
    sliver of desk (a few px, too thin for the dewarp to find its edge); the digitiser would follow it as the
    outer rows' trace. Each marked pixel takes the colour of the first unmarked one inwards on its scanline. A
    side dark across the whole band (a shadow, not a sliver) is left. Returns `rgb` itself when nothing was marked."""
    hi = rgb.max(axis=2)
    h, w = hi.shape
    step = max(1, int(np.sqrt(h * w / 1e6)))
    thr = dark * float(np.median(hi[::step, ::step]))
    out, cleared = None, {}
    for side in ("top", "bottom", "left", "right"):
        v = {"top": hi, "bottom": hi[::-1], "left": hi.T, "right": hi.T[:, ::-1]}[side]  # lines from the side in
        n = max(2, int(round(band * v.shape[0])))
        d = v[:n] < thr
        if d[0].mean() < line_share:
            continue
        mark = np.zeros_like(d)
        mark[0] = d[0]
        for k in range(1, n):
            prev = mark[k - 1]
            near = prev | np.concatenate([[False], prev[:-1]]) | np.concatenate([prev[1:], [False]])
            mark[k] = d[k] & near
            if not mark[k].any():
                break
        depth = mark.cumprod(axis=0).sum(axis=0)  # marked lines from the side, per scanline
        if not depth.any() or (depth >= n).mean() > 0.02:  # dark across the whole band: a shadow, dark paper
            continue
        if out is None:
            out = rgb.copy()
        o = {"top": out, "bottom": out[::-1], "left": out.transpose(1, 0, 2),
             "right": out.transpose(1, 0, 2)[:, ::-1]}[side]  # views
        idx = np.arange(o.shape[1])
        fill = o[np.minimum(depth, o.shape[0] - 1), idx].copy()
        for k in range(int(depth.max())):
            sel = depth > k
            o[k, sel] = fill[sel]
        cleared[side] = int(depth.max())
    if debug is not None and cleared:
        debug["cleared_edges"] = cleared
    return rgb if out is None else out


def _pil_rgb(im):
    im = ImageOps.exif_transpose(im)  # a phone's orientation tag
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float grey: scaled to 8 bits
        a = np.asarray(im, np.float64)
        top = a.max() if a.size and a.max() > 0 else 1.0
        return np.repeat(np.clip(a / top * 255, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        back = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(back, im.convert("RGBA"))
    return np.asarray(im.convert("RGB"))


# -- ink ----------------------------------------------------------------------------------------------------------
def _paper(channel, block=48):
    """The paper's brightness around every pixel (float32, like `channel`): the 90th percentile of each block (of a
    quarter of its pixels), smoothed, linearly upsampled."""
    h, w = channel.shape
    if h < 2 * block or w < 2 * block:
        return np.full(channel.shape, max(float(np.percentile(channel, 90)), 1.0), np.float32)
    bh, bw = h // block, w // block
    tiles = channel[:bh * block:2, :bw * block:2].reshape(bh, block // 2, bw, block // 2)
    tiles = tiles.transpose(0, 2, 1, 3).reshape(bh, bw, -1)
    k = int(0.9 * (tiles.shape[2] - 1))
    level = np.partition(tiles, k, axis=2)[:, :, k].astype(np.float32)
    level = ndimage.median_filter(level, size=3, mode="nearest")
    level = np.maximum(level, max(0.5 * float(np.median(level)), 1.0))
    return _upsample(level, h, w)


def _upsample(level, h, w):
    """Separable linear upsampling of a small (bh, bw) map to (h, w)."""
    bh, bw = level.shape
    xx = np.clip((np.arange(w) + 0.5) * bw / w - 0.5, 0, bw - 1)
    wide = np.stack([np.interp(xx, np.arange(bw), level[i]) for i in range(bh)]).astype(np.float32)  # (bh, w)
    yy = np.clip((np.arange(h) + 0.5) * bh / h - 0.5, 0, bh - 1)
    y0 = np.floor(yy).astype(int)
    y1 = np.minimum(y0 + 1, bh - 1)
    f = (yy - y0).astype(np.float32)[:, None]
    out = wide[y0]
    out *= 1 - f
    out += wide[y1] * f
    return out


def _otsu(values, lo=0.0, hi=1.0, bins=128):
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    hist = hist.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


class Ink:
    """The picture split into trace ink (bool) and grid ink (0-1 float, the trace removed)."""

    def __init__(self, hi, lo):
        """`hi`, `lo`: the brightest and the dimmest channel of each pixel (uint8)."""
        hi = hi.astype(np.float32)
        lo = lo.astype(np.float32)
        inv = 1.0 / _paper(hi)
        hi *= inv
        self.dark = np.clip(1.0 - hi, 0, 1, out=hi)  # darkness in the brightest channel: the trace's
        lo *= inv
        grid = np.clip(1.0 - lo, 0, 1, out=lo)  # darkness in the dimmest channel: any ink
        few = self.dark[::3, ::3]
        inked = few[few > 0.12]
        if len(inked) < 50:
            self.threshold = 0.5
        else:
            self.threshold = float(np.clip(_otsu(inked, 0.12, 1.0), 0.35, 0.7))
        self.trace = self.dark > self.threshold
        grid[self.trace] = 0
        self.grid = grid
        self.shape = self.trace.shape


# -- deskew -------------------------------------------------------------------------------------------------------
def _sharpness(ys, xs, w, angles_deg):
    out = []
    for a in angles_deg:
        t = np.tan(np.radians(a))
        yp = ys + xs * t  # a page turned by +a (counter-clockwise) has its lines at y = c - x tan a
        yp = np.round(yp - yp.min()).astype(np.int64)
        h = np.bincount(yp, weights=w)
        out.append(float(np.dot(h, h)))
    return np.array(out)


def estimate_rotation(ink, seed=0):
    """The page's rotation in degrees (counter-clockwise positive), from the grid's horizontal lines, or from the
    trace strokes when there is hardly any grid; 0 when neither has enough pixels."""
    rng = np.random.default_rng(seed)
    grid_pts = np.flatnonzero(ink.grid.ravel() > 0.08)
    if len(grid_pts) > 0.01 * ink.grid.size:
        pts, weights = grid_pts, ink.grid.ravel()
    else:
        pts, weights = np.flatnonzero(ink.trace.ravel()), None
    if len(pts) < 500:
        return 0.0
    if len(pts) > 250_000:
        pts = rng.choice(pts, 250_000, replace=False)
    ys, xs = np.divmod(pts, ink.shape[1])
    w = weights[pts] if weights is not None else np.ones(len(pts))
    ys, xs = ys.astype(np.float64), xs.astype(np.float64)
    coarse = np.arange(-MAX_ROTATION, MAX_ROTATION + 1e-9, 0.2)
    s = _sharpness(ys, xs, w, coarse)
    best = coarse[int(np.argmax(s))]
    fine = best + np.arange(-0.24, 0.2401, 0.02)
    s = _sharpness(ys, xs, w, fine)
    k = int(np.argmax(s))
    if 0 < k < len(fine) - 1:  # parabola through the peak
        den = s[k - 1] - 2 * s[k] + s[k + 1]
        d = 0.5 * (s[k - 1] - s[k + 1]) / den if den < 0 else 0.0
        return float(fine[k] + np.clip(d, -0.5, 0.5) * 0.02)
    return float(fine[k])


# -- grid period --------------------------------------------------------------------------------------------------
def _autocorr(profile):
    p = profile - profile.mean()
    n = len(p)
    f = np.fft.rfft(p, 2 * n)
    r = np.fft.irfft(f * np.conj(f))[:n]
    r /= np.arange(n, 0, -1)  # unbiased
    return r / r[0] if r[0] > 0 else r


def _refine_period(r, period):
    """The period to ~0.01 px from the autocorrelation `r`: its peaks near every multiple of `period` (each to a
    tenth of a pixel by a parabola), the slope of their lags against the multiple."""
    n = len(r)
    ms, lags = [], []
    est = period
    m = 1
    while (m + 0.5) * est < 0.6 * n:
        c = int(round(m * est))
        lo, hi = max(1, c - 2), min(n - 2, c + 2)
        if hi <= lo:
            break
        k = lo + int(np.argmax(r[lo:hi + 1]))
        if 0 < k < n - 1:
            den = r[k - 1] - 2 * r[k] + r[k + 1]
            d = 0.5 * (r[k - 1] - r[k + 1]) / den if den < 0 else 0.0
            ms.append(m)
            lags.append(k + float(np.clip(d, -0.5, 0.5)))
            est = np.dot(ms, lags) / np.dot(ms, ms)
        m += 1
    return float(est)


def grid_period(profile, min_px=5.0, max_px=250.0):
    """(5 mm period in px, contrast 0-1, minor lines found) of one grid profile; (nan, 0, False) without a grid."""
    n = len(profile)
    if n < 4 * min_px or profile.std() <= 1e-6:
        return float("nan"), 0.0, False
    r = _autocorr(profile)
    # the major period from the profile smoothed by a pixel: lines that fall between pixels alternate in look,
    # which makes twice a non-integer period repeat more exactly than the period itself
    rs = _autocorr(ndimage.gaussian_filter1d(profile.astype(np.float64), 1.0))
    hi = int(min(max_px, n // 4))
    lags = np.arange(hi + 1)
    peaks, _ = find_peaks(rs[:hi + 1])
    peaks = peaks[peaks >= min_px]
    if not len(peaks):
        return float("nan"), 0.0, False
    top = rs[peaks].max()
    if top < 0.15:
        return float("nan"), float(max(top, 0)), False
    major = int(peaks[np.argmax(rs[peaks] >= 0.85 * top)])  # the smallest lag as strong as the strongest
    period = _refine_period(rs, float(major))
    # minor lines: a peak of the autocorrelation at a fifth of the period, above the troughs between
    q = period / 5
    minor = False
    if q >= 2.0:
        at = np.interp([q, 1.5 * q, 2 * q, 2.5 * q], lags, r[:hi + 1])
        minor = bool(at[0] - at[1] > 0.05 and at[2] - at[3] > 0.03)
    return period, float(top), minor


# -- a grid in the trace's own ink (black-and-white pages) ----------------------------------------------------------
@dataclass
class Lines:
    """The grid lines of a black-and-white page, found in its trace ink: each direction's bands ((start, stop) pixel
    rows or columns), its 5 mm period in px, and whether minor (1 mm) lines were found."""

    rows: list
    cols: list
    period_y: float
    period_x: float
    minor: bool


def _bands(trace, axis):
    """Bands of pixel rows (axis 1) or columns (axis 0) holding long straight lines of ink: (starts, stops, centres,
    masses). A line pixel is the middle of a window an eighth of the picture long that is 90 % ink (breaks in a
    scanned line are tolerated; a trace is never that straight for that long)."""
    along = trace[:, ::2] if axis == 1 else trace[::2]  # every other pixel along the lines is enough
    length = max(10, along.shape[axis] // 8)
    full = ndimage.uniform_filter1d(along.astype(np.float32), length, axis=axis) >= 0.9
    p = full.mean(axis=axis).astype(np.float64)
    if p.max() < 0.1:
        return None
    on = p >= 0.3 * p.max()
    d = np.diff(on.view(np.int8), prepend=0, append=0)
    starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    csum = np.concatenate([[0], np.cumsum(p)])
    wsum = np.concatenate([[0], np.cumsum(p * np.arange(len(p)))])
    mass = csum[stops] - csum[starts]
    return starts, stops, (wsum[stops] - wsum[starts]) / mass, mass


def _lattice(centres, mass):
    """(5 mm period, minor lines seen, on-lattice mask) of line centres: the fundamental spacing fitted through
    the bands on it; every fifth band clearly heavier (majors among minors) makes the period 5 spacings. None
    when fewer than 5 bands line up."""
    if len(centres) < 5:
        return None
    d = np.diff(centres)
    q = float(np.median(d[d <= 1.5 * np.percentile(d, 25)]))
    m = np.maximum(np.round(d / q), 1)
    ok = (np.abs(d / m - q) <= 0.1 * q) & (m <= 6)  # spacings of whole periods (lines may be missing)
    q = float(d[ok].sum() / m[ok].sum())  # lines between pixels alternate in spacing: their mean
    ref = float(centres[np.argmax(mass)])
    for _ in range(3):
        k = np.round((centres - ref) / q)
        on = np.abs(centres - ref - k * q) <= 0.15 * q
        if on.sum() < 5 or np.ptp(k[on]) < 4:
            return None
        q, ref = np.polyfit(k[on], centres[on], 1)
    k = np.round((centres - ref) / q).astype(int)
    res = k % 5
    means = np.array([mass[on & (res == r)].mean() if (on & (res == r)).sum() >= 2 else np.nan for r in range(5)])
    if not np.isfinite(means).any():
        return float(q), False, on
    best = int(np.nanargmax(means))
    others = np.delete(means, best)
    if np.isfinite(others).any() and means[best] >= 1.3 * np.nanmax(others):
        major = on & (res == best)
        return float(np.polyfit(k[major] // 5, centres[major], 1)[0]), True, on
    return float(q), False, on


def find_lines(trace):
    """The grid lines of a page whose grid is as dark as its trace (a monochrome print or a fax): Lines, or None
    when the trace ink holds no lattice of long straight lines both ways."""
    if not _has_lines(trace):
        return None
    found = []
    for axis in (1, 0):  # horizontal lines (pixel rows), vertical lines (columns)
        b = _bands(trace, axis)
        lat = _lattice(b[2], b[3]) if b is not None else None
        if lat is None:
            return None
        period, minor, on = lat
        found.append((list(zip(b[0][on], b[1][on])), period, minor))
    (rows, py, my), (cols, px, mx) = found
    return Lines(rows, cols, py, px, my or mx)


def _has_lines(trace, strict=False):
    """Whether the trace ink may hold vertical lines: columns a fifth ink (a trace never fills one); `strict`,
    long straight lines at a regular spacing, horizontal or 20 vertical ones (not a dotted grid's dots, nor the
    tall QRS strokes of rows one above another, which repeat with the beats)."""
    if not strict:
        return (trace.mean(axis=0) >= 0.2).sum() >= 5
    for axis, least in ((1, 5), (0, 20)):
        b = _bands(trace, axis)
        lat = _lattice(b[2], b[3]) if b is not None else None
        if lat is not None and lat[2].sum() >= least:
            return True
    return False


def remove_lines(trace, lines):
    """The trace ink with the grid lines taken out (where they reach), but for the pixels where the trace passes
    through a line (`_touched`: it crosses one, or runs inside a horizontal one). Specks go too: a dotted grid's
    dots first, then the bits a line's edge keeps where fainter lines cross it."""
    trace = _drop_specks(trace, max(2, int(0.12 * min(lines.period_x, lines.period_y))))
    out = trace.copy()
    x0, x1 = _extent(trace[np.concatenate([np.arange(a, b) for a, b in lines.rows])].mean(axis=0))
    y0, y1 = _extent(trace[:, np.concatenate([np.arange(a, b) for a, b in lines.cols])].mean(axis=1))
    for a, b in lines.rows:
        out[a:b, x0:x1] = False
    for a, b in lines.cols:
        out[y0:y1, a:b] = False
    out = _drop_specks(out, 2)
    _keep_vertical(out, trace, lines, y0, y1)
    _keep_horizontal(out, trace, lines, x0, x1)
    _keep_vertical(out, trace, lines, y0, y1)  # again: where the trace crosses one inside a horizontal line
    return out


def _keep_vertical(out, trace, lines, y0, y1):
    """Puts back into `out` the vertical lines' pixels where strokes cross them (once a row: a trace has no flat
    stretch inside one)."""
    w, none = out.shape[1], np.zeros(y1 - y0, bool)
    left = out[y0:y1, [max(0, a - 1) for a, _ in lines.cols]].T.copy()  # the columns either side of each line
    right = out[y0:y1, [min(w - 1, b) for _, b in lines.cols]].T.copy()
    for (a, b), l, r in zip(lines.cols, left, right):
        ys = y0 + np.flatnonzero(_touched(l if a > 0 else none, r if b < w else none, lines.period_x))
        out[ys, a:b] |= trace[ys, a:b]


def _keep_horizontal(out, trace, lines, x0, x1):
    """Puts back into `out` the horizontal lines' pixels where the trace passes through them, judged from the ink
    around each line (`_touched`; lines put back count for the next)."""
    h, period = out.shape[0], lines.period_y

    def ink(a, b):  # ink per column in pixel rows a..b-1
        return out[min(h, max(0, a)):min(h, max(0, b)), x0:x1].sum(axis=0)

    far, near, c = int(2 * period), max(2, int(0.4 * period)), max(2, int(0.1 * period))
    none = np.zeros(x1 - x0, bool)
    for a, b in lines.rows:
        around = (ink(a - far, a - c) + ink(b + c, b + far)) > 0
        flat = ((ink(a - c, a) + ink(b, b + c)) > 0) & (ink(a - near, b + near) <= 0.5 * near)  # thin along it
        keep = _touched(out[a - 1, x0:x1] if a > 0 else none, out[b, x0:x1] if b < h else none, period,
                        (around, flat))
        out[a:b, x0:x1] |= trace[a:b, x0:x1] & keep[None]


def _extent(cover):
    """(first, last + 1) index where the lines of one direction are mostly ink: how far they reach."""
    on = np.flatnonzero(cover >= 0.5)
    return (int(on[0]), int(on[-1]) + 1) if len(on) else (0, len(cover))


def _touched(up0, down0, period, along=None):
    """Where to keep a horizontal line (or, transposed, a vertical one), from where ink touches it from above
    (`up0`, bool per column) and below (`down0`): where it does from both (a stroke crosses it); from a touch from
    above only to the next from below only, or the reverse (a stroke crosses inside the line); and `along` a
    horizontal line ((around, flat): ink within 2 periods of it beyond a tenth of one; ink next to it, thin
    across), where the trace is in every column and were it not inside the line it would be near, only where none
    is around: such a stretch, one after a crossing, or one between touches from one side next to a flat touch (a
    tenth of a period). Stretches of at most 4 periods (2 across)."""
    above, below = _spread(up0), _spread(down0)  # ink touches a line diagonally too
    keep = (up0 & below) | (above & down0)  # a stroke crosses
    keep |= above & below & ~_spread(keep)  # diagonally, between touches a row apart
    side = above.view(np.int8) + 2 * below.view(np.int8)  # 1 above only, 2 below only, 3 both
    d = np.flatnonzero(np.diff(side, prepend=0, append=0))
    seg = [(i, j, side[i]) for i, j in zip(d[:-1], d[1:]) if side[i]]  # runs of one side
    m = int(max(3, 0.1 * period))
    for (_, g0, v0), (g1, _, v1) in zip(seg[:-1], seg[1:]):
        if (3 in (v0, v1) and along is None) or g1 - g0 > (4 if along else 2) * period:
            continue  # across, a stroke through the line and another touch are different crossings
        if along is not None:
            around, flat = along
            if around[g0:g1].any() or not (v0 != v1 or flat[max(0, g0 - m):g0].mean() >= 0.5 or
                                           flat[g1:g1 + m].mean() >= 0.5):
                continue
        elif v0 == v1:
            continue
        keep[g0 - 1:g1 + 1] = True  # with the touching ends: the stroke passes through them
    return keep


def _spread(touch):
    """`touch` (bool, 1-D) and its neighbours."""
    out = touch.copy()
    out[1:] |= touch[:-1]
    out[:-1] |= touch[1:]
    return out


def _drop_specks(mask, size):
    """`mask` without connected specks at most `size` px both ways."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return mask
    objs = ndimage.find_objects(lab)
    small = np.array([False] + [(o[0].stop - o[0].start) <= size and (o[1].stop - o[1].start) <= size for o in objs])
    return mask & ~small[lab]


# -- rows ---------------------------------------------------------------------------------------------------------
@dataclass
class Row:
    base: float  # pixel row of the baseline (the 0 mV level once the pulse is read)
    x0: int  # first and last column of the row's long strokes
    x1: int
    ext0: int = 0  # where following starts: 25 mm before x0, for a calibration pulse apart from the trace
    lane: tuple = (0, 0)  # pixel rows searched for this row's trace
    start: float = float("nan")  # x (page columns, continuous) of the trace's first sample
    end: float = float("nan")  # x just after its last sample
    pulse: dict = None  # find_pulse's result
    # set by _follow_rows and _read_row: ct, cb (the chosen run per column from x0), pre_ct, pre_cb (from ext0 to
    # x0), yc (centre of the chosen runs, nan where none), level (the running median of yc), foot_y (0 mV), thick


def _long_strokes(trace, min_len):
    """Connected strokes of trace ink at least `min_len` px wide (drops text, grid specks and noise): (mask, labels,
    x-extents [first, last] per label)."""
    lab, n = ndimage.label(trace, structure=np.ones((3, 3), bool))
    if n == 0:
        return np.zeros_like(trace), lab, np.zeros((1, 2), int)
    objs = ndimage.find_objects(lab)
    ext = np.array([[-1, -1]] + [[o[1].start, o[1].stop - 1] for o in objs])
    keep = (ext[:, 1] - ext[:, 0] + 1) >= min_len
    keep[0] = False
    lab[~keep[lab]] = 0
    return lab > 0, lab, ext


def find_rows(trace, ppm_x, ppm_y, bridge=False):
    """The trace rows of a deskewed page: [Row] top to bottom (their baselines and extents). `bridge`: gaps up to
    8 mm between long strokes that other ink mostly fills do not break a row (a trace cut by grid lines taken out)."""
    h, w = trace.shape
    strokes, lab, ext = _long_strokes(trace, max(8, int(8 * ppm_x)))
    proj = strokes.sum(axis=1).astype(np.float64)
    if proj.max() <= 0:
        return []
    proj = ndimage.gaussian_filter1d(proj, max(1.0, 0.3 * ppm_y))
    peaks, props = find_peaks(proj, height=0.12 * proj.max(), distance=max(3, int(6 * ppm_y)),
                              prominence=0.08 * proj.max())
    rows = []
    gap = int(2.5 * ppm_x) + 1
    edges = np.concatenate([[peaks[0] - 50 * ppm_y], peaks, [peaks[-1] + 50 * ppm_y]]).astype(np.float64)
    for k, y in enumerate(peaks):  # a row's ink: between it and its neighbours (tall waves leave any narrow band)
        up = np.clip((edges[k + 1] - edges[k]) / 2, 4 * ppm_y, 25 * ppm_y)
        down = np.clip((edges[k + 2] - edges[k + 1]) / 2, 4 * ppm_y, 25 * ppm_y)
        lo, hi = int(max(0, y - up)), int(min(h, y + down + 1))
        cols = strokes[lo:hi].any(axis=0)
        if bridge:
            cols = _bridge(cols, trace[lo:hi].any(axis=0), int(8 * ppm_x))
        if cols.sum() < 30 * ppm_x:
            continue
        x0, x1 = _longest_stretch(cols, max_gap=gap)
        covered = cols[x0:x1 + 1].mean()
        if x1 - x0 < 35 * ppm_x or covered < 0.85:
            continue
        rows.append(Row(base=float(y), x0=int(x0), x1=int(x1), ext0=int(max(0, x0 - 25 * ppm_x))))
    return rows


def _bridge(cols, inked, longest):
    """`cols` with its gaps of at most `longest` that are mostly `inked` filled."""
    d = np.diff(cols.view(np.int8), prepend=1, append=1)
    for a, b in zip(np.flatnonzero(d == -1), np.flatnonzero(d == 1)):
        if b - a <= longest and inked[a:b].mean() >= 0.8:
            cols[a:b] = True
    return cols


def _longest_stretch(cols, max_gap):
    """(first, last) column of the longest stretch of True with gaps of at most `max_gap` columns."""
    idx = np.flatnonzero(cols)
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(idx) - 1]])
    k = int(np.argmax(idx[ends] - idx[starts]))
    return int(idx[starts[k]]), int(idx[ends[k]])


# -- trace following ----------------------------------------------------------------------------------------------
class Runs:
    """Every vertical run of ink of a page, column by column: `col`, `top`, `bot` (bottom exclusive), sorted by
    column then top."""

    def __init__(self, trace):
        t = trace.T.view(np.int8)  # (cols, rows)
        d = np.diff(t, axis=1, prepend=0, append=0)
        self.col, self.top = np.nonzero(d == 1)
        self.bot = np.nonzero(d == -1)[1]
        self.first = np.searchsorted(self.col, np.arange(trace.shape[1] + 1))

    def lane(self, y0, y1, x0, x1, base, max_runs=12):
        """The runs of columns x0..x1-1 with their middle in rows y0..y1-1: (top, bot) arrays (cols, max_runs), -1
        where none; the nearest to `base` kept where a column has more."""
        a, b = self.first[x0], self.first[x1]
        col, top, bot = self.col[a:b] - x0, self.top[a:b], self.bot[a:b]
        mid = (top + bot) / 2
        keep = (mid >= y0) & (mid < y1)
        col, top, bot, mid = col[keep], top[keep], bot[keep], mid[keep]
        ncol = x1 - x0
        outt = np.full((ncol, max_runs), -1, np.int64)
        outb = np.full((ncol, max_runs), -1, np.int64)
        if not len(col):
            return outt, outb
        count = np.bincount(col, minlength=ncol)
        if count.max() > max_runs:
            order = np.lexsort((np.abs(mid - base), col))
            col, top, bot = col[order], top[order], bot[order]
            rank = np.arange(len(col)) - np.searchsorted(col, col)
            ok = rank < max_runs
            col, top, bot = col[ok], top[ok], bot[ok]
            order = np.lexsort((top, col))
            col, top, bot = col[order], top[order], bot[order]
        rank = np.arange(len(col)) - np.searchsorted(col, col)
        outt[col, rank] = top
        outb[col, rank] = bot
        return outt, outb


def follow(top, bot, base, ppm_y):
    """Dynamic programming through the runs of several rows at once: top, bot (rows, cols, K), base (rows,). One
    run (or none) per column, continuous with the previous column's (a vertical gap costs 2 per mm), weakly drawn to
    the row's baseline (0.02 per mm); a column without ink costs 3, and taking up a run again after such columns 4
    plus 1 per mm from the run last followed (the state without ink remembers it). Returns the chosen (top, bottom)
    per row and column (-1 where none)."""
    nr, ncol, k = top.shape
    valid = top >= 0
    base = np.asarray(base, np.float64)
    unary = np.where(valid, 0.02 * np.abs((top + bot - 1) / 2.0 - base[:, None, None]) / ppm_y, np.inf)
    miss, enter = 3.0, 4.0
    scale = 2.0 / ppm_y
    cost = np.empty((nr, k + 1))
    cost[:, :k] = unary[:, 0]
    cost[:, k] = miss + 1.0
    mem_t, mem_b = base.copy(), base.copy() + 1  # the run the state without ink left
    back = np.zeros((ncol, nr, k + 1), np.int16)
    trans = np.empty((nr, k + 1, k))
    rr = np.arange(nr)
    kk = np.arange(k)[None, :]
    for c in range(1, ncol):
        t0, b0, t1, b1 = top[:, c - 1], bot[:, c - 1], top[:, c], bot[:, c]
        gap = np.maximum(np.maximum(t1[:, None, :] - b0[:, :, None], t0[:, :, None] - b1[:, None, :]), 0)
        trans[:, :k] = gap * scale
        trans[:, :k][~valid[:, c - 1]] = np.inf
        far = np.maximum(np.maximum(t1 - mem_b[:, None], mem_t[:, None] - b1), 0)
        trans[:, k] = enter + 0.5 * scale * far
        total = cost[:, :, None] + trans  # (nr, from k+1, to k)
        arg = np.argmin(total, axis=1)  # (nr, k)
        stay = np.argmin(cost, axis=1)  # (nr,)
        back[c, :, :k] = arg
        back[c, :, k] = stay
        new_miss = cost[rr, stay] + miss
        left = stay < k  # the state without ink is entered from a run: remember it
        pick = np.minimum(stay, k - 1)
        mem_t = np.where(left, t0[rr, pick], mem_t)
        mem_b = np.where(left, b0[rr, pick], mem_b)
        cost[:, :k] = total[rr[:, None], arg, kk] + unary[:, c]
        cost[:, k] = new_miss
    state = np.argmin(cost, axis=1)
    chosen = np.empty((nr, ncol), np.int64)
    for c in range(ncol - 1, -1, -1):
        chosen[:, c] = state
        state = back[c, rr, state]
    run = chosen < k
    idx = np.minimum(chosen, k - 1)
    ct = np.where(run, np.take_along_axis(top, idx[:, :, None], 2)[:, :, 0], -1)
    cb = np.where(run, np.take_along_axis(bot, idx[:, :, None], 2)[:, :, 0], -1)
    return ct, cb


def path_points(ct, cb, thick, level, wide=1.5):
    """The trace's centre line as (x, y) points from the chosen runs, column c spanning x in [c, c+1).

    A run is `thick` px thicker than the centre line's sweep through its column, [u, v]. At each boundary between
    two inked columns the line is at a level both reach: the middle of the overlap of their sweeps when it is
    narrow (a stroke crossing from one column to the next); when it is wide (`wide` px: the tip of a wave
    narrower than the pen, whose inside the pen filled), its end on the wave's side: the top where the columns
    are above `level` (the local baseline, per column), the bottom below it. At a column's middle, its top (or
    bottom) when it reaches beyond both of its boundaries on the wave's side (a peak)."""
    ncol = len(ct)
    ok = ct >= 0
    half = (thick - 1) / 2.0
    u = np.where(ok, ct + half, np.nan)
    v = np.where(ok, cb - 1 - half, np.nan)
    mid = (ct + cb - 1) / 2.0
    swap = u > v
    u = np.where(swap, mid, u)
    v = np.where(swap, mid, v)
    centre = np.where(ok, (u + v) / 2, np.nan)
    side = np.where(np.nan_to_num(level - centre) >= 0, 1.0, -1.0)  # +1: above the baseline
    lo = np.maximum(u[:-1], u[1:])
    hi = np.minimum(v[:-1], v[1:])
    both = side[:-1] + side[1:]
    w = np.where(hi - lo > wide, np.where(both > 0, 0.0, np.where(both < 0, 1.0, 0.5)), 0.5)
    b = np.where(lo <= hi, lo + w * (hi - lo), (lo + hi) / 2)  # boundary c | c+1, at x = c + 1
    left = np.concatenate([[np.nan], b])
    right = np.concatenate([b, [np.nan]])
    lo_e = np.fmin(left, right)
    hi_e = np.fmax(left, right)
    lo_e = np.where(np.isnan(lo_e), centre, lo_e)
    hi_e = np.where(np.isnan(hi_e), centre, hi_e)
    up, down = lo_e - u, v - hi_e
    peak = np.where((side > 0) & (up > 0.5), u, np.where((side < 0) & (down > 0.5), v, np.nan))
    lone = ok & np.isnan(left) & np.isnan(right)
    peak = np.where(lone, centre, peak)
    xs = np.concatenate([np.arange(1, ncol), np.arange(ncol) + 0.5])
    ys = np.concatenate([b, peak])
    keep = np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    order = np.argsort(xs, kind="stable")
    return xs[order], ys[order]


# -- calibration pulse --------------------------------------------------------------------------------------------
def find_pulse(yc, off, foot, ppm_x, ppm_y):
    """The calibration pulse of a row: in its centre line `yc` (per column, nan where no ink; column `off` is
    where the row's long strokes start, columns before it are the 25 mm left of them), a flat plateau 2-16 mm
    wide at least 2 mm above the 0 mV level `foot` (the trace's commonest level), starting before `off` + 16 mm,
    with a flat foot before or after it. Returns {height, width (px between the edges; nan for a step held until
    the trace), foot (its y), rise, end (columns: the rise, the end of the foot after a square pulse or of a
    step's plateau), start (column where the trace begins: `off` when the pulse stands apart, else after the gap
    that follows it, or None)} or None."""
    n = len(yc)
    lim = int(min(n, off + 18 * ppm_x))
    seg = yc[:lim]
    ok = np.isfinite(seg)
    up = ok & ((foot - seg) > 2.0 * ppm_y)
    flat = 0.6 * ppm_y
    i = 0
    while i < lim:
        if not up[i]:
            i += 1
            continue
        r0 = i
        if r0 > off + 3 * ppm_x:  # inside the trace: a wave, not a pulse
            break
        while i + 1 < lim and up[i + 1]:
            i += 1
        r1 = i
        i += 1
        width = r1 - r0  # the edges' columns are half up
        if width < 2 * ppm_x or width > 16 * ppm_x:
            continue
        edge = max(1, int(round(0.15 * width)))
        plateau = seg[r0 + edge:r1 - edge + 1]
        if len(plateau) < 2 or np.nanstd(plateau) > 0.35 * ppm_y:
            continue
        k = max(2, int(0.5 * ppm_x))
        before = seg[max(0, r0 - 1 - k):r0 - 1]  # a column off the rising edge, which may be part way
        foot_before = len(before) >= 2 and np.isfinite(before).all() and np.ptp(before) < flat
        # square: it falls back to the foot (the column after the plateau is ink, at the foot or on the way down
        # to it); a step is followed by the gap before the trace
        nxt = yc[r1 + 1:r1 + 3]
        at_foot = np.isfinite(nxt) & (np.abs(nxt - foot) < 2 * flat)
        square = len(nxt) == 2 and np.isfinite(nxt[0]) and bool(at_foot.any())
        if not (foot_before or square):
            continue
        level = float(np.median(before)) if foot_before else float(nxt[at_foot][0])
        if abs(level - foot) > 2 * flat:  # a pulse stands on the 0 mV level
            continue
        height = level - float(np.nanmedian(plateau))
        end = r1 + 1
        if square:
            while end < n and np.isfinite(yc[end]) and abs(yc[end] - level) < flat:
                end += 1
        if end <= off:
            start = off
        else:
            gap = np.flatnonzero(~np.isfinite(yc[end:min(n, end + int(4 * ppm_x))]))
            after_gap = np.flatnonzero(np.isfinite(yc[end + gap[0]:])) if len(gap) else []
            start = int(end + gap[0] + after_gap[0]) if len(after_gap) else None
        return {"height": height, "width": float(width) if square else float("nan"), "foot": level, "rise": r0,
                "end": int(end), "start": start}
    return None


def _snap(value, choices, tol):
    best = min(choices, key=lambda c: abs(value / c - 1))
    return best if abs(value / best - 1) <= tol else None


# -- the page -----------------------------------------------------------------------------------------------------
def _layout_for(rows, brk, same_stretch, same_min=0.8):
    """The layout of the page's rows: by their number (4: 3x4+1, 3: 3x4, 12: 12x1); 6 rows are 3x4+3 or 6x2:
    3x4+3 when its strips repeat the block's V1, II and V5 (`same_stretch(row, other, fraction)`: the correlation
    of two rows over a quarter of their span; their median above `same_min`), else by where they break
    (`brk(row, fraction)` -> 0/1): 3x4+3 at the quarters of its first three rows, 6x2 at the middle of its last
    three; None for another number."""
    n = len(rows)
    if n == 4:
        return "3x4+1"
    if n == 3:
        return "3x4"
    if n == 12:
        return "12x1"
    if n == 6:
        # 3x4+3 prints V1, II and V5 twice: in the block and as the strips below, at the same times
        same = [same_stretch(rows[3], rows[0], 0.5), same_stretch(rows[4], rows[1], 0.0),
                same_stretch(rows[5], rows[1], 0.75)]
        # all NaN: no row could be compared; one nearly identical pair is enough (a crease can spoil another)
        if np.isfinite(same).any() and (np.nanmedian(same) > same_min or np.nanmax(same) > SAME_ONE):
            return "3x4+3"
        quarters = np.mean([brk(r, f) for r in rows[:3] for f in (0.25, 0.75)])
        halves = np.mean([brk(r, 0.5) for r in rows[3:]])
        return "3x4+3" if quarters > halves else "6x2"
    return None


def _same(r, other, x_start, x_end, f, width=0.25):
    """The correlation of two rows' centre lines over the stretch [f, f + width] of their common span (nan when
    either holds too little ink there): near 1 where both print the same lead at the same times."""
    a = int(round(x_start + (f + 0.02) * (x_end - x_start)))
    b = int(round(x_start + (f + width - 0.02) * (x_end - x_start)))
    if a < r.x0 or a < other.x0:
        return float("nan")
    y1, y2 = r.yc[a - r.x0:b - r.x0], other.yc[a - other.x0:b - other.x0]
    if len(y1) != len(y2) or len(y1) < 20:
        return float("nan")
    ok = np.isfinite(y1) & np.isfinite(y2)
    if ok.mean() < 0.8 or np.std(y1[ok]) == 0 or np.std(y2[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(y1[ok], y2[ok])[0, 1])


def _break(r, trace, x_start, x_end, f, ppm_x, ppm_y, pen):
    """1 if row `r` breaks at fraction `f` of its trace span (within 0.6 mm): no ink, or a separator tick (a
    vertical bar of ink through the 0 mV level at least 1.5 mm tall where the followed line, its strokes thinned
    by the pen's width across, `pen`, travels less than 40 % as far: a bar thinner than the trace's strokes).
    `trace`: the page's trace ink. (A jump of the line says little: QRS complexes jump too.)"""
    c = int(round(x_start + f * (x_end - x_start)))
    w = max(2, int(round(0.6 * ppm_x)))
    a, b = c - w - r.x0, c + w + 1 - r.x0
    d = int(pen) + 2
    if a < 1 or b >= len(r.yc) or c - w - d < 0 or c + w + d >= trace.shape[1]:
        return 0
    if np.isnan(r.yc[a:b]).any():
        return 1
    y0, y1 = int(max(0, r.foot_y - 8 * ppm_y)), int(min(trace.shape[0], r.foot_y + 8 * ppm_y))
    zero = int(round(r.foot_y)) - y0
    band = trace[y0:y1, c - w - d:c + w + d + 1]
    for j in range(d, band.shape[1] - d):
        col = band[:, j]
        hit = np.flatnonzero(col[max(0, zero - int(0.5 * ppm_y)):zero + int(0.5 * ppm_y) + 1])
        if not len(hit):
            continue
        t = b_ = max(0, zero - int(0.5 * ppm_y)) + int(hit[0])
        while t > 0 and col[t - 1]:
            t -= 1
        while b_ + 1 < len(col) and col[b_ + 1]:
            b_ += 1
        if b_ - t + 1 < 1.5 * ppm_y:
            continue
        k = c - w - d + j - r.x0  # the followed line (thinned strokes) around it: a wave travels as far
        ct, cb = r.ct[max(0, k - d):k + d + 1], r.cb[max(0, k - d):k + d + 1]
        travel = (cb[ct >= 0].max() - ct[ct >= 0].min()) if (ct >= 0).any() else 0
        if travel < 0.4 * (b_ - t + 1):
            return 1
    return 0


def digitize(image, debug=None):
    """Read a picture of a printed ECG (path, PIL image or array): a Digitized, never an exception for a bad
    picture (status "failed" for an unreadable file, "refused" with the reason for a page it does not read).
    `debug`: a dict that receives the intermediate results (rows, periods, thickness)."""
    try:
        rgb = load_rgb(image)
    except (ValueError, TypeError) as e:
        return Digitized(status="failed", error=str(e))
    try:
        return _digitize(rgb, {} if debug is None else debug)
    except Refused as e:
        return Digitized(status="refused", error=str(e))
    except MemoryError:
        return Digitized(status="failed", error="out of memory reading the picture")


def _digitize(rgb, debug):
    h, w = rgb.shape[:2]
    if min(h, w) < 100:
        raise Refused(f"not an ECG page: the picture is only {w} x {h} px")
    scale = int(np.ceil(np.sqrt(h * w / MAX_PIXELS)))
    if scale > 1:  # a very large scan: read at a fraction of its resolution (still > 10 px per mm for A4)
        rgb = np.asarray(Image.fromarray(rgb).reduce(scale))
    rgb = dewarp(rgb, debug)  # a photo of a sheet: resampled fronto-parallel (anything else: unchanged)
    rgb = clear_edges(rgb, debug)  # a sliver of desk (or a scanner's dark edge) along the picture's sides: paper
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hi, lo = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    del rgb, r, g, b
    ink = Ink(hi, lo)
    share = ink.trace.mean()
    if share < 5e-4:
        raise Refused("not an ECG page: no dark trace ink (blank or very light picture)")
    if share > 0.45:
        raise Refused(f"not an ECG page: {share:.0%} of the picture is dark ink (a photograph, noise or a dark page)")
    grid_share = float((ink.grid > 0.08).mean())  # before turning: a turned trace's edges look faint
    rotation = estimate_rotation(ink)
    ink0 = ink
    if abs(rotation) > 0.03:
        turn = dict(angle=-rotation, resample=Image.BILINEAR, expand=True, fillcolor=255)
        ink = Ink(np.asarray(Image.fromarray(hi).rotate(**turn)), np.asarray(Image.fromarray(lo).rotate(**turn)))
    else:
        rotation = 0.0
    notes = []
    ink, rotation, lines, (px, py, minor_x, minor_y), gridless = _grid(ink, ink0, rotation, grid_share, notes)
    ppm_x, ppm_y = px / 5, py / 5
    ppm = (ppm_x + ppm_y) / 2
    if ppm < 2.0:
        raise Refused(f"too coarse: {ppm:.2f} px per mm (needs at least 2)")
    debug.update(rotation=rotation, periods=(px, py), minor=(minor_x, minor_y))
    rows, tv, th = _read_rows(ink, ppm_x, ppm_y, lines, debug)
    pulses = [r.pulse for r in rows if r.pulse]
    if gridless and pulses:  # the scale again from the pulses at full resolution
        h_px = float(np.median([p["height"] for p in pulses]))
        ppm = ppm_x = ppm_y = h_px / (_snap(h_px / ppm_y, GAINS, 0.1) or h_px / ppm_y)
    # gain: the pulses' height
    if pulses:
        heights = np.array([p["height"] for p in pulses]) / ppm_y
        gain_mm = float(np.median(heights))
        gain = _snap(gain_mm, GAINS, 0.1)
        if gain is None:
            raise Refused(f"calibration pulse {gain_mm:.1f} mm high: not a standard gain (5, 10 or 20 mm/mV)")
        if np.ptp(heights) > 0.25 * gain:
            raise Refused(f"calibration pulses of different heights ({heights.min():.1f}-{heights.max():.1f} mm)")
    else:
        gain = 10.0
        notes.append("no calibration pulse: 10 mm/mV assumed")
    # where every row's trace starts and ends: rows share both; a row without a pulse starts where its ink does
    # (a row without a pulse found whose ink starts before the other rows' pulses end: its own pulse was missed)
    ends = [r.ext0 + r.pulse["end"] for r in rows if r.pulse]
    starts = [r.start for r in rows if np.isfinite(r.start) and (r.pulse or not ends or r.start >= np.median(ends))]
    x_end = float(np.median([r.end for r in rows]))
    if starts:
        x_start = float(np.median(starts))
    else:  # every row's pulse runs into its trace: the trace starts 1 mm after the pulse's foot ends
        x_start = float(np.median(ends)) + ppm_x
        notes.append("trace start estimated")
    span_mm = (x_end - x_start) / ppm_x
    if span_mm < 20:
        raise Refused(f"trace rows only {span_mm:.0f} mm long")
    # speed: a square pulse's width (0.2 s); else 25 mm/s unless the rows are too long for 10 s at 25 mm/s;
    # checked against the beats: spikes as wide as a normal QRS is at twice the speed, and a rate as slow as half
    # a normal one, say the paper ran faster (and the reverse)
    widths = [p["width"] for p in pulses if np.isfinite(p["width"])]
    if widths:
        width_mm = float(np.median(widths)) / ppm_x
        speed = _snap(width_mm / PULSE_S, SPEEDS, 0.25)
        how = "the pulse"
        if speed is None:
            raise Refused(f"calibration pulse {width_mm:.1f} mm wide: not 0.2 s at a standard speed")
    else:
        speed = 25.0 if span_mm <= 10.2 * 25.0 else 50.0
        how = "assumed" if speed == 25.0 else f"rows of {span_mm:.0f} mm"
    if span_mm / speed > 10.2:
        raise Refused(f"rows of {span_mm:.0f} mm at {speed:g} mm/s ({how}) would hold {span_mm / speed:.1f} s: "
                      f"more than a 10 s record")
    spike_mm, beat_mm = _beats(rows, x_start, x_end, ppm_x, tv)
    checked, why = _check_speed(speed, how, spike_mm, beat_mm, span_mm)
    if how != "the pulse":
        notes.append(why or f"{speed:g} mm/s {'assumed' if speed == 25.0 else 'from the rows length'}")
    speed = checked
    px_per_s = speed * ppm_x
    seconds = span_mm / speed
    if gridless and abs(seconds / 10 - 1) <= 0.03:  # a pulse's width is read to a pixel: rows of 10 s are usual
        seconds, px_per_s = 10.0, (x_end - x_start) / 10.0
    # printers show whole tenths of a second; a trace may end inside a grid line taken out
    cut = 0 if lines is None else 2 * max(b - a for a, b in lines.cols) / px_per_s
    if abs(seconds - round(seconds, 1)) <= 0.02 + cut:
        seconds = round(seconds, 1)
    seconds = min(seconds, SHAPE[1] / FS)
    for r in rows:
        r.start = x_start
    debug.update(x_start=x_start, x_end=x_end, speed=speed, gain=gain, beats=(spike_mm, beat_mm))
    # rows that run into the picture's right edge were cut there (a crop, a photo's frame): at 25 mm/s they held
    # the usual 10 s, the rest of each stretch not printed in the picture
    cut_off = x_end >= ink.shape[1] - 1.5 * ppm_x and speed == 25.0 and seconds < 10.0
    if cut_off:
        seconds = 10.0
        x_end = x_start + seconds * px_per_s
        notes.append("rows cut at the picture's right edge: 10 s rows assumed")
    layout = _layout_for(rows, lambda r, f: _break(r, ink.trace, x_start, x_end, f, ppm_x, ppm_y, th),
                         lambda r, o, f: _same(r, o, x_start, x_end, f))
    if layout is None:
        raise Refused(f"{len(rows)} trace rows: not a layout this reads (3x4, 3x4+1, 3x4+3, 6x2, 12x1)")
    sig = np.full(SHAPE, np.nan, np.float32)
    boxes, read_share = [], []
    for cell in cells(layout, seconds):
        r = rows[cell.row]
        i0, i1 = int(round(cell.t0 * FS)), min(int(round(cell.t1 * FS)), SHAPE[1])
        if i1 <= i0:
            continue
        xs = r.start + np.arange(i0, i1) / FS * px_per_s
        vals, share = _sample(r, xs, ppm_x)
        sig[LEAD_INDEX[cell.lead], i0:i1] = (r.foot_y - vals) / (gain * ppm_y)
        read_share.append(share)
        boxes.append((cell.lead, cell.t0, cell.t1, float(xs[0]), float(r.lane[0]), float(xs[-1]), float(r.lane[1])))
    sig = limb_consistent(sig)
    quality = float(np.mean(read_share)) * (1.0 if pulses else 0.8) * (1.0 if minor_x or minor_y else 0.9)
    return Digitized(signal=sig, status="ok", error="; ".join(notes), speed=speed, gain=gain,
                     px_per_mm=float(ppm * max(scale, 1)),
                     rotation=round(rotation, 3), layout=layout, quality=round(quality, 3), seconds=seconds,
                     boxes=boxes)


def _grid(ink, ink0, rotation, grid_share, notes):
    """(ink, rotation, lines, (5 mm period across, down in px, minor lines seen across, down), gridless) of a
    deskewed page (`ink`; `ink0` before turning it by `rotation`): from its coloured or grey grid, its
    black-and-white one (found as `lines`, then taken out of the trace ink) or, without a grid, its calibration
    pulse (a note added to `notes`)."""
    lines = find_lines(ink.trace)  # a black-and-white page: its grid is in the trace ink
    if lines is not None:
        ink.trace = remove_lines(ink.trace, lines)
        px, py, minor_x, minor_y = lines.period_x, lines.period_y, lines.minor, lines.minor
    else:
        px, _, minor_x = grid_period(ink.grid.mean(axis=0))
        py, _, minor_y = grid_period(ink.grid.mean(axis=1))
    # no grid: no period, or hardly any grid ink (the faint edges of text and traces repeat too)
    gridless = not (np.isfinite(px) and np.isfinite(py)) or abs(px / py - 1) > 0.5 or \
        (lines is None and grid_share < 0.006)
    if not gridless and abs(px / py - 1) > 0.08:
        raise Refused(f"the grid's periods across and down differ ({px:.2f} vs {py:.2f} px): not a square grid")
    share = ink.trace.mean()
    if share > 0.25:
        raise Refused(f"not an ECG page: {share:.0%} of the picture is dark ink (a photograph, noise or a dark page)")
    if gridless:
        if share > 0.1:
            raise Refused(f"not an ECG page: no grid and {share:.0%} of the picture is dark ink")
        if _has_lines(ink.trace, strict=True):
            raise Refused("black-and-white page whose grid lines could not be told apart: the scale cannot be read")
        if 0 < abs(rotation) < 0.2:  # read off the traces, not lines: too rough to turn thin traces for
            ink, rotation = ink0, 0.0
        ppm_x, ppm_y, note = _gridless_scale(ink)
        notes.append(note)
        px, py = 5 * ppm_x, 5 * ppm_y
    return ink, rotation, lines, (px, py, minor_x, minor_y), gridless


def _read_rows(ink, ppm_x, ppm_y, lines, debug):
    """The page's trace rows, each followed and its pulse read, and the pen's thickness: (rows, down, across)."""
    rows = find_rows(ink.trace, ppm_x, ppm_y, bridge=lines is not None)
    debug.update(rows=rows, ink=ink)
    if not rows:
        raise Refused("not an ECG page: no trace rows found")
    _lanes(rows, ink.shape[0], ppm_y)
    runs = Runs(ink.trace)
    tv, th = _thickness(ink.trace, runs, rows, ppm_y, lines)
    # strokes are 2g + 1 px wider across than their centre line; 2 px ones are thinned as 3 px ones (a resampled
    # page's strokes, part-inked at their edges, read 2 px across here and 3 there: the shortest common run is 2)
    g = 1 if th == 2 else int((th - 1) // 2)
    if g > 0:
        thin = ndimage.binary_erosion(ink.trace, structure=np.ones((1, 2 * g + 1), bool))
        if lines is not None or th < 2 * g + 1:  # strokes narrower than that stay (and bits a grid line cut)
            thin |= ink.trace & ~ndimage.maximum_filter1d(thin.view(np.uint8), 2 * g + 1, axis=1).view(bool)
        runs = Runs(thin)
    _follow_rows(runs, rows, ppm_y)
    for r in rows:
        _read_row(r, ppm_x, ppm_y, tv)
        if th == 2:  # 2 px strokes thinned as 3 px ones lost a column at the trace's ends: where they were
            r.end += 1.0
            if r.pulse and r.pulse["start"] is not None:
                r.start -= 1.0
    debug.update(thickness=(tv, th))
    return rows, tv, th


def _gridless_scale(ink):
    """(px per mm across, down, note) of a page without a grid, from its calibration pulses, found on a copy
    reduced to about 1 Mpx at a scale guessed from the rows' pitch (then twice and half that)."""
    f = max(1, int(np.sqrt(ink.trace.size / 1e6)))
    h, w = (ink.shape[0] // f) * f, (ink.shape[1] // f) * f
    small = SimpleNamespace(trace=ink.trace[:h, :w].reshape(h // f, f, w // f, f).any(axis=(1, 3)))
    small.shape = small.trace.shape
    guess = _provisional_scale(small.trace)
    for ppm in (guess, 2 * guess, guess / 2):
        try:
            rows = _read_rows(small, ppm, ppm, None, {})[0] if ppm >= 1.0 else []
        except Refused:
            rows = []
        if any(r.pulse for r in rows):
            ppm_x, ppm_y, note = _pulse_scale(rows)
            return f * ppm_x, f * ppm_y, note
    raise Refused("no grid and no calibration pulse: the scale cannot be read")


def _provisional_scale(trace):
    """px per mm guessed from the trace rows' pitch (its row profile's strongest repeat), taken as 40 mm: only
    to find the rows and the calibration pulse of a page without a grid, whose pulse then gives the scale."""
    p = ndimage.gaussian_filter1d(trace.sum(axis=1).astype(np.float64), 2.0)
    r = _autocorr(p)
    lo = max(10, len(p) // 40)
    peaks, _ = find_peaks(r[:len(p) // 2])
    peaks = peaks[(peaks >= lo) & (r[peaks] > 0.1)]
    if not len(peaks) or r[peaks].max() < 0.4:
        raise Refused("not an ECG page: no grid and no trace rows repeating down the page")
    top = r[peaks].max()
    pitch = peaks[np.argmax(r[peaks] >= 0.8 * top)]  # the smallest repeat about as strong as the strongest
    return pitch / 40.0


def _pulse_scale(rows):
    """(px per mm across, down, note) of a page without a grid, from its calibration pulses: 1 mV high and, when
    square, 0.2 s wide; the gain and speed are the standard pair that makes the pixels square (the commonest where
    two fit). A step pulse gives no time: 10 mm/mV is assumed."""
    pulses = [r.pulse for r in rows if r.pulse]
    if not pulses:
        raise Refused("no grid and no calibration pulse: the scale cannot be read")
    h = float(np.median([p["height"] for p in pulses]))
    widths = [p["width"] for p in pulses if np.isfinite(p["width"])]
    if not widths:
        return h / 10.0, h / 10.0, "no grid: 1 mV from the step pulse, 10 mm/mV assumed"
    w = float(np.median(widths))
    prior = {25.0: 0.88, 50.0: 0.11, 12.5: 0.01, 10.0: 0.75, 5.0: 0.12, 20.0: 0.1, 2.5: 0.005, 40.0: 0.005}
    pairs = sorted(((g, v) for v in SPEEDS for g in GAINS), key=lambda p: -prior[p[0]] * prior[p[1]])
    err = [abs(np.log((h / g) / (w / (PULSE_S * v)))) for g, v in pairs]
    k = int(np.argmin(np.round(err, 2)))  # of pairs that fit alike (10 mm/mV at 50 mm/s, 5 at 25), the commonest
    if err[k] > np.log(1.25):  # pairs lie a factor 2 apart; a narrow pulse is read to a pixel or two
        raise Refused(f"no grid, and a calibration pulse {w:.0f} x {h:.0f} px is no standard gain and speed "
                      f"on square pixels")
    g = pairs[k][0]  # the height, read to a fraction of a pixel, gives the scale (the width only the pair)
    return h / g, h / g, "no grid: the scale from the calibration pulse"


def _thickness(trace, runs, rows, ppm_y, lines=None):
    """(down, across) thickness of the trace's strokes in px: the shortest common vertical run near the rows'
    baselines (flat stretches; sloping ones only add to it), and the shortest common horizontal run around them
    (steep strokes; a pen may be wider across than down). Runs cut short by a grid line taken out (`lines`) are
    left out."""
    h, w = trace.shape
    cut_y, cut_x = np.zeros(h + 1, bool), np.zeros(w + 1, bool)
    for (a, b), cut in [(ab, cut_y) for ab in (lines.rows if lines else [])] + \
            [(ab, cut_x) for ab in (lines.cols if lines else [])]:
        cut[a:b] = True
    vert, horiz = [], []
    for r in rows[:4]:
        top, bot = runs.lane(int(r.base - 4), int(r.base + 5), r.x0, r.x1 + 1, r.base, max_runs=2)
        ok = top >= 0
        ok[ok] = ~cut_y[top[ok] - 1] & ~cut_y[bot[ok]]
        ln = (bot - top)[ok]
        vert.append(ln[(ln > 0) & (ln < 40)])
        sub = trace[int(max(0, r.base - 15 * ppm_y)):int(r.base + 15 * ppm_y), r.x0:r.x1 + 1]
        d = np.diff(sub.view(np.int8), axis=1, prepend=0, append=0)
        starts, ends = np.nonzero(d == 1)[1], np.nonzero(d == -1)[1]
        hl = (ends - starts)[~cut_x[r.x0 + starts - 1] & ~cut_x[r.x0 + ends]]
        horiz.append(hl[(hl > 0) & (hl <= 12)])
    vert = np.concatenate(vert).astype(int) if vert else np.array([], int)
    horiz = np.concatenate(horiz).astype(int) if horiz else np.array([], int)
    if not len(vert):
        return 2.0, 2.0
    hist = np.bincount(vert)
    tv = float(max(1, np.flatnonzero(hist >= 0.25 * hist.max())[0]))
    if len(horiz) > 20:
        hist = np.bincount(horiz)
        th = float(np.flatnonzero(hist >= 0.25 * hist.max())[0])
    else:
        th = tv
    return tv, max(1.0, th)


def _lanes(rows, height, ppm_y):
    """Each row's search band: 1.5 row pitches above and below its baseline (neighbours' waves cross it)."""
    pitch = np.median(np.diff([r.base for r in rows])) if len(rows) > 1 else 40 * ppm_y
    for r in rows:
        r.lane = (int(max(0, r.base - 1.5 * pitch)), int(min(height, r.base + 1.5 * pitch + 1)))


def _follow_rows(runs, rows, ppm_y):
    """Each row's chosen run per column over its extent: sets r.ct, r.cb (page rows, -1 where no ink)."""
    x0 = min(r.ext0 for r in rows)
    x1 = max(r.x1 for r in rows) + 1
    lanes = [runs.lane(r.lane[0], r.lane[1], x0, x1, r.base) for r in rows]
    k = max(1, max(int((t >= 0).sum(axis=1).max()) for t, _ in lanes))
    top = np.stack([t[:, :k] for t, _ in lanes])
    bot = np.stack([b[:, :k] for _, b in lanes])
    for i, r in enumerate(rows):  # outside a row's own extent: nothing
        top[i, :r.ext0 - x0] = -1
        top[i, r.x1 + 1 - x0:] = -1
    bot[top < 0] = -1
    ct, cb = follow(top, bot, [r.base for r in rows], ppm_y)
    for i, r in enumerate(rows):  # columns from r.x0 on; those before it (from r.ext0) kept apart
        r.ct, r.cb = ct[i, r.x0 - x0:r.x1 + 1 - x0], cb[i, r.x0 - x0:r.x1 + 1 - x0]
        r.pre_ct, r.pre_cb = ct[i, r.ext0 - x0:r.x0 - x0], cb[i, r.ext0 - x0:r.x0 - x0]


def _read_row(r, ppm_x, ppm_y, thick):
    """Row `r`'s calibration pulse, 0 mV level and where its trace starts and ends (page columns; the start is
    nan when the trace runs on from the pulse without a gap), from its followed centre line."""
    yc = np.where(r.ct >= 0, (r.ct + r.cb - 1) / 2.0, np.nan)
    pre = np.where(r.pre_ct >= 0, (r.pre_ct + r.pre_cb - 1) / 2.0, np.nan)
    off = len(pre)
    r.foot_y = _mode(yc)
    r.pulse = find_pulse(np.concatenate([pre, yc]), off, r.foot_y, ppm_x, ppm_y) if np.isfinite(r.foot_y) else None
    if r.pulse:
        r.foot_y = r.pulse["foot"]
        r.start = r.ext0 + r.pulse["start"] if r.pulse["start"] is not None else float("nan")
    else:
        r.start = float(r.x0)
    last = np.flatnonzero(np.isfinite(yc))
    r.end = float(r.x0 + last[-1] + 1) if len(last) else float("nan")
    r.thick = thick
    filled = yc.copy()
    have = np.isfinite(filled)
    if have.sum() >= 2:
        filled[~have] = np.interp(np.flatnonzero(~have), np.flatnonzero(have), filled[have])
        r.level = ndimage.median_filter(filled, size=max(3, int(16 * ppm_x)) | 1, mode="nearest")
    else:
        r.level = np.full(len(yc), r.base)
    r.yc = yc


def _mode(y):
    y = y[np.isfinite(y)]
    if not len(y):
        return float("nan")
    hist = np.bincount(np.round(y - y.min()).astype(int))
    k = int(np.argmax(ndimage.uniform_filter1d(hist.astype(float), 3)))
    near = y[np.abs(y - (y.min() + k)) <= 2]
    return float(np.mean(near)) if len(near) else float(y.min() + k)


def _sample(r, xs, ppm_x):
    """The row's centre line at continuous x positions `xs` (page columns): (y values, share read)."""
    c0 = int(np.floor(xs[0])) - r.x0  # the cell's own columns: its neighbours hold other leads
    c1 = int(np.floor(xs[-1])) + 1 - r.x0
    c0, c1 = max(0, c0), min(len(r.ct), c1)
    ct, cb = r.ct[c0:c1].copy(), r.cb[c0:c1].copy()
    px, py = path_points(ct, cb, r.thick, r.level[c0:c1])
    if len(px) < 2:
        return np.full(len(xs), np.nan), 0.0
    px = px + r.x0 + c0
    vals = np.interp(xs, px, py)
    # no ink for more than 1.5 mm: not read
    have = np.zeros(len(xs), bool)
    cols = np.clip(np.floor(xs).astype(int) - r.x0, 0, len(r.ct) - 1)
    ink_cols = np.flatnonzero(r.ct >= 0)
    if len(ink_cols):
        pos = np.searchsorted(ink_cols, cols)
        left = ink_cols[np.clip(pos - 1, 0, len(ink_cols) - 1)]
        right = ink_cols[np.clip(pos, 0, len(ink_cols) - 1)]
        dist = np.minimum(np.abs(cols - left), np.abs(right - cols))
        have = dist <= 1.5 * ppm_x
    have &= (xs >= r.x0) & (xs < r.x0 + len(r.ct))  # past the row's columns (cut at the picture's edge): not read
    vals[~have] = np.nan
    return vals, float(have.mean())


def limb_consistent(sig):
    """The limb leads made consistent where three or more are read at the same samples: each group of samples
    with the same leads read is fitted, least squares, by leads I and II through LIMB (each lead's mean over the
    group kept: the rows' 0 mV levels are read separately; with the mean, a consistent record comes back
    unchanged), which averages out part of the reading error; a lead of four or more that the others do not fit
    is taken from them (_limb_fit)."""
    limb = sig[:6].astype(np.float64)
    codes = (np.isfinite(limb) * (1 << np.arange(6))[:, None]).sum(axis=0)
    out = sig.copy()
    for code in np.unique(codes):
        idx = [i for i in range(6) if code >> i & 1]
        ts = np.flatnonzero(codes == code)
        if len(idx) < 3 or np.linalg.matrix_rank(LIMB[idx]) < 2 or len(ts) < 0.2 * FS:
            continue  # fewer than two signals' worth of leads, or a few samples (a gap in one lead)
        x = limb[np.ix_(idx, ts)]
        fit = _limb_fit(LIMB[idx], x)
        if fit is None:
            continue
        out[np.ix_(idx, ts)] = fit
    return out


def _limb_fit(a, x, misfit=0.25):
    """Leads `x` (k, n) fitted through `a` (k, 2). Three that do not fit (their residual above `misfit` of their
    spread): None, for which lead is wrong cannot be told and a fit would spread its error. Four or more that do
    not: all k from the rest when leaving one lead out makes the rest fit (a misread lead), else the whole fit."""
    level = x.mean(axis=1, keepdims=True)

    def fit(rows):
        coef = np.linalg.lstsq(a[rows], (x - level)[rows], rcond=None)[0]
        return a @ coef + level, np.sqrt(np.mean((x[rows] - (a[rows] @ coef + level[rows])) ** 2))

    whole, err = fit(list(range(len(a))))
    if err <= misfit * np.sqrt(np.mean((x - level) ** 2)):
        return whole
    if len(a) < 4:
        return None
    best = min(range(len(a)), key=lambda i: fit([j for j in range(len(a)) if j != i])[1])
    rest = [j for j in range(len(a)) if j != best]
    if np.linalg.matrix_rank(a[rest]) == 2:
        fitted, err = fit(rest)
        if err <= misfit * np.sqrt(np.mean((x[rest] - level[rest]) ** 2)):
            return fitted
    return whole


# The beats at the paper's true speed, on pages of 340 development records (folds 1-7; tools/make_paper.py --preset
# clean): the QRS spike's width at half height is about 20 ms with a long tail of wide complexes (a bundle branch
# block's 40-80 ms is common), hence Student's t (3 degrees of freedom) on its log; the rate about 72/min.
SPIKE_MS, SPIKE_SD, RATE, RATE_SD = 20.0, 0.2, 72.0, 0.27
# The speed check's log-likelihood-ratio thresholds (chosen on those pages and 340 scanned ones): a speed the pulse
# measured is refused only when the beats contradict it strongly; an assumed one (no square pulse) is changed when
# they clearly fit the other speed and refused when they merely lean to it.
PULSE_REFUSE, ASSUMED_SWITCH, ASSUMED_REFUSE = -4.0, -4.0, -2.0


def _check_speed(speed, how, spike_mm, beat_mm, span_mm):
    """The speed read (`how`: "the pulse" or how it was assumed), checked against the beats: a spike as wide and
    a rate as slow as at twice the speed say the paper ran faster (and the reverse). Returns (speed, a note when
    the beats changed it); raises Refused when unclear."""
    if not (np.isfinite(spike_mm) and np.isfinite(beat_mm) and spike_mm > 0 and beat_mm > 0):
        return speed, ""
    spike_ms, rate = 1000 * spike_mm / speed, 60 * speed / beat_mm
    for factor, word in ((2.0, "faster"), (0.5, "slower")):
        if factor * speed not in SPEEDS or span_mm / (factor * speed) > 10.2:
            continue
        llr = _speed_llr(spike_ms, rate, factor)
        if how != "the pulse" and factor == 2.0 and llr < ASSUMED_SWITCH:  # 12.5 mm/s: refused, never assumed
            return factor * speed, (f"{factor * speed:g} mm/s from the beats (no square pulse; at {speed:g} mm/s the "
                                    f"QRS spikes would be {spike_ms:.0f} ms wide and the rate {rate:.0f}/min)")
        if llr < (PULSE_REFUSE if how == "the pulse" else ASSUMED_REFUSE):
            raise Refused(f"speed unclear: at {speed:g} mm/s ({how}) the QRS spikes are {spike_ms:.0f} ms wide at half "
                          f"height and the rate {rate:.0f}/min, as if the paper ran {word} ({speed * factor:g} mm/s)")
    return speed, ""


def _speed_llr(spike_ms, rate, factor):
    """Log-likelihood of the speed read against `factor` times it, from a page's spike width (ms) and rate (/min)
    at the speed read (SPIKE_MS, RATE). Below 0: the other speed fits the beats better."""
    def logp(centre_w, centre_r):
        return t_dist.logpdf(np.log(spike_ms / centre_w) / SPIKE_SD, 3) - 0.5 * (np.log(rate / centre_r) / RATE_SD) ** 2
    return float(logp(SPIKE_MS, RATE) - logp(SPIKE_MS * factor, RATE / factor))


def _trace(r, x_start, x_end):
    """Row `r`'s centre line (per column, nan where no ink) from x_start to x_end, gaps filled linearly; None when
    it holds too little ink."""
    a, b = int(round(x_start)) - r.x0, int(round(x_end)) - r.x0
    y = r.yc[max(0, a):max(0, b)].copy()
    ok = np.isfinite(y)
    if ok.sum() < 50:
        return None
    y[~ok] = np.interp(np.flatnonzero(~ok), np.flatnonzero(ok), y[ok])
    return y


def _beats(rows, x_start, x_end, ppm_x, pen_px):
    """(spike width mm, beat interval mm) of the page, nan when unclear: in each row, the spikes of its deflection
    from the baseline at least 45 % as tall as its tallest (the QRS complexes) and 5 mm apart; the median width at
    half height (the pen's own width taken off) and the median distance between successive ones. At 25 mm/s a
    QRS spike is 0.3-0.5 mm wide at half height (1.1 for a wide QRS) and beats are 10-40 mm apart; at 50 mm/s
    twice both."""
    widths, gaps = [], []
    for r in rows:
        y = _trace(r, x_start, x_end)
        if y is None:
            continue
        base = ndimage.median_filter(y, size=max(3, int(12 * ppm_x)) | 1, mode="nearest")
        d = np.abs(y - base)
        if d.max() < 2:
            continue
        p, _ = find_peaks(d, distance=max(1, int(5 * ppm_x)), prominence=0.45 * d.max())
        if len(p) >= 2:
            widths += list(peak_widths(d, p, rel_height=0.5)[0] - 0.5 * pen_px)
            gaps += list(np.diff(p))
    width = float(np.median(widths)) / ppm_x if len(widths) >= 4 else float("nan")
    gap = float(np.median(gaps)) / ppm_x if len(gaps) >= 3 else float("nan")
    return width, gap
