"""Delineation of the median beat (step 5 of utils/ecg/measurements.py): where the QRS, P and T waves are, as
sample positions in the median beat of utils/ecg/beats.py (R at `PRE`). The amplitudes and intervals measured
there are utils/ecg/measurements.py's. Every boundary is global, from all 12 leads, as an electrocardiograph's
(the CSE convention: the earliest onset and the latest offset of a wave over the leads).

5. QRS onset/offset on the spatial velocity (sum over the leads of |slope|): where it comes down under twice the
   level of the quietest 20 ms on that side (the PR segment before, the ST segment after: the velocity of noise
   fluctuates about as much as its mean) plus 1 % of its QRS peak, for 10 ms before the QRS and 16 ms after it
   (an RBBB notch must not end the QRS).
   P wave: the most prominent wave of lead II in the 300 ms before the QRS (after the previous beat's T wave);
   in every lead, its peak near lead II's and its onset and offset by the trapezium-area method within 120 ms
   of that peak; the P onset and offset are the median over the leads where the P wave is clear.
   T wave: each lead's peak in a window from 40 ms after the QRS to 40 ms before the next beat's P wave
   (RR - PR - 40 ms after the QRS onset; RR - 40 ms without a P wave), a maximum at the window's edge being no
   peak; its end by the trapezium-area method within 150 ms after the peak (and inside the window); the T end
   is the upper quartile over the leads where the T wave is clear (towards the latest, robust to one lead).

The trapezium-area method (Vazquez-Seisdedos et al., BioMed Eng OnLine 10:43, 2011): from the steepest point of
the wave's return xm, the end is the point t maximising the area of the trapezium (xm, x(xm)), (t, x(t)), (xr,
x(t)), (xr, x(xm)) with xr the search's far bound; no amplitude threshold, so a flat T wave still ends.
A wave is "clear" in a lead where its size relative to that lead's QRS is at least a share (Rules) of that of the lead
where it is clearest: a ratio within a lead, so a gain per lead (LUDB's are normalised) changes nothing.
"""
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np
from scipy import signal as sps
from scipy.ndimage import uniform_filter1d

from .beats import LD, PRE, ms_to_samples

_n = ms_to_samples


@dataclass(frozen=True)
class Rules:
    """The delineation's tunable thresholds, in one place so that bench/measure_accuracy.py can choose them out of
    sample (--crossval: chosen on some LUDB records, scored on others). The defaults are RULES below."""

    qrs_on_threshold: float = 0.01  # share of the QRS's peak spatial velocity (above the quiet level) that is quiet, before it
    qrs_off_threshold: float = 0.01  # ... and after it
    quiet_noise_on: float = 2.0  # ... above this many times the quiet level (the velocity's noise is about its mean), before
    quiet_noise_off: float = 2.0  # ... and after
    clear_t: float = 0.5  # T wave: leads whose T/QRS is at least this share of the largest T/QRS
    clear_p: float = 0.3  # P wave: the same for P/QRS (a P wave is smaller, more leads are needed)
    t_end_quantile: float = 75.0  # the T end over the clear leads: this percentile (towards the latest, robust to one)
    qrs_knee_ms: float = 160.0  # > 0: the QRS ends no earlier than the velocity's knee within this many ms (slurred ends)


RULES = Rules()


class PWave(NamedTuple):
    """The P wave: peak sample (lead II), global onset and offset sample (None: no wave), the peak's prominence
    in II (mV) and each lead's peak sample (or None)."""
    peak: Optional[int]
    onset: Optional[int]
    offset: Optional[int]
    prominence: float
    peaks: Optional[np.ndarray] = None


class TWave(NamedTuple):
    """T wave: search window [start, stop), each lead's peak sample, the lead where it is clearest and the global
    T end (float, NaN: none)."""
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


def qrs_bounds(mb, rules=RULES):
    """(onset, offset) sample indices in the median beat: where the spatial velocity stays quiet (under twice the
    quiet level on that side plus 1 % of its QRS peak: `rules`), for 10 ms before the QRS and 16 ms after it."""
    v = uniform_filter1d(np.abs(np.diff(mb, axis=1)).sum(0), 5)
    vmax = v[PRE - _n(80):PRE + _n(80)].max()
    quiet_level = uniform_filter1d(v, _n(20))  # the quietest 20 ms on each side: noise, P or T slope
    b_on = quiet_level[PRE - _n(160):PRE - _n(20)].min()
    b_off = quiet_level[PRE + _n(20):PRE + _n(200)].min()
    quiet = v < rules.quiet_noise_on * b_on + rules.qrs_on_threshold * (vmax - b_on)
    k = _first_run(quiet[PRE - _n(160):PRE][::-1], _n(10))
    onset = PRE - (k if k is not None else _n(160))
    quiet = v < rules.quiet_noise_off * b_off + rules.qrs_off_threshold * (vmax - b_off)
    k = _first_run(quiet[PRE:PRE + _n(200)], _n(16))
    offset = PRE + (k if k is not None else _n(200))
    if rules.qrs_knee_ms > 0:
        offset = max(offset, _knee(v, vmax, rules.qrs_knee_ms))
    return onset, offset


