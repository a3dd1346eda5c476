"""Filters shared by the inputs that draw or read the records themselves (no Paddle here: process.py's workers
import it)."""
import numpy as np
from scipy import signal as sps

from .io import FS


def highpass(x, hz, fs=FS):
    """Zero-phase high-pass (2nd-order Butterworth, run forward and back) of `x` (..., n) along its last axis, as
    float64; `hz` 0: `x` as float64, unfiltered. Removes baseline wander below `hz` and keeps the waveform's timing."""
    x = np.asarray(x, dtype=np.float64)
    if not hz:
        return x
    sos = sps.butter(2, hz, btype="highpass", fs=fs, output="sos")
    return sps.sosfiltfilt(sos, x, axis=-1)
