"""Hand-made ECG measurements of one record, the input of the gradient-boosting member (models/gbm.py).

A record is (12, 5000) mV at 500 Hz, leads as `utils.ecg.io.LEADS`. Everything uses scipy.signal; a measurement
that is undefined (no beats, no T wave found, ...) is NaN, which the gradient-boosted trees handle as missing.

1. Filtering (zero phase): 0.5-40 Hz for morphology, 5-25 Hz for QRS detection, 4-9 Hz for f waves.
2. R peaks: the 5-25 Hz energy summed over the 12 leads, smoothed over 100 ms, `find_peaks` with a 250 ms
   refractory period and a height of 0.3 x a robust reference (median of the taller half of the candidates, so
   neither big ectopic beats nor small T waves set it), and at least 0.02 x the tallest (so a record of a few
   beats, whose taller half is noise, does not count its noise); a T wave (small peak < 360 ms after a beat) is dropped, a
   long gap is searched again at half the height; each peak is moved to the maximum of the 20 ms energy.
3. Rhythm: heart rate, RR mean/median/std/min/max, RMSSD, pNN50, coefficient of variation, entropy of the
   successive RR differences, fraction of RR changes > 15 %, premature beats (RR < 0.85 x local median, followed
   by a longer RR), split into aberrant (QRS unlike the dominant beat: PVC-like) and normal-shaped (PAC-like).
4. Median beat per lead, -400..+600 ms around R, over the non-premature beats; each beat's correlation with it.
5. Delineation on the median beat: QRS onset/offset where the spatial velocity (sum over leads of |slope|) stays
   under 4 % of its QRS peak; PR-segment baseline per lead just before the onset (all amplitudes relative to
   it); P wave = the most prominent wave of lead II 300-30 ms before the QRS, its onset/offset at the knees
   against the chord to its peak (PR interval, P duration); T peak on lead II or V5, T end by the tangent at the
   steepest descent after it (QT, QTc Bazett, Tpeak-Tend).
6. Per lead: P, Q, R, S, T amplitudes, ST level at J+20/60/80 ms, T area, QRS area; the QRS, T and P axes
   (atan2 of aVF over I) and the QRS-T angle; voltage criteria (Sokolow-Lyon, Cornell), ST and T summaries.
7. Bundle-branch-block morphology: terminal R' in V1 (positive deflection after the S wave), number of R peaks
   in V1, terminal 40 ms QRS area in V1, I, V6, S-wave duration in I and V6, R/(R+|S|) in V1 and V6, R-peak time.
8. Atrial activity: P-wave consistency across beats (correlation of each beat's P window with the median's, on
   II and V1: near 0 in atrial fibrillation) and f waves (4-9 Hz power left before the QRS once the median beat
   is subtracted from every beat, absolute and as a share of the residual there).
9. Signal quality per lead: standard deviation and max |x| of the filtered signal, out-of-band std.
"""
import numpy as np
from scipy import signal as sps
from scipy.ndimage import median_filter, uniform_filter1d

from .io import FS, LEADS

FEATURES_VERSION = 1


def _n(ms):
    """Milliseconds -> samples."""
    return int(round(ms * FS / 1000))


LD = {name: i for i, name in enumerate(LEADS)}
PRE, POST = _n(400), _n(600)  # median-beat window around R: room for a long PR and a long QT
SOS_BEAT = sps.butter(2, [0.5, 40], btype="bandpass", fs=FS, output="sos")
SOS_QRS = sps.butter(2, [5, 25], btype="bandpass", fs=FS, output="sos")
SOS_F = sps.butter(2, [4, 9], btype="bandpass", fs=FS, output="sos")
F_LEADS = (LD["II"], LD["V1"])  # where atrial activity is largest
QRS_THRESHOLD = 0.04  # share of the QRS's peak spatial velocity under which the signal counts as quiet

RHYTHM = ("n_beats", "hr", "rr_mean", "rr_median", "rr_std", "rr_min", "rr_max", "rmssd", "rmssd_norm", "pnn50",
          "rr_cv", "rr_diff_entropy", "rr_frac_change15", "n_premature", "frac_premature", "n_premature_aberrant",
          "n_premature_normal")
BEATS = ("n_template_beats", "beat_corr_mean", "beat_corr_min", "frac_beats_lowcorr", "beat_energy_ratio_max",
         "beat_residual_rms")
INTERVALS = ("qrs_dur", "pr", "p_dur", "qt", "qtc", "t_peak_end")
AXES = ("qrs_axis", "t_axis", "p_axis", "qrs_t_angle")
BBB = ("v1_rprime_amp", "v1_rprime_rel", "v1_n_rpeaks", "v1_term40_area", "i_term40_area", "v6_term40_area",
       "i_s_dur", "v6_s_dur", "v1_rs", "v6_rs", "v1_rpeak_time", "v6_rpeak_time", "i_rpeak_time")
