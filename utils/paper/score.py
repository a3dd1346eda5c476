"""How close a digitised record is to its source: the SNR of the 2024 George B. Moody PhysioNet Challenge
("Digitization and classification of ECG images"), lead by lead.

The Challenge's scorer (physionetchallenges/evaluation-2024, evaluate_model.py with helper_code.py) does, per lead:
1. align the digitised lead y to the true lead x: a horizontal shift of at most round(0.5 fs) samples (0.5 s) and a
   vertical offset of at most 1 mV (beyond those limits the lead is scored unshifted). It finds the shift by a
   2-D cross-correlation of the two leads quantised to 256 amplitude levels and smoothed (a Gaussian of sigma
   0.5 level);
2. SNR = 10 log10(mean(x^2) / mean((x - y)^2)) over the samples finite in both (`keep_nans`), then multiplied by
   the fraction of the true lead's finite samples that the digitised lead covers;
3. the mean over the leads and records (leads without a score are left out).

Here (`lead_snr`, `record_snr`) the alignment is found exactly instead: every shift within 0.5 s is tried, each
with its best vertical offset (the mean difference, clipped to +-1 mV), and the pair giving the highest SNR is
kept, so the score is the best one the scorer's limits allow (the scorer's quantised correlation is available as
`align="physionet"`). The SNR is taken on the printed samples only (finite in the digitised lead after the shift),
and not multiplied by the coverage: a 3 x 4 page prints 2.5 s of most leads, which is not a digitisation error.
The coverage (the share of the true lead's samples the digitised lead holds) is returned beside it.

One guard (`lead_score`, which `record_snr` uses): a short stretch misread at the record's edge can slide off it
until a few samples match almost exactly (an SNR up to infinity); where the best shift keeps fewer than MIN_KEPT of
the lead's read samples, the best alignment among the shifts that keep that share is taken instead.
"""
import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.signal import correlate, fftconvolve

FS = 500
MAX_SHIFT_S = 0.5
MAX_OFFSET_MV = 1.0
MIN_KEPT = 0.5  # a lead's alignment keeps at least this share of its read samples (lead_score)


