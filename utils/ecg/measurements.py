"""Hand-made ECG measurements of one record, the input of the gradient-boosting member (models/gbm.py).

A record is (12, 5000) mV at 500 Hz, leads as `utils.ecg.io.LEADS`. Everything uses scipy.signal; a measurement
that is undefined (no beats, no T wave found, ...) is NaN, which the gradient-boosted trees handle as missing.

1-4. Filtering, R peaks, rhythm and the median beat: utils/ecg/beats.py.
5. Delineation of the median beat (QRS onset/offset, P wave, T peak and T end as sample positions):
   utils/ecg/delineation.py, global over the 12 leads. Here: the PR-segment baseline per lead just before the
   QRS onset (all amplitudes relative to it), QRS duration, PR interval and P duration, QT, QTc Bazett and
   Tpeak-Tend. Their accuracy against cardiologists' boundaries (LUDB): bench/measure_accuracy.py.
6. Per lead: P, Q, R, S, T amplitudes, ST level at J+20/60/80 ms, T area, QRS area; the QRS, T and P axes
   (atan2 of aVF over I) and the QRS-T angle; voltage criteria (Sokolow-Lyon, Cornell), ST and T summaries.
7. Bundle-branch-block morphology: terminal R' in V1 (positive deflection after the S wave), number of R peaks
   in V1, terminal 40 ms QRS area in V1, I, V6, S-wave duration in I and V6, R/(R+|S|) in V1 and V6, R-peak time.
8. Atrial activity: P-wave consistency across beats (correlation of each beat's P window with the median's, on
   II and V1: near 0 in atrial fibrillation) and f waves (4-9 Hz power left before the QRS once the median beat
   is subtracted from every beat, absolute and as a share of the residual there).
9. Signal quality per lead: standard deviation and max |x| of the filtered signal, out-of-band std.
10. Pacing: the share of the beats that follow a pacemaker spike (utils/ecg/beats.py, step 5).
"""
import numpy as np
from scipy import signal as sps

from .beats import (LD, POST, PRE, SOS_BEAT, SOS_F, SOS_QRS, beat_consistency, beat_segments, corr_rows,
                    detect_r_peaks, median_beat, ms_to_samples, paced_beats, premature_beats, rhythm)
from .delineation import RULES, p_wave, qrs_bounds, t_wave
from .io import FS, LEADS

# What a trained features model records and checks: bump it whenever the measurements change (a test ties it to
# a hash of the measurement code, utils/ecg/cache.measurement_code_hash, which also keys the features cache).
FEATURES_VERSION = 4

_n = ms_to_samples
F_LEADS = (LD["II"], LD["V1"])  # where atrial activity is largest

RHYTHM = ("n_beats", "hr", "rr_mean", "rr_median", "rr_std", "rr_min", "rr_max", "rmssd", "rmssd_norm", "pnn50",
          "rr_cv", "rr_diff_entropy", "rr_frac_change15", "n_premature", "frac_premature", "n_premature_aberrant",
          "n_premature_normal")
BEATS = ("n_template_beats", "beat_corr_mean", "beat_corr_min", "frac_beats_lowcorr", "beat_energy_ratio_max",
         "beat_residual_rms", "frac_paced")
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


def extract_features(sig, rules=RULES):
    """(12, N) mV at 500 Hz -> float32 (len(FEATURE_NAMES),), NaN where a measurement is undefined. `rules`: the
    delineation's thresholds (utils/ecg/delineation.Rules; bench/measure_accuracy.py --crossval tries others)."""
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
    premature = premature_beats(r)
    out.update(rhythm(r, premature))
    if len(r):
        out["frac_paced"] = paced_beats(raw, r, x).mean()
    segs, ok = beat_segments(x, r)
    if len(ok):
        mb = median_beat(segs, premature[ok])
        out.update(beat_consistency(segs, mb, premature[ok]))
        out.update(_morphology(mb, out.get("rr_median", np.nan), rules))
        out.update(_atrial(raw, r[ok], segs, mb, out))
    row = np.full(len(FEATURE_NAMES), np.nan, dtype=np.float32)
    for name, value in out.items():
        row[_INDEX[name]] = value  # KeyError on a name missing from FEATURE_NAMES: a bug the tests catch
    return row


# --- median-beat measurements ---------------------------------------------------------------------------------