ATRIAL = ("p_prom_II", "p_corr_II", "p_corr_V1", "p_amp_rel_II", "fwave_rms_II", "fwave_rms_V1", "fwave_frac_II",
          "fwave_frac_V1")
SUMMARY = ("sokolow", "cornell", "qrs_p2p_max", "qrs_p2p_limb_max", "st60_max", "st60_min", "t_amp_min",
           "n_t_negative")
PER_LEAD = ("p_amp", "q_amp", "r_amp", "s_amp", "t_amp", "st20", "st60", "st80", "t_area", "qrs_area",
            "std", "maxabs", "oob_std")
FEATURE_NAMES = (RHYTHM + BEATS + INTERVALS + AXES + BBB + ATRIAL + SUMMARY
                 + tuple(f"{m}_{ld}" for m in PER_LEAD for ld in LEADS))
_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


def extract_features(sig):
    """(12, N) mV at 500 Hz -> float32 (len(FEATURE_NAMES),), NaN where a measurement is undefined."""
    raw = np.nan_to_num(np.asarray(sig, dtype=np.float64), posinf=0.0, neginf=0.0)  # one bad sample must not blow up the sums
    if raw.ndim != 2 or len(raw) != len(LEADS):
        raise ValueError(f"expected ({len(LEADS)}, samples), got shape {raw.shape}")
    if raw.shape[1] < PRE + POST:  # not even one beat window (and too short for the filters' padding)
        return np.full(len(FEATURE_NAMES), np.nan, dtype=np.float32)
    x = sps.sosfiltfilt(SOS_BEAT, raw, axis=1)
    xq = sps.sosfiltfilt(SOS_QRS, x, axis=1)
    out = {}
    out.update(_quality(raw, x))
    r = detect_r_peaks(xq)
    premature = _premature(r)
    out.update(_rhythm(r, premature))
    segs, ok = _beat_segments(x, r)
    if len(ok):
        mb = _median_beat(segs, premature[ok])
        out.update(_beat_consistency(segs, mb, premature[ok]))
        out.update(_morphology(mb, out.get("rr_median", np.nan)))
        out.update(_atrial(raw, r[ok], segs, mb, out))
    row = np.full(len(FEATURE_NAMES), np.nan, dtype=np.float32)
    for name, value in out.items():
        row[_INDEX[name]] = value  # KeyError on a name missing from FEATURE_NAMES: a bug the tests catch
    return row


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


def _premature(r):
    """Per beat: its RR < 0.85 x the local median RR and the next RR is longer (a pause follows)."""
    out = np.zeros(len(r), dtype=bool)
    if len(r) < 4:
        return out
    rr = np.diff(r).astype(float)
    local = median_filter(rr, size=7, mode="nearest")
    out[1:-1] = (rr[:-1] < 0.85 * local[:-1]) & (rr[1:] > 1.15 * rr[:-1])
    return out


def _rhythm(r, premature):
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

def _beat_segments(x, r):
    """(12, beats, PRE + POST) windows around the R peaks that fit in the record, and which peaks those are."""
    ok = np.flatnonzero((r - PRE >= 0) & (r + POST <= x.shape[1]))
    idx = r[ok, None] + np.arange(-PRE, POST)
    return x[:, idx], ok


def _median_beat(segs, premature):
    """Median over the dominant beats: premature ones are left out while at least 3 others remain."""
    use = ~premature if (~premature).sum() >= 3 else np.ones(len(premature), dtype=bool)
    return np.median(segs[:, use], axis=1)


def _corr_rows(a, b):
    """Pearson correlation of each row of `a` with the vector `b` (NaN where either is constant)."""
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean()
    den = np.sqrt((a ** 2).sum(-1) * (b ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a @ b) / np.where(den > 0, den, 1), np.nan)


def _beat_consistency(segs, mb, premature):
    """How alike the beats' QRS complexes are (all leads at once): ectopic beats correlate poorly."""
    w = slice(PRE - _n(80), PRE + _n(120))
    beats = segs[:, :, w].transpose(1, 0, 2).reshape(segs.shape[1], -1)
    tmpl = mb[:, w].ravel()
    corr = _corr_rows(beats, tmpl)
    energy = (beats ** 2).sum(1) / max((tmpl ** 2).sum(), 1e-12)
    res = segs - mb[:, None]
    low = corr < 0.9
    defined = np.isfinite(corr).any()
    return {"n_template_beats": segs.shape[1], "beat_corr_mean": np.nanmean(corr) if defined else np.nan,
            "beat_corr_min": np.nanmin(corr) if defined else np.nan, "frac_beats_lowcorr": low.mean(),
            "beat_energy_ratio_max": energy.max(), "beat_residual_rms": np.sqrt(np.mean(res ** 2)),
            "n_premature_aberrant": (premature & low).sum(), "n_premature_normal": (premature & ~low).sum()}