def _knee(v, vmax, span_ms):
    """Where the spatial velocity `v` levels off after the QRS's last large slope (above 30 % of its peak, within
    120 ms of R): the trapezium-area end of that decay within `span_ms` (a slow, slurred end that never gets quiet
    enough for the threshold)."""
    big = np.flatnonzero(v[PRE:PRE + _n(120)] > 0.3 * vmax)
    if not len(big):
        return 0
    last = PRE + int(big[-1])
    end = trapezium_end(v, last, min(last + _n(span_ms), len(v) - 1))
    return int(end) if np.isfinite(end) else 0


def trapezium_end(x, peak, far):
    """End of the positive wave of x that peaks at `peak`, searched up to `far` (> peak), by the trapezium-area
    method; or before it when far < peak (its onset). NaN if there is no room."""
    if far < peak:
        r = trapezium_end(x[::-1], len(x) - 1 - peak, len(x) - 1 - far)
        return len(x) - 1 - r if np.isfinite(r) else np.nan
    seg = x[peak:far + 1]
    if len(seg) < 3:
        return np.nan
    m = int(np.argmin(np.diff(seg)))  # the steepest return towards baseline
    xr = len(seg) - 1
    t = np.arange(m, xr + 1)
    area = (seg[m] - seg[t]) * (2 * xr - t - m)
    return float(peak + t[np.argmax(area)])


def _clear(ratio, share):
    """Leads where the wave is clear: ratio (the wave's size over the lead's QRS) >= share x the largest."""
    return ratio >= share * ratio.max() if ratio.max() > 0 else np.zeros(len(ratio), dtype=bool)


def _qrs_size(y, onset, offset):
    return np.maximum(np.ptp(y[:, onset:offset + 1], axis=1), 1e-6)


def p_wave(y, onset, offset, rr_median, rules=RULES):
    """The P wave (PWave) of the baseline-relative median beat `y`, or None if there is no room for one."""
    # The most prominent wave of lead II 300-20 ms before the QRS (and after the previous T wave) is the P wave.
    lo, hi = max(onset - _n(300), 0), onset - _n(20)
    if np.isfinite(rr_median):
        lo = max(lo, PRE - _n(rr_median - 320))  # the previous beat's T peak is ~300 ms after its R
    if hi - lo < _n(40):
        return None
    pk, sign, prom = _most_prominent(y[LD["II"], lo:hi])
    if pk is None:
        return PWave(None, None, None, 0.0)
    pk += lo
    # each lead's P peak: its extreme within 40 ms of lead II's; a lead whose extreme is at that window's edge
    # has no peak there. Onset/offset by the trapezium method, 120 ms either side, not into the QRS.
    a, b = max(pk - _n(40), 0), min(pk + _n(40), onset)
    w = y[:, a:b]
    k = np.abs(w).argmax(1)
    peaks = a + k
    inside = (k > 0) & (k < w.shape[1] - 1)
    ons, offs, size = np.full(len(y), np.nan), np.full(len(y), np.nan), np.zeros(len(y))
    qrs = _qrs_size(y, onset, offset)
    for ld in np.flatnonzero(inside):
        p = peaks[ld]
        x = np.sign(y[ld, p]) * y[ld]
        lo_l, hi_l = max(p - _n(120), 0), min(p + _n(120), onset)
        ons[ld], offs[ld] = trapezium_end(x, p, lo_l), trapezium_end(x, p, hi_l)
        size[ld] = (x[p] - 0.5 * (x[lo_l] + x[hi_l])) / qrs[ld]
    use = _clear(size, rules.clear_p) & np.isfinite(ons) & np.isfinite(offs)
    if not use.any():
        return PWave(pk, None, None, prom, peaks)
    return PWave(pk, int(round(np.median(ons[use]))), int(round(np.median(offs[use]))), prom, peaks)


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


def t_window(onset, offset, rr_median, pr, width):
    """T-wave search window [start, stop) in the median beat: 40 ms after the QRS to 40 ms before the next beat's
    P wave, i.e. RR - PR - 40 ms after the QRS onset (without a P wave, as in atrial fibrillation or flutter, 40 ms
    before the next QRS); inside the beat."""
    pr = pr if np.isfinite(pr) else 0.0
    span = rr_median - pr - 40 if np.isfinite(rr_median) else 600
    return offset + _n(40), min(onset + _n(span), width)


def t_wave(y, onset, offset, rr_median, pr=np.nan, rules=RULES):
    """The T wave (TWave) of the baseline-relative median beat `y`, or None if there is no room for one."""
    lo, hi = t_window(onset, offset, rr_median, pr, y.shape[1])
    if hi - lo < _n(40):
        return None
    seg = y[:, lo:hi]
    k = np.abs(seg).argmax(1)
    peaks = lo + k
    inside = (k > 0) & (k < seg.shape[1] - 1)  # a maximum at the window's edge is the ST segment or the next P
    size = np.where(inside, np.abs(seg[np.arange(len(y)), k]) / _qrs_size(y, onset, offset), 0.0)
    ends = np.full(len(y), np.nan)
    for ld in np.flatnonzero(_clear(size, rules.clear_t)):
        x = np.sign(y[ld, peaks[ld]]) * y[ld]
        ends[ld] = trapezium_end(x, peaks[ld], min(peaks[ld] + _n(150), hi - 1))
    lead = int(np.argmax(size))
    end = float(np.percentile(ends[np.isfinite(ends)], rules.t_end_quantile)) if np.isfinite(ends).any() else np.nan
    return TWave(lo, hi, peaks, lead, end)