def _morphology(mb, rr_median, rules=RULES):
    """Intervals, per-lead amplitudes, axes, BBB morphology and summaries of the median beat `mb`."""
    onset, offset = qrs_bounds(mb, rules)
    base = mb[:, max(onset - _n(30), 0):max(onset - _n(8), 1)].mean(1)  # PR segment
    y = mb - base[:, None]
    out = {"qrs_dur": (offset - onset) * 1000 / FS}
    out.update(_qrs_waves(y, onset, offset))
    out.update(_st(y, offset))
    p = p_wave(y, onset, offset, rr_median, rules)
    out.update(_p_measures(y, onset, p))
    pr = out.get("pr", np.nan)  # the T wave ends before the next beat's P wave
    out.update(_t_measures(y, onset, offset, rr_median, t_wave(y, onset, offset, rr_median, pr, rules)))
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


def _p_measures(y, onset, p):
    """PR interval, P duration and P prominence in II from the P wave `p` (delineation.p_wave); per-lead P
    amplitude at its peak. No room for a P wave: nothing; no such wave: P prominence 0, the rest NaN."""
    if p is None:
        return {}
    if p.peak is None:
        return {"p_prom_II": 0.0}
    out = _per_lead("p_amp", y[:, p.peak])
    out["p_prom_II"] = p.prominence
    if p.onset is not None:
        out.update(pr=(onset - p.onset) * 1000 / FS, p_dur=(p.offset - p.onset) * 1000 / FS)
    return out


def _t_measures(y, onset, offset, rr_median, t):
    """Per-lead T amplitude and area, QT, QTc (Bazett) and Tpeak-Tend from the T wave `t` (delineation.t_wave)."""
    if t is None:
        return {}
    out = _per_lead("t_amp", y[np.arange(len(y)), t.peaks])
    out.update(_per_lead("t_area", y[:, offset + _n(40):t.stop].sum(1) * 1000 / FS))
    if np.isfinite(t.end):
        qt = (t.end - onset) * 1000 / FS
        out.update(qt=qt, t_peak_end=(t.end - t.peaks[t.lead]) * 1000 / FS,
                   qtc=qt / np.sqrt(rr_median / 1000) if np.isfinite(rr_median) else np.nan)
    return out


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
        c = corr_rows(segs[LD[ld], :, w], mb[LD[ld], w])
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


# --- the global measurements an electrocardiograph prints --------------------------------------------------------
GLOBAL = ("hr", "p_dur", "pr", "qrs_dur", "qt", "qtc", "qtc_fridericia", "p_axis", "qrs_axis", "t_axis")
GLOBAL_UNITS = {"hr": "bpm", "p_axis": "deg", "qrs_axis": "deg", "t_axis": "deg"}  # the others in ms
P_CONSISTENT = 0.5  # a P wave is printed where the beats' P windows correlate with the median beat's at least this
PACED = 0.01  # a paced record: any beat follows a pacemaker spike (beats.paced_beats marks beats only where the
# spikes keep time with them, beats.PACING_EVIDENCE: the share is then several beats' worth, nowhere near this)


def global_measurements(sig=None, row=None):
    """{name: value or NaN} of GLOBAL for a record (12, N) mV at 500 Hz, or from its `row` of extract_features:
    heart rate, P duration, PR, QRS duration, QT, QTc (Bazett and Fridericia), and the P, QRS and T axes.
    A P wave counts only where it repeats beat after beat (p_corr_II >= P_CONSISTENT): in atrial fibrillation
    the median beat still has a bump before the QRS, but no P wave, so P duration, PR and P axis are NaN.
    A paced record (frac_paced >= PACED) has no QRS duration, P duration, PR or P axis either: its QRS is the
    pacemaker's, started by a spike cardiologists count or not, and its atrial activity is paced, dissociated
    from the paced QRS, or fibrillation."""
    row = extract_features(sig) if row is None else row
    get = {name: float(row[_INDEX[name]]) for name in ("hr", "p_dur", "pr", "qrs_dur", "qt", "qtc", "rr_median",
                                                        "p_axis", "qrs_axis", "t_axis", "p_corr_II", "frac_paced")}
    if not get.pop("p_corr_II") >= P_CONSISTENT:  # NaN too: no beats to compare
        get.update(p_dur=np.nan, pr=np.nan, p_axis=np.nan)
    if get.pop("frac_paced") >= PACED:
        get.update(qrs_dur=np.nan, p_dur=np.nan, pr=np.nan, p_axis=np.nan)
    rr_s = get.pop("rr_median") / 1000
    get["qtc_fridericia"] = get["qt"] / np.cbrt(rr_s) if np.isfinite(rr_s) and rr_s > 0 else np.nan
    return {name: get[name] for name in GLOBAL}