# --- median-beat delineation ----------------------------------------------------------------------------------

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


def _morphology(mb, rr_median):
    onset, offset = qrs_bounds(mb)
    base = mb[:, max(onset - _n(30), 0):max(onset - _n(8), 1)].mean(1)  # PR segment
    y = mb - base[:, None]
    out = {"qrs_dur": (offset - onset) * 1000 / FS}
    out.update(_qrs_waves(y, onset, offset))
    out.update(_st(y, offset))
    out.update(_p_wave(y, onset, rr_median))
    out.update(_t_wave(y, onset, offset, rr_median))
    out.update(_axes(out))
    out.update(_bbb(y, onset, offset))
    out.update(_summary(out))
    return out


def _per_lead(name, values):
    return {f"{name}_{ld}": v for ld, v in zip(LEADS, values)}


def _qrs_waves(y, onset, offset):
    """Q (negative before R), R (largest positive), S (negative after R) per lead; QRS area (mV ms)."""
    q = y[:, onset:offset + 1]
    rpk = q.argmax(1)
    before = np.arange(q.shape[1]) < rpk[:, None]
    out = {}
    out.update(_per_lead("r_amp", np.maximum(q.max(1), 0)))
    out.update(_per_lead("q_amp", np.where(before, q, 0).min(1)))
    out.update(_per_lead("s_amp", np.where(before, 0, q).min(1)))
    out.update(_per_lead("qrs_area", q.sum(1) * 1000 / FS))
    return out


def _st(y, offset):
    out = {}
    for ms in (20, 60, 80):
        i = min(offset + _n(ms), y.shape[1] - 1)
        out.update(_per_lead(f"st{ms}", y[:, i]))
    return out


def _p_wave(y, onset, rr_median):
    """The most prominent wave of lead II 300-30 ms before the QRS (and after the previous T wave) is the P wave;
    its onset and offset are the knees of the signal against the chord to its peak. Per-lead P amplitude at its
    peak. No such wave: P prominence 0, the rest NaN."""
    lo, hi = max(onset - _n(300), 0), onset - _n(30)
    if np.isfinite(rr_median):
        lo = max(lo, PRE - _n(rr_median - 320))  # the previous beat's T peak is ~300 ms after its R
    if hi - lo < _n(40):
        return {}
    pk, sign, prom = _most_prominent(y[LD["II"], lo:hi])
    if pk is None:
        return {"p_prom_II": 0.0}
    pk += lo
    p = sign * y[LD["II"]]
    p_on = _knee(p, max(pk - _n(120), 0), pk)
    p_off = _knee(p, pk, min(pk + _n(120), onset))
    out = _per_lead("p_amp", y[:, pk])
    out.update(p_prom_II=prom, pr=(onset - p_on) * 1000 / FS, p_dur=(p_off - p_on) * 1000 / FS)
    return out


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


def _t_window(onset, offset, rr_median, width):
    """T-wave search window: 60 ms after J to 0.7 RR after R (250-600 ms), inside the median beat."""
    span = 0.7 * rr_median if np.isfinite(rr_median) else 400
    end = min(PRE + _n(np.clip(span, 250, 600)), width - 1)
    return offset + _n(60), end


def _t_wave(y, onset, offset, rr_median):
    lo, hi = _t_window(onset, offset, rr_median, y.shape[1])
    if hi - lo < _n(40):
        return {}
    seg = y[:, lo:hi]
    k = np.abs(seg).argmax(1)
    amp = seg[np.arange(len(seg)), k]
    out = _per_lead("t_amp", amp)
    out.update(_per_lead("t_area", y[:, offset + _n(40):hi].sum(1) * 1000 / FS))
    lead = LD["II"] if abs(amp[LD["II"]]) >= abs(amp[LD["V5"]]) else LD["V5"]
    t_end = _t_end_tangent(y[lead], lo + k[lead], hi)
    if np.isfinite(t_end):
        qt = (t_end - onset) * 1000 / FS
        out.update(qt=qt, t_peak_end=(t_end - lo - k[lead]) * 1000 / FS,
                   qtc=qt / np.sqrt(rr_median / 1000) if np.isfinite(rr_median) else np.nan)
    return out


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


