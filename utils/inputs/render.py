"""Draw a 12-lead ECG as a black-on-white waveform picture, fast (numpy, no matplotlib).

Each lead gets a horizontal band; within it, every pixel column is inked from the lowest to the highest
sample that falls in it (joined to the previous column's last sample), so spikes are kept exactly
however many samples share a column. One fixed mV-to-pixel scale for every record: amplitude is
diagnostic, so nothing is normalised per record; only each lead's baseline offset (its median) is
removed so it sits on its band's centre line. Optionally the record is high-pass filtered first (the signal
family's filter, utils/ecg/filters.py: baseline wander no longer pushes ST/T out of the band), and amplitude
beyond the band is compressed smoothly instead of cut flat (`soft_compress`).
"""
import numpy as np
from PIL import Image

from ..ecg.filters import highpass

LAYOUTS = {"12x1": (12, 1), "6x2": (6, 2)}  # rows x columns of leads; leads fill columns top to bottom
SCALES = ("fixed", "per-lead")  # one mV-to-pixel scale for all | each lead stretched to fill its band (the original's look)
AMPLITUDE_MODES = ("clip", "soft")  # process.py AMPLITUDE (not train.py AMPLITUDES, a features setting): beyond the band: cut flat at its edge | compressed smoothly, never reaching the edge
RENDER_DEFAULTS = {"scale": "fixed", "amplitude": "clip", "highpass": 0.0}  # settings added later: what pictures
# drawn before them used (a render_config.json or model card without them)
SOFT_KNEE = 0.5  # soft: the share of each half-band drawn linearly (true scale); beyond it, compressed


def soft_compress(v, half):
    """Amplitude `v` (mV from the baseline) drawn within +-`half` mV: linear (unchanged) up to the knee
    k = SOFT_KNEE * half, beyond it k + r * u / (u + r) with u = |v| - k and r = half - k. The slope is 1 at the
    knee (no kink), the curve rises strictly and only approaches the band's edge, so a taller wave is always drawn
    taller: with the 2 mV band (half 1 mV), 0.5 / 1 / 1.5 / 2 / 3 / 5 mV are drawn at 0.5 / 0.75 / 0.83 / 0.88 /
    0.92 / 0.95 mV, where clipping draws everything from 1 mV on at 1 mV."""
    a = np.abs(v)
    k = SOFT_KNEE * half
    r = half - k
    u = np.maximum(a - k, 0)
    return np.sign(v) * (np.minimum(a, k) + r * u / (u + r))


def band_edges(size, n_rows):
    """Integer row boundaries of the `n_rows` bands of a `size`-pixel-high picture."""
    return np.round(np.linspace(0, size, n_rows + 1)).astype(int)


def _trace_columns(y, width):
    """Per pixel column, the (low, high) of y over its samples and the last sample of the column before."""
    n = y.shape[-1]
    col = (np.arange(n) * width) // n
    starts = np.searchsorted(col, np.arange(width))
    lo = np.minimum.reduceat(y, starts, axis=-1)
    hi = np.maximum.reduceat(y, starts, axis=-1)
    ends = np.append(starts[1:], n) - 1
    prev = np.concatenate([y[..., :1], y[..., ends[:-1]]], axis=-1)
    return np.minimum(lo, prev), np.maximum(hi, prev)


def render_mask(sig, size=640, line_width=2, layout="12x1", mv_range=2.0, scale="fixed", amplitude="clip",
                highpass_hz=0.0):
    """Boolean (size, size) ink mask of `sig` (12, n) in mV at 500 Hz. Each band spans `mv_range` mV top to bottom,
    or (scale "per-lead", as the original's matplotlib subplots drew them) each lead's own range. `highpass_hz` > 0:
    the record is high-pass filtered first. `amplitude` (fixed scale): beyond the band the trace is "clip"ped flat
    at its edge, or "soft": compressed (soft_compress)."""
    if amplitude not in AMPLITUDE_MODES:
        raise ValueError(f"amplitude must be one of {AMPLITUDE_MODES}, got {amplitude!r}")
    n_rows, n_cols = LAYOUTS[layout]
    sig = np.asarray(highpass(sig, highpass_hz) if highpass_hz else sig, dtype=np.float32)
    if scale == "per-lead":
        lo, hi = sig.min(axis=1, keepdims=True), sig.max(axis=1, keepdims=True)
        sig = (sig - (lo + hi) / 2) / np.maximum(hi - lo, 1e-3)  # each lead spans 1 unit, centred
        mv_range = 1.0
    else:
        sig = sig - np.median(sig, axis=1, keepdims=True)
        if amplitude == "soft":
            sig = soft_compress(sig, mv_range / 2.0).astype(np.float32)
    rows = band_edges(size, n_rows)
    cols = band_edges(size, n_cols)
    mask = np.zeros((size, size), dtype=bool)
    px_per_mv = (size / n_rows) / mv_range  # the same for every band and record (fixed scale)
    r = np.arange(size)[:, None]
    for c in range(n_cols):
        x0, x1 = cols[c], cols[c + 1]
        leads = sig[c * n_rows:(c + 1) * n_rows]
        top, bottom = rows[:-1, None], rows[1:, None] - 1
        centre = (rows[:-1, None] + rows[1:, None]) / 2.0
        y = centre - leads * px_per_mv  # pixel row per sample, up = positive mV
        lo, hi = _trace_columns(y, x1 - x0)
        lo = np.clip(np.floor(lo - (line_width - 1) / 2.0), top, bottom).astype(int)
        hi = np.clip(np.ceil(hi + (line_width - 1) / 2.0), top, bottom).astype(int)
        for k in range(n_rows):
            b0, b1 = rows[k], rows[k + 1]
            band = r[b0:b1]
            mask[b0:b1, x0:x1] |= (band >= lo[k]) & (band <= hi[k])
    return mask


def render_image(sig, size=640, line_width=2, layout="12x1", mv_range=2.0, scale="fixed", amplitude="clip",
                 highpass_hz=0.0):
    """Bilevel PIL image (mode '1'): black ink on white."""
    return Image.fromarray(~render_mask(sig, size, line_width, layout, mv_range, scale, amplitude, highpass_hz))
