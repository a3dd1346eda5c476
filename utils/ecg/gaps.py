"""Records with gaps: what the models see where a lead was not recorded, e.g. a record digitised from paper.

A printed 12-lead page shows most leads for 2.5 s only (the 3 x 4 layout) and a rhythm strip for 10 s; the
digitiser (utils/paper/) writes NaN where a lead's stretch is not printed or could not be read. Every model was
trained on whole 10-s records, so `fill_gaps` completes such a record before any model reads it (the policy,
docs/methods.md "Records from paper"), in three steps:

1. **Limb leads by Einthoven and Goldberger.** The six limb leads are two independent ones seen from six angles
   (III = II - I, aVR = -(I + II) / 2, aVL = I - II / 2, aVF = II - I / 2): wherever two of them are known, the
   other four follow exactly. In the 3 x 4 layout with a lead II strip this restores all six over 0-5 s.
2. **Beats where the lead was not printed.** The R peaks over the whole 10 s come from a rhythm strip (a lead
   known over 90 % of the record) as the 12-lead detector finds them; without one, from every independent lead
   known at each moment (each lead's 5-25 Hz energy scaled to its own beats, averaged over the leads known there).
   Each lead's median beat over its own printed beats (each beat only up to where the next begins) is placed at
   every R peak in its gap, so the rhythm is the record's own and each beat has the lead's own shape (a premature
   beat keeps its timing, not its shape). A filled stretch is shifted to meet the printed trace at its ends, the
   shift fading over FADE_S, so no step is added. Without a strip the columns' R peaks come from different leads,
   whose QRS peaks a little apart: a lead's beats placed in another column are off by up to ~30 ms.
3. **What is left:** a lead with no beat of its own printed is its median level (flat; 0 mV when nothing of it
   was printed), and so is any sample outside the median beat's window.

A record without a gap is returned as it is; one without a single finite sample is an error for the caller.
"""
import numpy as np
from scipy import signal as sps

from .beats import SOS_QRS, detect_r_peaks
from .io import FS, LEADS

LIMB = [LEADS.index(n) for n in ("I", "II", "III", "aVR", "aVL", "aVF")]
# each limb lead as a combination of (I, II)
LIMB_FROM_I_II = np.array([[1, 0], [0, 1], [-1, 1], [-0.5, -0.5], [1, -0.5], [-0.5, 1]], dtype=np.float64)
BEAT_PRE, BEAT_POST = int(0.4 * FS), int(1.0 * FS)  # the median beat's window around R
REFERENCE = 0.9  # a lead known over this share of the record is a rhythm strip: the R peaks come from it
INDEPENDENT = [LEADS.index(n) for n in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]  # the others are sums
EDGE = int(0.05 * FS)  # filter ringing at a gap's edge is not a beat: the energy there is ignored
FADE_S = 0.1  # seconds over which a filled stretch's offset to the printed trace fades out


def has_gaps(x):
    return not np.isfinite(x).all()


def fill_gaps(x):
    """A copy of record `x` (12, N) mV with every NaN filled (module docstring); float32."""
    x = np.array(x, dtype=np.float64)
    if not has_gaps(x):
        return x.astype(np.float32)
    x = limb_leads(x)
    known = np.isfinite(x)
    peaks = r_peaks(x, known)
    for lead in np.flatnonzero(~known.all(1)):
        x[lead] = fill_lead(x[lead], known[lead], peaks)
    return x.astype(np.float32)


def limb_leads(x):
    """`x` with its limb leads' NaN filled wherever two of the six are known at that sample (least squares)."""
    limb = x[LIMB]
    known = np.isfinite(limb)
    todo = ~known.all(0) & (known.sum(0) >= 2)
    if not todo.any():
        return x
    out = x.copy()
    patterns, inverse = np.unique(known[:, todo], axis=1, return_inverse=True)
    cols = np.flatnonzero(todo)
    for k, pattern in enumerate(patterns.T):
        m = LIMB_FROM_I_II[pattern]
        at = cols[np.ravel(inverse) == k]
        i_ii = np.linalg.lstsq(m, limb[pattern][:, at], rcond=None)[0]
        full = LIMB_FROM_I_II @ i_ii
        for j, lead in enumerate(LIMB):
            if not pattern[j]:
                out[lead, at] = full[j]
    return out