def snr_db(x, y):
    """10 log10(sum x^2 / sum (x - y)^2) over the samples finite in both; inf for a perfect copy, nan when there
    is no common sample or no signal."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return float("nan")
    p_signal = np.sum(x[ok] ** 2)
    p_noise = np.sum((x[ok] - y[ok]) ** 2)
    if p_noise == 0:
        return float("inf")
    if p_signal == 0:
        return float("nan")
    return float(10 * np.log10(p_signal / p_noise))


def shift(y, s):
    """y moved `s` samples earlier (s > 0) or later (s < 0): out[n] = y[n + s], NaN where that is outside y."""
    y = np.asarray(y, np.float64)
    out = np.full_like(y, np.nan)
    if s >= 0:
        out[:len(y) - s] = y[s:]
    else:
        out[-s:] = y[:len(y) + s]
    return out


def align_search(x, y, max_shift, max_offset=MAX_OFFSET_MV):
    """(shift, offset) maximising the SNR of x against shift(y, shift) + offset, |shift| <= max_shift samples,
    |offset| <= max_offset, on the samples finite in both. Every shift is scored at once from correlations (the
    overlap's sums of x, y, x^2, y^2, xy); the best one's SNR is then computed exactly by the caller."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(x)
    mx, my = np.isfinite(x).astype(np.float64), np.isfinite(y).astype(np.float64)
    x0, y0 = np.where(mx > 0, x, 0.0), np.where(my > 0, y, 0.0)

    def corr(a, b):  # sum_n a[n] b[n + s] for s = -(n-1) .. n-1
        return correlate(b, a, mode="full", method="fft")

    cnt = np.round(corr(mx, my))
    sx, sy, sxx, syy, sxy = corr(x0, my), corr(mx, y0), corr(x0 * x0, my), corr(mx, y0 * y0), corr(x0, y0)
    lags = np.arange(-(n - 1), n)
    keep = (np.abs(lags) <= max_shift) & (cnt > 0)
    if not keep.any():
        return 0, 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = sx - sy
        offset = np.clip(sd / np.maximum(cnt, 1), -max_offset, max_offset)
        noise = np.maximum(sxx - 2 * sxy + syy - 2 * offset * sd + cnt * offset ** 2, 0)
        score = np.where(keep, sxx / np.maximum(noise, 1e-12 * np.maximum(sxx, 1e-30)), -np.inf)
    s = int(lags[np.argmax(score)])
    d = x - shift(y, s)  # the offset again, exactly (the correlations carry rounding)
    d = d[np.isfinite(d)]
    return s, float(np.clip(np.mean(d), -max_offset, max_offset)) if len(d) else 0.0


def _quantise(x, levels, lo, hi, n):
    a = np.zeros((levels, n))
    idx = np.flatnonzero(np.isfinite(x))
    q = np.clip(np.round((levels - 1) * (x[idx] - lo) / (hi - lo)).astype(int), 0, levels - 1)
    a[q, idx] = 1
    return a


def align_physionet(x, y, levels=256, sigma=0.5):
    """(shift, offset) as the Challenge's scorer finds them: the peak of the 2-D cross-correlation of the two leads
    quantised to `levels` amplitude levels and smoothed, relative to the autocorrelation's peak."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    lo, hi = min(np.nanmin(x), np.nanmin(y)), max(np.nanmax(x), np.nanmax(y))
    if not hi > lo:
        return 0, 0.0
    n = max(len(x), len(y))
    a, b = (gaussian_filter(_quantise(v, levels, lo, hi, n), sigma) for v in (x, y))
    cross = np.unravel_index(np.argmax(fftconvolve(a, b[::-1, ::-1], mode="full")), (2 * levels - 1, 2 * n - 1))
    auto = np.unravel_index(np.argmax(fftconvolve(a, a[::-1, ::-1], mode="full")), (2 * levels - 1, 2 * n - 1))
    s = int(auto[1] - cross[1])
    offset = (auto[0] - cross[0]) / (levels - 1) * (hi - lo)
    return s, -float(offset)  # the scorer subtracts its offset from y; here y + offset


def lead_snr(x, y, fs=FS, align="search", max_shift_s=MAX_SHIFT_S, max_offset=MAX_OFFSET_MV):
    """(SNR dB, coverage, shift samples, offset mV) of digitised lead `y` against true lead `x` (1-D, same length,
    NaN in `y` where not printed). `align`: "search" (exact, default), "physionet" (the scorer's correlation,
    applied only within its limits) or None. SNR is nan when `y` holds nothing."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"leads must be 1-D of one length, got {x.shape} and {y.shape}")
    if not np.isfinite(y).any():
        return float("nan"), 0.0, 0, 0.0
    max_shift = int(round(max_shift_s * fs))
    s, off = 0, 0.0
    if align == "search":
        s, off = align_search(x, y, max_shift, max_offset)
    elif align == "physionet":
        s, off = align_physionet(x, y)
        if abs(s) > max_shift or abs(off) > max_offset:
            s, off = 0, 0.0
    elif align is not None:
        raise ValueError(f"align must be 'search', 'physionet' or None, got {align!r}")
    ys = shift(y, s) + off
    coverage = float(np.mean(np.isfinite(ys) & np.isfinite(x)))
    return snr_db(x, ys), coverage, s, off


def lead_score(x, y, fs=FS):
    """(SNR dB, alignment restricted) of digitised lead `y` against true lead `x`: lead_snr's (the best shift within
    0.5 s and offset within 1 mV, on the printed samples), unless that shift keeps fewer than MIN_KEPT of the lead's
    read samples; then the best alignment among the shifts that keep at least that share (each with its best
    clipped offset, as lead_snr finds it)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    got, coverage, _, _ = lead_snr(x, y, fs)
    n_read = int(np.isfinite(y).sum())
    if not n_read or coverage * len(y) >= MIN_KEPT * n_read:
        return got, False
    values, max_shift = [], int(round(MAX_SHIFT_S * fs))
    for s in range(-max_shift, max_shift + 1):
        ys = shift(y, s)
        ok = np.isfinite(ys) & np.isfinite(x)
        if ok.sum() >= MIN_KEPT * n_read:
            values.append(snr_db(x, ys + np.clip(np.mean(x[ok] - ys[ok]), -MAX_OFFSET_MV, MAX_OFFSET_MV)))
    values = [v for v in values if not np.isnan(v)]
    return (max(values) if values else float("nan")), True


def record_score(truth, est, fs=FS):
    """(per-lead SNR dB (nan where a lead was not read), their mean over the leads read (inf for a perfect copy),
    the number of leads whose alignment was restricted) of a digitised record `est` (leads x samples, NaN where not
    printed) against `truth`, each lead by lead_score."""
    truth, est = np.asarray(truth, np.float64), np.asarray(est, np.float64)
    if truth.shape != est.shape:
        raise ValueError(f"shapes differ: truth {truth.shape}, digitised {est.shape}")
    scored = [lead_score(truth[i], est[i], fs) for i in range(len(truth))]
    per = np.array([v for v, _ in scored])
    read = per[~np.isnan(per)]
    return per, (float(read.mean()) if len(read) else float("nan")), sum(r for _, r in scored)


def record_snr(truth, est, fs=FS, align="search"):
    """Per-lead SNR (dB, nan where a lead was not read) and their mean over the read leads, of a digitised record
    `est` (leads x samples, NaN where not printed) against `truth`: (per_lead array, mean). With align="search"
    each lead is scored by lead_score (the exact alignment, guarded); otherwise by lead_snr with that alignment."""
    if align == "search":
        per, mean, _ = record_score(truth, est, fs)
        return per, mean
    truth, est = np.asarray(truth, np.float64), np.asarray(est, np.float64)
    if truth.shape != est.shape:
        raise ValueError(f"shapes differ: truth {truth.shape}, digitised {est.shape}")
    per = np.array([lead_snr(truth[i], est[i], fs, align)[0] for i in range(len(truth))])
    read = per[np.isfinite(per)]
    return per, (float(np.mean(read)) if len(read) else float("nan"))
