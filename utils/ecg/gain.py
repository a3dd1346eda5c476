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
"""
import numpy as np

from ..errors import ConfigError
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
