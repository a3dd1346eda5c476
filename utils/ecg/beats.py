"""The beats of one record: filters, R peaks, rhythm and the median beat (steps 1-4 of utils/ecg/measurements.py).

A record is (12, N) mV at 500 Hz, leads as `utils.ecg.io.LEADS`; everything uses scipy.signal.

1. Filtering (zero phase): 0.5-40 Hz for morphology, 5-25 Hz for QRS detection, 4-9 Hz for f waves.
2. R peaks: the 5-25 Hz energy summed over the 12 leads, smoothed over 100 ms, `find_peaks` with a 250 ms
   refractory period and a height of 0.3 x a robust reference (median of the taller half of the candidates, so
   neither big ectopic beats nor small T waves set it), and at least 0.02 x the tallest (so a record of a few
   beats, whose taller half is noise, does not count its noise); a T wave (small peak < 360 ms after a beat) is
   dropped, a long gap is searched again at half the height; each peak is moved to the maximum of the 20 ms energy.
3. Rhythm: heart rate, RR mean/median/std/min/max, RMSSD, pNN50, coefficient of variation, entropy of the
   successive RR differences, fraction of RR changes > 15 %, premature beats (RR < 0.85 x local median, followed
   by a longer RR), split into aberrant (QRS unlike the dominant beat: PVC-like) and normal-shaped (PAC-like).
4. Median beat per lead, -400..+600 ms around R, over the non-premature beats; each beat's correlation with it.
5. Pacemaker spikes, on the unfiltered record: a pacing pulse lasts 0.1-2 ms, so at 500 Hz it is a jump of one
   or two samples, steeper than any QRS, on most leads at once. A spike is a sample where, in at least
   SPIKE_LEADS of the 8 independent leads (I, II, V1-V6: the other limb leads are their sums, and one bad limb
   electrode moves them together), the one-sample change exceeds SPIKE_SLOPE x that lead's 99th percentile of
   |change| (the steepest QRS slopes of the record); a beat is paced when a spike precedes its R peak by
   10-300 ms (a ventricular spike just before the QRS, an atrial one up to an AV delay earlier).
"""
import numpy as np
from scipy import signal as sps
from scipy.ndimage import median_filter, uniform_filter1d

from .io import FS, LEADS


def ms_to_samples(ms):
    """Milliseconds -> samples."""
    return int(round(ms * FS / 1000))


_n = ms_to_samples  # short form for this module's many windows

LD = {name: i for i, name in enumerate(LEADS)}
PRE, POST = _n(400), _n(600)  # median-beat window around R: room for a long PR and a long QT
SOS_BEAT = sps.butter(2, [0.5, 40], btype="bandpass", fs=FS, output="sos")
SOS_QRS = sps.butter(2, [5, 25], btype="bandpass", fs=FS, output="sos")
SOS_F = sps.butter(2, [4, 9], btype="bandpass", fs=FS, output="sos")
SPIKE_SLOPE = 3.0  # a pacemaker spike's one-sample change over the lead's 99th percentile (the QRS's steepest)
SPIKE_LEADS = 3  # of the 8 independent leads
INDEPENDENT = [LD[name] for name in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]


# --- R peaks and rhythm ---------------------------------------------------------------------------------------

