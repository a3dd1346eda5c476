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
   or two samples, steeper than any QRS, on several leads at once. A spike is a sample where, in at least
   SPIKE_LEADS of the 8 independent leads (I, II, V1-V6: the other limb leads are their sums), the one-sample change
   of the part above 40 Hz (the record minus its 0.5-40 Hz band) exceeds SPIKE_RISE x the lead's steepest QRS
   change (99th percentile of its 0.5-40 Hz one-sample change) and SPIKE_QUIET x the lead's largest change 8-20 ms
   earlier (a jump inside a QRS or in muscle noise is no spike). Noise makes spikes too, but at random times:
   pacing is told by spikes keeping time with the beats. A beat's spikes are those from 350 ms before its R peak
   (an atrial spike, an AV delay before the QRS) to 10 ms after it (a big ventricular spike draws the R peak onto
   itself); a beat that comes early (RR < EARLY x the median) has none: a pacemaker does not fire early, and an
   electrode pop the R-peak detector took for a beat comes early. The evidence is -log10 of the chance that, had the
   record's spikes fallen at random, as many beats would share a spike delay (+-SPIKE_JITTER) as share the best
   one, or the best two (fusion beats; atrial and ventricular spikes), corrected for the delays tried (a binomial
   tail). A record is paced when the evidence is at least PACING_EVIDENCE (a chance of 1 in 3,000); its paced
   beats are then those with a spike.
"""
import math

import numpy as np
from scipy import signal as sps
from scipy.ndimage import maximum_filter1d, median_filter, uniform_filter1d

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
SPIKE_RISE = 2.0  # a spike's one-sample change above 40 Hz over the lead's steepest QRS change (step 5)
SPIKE_QUIET = 3.0  # ... and over the lead's largest change 8-20 ms before it
SPIKE_LEADS = 3  # of the 8 independent leads
INDEPENDENT = [LD[name] for name in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]
SPIKE_WINDOW = (_n(350), _n(10))  # a beat's spikes: this long before its R peak, this long after
SPIKE_JITTER = _n(6)  # the spikes of one pacing site keep their delay to the R peak within +- this
EARLY = 0.8  # a beat less than this x the median RR after the one before is not paced
PACING_EVIDENCE = 3.5  # -log10 of the chance that random spikes keep time with the beats as well


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

def spike_times(raw, x):
    """Sorted sample indices where a pacemaker spike jumps in the unfiltered record `raw` (12, N) mV, whose 0.5-40 Hz
    band is `x` (module docstring, step 5)."""
    xr = raw[INDEPENDENT]
    high = np.abs(np.diff(xr - x[INDEPENDENT], axis=1))
    slope = np.abs(np.diff(x[INDEPENDENT], axis=1))
    k = slope.shape[1] - max(slope.shape[1] // 100, 1)  # the 99th percentile: the QRS's steepest changes
    steep = np.maximum(np.partition(slope, k, axis=1)[:, k:k + 1], 1e-3)  # 1 uV a sample: a flat lead
    cand = np.flatnonzero((high >= SPIKE_RISE * steep).sum(0) >= SPIKE_LEADS)
    cand = cand[cand >= 10]  # the quiet test below looks 10 samples back; few pass this far, so it runs on them only
    before = np.abs(np.diff(xr[:, cand[:, None] + np.arange(-10, -2)], axis=2)).max(2, initial=0)  # 8-20 ms back
    z = np.sort(high[:, cand] / np.maximum(steep, SPIKE_QUIET * before), axis=0)[-SPIKE_LEADS]
    cand, z = cand[z >= SPIKE_RISE], z[z >= SPIKE_RISE]
    peak = np.zeros(high.shape[1])
    peak[cand] = z
    return cand[z == maximum_filter1d(peak, 7)[cand]] + 1  # one sample per spike: the sample after its jump


def _log10_tail(k, n, p):
    """-log10 P(X >= k), X ~ Binomial(n, p)."""
    p = min(p, 1.0)
    tail = sum(math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(k, n + 1))
    return -math.log10(max(tail, 1e-300))


def _evidence(hits, n_spikes, n_samples):
    """Pacing evidence (step 5) from `hits` (beats, delays) bool: which beat has a spike at which delay."""
    w = SPIKE_JITTER
    shared = maximum_filter1d(hits.view(np.uint8), 2 * w + 1, axis=1).astype(bool)  # a spike within +-w
    count = shared.sum(0)
    best = int(np.argmax(count))
    second = shared[~shared[:, best]].sum(0)
    second[max(best - 2 * w, 0):best + 2 * w + 1] = 0  # another delay, on other beats
    k1, k2 = int(count[best]), int(second.max(initial=0))
    p = 1 - math.exp(-(n_spikes + 1) / n_samples * (2 * w + 1))  # a beat's chance of a random spike at one delay
    bins = hits.shape[1] / (2 * w + 1)
    one = _log10_tail(k1, len(hits), p) - math.log10(bins)
    two = _log10_tail(k1 + k2, len(hits), 2 * p) - math.log10(bins ** 2 / 2)
    return max(one, two) - math.log10(2)


def pacing(raw, r, x=None):
    """(evidence, per R peak of `r`: a spike in its window) for the unfiltered record `raw` (12, N) mV, `x` its
    0.5-40 Hz band (computed if None); module docstring, step 5."""
    x = sps.sosfiltfilt(SOS_BEAT, raw, axis=1) if x is None else x
    t = spike_times(raw, x)
    before, after = SPIKE_WINDOW
    lo, hi = np.searchsorted(t, r - before), np.searchsorted(t, r + after, side="right")
    if len(r) == 0 or not (hi > lo).any():
        return 0.0, np.zeros(len(r), dtype=bool)
    early = _early(r)
    spiked = (hi > lo) & ~early
    hits = np.zeros((len(r), before + after + 1), dtype=bool)
    for i in np.flatnonzero(spiked):
        hits[i, r[i] + after - t[lo[i]:hi[i]]] = True
    return _evidence(hits[~early], len(t), raw.shape[1]), spiked


def _early(r):
    """Per R peak: it comes early, < EARLY x the median RR after the one before. A pacemaker does not fire early:
    such a beat is the heart's own, or an artefact (an electrode pop) the R-peak detector took for a beat."""
    out = np.zeros(len(r), dtype=bool)
    if len(r) > 2:
        rr = np.diff(r)
        out[1:] = rr < EARLY * np.median(rr)
    return out


def paced_beats(raw, r, x=None):
    """Per R peak of `r`: a pacemaker spike up to 350 ms before it (10 ms after) in the unfiltered record `raw`
    (12, N) mV, where the record is paced (evidence >= PACING_EVIDENCE); all False elsewhere. `x`: the record's
    0.5-40 Hz band, computed if None (module docstring, step 5)."""
    evidence, spiked = pacing(raw, r, x)
    return spiked & (evidence >= PACING_EVIDENCE)