def r_peaks(x, known):
    """R peaks (sample indices) of a record with gaps. From the leads known over at least REFERENCE of it when
    there are any (a rhythm strip), as the 12-lead detector does; else from every independent lead known at each
    moment: their 5-25 Hz energy, each scaled by its 99th percentile, averaged over the leads known there."""
    full = known.mean(1) >= REFERENCE
    if full.any():
        use = full
    else:
        use = np.zeros(len(x), bool)
        use[INDEPENDENT] = known[INDEPENDENT].any(1)
    total, count = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for lead in np.flatnonzero(use):
        e = lead_energy(x[lead], known[lead])
        ok = np.isfinite(e)
        if not full.any() and ok.any():  # leads of different times: each scaled to its own beats (limb beats are small)
            e = e / (np.percentile(e[ok], 99) or 1.0)
        total[ok] += e[ok]
        count += ok
    return detect_r_peaks(np.sqrt(total / np.maximum(count, 1))[None, :])  # the detector squares its rows


def lead_energy(v, known):
    """The lead's 5-25 Hz energy (mV^2); NaN where it is not known or near a gap's edge (the filter's ringing)."""
    e = sps.sosfiltfilt(SOS_QRS, np.where(known, v - np.median(v[known]), 0.0)) ** 2
    edges = np.flatnonzero(np.diff(known.astype(np.int8)))
    bad = ~known
    for i in edges:
        bad[max(0, i - EDGE):i + EDGE + 1] = True
    return np.where(bad, np.nan, e)


def fill_lead(v, known, peaks):
    """Lead `v` (NaN where not known) filled: its median beat at each R peak in the gaps, else its median level."""
    level = float(np.median(v[known])) if known.any() else 0.0
    out = np.where(known, v, level)
    template = median_beat(v, known, peaks)
    if template is not None:
        owner, offset = beat_owner(len(v), peaks)
        inside = ~known & (offset >= -BEAT_PRE) & (offset < BEAT_POST)
        values = template[offset[inside] + BEAT_PRE]
        out[inside] = np.where(np.isfinite(values), values, level)
    return meet_printed(out, known)


def median_beat(v, known, peaks):
    """The lead's median beat (BEAT_PRE + BEAT_POST samples from R - BEAT_PRE; NaN where none of its printed beats
    reaches), over its beats whose QRS was printed, each only over the samples it owns (beat_starts): a long
    offset after R is the median of the beats that lasted that long, never the next beat's QRS. None without any."""
    n, starts = len(v), beat_starts(n_samples=len(v), peaks=peaks)
    segs = []
    for k, r in enumerate(peaks):
        if r - EDGE >= 0 and r + EDGE < n and known[r - EDGE:r + EDGE].all():
            seg = np.full(BEAT_PRE + BEAT_POST, np.nan)
            lo, hi = max(0, r - BEAT_PRE, starts[k]), min(n, r + BEAT_POST, starts[k + 1])
            seg[lo - (r - BEAT_PRE):hi - (r - BEAT_PRE)] = v[lo:hi]
            segs.append(seg)
    if not segs:
        return None
    segs = np.array(segs)
    have = np.isfinite(segs).any(0)
    out = np.full(segs.shape[1], np.nan)
    out[have] = np.nanmedian(segs[:, have], axis=0)
    return out


def beat_starts(n_samples, peaks):
    """Where each beat's samples begin: 40 % of the RR before its R peak (at most BEAT_PRE); and n_samples last."""
    rr = np.diff(peaks, prepend=peaks[0] - (np.median(np.diff(peaks)) if len(peaks) > 1 else FS))
    return np.append(peaks - np.minimum(BEAT_PRE, (0.4 * rr).astype(int)), n_samples)


def beat_owner(n, peaks):
    """For every sample, the index of the beat it belongs to (beat_starts; before the first beat, the first) and
    its offset in samples from that beat's R peak."""
    if len(peaks) == 0:
        return np.zeros(n, int), np.full(n, -10 * n)
    starts = beat_starts(n, peaks)[:-1]
    owner = np.clip(np.searchsorted(starts, np.arange(n), side="right") - 1, 0, len(peaks) - 1)
    return owner, np.arange(n) - peaks[owner]


def meet_printed(out, known):
    """`out` with each filled stretch shifted to meet the printed trace at its ends, the shift fading over FADE_S."""
    fade = int(FADE_S * FS)
    edges = np.flatnonzero(np.diff(known.astype(np.int8)))
    for i in edges:
        if known[i]:  # printed up to i, filled from i + 1: the fill starts at the printed level
            j = np.arange(i + 1, min(len(out), i + 1 + fade))
            step = out[i] - out[i + 1]
            out[j] += step * (1 - (j - i - 1) / fade)
        else:  # filled up to i, printed from i + 1
            j = np.arange(max(0, i - fade + 1), i + 1)
            step = out[i + 1] - out[i]
            out[j] += step * (1 - (i - j) / fade)
    return out
