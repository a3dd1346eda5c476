"""Realistic ECG noise at a signal-to-noise ratio per lead, to measure how far the measurements move on noisier
records than LUDB's (bench/measure_accuracy.py --noise).

A record is (leads, N) at `fs` (12 x 5000 at 500 Hz here). Kinds (`KINDS`):

- `baseline`: baseline wander, all below 1 Hz. A respiration-like wave shared by the leads (9-24 breaths a
  minute, the breath rate drifting, with an asymmetric second harmonic; each lead has its own signed gain), each
  lead's own electrode drift (a random walk low-passed at 0.5 Hz) and 2-4 sinusoids of 0.05-0.5 Hz per lead.
- `mains50`, `mains60`: power-line interference. The grid frequency (50 or 60 Hz, off by up to 0.1 Hz, the same
  for every lead), its third harmonic at 3-15 % of the fundamental's amplitude (where it lies below fs / 2), a
  random phase per lead and a slow amplitude modulation (5-20 % at 0.05-0.5 Hz, as the patient or a cable moves).
- `muscle`: EMG, Gaussian noise band-passed to 20-150 Hz (4th-order Butterworth, zero phase) whose amplitude
  follows an envelope: a floor plus 1 or more bursts of 0.3-2 s (a Hann window each, about one every 3 s), the
  bursts shared by the limb leads (I-aVF) and, separately, by the chest leads (V1-V6), each lead with its own
  floor and burst gain.
- `mixed`: the three above (mains at 50 Hz) with random power shares (Dirichlet(4, 3, 2): on average 44 %
  baseline, 33 % muscle, 22 % mains); each part is the noise its own kind gives with the same seed.

SNR, per lead: 10 log10(P_signal / P_noise), where P_signal is the mean square of the lead as given minus its
median over the record (so an offset does not count as signal, but any wander or noise already in the record
does) and P_noise the mean square of the added noise over the record (its mean included: baseline wander need
not average to 0). The noise of every lead is scaled so this holds exactly (to float32 rounding of the result); a
lead with no power (flat) gets no noise. LUDB's amplitudes are rescaled per lead by PhysioNet, so a level in mV
would mean a different thing on every lead; a ratio per lead does not.

For one kind and seed, the noise's shape depends only on the record's size and fs, not on the signal or the
level: levels of one seed differ only in scale (a paired comparison), and `make_noise` gives that shape. Lead
relations are not kept in the noise (III = II - I, the augmented leads): each lead is scaled to its own SNR.
"""
import math
import numbers

import numpy as np
from scipy import signal as sps

from .io import FS

KINDS = ("baseline", "mains50", "mains60", "muscle", "mixed")
LEVELS = (20, 10, 5)  # dB, the levels the noise bench reports
MAINS_HARMONIC = 3  # the harmonic added to the mains fundamental
MUSCLE_BAND = (20.0, 150.0)  # Hz
MIXED_PARTS = ("baseline", "muscle", "mains50")
MIXED_SHARES = (4.0, 3.0, 2.0)  # Dirichlet parameters of the parts' power shares
LIMB_LEADS = 6  # of 12 leads, the first 6 (I, II, III, aVR, aVL, aVF) share the muscle bursts, and the chest leads

# A random stream per kind (a fixed number, not the position in KINDS): seed s of one kind is unrelated to seed s
# of another, and `mixed`'s parts are exactly those kinds' noise with the same seed.
_STREAM = {"baseline": 1, "mains50": 2, "mains60": 3, "muscle": 4, "mixed": 5}


def add_noise(sig, kind, snr_db, seed=0, fs=FS):
    """A noisy copy (float32, same shape) of `sig` (leads, N): `kind`'s noise (KINDS) at `snr_db` dB per lead (the
    module's docstring defines it). Deterministic for a seed; `sig` is not modified."""
    _check_kind(kind)
    if isinstance(snr_db, bool) or not isinstance(snr_db, numbers.Real) or not math.isfinite(snr_db):
        raise ValueError(f"snr_db must be a finite number of dB, got {snr_db!r}")
    x = _as_record(sig)
    noise = make_noise(kind, x.shape, seed, fs)
    gain = np.sqrt(signal_power(x) / 10.0 ** (snr_db / 10.0))
    return (x + gain[:, None] * noise).astype(np.float32).reshape(np.shape(sig))