def detect_r_peaks(xq):
    """Sample indices of the R peaks from the 5-25 Hz band of all leads."""
    e = (xq ** 2).sum(0)
    env = uniform_filter1d(e, _n(100))
    cand = sps.find_peaks(env, distance=_n(250))[0]
    if len(cand) == 0:
        return np.zeros(0, dtype=int)
    h = env[cand]
    if h.max() < 1e-4:  # flat record: no QRS energy at all (a real one is ~1 mV^2)
        return np.zeros(0, dtype=int)
    # with few beats (a pause) the taller half of the candidates is mostly noise: the tallest one sets a floor
    thr = max(0.3 * np.median(np.sort(h)[len(h) // 2:]), 0.02 * h.max())
    peaks = _drop_t_waves(cand[h > thr], env)
    peaks = _search_back(peaks, cand, env, 0.5 * thr)
    return _refine(peaks, uniform_filter1d(e, _n(20)))


def _drop_t_waves(peaks, env):
    """A peak < 360 ms after the last kept one, with less than half its energy, is its T wave."""
    keep = []
    for p in peaks:
        if keep and p - keep[-1] < _n(360) and env[p] < 0.5 * env[keep[-1]]:
            continue
        keep.append(p)
    return np.asarray(keep, dtype=int)


def _search_back(peaks, cand, env, low):
    """In gaps > 1.6 x the median RR, add the highest candidate above `low` (a small beat missed)."""
    if len(peaks) < 3:
        return peaks
    rr_med = np.median(np.diff(peaks))
    extra = []
    for a, b in zip(peaks[:-1], peaks[1:]):
        if b - a > 1.6 * rr_med:
            c = cand[(cand > a + _n(250)) & (cand < b - _n(250)) & (env[cand] > low)]
            if len(c):
                extra.append(c[np.argmax(env[c])])
    return np.sort(np.concatenate([peaks, extra]).astype(int)) if extra else peaks


def _refine(peaks, e_short):
    """Move each peak to the maximum of the short-window energy within +-60 ms (the beat's own centre)."""
    if len(peaks) == 0:
        return peaks
    w = _n(60)
    idx = np.clip(peaks[:, None] + np.arange(-w, w + 1), 0, len(e_short) - 1)
    return np.unique(idx[np.arange(len(peaks)), np.argmax(e_short[idx], axis=1)])


def premature_beats(r):
    """Per beat: its RR < 0.85 x the local median RR and the next RR is longer (a pause follows)."""
    out = np.zeros(len(r), dtype=bool)
    if len(r) < 4:
        return out
    rr = np.diff(r).astype(float)
    local = median_filter(rr, size=7, mode="nearest")
    out[1:-1] = (rr[:-1] < 0.85 * local[:-1]) & (rr[1:] > 1.15 * rr[:-1])
    return out


def rhythm(r, premature):
    """Heart rate, RR statistics and the premature-beat count of the R peaks `r` (sample indices)."""
    out = {"n_beats": len(r)}
    if len(r) < 3:
        return out
    rr = np.diff(r) * (1000 / FS)
    d = np.diff(rr)
    m = rr.mean()
    rmssd = np.sqrt(np.mean(d ** 2))
    # entropy of the successive differences (relative to the mean RR) in 5 % bins: flat for AF, peaked for sinus
    hist = np.histogram(np.clip(d / m, -0.5, 0.5), bins=20, range=(-0.5, 0.5))[0]
    p = hist[hist > 0] / hist.sum()
    out.update(hr=60000 / m, rr_mean=m, rr_median=np.median(rr), rr_std=rr.std(), rr_min=rr.min(), rr_max=rr.max(),
               rmssd=rmssd, rmssd_norm=rmssd / m, pnn50=np.mean(np.abs(d) > 50), rr_cv=rr.std() / m,
               rr_diff_entropy=-(p * np.log(p)).sum() / np.log(20),
               rr_frac_change15=np.mean(np.abs(d) > 0.15 * rr[:-1]),
               n_premature=premature.sum(), frac_premature=premature.sum() / len(r))
    return out


# --- beats ----------------------------------------------------------------------------------------------------

def beat_segments(x, r):
    """(12, beats, PRE + POST) windows around the R peaks that fit in the record, and which peaks those are."""
    ok = np.flatnonzero((r - PRE >= 0) & (r + POST <= x.shape[1]))
    idx = r[ok, None] + np.arange(-PRE, POST)
    return x[:, idx], ok


def median_beat(segs, premature):
    """Median over the dominant beats: premature ones are left out while at least 3 others remain."""
    use = ~premature if (~premature).sum() >= 3 else np.ones(len(premature), dtype=bool)
    return np.median(segs[:, use], axis=1)


def corr_rows(a, b):
    """Pearson correlation of each row of `a` with the vector `b` (NaN where either is constant)."""
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean()
    den = np.sqrt((a ** 2).sum(-1) * (b ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a @ b) / np.where(den > 0, den, 1), np.nan)


def beat_consistency(segs, mb, premature):
    """How alike the beats' QRS complexes are (all leads at once): ectopic beats correlate poorly."""
    w = slice(PRE - _n(80), PRE + _n(120))
    beats = segs[:, :, w].transpose(1, 0, 2).reshape(segs.shape[1], -1)
    tmpl = mb[:, w].ravel()
    corr = corr_rows(beats, tmpl)
    energy = (beats ** 2).sum(1) / max((tmpl ** 2).sum(), 1e-12)
    res = segs - mb[:, None]
    low = corr < 0.9
    defined = np.isfinite(corr).any()
    return {"n_template_beats": segs.shape[1], "beat_corr_mean": np.nanmean(corr) if defined else np.nan,
            "beat_corr_min": np.nanmin(corr) if defined else np.nan, "frac_beats_lowcorr": low.mean(),
            "beat_energy_ratio_max": energy.max(), "beat_residual_rms": np.sqrt(np.mean(res ** 2)),
            "n_premature_aberrant": (premature & low).sum(), "n_premature_normal": (premature & ~low).sum()}


# --- pacemaker spikes -----------------------------------------------------------------------------------------

def paced_beats(raw, r):
    """Per R peak of `r`: a pacemaker spike 10-300 ms before it in the unfiltered record `raw` (12, N) mV (module
    docstring, step 5). A beat too near the record's start to look back 300 ms is not paced."""
    d = np.abs(np.diff(raw[INDEPENDENT], axis=1))
    steep = np.maximum(np.percentile(d, 99, axis=1, keepdims=True), 1e-3)  # 1 uV/sample: a flat lead
    spike = (d > SPIKE_SLOPE * steep).sum(0) >= SPIKE_LEADS
    hits = np.flatnonzero(spike) + 1  # the sample after the jump
    out = np.zeros(len(r), dtype=bool)
    if len(hits):
        lo, hi = np.searchsorted(hits, r - _n(300)), np.searchsorted(hits, r - _n(10), side="right")
        out = (hi > lo) & (r >= _n(300))
    return out
