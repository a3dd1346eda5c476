"""Delineation of the median beat (step 5 of utils/ecg/measurements.py): where the QRS, P and T waves are, as
sample positions in the median beat of utils/ecg/beats.py (R at `PRE`). The amplitudes and intervals measured
there are utils/ecg/measurements.py's.

5. QRS onset/offset where the spatial velocity (sum over leads of |slope|) stays under 4 % of its QRS peak. On
   the beat relative to its PR-segment baseline: P wave = the most prominent wave of lead II 300-30 ms before the
   QRS, its onset/offset at the knees against the chord to its peak; T peak per lead in a window after the QRS,
   T end on lead II or V5 (the larger T) by the tangent at the steepest descent after its peak.
"""
from typing import NamedTuple, Optional

import numpy as np
from scipy import signal as sps
from scipy.ndimage import uniform_filter1d

from .beats import LD, PRE, ms_to_samples

_n = ms_to_samples
QRS_THRESHOLD = 0.04  # share of the QRS's peak spatial velocity under which the signal counts as quiet


class PWave(NamedTuple):
    """The P wave of lead II: peak, onset and offset sample (None: no wave) and the peak's prominence (mV)."""
    peak: Optional[int]
    onset: Optional[int]
    offset: Optional[int]
    prominence: float


class TWave(NamedTuple):
    """T wave: search window [start, stop), each lead's peak sample, the T-end lead and T end (float, NaN: none)."""
    start: int
    stop: int
    peaks: np.ndarray
    lead: int
    end: float


def _first_run(mask, run):
    """First index k with mask[k:k+run] all True, or None."""
    if len(mask) < run:
        return None
    hits = np.flatnonzero(np.convolve(mask.astype(int), np.ones(run, dtype=int), "valid") == run)
    return int(hits[0]) if len(hits) else None


def qrs_bounds(mb):
    """(onset, offset) sample indices in the median beat: where the spatial velocity stays below 4 % of its QRS
    peak, for 10 ms before the QRS and 16 ms after it (longer after: an RBBB notch must not end the QRS)."""
    v = uniform_filter1d(np.abs(np.diff(mb, axis=1)).sum(0), 5)
    vmax = v[PRE - _n(80):PRE + _n(80)].max()
    base = np.percentile(v, 10)
    quiet = v < base + QRS_THRESHOLD * (vmax - base)
    k = _first_run(quiet[PRE - _n(160):PRE][::-1], _n(10))
    onset = PRE - (k if k is not None else _n(160))
    k = _first_run(quiet[PRE:PRE + _n(200)], _n(16))
    offset = PRE + (k if k is not None else _n(200))
    return onset, offset


def p_wave(y, onset, rr_median):
    """The P wave (PWave) of the baseline-relative median beat `y`, or None if there is no room for one."""
    # The most prominent wave of lead II 300-30 ms before the QRS (and after the previous T wave) is the P wave;
    # its onset and offset are the knees of the signal against the chord to its peak.
    lo, hi = max(onset - _n(300), 0), onset - _n(30)
    if np.isfinite(rr_median):
        lo = max(lo, PRE - _n(rr_median - 320))  # the previous beat's T peak is ~300 ms after its R
    if hi - lo < _n(40):
        return None
    pk, sign, prom = _most_prominent(y[LD["II"], lo:hi])
    if pk is None:
        return PWave(None, None, None, 0.0)
    pk += lo
    p = sign * y[LD["II"]]
    p_on = _knee(p, max(pk - _n(120), 0), pk)
    p_off = _knee(p, pk, min(pk + _n(120), onset))
    return PWave(pk, p_on, p_off, prom)


def _most_prominent(x):
    """(index, sign, prominence) of the most prominent peak of x or -x; a positive one (the usual P in II) wins
    unless the negative is twice as prominent; (None, 0, 0) if there is none above 0.02 mV."""
    best = {}
    for sign in (1, -1):
        pk, props = sps.find_peaks(sign * x, prominence=0.02)
        if len(pk):
            j = np.argmax(props["prominences"])
            best[sign] = (int(pk[j]), sign, float(props["prominences"][j]))
    if 1 in best and (-1 not in best or best[1][2] >= 0.5 * best[-1][2]):
        return best[1]
    return best.get(-1, (None, 0, 0.0))


def _knee(x, a, b):
    """Index in [a, b] farthest below the chord from x[a] to x[b]: where a wave rising towards b starts (or, with
    the peak at a, where it has come down)."""
    seg = x[a:b + 1]
    if len(seg) < 3:
        return a
    line = np.linspace(seg[0], seg[-1], len(seg))
    return a + int(np.argmax(line - seg))


def _t_window(offset, rr_median, width):
    """T-wave search window: 60 ms after J to 0.7 RR after R (250-600 ms), inside the median beat."""
    span = 0.7 * rr_median if np.isfinite(rr_median) else 400
    end = min(PRE + _n(np.clip(span, 250, 600)), width - 1)
    return offset + _n(60), end


def t_wave(y, offset, rr_median):
    """The T wave (TWave) of the baseline-relative median beat `y`, or None if there is no room for one."""
    lo, hi = _t_window(offset, rr_median, y.shape[1])
    if hi - lo < _n(40):
        return None
    seg = y[:, lo:hi]
    k = np.abs(seg).argmax(1)
    amp = seg[np.arange(len(seg)), k]
    lead = LD["II"] if abs(amp[LD["II"]]) >= abs(amp[LD["V5"]]) else LD["V5"]
    return TWave(lo, hi, lo + k, lead, _t_end_tangent(y[lead], lo + k[lead], hi))


def _t_end_tangent(x, tpk, hi):
    """T end: where the tangent at the steepest return towards baseline after the T peak crosses the baseline.
    The slope is searched only until the wave is back under a quarter of its peak (the next P wave is as steep)."""
    s = np.sign(x[tpk])
    if s == 0:
        return np.nan
    tail = s * x[tpk:min(hi + _n(100), len(x))]
    low = np.flatnonzero(tail < 0.25 * tail[0])
    d = np.diff(x[tpk:tpk + (low[0] + 1 if len(low) else len(tail))])
    if len(d) < 2:
        return np.nan
    k = np.argmax(-s * d)
    if -s * d[k] <= 0:
        return np.nan
    end = tpk + k - x[tpk + k] / d[k]
    return end if tpk <= end < len(x) else np.nan