def make_noise(kind, shape, seed=0, fs=FS):
    """`kind`'s noise of `shape` (leads, N) or (N,), float64, each lead of mean square exactly 1 (before scaling
    to a SNR). Deterministic for (kind, shape, seed, fs)."""
    _check_kind(kind)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not (isinstance(fs, numbers.Real) and math.isfinite(fs) and fs > 0):
        raise ValueError(f"fs must be a positive number of Hz, got {fs!r}")
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (1, 2) or min(shape) < 1:
        raise ValueError(f"noise shape must be (leads, samples) or (samples,), got {shape}")
    n_leads, n = (1, shape[0]) if len(shape) == 1 else shape
    if n < fs:
        raise ValueError(f"a record of {n} samples is shorter than 1 s at {fs} Hz: too short for noise")
    if kind.startswith("mains") and int(kind[5:]) >= 0.45 * fs:
        raise ValueError(f"{kind} needs fs above {int(kind[5:]) / 0.45:.0f} Hz, got {fs}")
    if kind in ("muscle", "mixed") and 0.45 * fs <= 1.5 * MUSCLE_BAND[0]:
        raise ValueError(f"{kind} needs fs above {1.5 * MUSCLE_BAND[0] / 0.45:.0f} Hz, got {fs}")
    rng = np.random.default_rng([seed, _STREAM[kind]])
    if kind == "mixed":
        shares = rng.dirichlet(MIXED_SHARES)
        out = sum(np.sqrt(w) * make_noise(part, (n_leads, n), seed, fs) for w, part in zip(shares, MIXED_PARTS))
    elif kind == "baseline":
        out = _baseline(rng, n_leads, n, fs)
    elif kind == "muscle":
        out = _muscle(rng, n_leads, n, fs)
    else:
        out = _mains(rng, n_leads, n, fs, float(kind[5:]))
    return _unit(out).reshape(shape)


def signal_power(sig):
    """Per lead, the mean square of `sig` (leads, N) minus the lead's median: the P_signal of the SNR."""
    x = _as_record(sig)
    return np.mean((x - np.median(x, axis=1, keepdims=True)) ** 2, axis=1)


def measured_snr(sig, noisy):
    """Per lead, the SNR in dB that `noisy` has relative to `sig` (both (leads, N)): 10 log10(P_signal /
    mean square of (noisy - sig)); inf for a lead left unchanged (a flat one too)."""
    x, y = _as_record(sig), _as_record(noisy)
    if x.shape != y.shape:
        raise ValueError(f"sig {x.shape} and noisy {y.shape} differ in shape")
    p_noise = np.mean((y - x) ** 2, axis=1)
    with np.errstate(divide="ignore"):
        return np.where(p_noise > 0, 10.0 * np.log10(signal_power(x) / np.where(p_noise > 0, p_noise, 1.0)), np.inf)


# --- the kinds ------------------------------------------------------------------------------------------------

