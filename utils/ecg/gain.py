"""What another device's gain calibration does to the measurements, and how the features member learns to ignore it.

A recording at gain g (every lead's mV multiplied by g: an electrocardiograph calibrated a few percent off, or
another hospital's amplifier) changes every amplitude measurement by the same factor g and leaves the intervals,
rates, axes and ratios alone. GAIN_SCALED names the measurements of utils/ecg/measurements.py that scale with g.
Measuring g x the record gives exactly `at_gain` of its measurements for 97% of record-gain pairs (200 PTB-XL
records at x0.8 and x1.2; tests/test_gain.py checks it on real records): on the rest a gain moves a P-wave or T-end
boundary, whose delineation has thresholds in mV, or one of the two thresholded counts (v1_n_rpeaks,
n_t_negative). So a record's measurements at another gain cost nothing to make, and the features member can train on copies of
every training record at gains 1 - G and 1 + G (train.py --gain-augment G): bench/device_shift.py measured gain
x1.2 as the one device change that costs the features member measurably.

The other fix needs no copies: AmplitudeView (train.py --amplitudes) gives the trees each amplitude measurement
divided by the record's own QRS amplitude (the median over the 12 leads of R minus S), which no gain changes.
"relative" reads only those ratios (the model is then blind to a gain, and to true voltage); "both" reads the
ratios beside the voltages.
"""
import numpy as np

from ..errors import ConfigError
from .io import LEADS
from .measurements import FEATURE_NAMES, PER_LEAD

# every per-lead measurement is an amplitude, an area (mV x ms) or a spread in mV; of the others, these
GAIN_SCALED = frozenset(
    [n for n in FEATURE_NAMES if n.rsplit("_", 1)[0] in PER_LEAD]
    + ["beat_residual_rms", "v1_rprime_amp", "v1_term40_area", "i_term40_area", "v6_term40_area", "p_prom_II",
       "fwave_rms_II", "fwave_rms_V1", "sokolow", "cornell", "qrs_p2p_max", "qrs_p2p_limb_max", "st60_max",
       "st60_min", "t_amp_min"])
_SCALED = np.array([n in GAIN_SCALED for n in FEATURE_NAMES])


def at_gain(X, gain):
    """The measurements (N, len(FEATURE_NAMES)) of the same records recorded at `gain` times their amplitude."""
    X = np.array(X, dtype=np.float32)  # a copy
    X[..., _SCALED] *= gain
    return X


def gains_for(augment):
    """The gains the training records are copied at for --gain-augment G: none for 0, else 1 - G and 1 + G."""
    if not 0 <= augment < 1:
        raise ConfigError(f"--gain-augment must be in [0, 1) (0 = off; 0.2: gains x0.8 and x1.2), got {augment}")
    return (1 - augment, 1 + augment) if augment else ()


def with_gains(X, gains):
    """The rows of X, then the same records at each of `gains` (GBMModel's `augment`)."""
    return np.concatenate([np.asarray(X, dtype=np.float32)] + [at_gain(X, g) for g in gains])


AMPLITUDES = ("absolute", "relative", "both")
MIN_REFERENCE_MV = 0.05  # a QRS smaller than this in every lead is no recording to take ratios of
_R = [FEATURE_NAMES.index(f"r_amp_{ld}") for ld in LEADS]
_S = [FEATURE_NAMES.index(f"s_amp_{ld}") for ld in LEADS]


def qrs_reference(X):
    """(N,) each record's amplitude reference in mV: the median over the 12 leads of the QRS's R minus S amplitude;
    NaN where no lead has one, or where it is below MIN_REFERENCE_MV."""
    X = np.asarray(X, dtype=np.float32).reshape(-1, len(FEATURE_NAMES))
    p2p = X[:, _R] - X[:, _S]
    ok = np.isfinite(p2p).any(axis=1)
    ref = np.full(len(X), np.nan, dtype=np.float32)
    ref[ok] = np.nanmedian(p2p[ok], axis=1)
    ref[~(ref >= MIN_REFERENCE_MV)] = np.nan
    return ref


class AmplitudeView:
    """The measurements as the features model reads them (train.py --amplitudes): as measured ("absolute"), with
    every GAIN_SCALED one divided by qrs_reference ("relative": `<name>_rel`), or those ratios appended ("both")."""

    def __init__(self, mode="absolute"):
        if mode not in AMPLITUDES:
            raise ConfigError(f"--amplitudes must be one of {', '.join(AMPLITUDES)}, got {mode!r}")
        self.mode = mode
        rel = {n: f"{n}_rel" for n in FEATURE_NAMES if n in GAIN_SCALED}
        self.names = {"absolute": FEATURE_NAMES, "relative": tuple(rel.get(n, n) for n in FEATURE_NAMES),
                      "both": FEATURE_NAMES + tuple(rel.values())}[mode]

    def __call__(self, X):
        """(..., len(FEATURE_NAMES)) measurements -> (..., len(self.names)) float32, what the trees read."""
        X = np.asarray(X, dtype=np.float32)
        if self.mode == "absolute":
            return X  # any width: GBMModel also serves other measurements
        if X.shape[-1] != len(FEATURE_NAMES):
            raise ValueError(f"--amplitudes {self.mode} needs the {len(FEATURE_NAMES)} measurements of "
                             f"utils/ecg/measurements.py per record, got shape {X.shape}")
        rows = X.reshape(-1, len(FEATURE_NAMES))
        ratios = rows[:, _SCALED] / qrs_reference(rows)[:, None]
        if self.mode == "both":
            out = np.concatenate([rows, ratios], axis=1)
        else:
            out = rows.copy()
            out[:, _SCALED] = ratios
        return out.reshape(*X.shape[:-1], len(self.names))