def _axis(i_val, avf_val):
    return np.degrees(np.arctan2(avf_val, i_val))


def _axes(out):
    g = lambda m, ld: out.get(f"{m}_{ld}", np.nan)  # noqa: E731
    qrs, t, p = (_axis(g(m, "I"), g(m, "aVF")) for m in ("qrs_area", "t_area", "p_amp"))
    return {"qrs_axis": qrs, "t_axis": t, "p_axis": p, "qrs_t_angle": abs((qrs - t + 180) % 360 - 180)}


def _bbb(y, onset, offset):
    """Bundle-branch-block morphology in V1, I and V6."""
    q = y[:, onset:offset + 1]
    term = q[:, -_n(40):].sum(1) * 1000 / FS
    v1 = q[LD["V1"]]
    s_at = int(v1.argmin())
    rprime = max(v1[s_at:].max(), 0.0)
    out = {"v1_rprime_amp": rprime, "v1_rprime_rel": rprime / max(v1.max(), 1e-3),
           "v1_n_rpeaks": len(sps.find_peaks(v1, height=0.05, prominence=0.05)[0]),
           "v1_term40_area": term[LD["V1"]], "i_term40_area": term[LD["I"]], "v6_term40_area": term[LD["V6"]]}
    for ld in ("I", "V1", "V6"):
        x = q[LD[ld]]
        rpk = int(x.argmax())
        r, s = max(x.max(), 0.0), max(-x[rpk:].min(), 0.0)
        key = ld.lower()
        out[f"{key}_rpeak_time"] = rpk * 1000 / FS
        if ld != "I":
            out[f"{key}_rs"] = r / (r + s) if r + s > 0 else np.nan
        if ld != "V1":
            out[f"{key}_s_dur"] = (x[rpk:] < 0).sum() * 1000 / FS
    return out


def _summary(out):
    g = lambda m, ld: out[f"{m}_{ld}"]  # noqa: E731
    p2p = {ld: g("r_amp", ld) - g("s_amp", ld) for ld in LEADS}
    st60 = np.array([g("st60", ld) for ld in LEADS if ld != "aVR"])
    res = {"sokolow": -g("s_amp", "V1") + max(g("r_amp", "V5"), g("r_amp", "V6")),
           "cornell": g("r_amp", "aVL") - g("s_amp", "V3"), "qrs_p2p_max": max(p2p.values()),
           "qrs_p2p_limb_max": max(p2p[ld] for ld in LEADS[:6]), "st60_max": st60.max(), "st60_min": st60.min()}
    if "t_amp_I" in out:
        t = np.array([g("t_amp", ld) for ld in LEADS if ld not in ("aVR", "V1")])  # normally upright
        res.update(t_amp_min=t.min(), n_t_negative=(t < -0.05).sum())
    return res


# --- atrial activity ------------------------------------------------------------------------------------------

def _atrial(raw, r, segs, mb, feats):
    """P-wave consistency across beats and f waves left once the median beat is cancelled, on II and V1."""
    out = {}
    if "p_amp_II" in feats:
        out["p_amp_rel_II"] = abs(feats["p_amp_II"]) / max(feats["r_amp_II"] - feats["s_amp_II"], 1e-3)
    w = slice(PRE - _n(350), PRE - _n(80))  # every beat's P window, anchored on its R peak
    for ld in ("II", "V1"):
        c = _corr_rows(segs[LD[ld], :, w], mb[LD[ld], w])
        out[f"p_corr_{ld}"] = np.nanmean(c) if np.isfinite(c).any() else np.nan
    xf = sps.sosfiltfilt(SOS_F, raw[list(F_LEADS)], axis=1)
    sf = xf[:, r[:, None] + np.arange(-PRE, POST)]
    res_f = sf - np.median(sf, axis=1, keepdims=True)
    res = segs[list(F_LEADS)] - mb[list(F_LEADS), None]
    w = slice(PRE - _n(360), PRE - _n(90))  # before the QRS, where only atrial activity and noise remain
    for j, ld in enumerate(("II", "V1")):
        rf, rb = np.sqrt(np.mean(res_f[j, :, w] ** 2)), np.sqrt(np.mean(res[j, :, w] ** 2))
        out[f"fwave_rms_{ld}"] = rf
        out[f"fwave_frac_{ld}"] = rf / rb if rb > 0 else np.nan
    return out


# --- quality --------------------------------------------------------------------------------------------------

def _quality(raw, x):
    out = _per_lead("std", x.std(1))
    out.update(_per_lead("maxabs", np.abs(x).max(1)))
    out.update(_per_lead("oob_std", (raw - x).std(1)))  # baseline wander and high-frequency noise
    return out