def _baseline(rng, n_leads, n, fs):
    t = np.arange(n) / fs
    # respiration, shared: 0.15-0.4 Hz, its rate swinging slowly (up to +-15 %), inhalation and exhalation unequal
    f_r, f_sw = rng.uniform(0.15, 0.4), rng.uniform(0.02, 0.08)
    swing = rng.uniform(0.0, 0.15) * f_r / f_sw
    phase = 2 * np.pi * f_r * t + swing * np.sin(2 * np.pi * f_sw * t + rng.uniform(0, 2 * np.pi))
    resp = np.sin(phase) + rng.uniform(0.1, 0.4) * np.sin(2 * phase + rng.uniform(0, 2 * np.pi))
    # electrode drift, per lead: a random walk, low-passed
    drift = np.cumsum(rng.standard_normal((n_leads, n)), axis=1)
    drift = sps.sosfiltfilt(sps.butter(2, 0.5, btype="lowpass", fs=fs, output="sos"), drift, axis=1)
    # a few slow sinusoids per lead
    waves = np.zeros((n_leads, n))
    for lead in range(n_leads):
        k = rng.integers(2, 5)
        f, a, ph = rng.uniform(0.05, 0.5, k), rng.uniform(0.3, 1.0, k), rng.uniform(0, 2 * np.pi, k)
        waves[lead] = (a[:, None] * np.sin(2 * np.pi * f[:, None] * t + ph[:, None])).sum(0)
    g_resp = rng.uniform(0.3, 1.0, n_leads) * rng.choice([-1.0, 1.0], n_leads)
    g_drift, g_waves = rng.uniform(0.2, 0.8, n_leads), rng.uniform(0.3, 1.0, n_leads)
    return g_resp[:, None] * _unit(resp[None]) + g_drift[:, None] * _unit(drift) + g_waves[:, None] * _unit(waves)


def _mains(rng, n_leads, n, fs, base):
    t = np.arange(n) / fs
    f0 = base + rng.uniform(-0.1, 0.1)  # the grid's frequency, the same on every lead
    phase = 2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi, (n_leads, 1))
    x = np.sin(phase)
    if MAINS_HARMONIC * f0 < 0.45 * fs:
        ratio = rng.uniform(0.03, 0.15, (n_leads, 1))
        x = x + ratio * np.sin(MAINS_HARMONIC * phase + rng.uniform(0, 2 * np.pi, (n_leads, 1)))
    depth, f_am = rng.uniform(0.05, 0.2, (n_leads, 1)), rng.uniform(0.05, 0.5)
    return x * (1 + depth * np.sin(2 * np.pi * f_am * t + rng.uniform(0, 2 * np.pi, (n_leads, 1))))


def _muscle(rng, n_leads, n, fs):
    lo, hi = MUSCLE_BAND[0], min(MUSCLE_BAND[1], 0.45 * fs)
    emg = sps.sosfiltfilt(sps.butter(4, [lo, hi], btype="bandpass", fs=fs, output="sos"),
                          rng.standard_normal((n_leads, n)), axis=1)
    groups = [range(LIMB_LEADS), range(LIMB_LEADS, n_leads)] if n_leads == 12 else [range(n_leads)]
    env = np.empty((n_leads, n))
    for group in groups:
        bursts = np.zeros(n)
        for _ in range(max(1, rng.poisson(n / fs / 3))):
            width = max(3, int(rng.uniform(0.3, 2.0) * fs))
            start = int(rng.integers(-width // 2, n - width // 2))
            burst = rng.uniform(1.0, 3.0) * np.hanning(width)
            lo_i, hi_i = max(start, 0), min(start + width, n)
            bursts[lo_i:hi_i] += burst[lo_i - start:hi_i - start]
        for lead in group:
            env[lead] = rng.uniform(0.2, 0.6) + rng.uniform(0.6, 1.4) * bursts
    return emg * env


# --- helpers --------------------------------------------------------------------------------------------------

def _check_kind(kind):
    if kind not in KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; expected one of {', '.join(KINDS)}")


def _as_record(sig):
    """`sig` as float64 (leads, N); a 1-D signal is one lead."""
    x = np.asarray(sig, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"expected a record (leads, samples), got shape {np.shape(sig)}")
    if not np.isfinite(x).all():
        raise ValueError("the record holds non-finite values (NaN or inf)")
    return x


def _unit(x):
    """Each row scaled to mean square 1 (a row of zeros stays zeros)."""
    ms = np.mean(x ** 2, axis=1, keepdims=True)
    return x / np.sqrt(np.where(ms > 0, ms, 1.0))
