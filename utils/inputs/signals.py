"""The raw-signal input of the `resnet1d` family: preprocessing (decided once at training, stored in model.json,
repeated by predict.py) and the paddle.io dataset that reads the MAT records themselves.

Preprocessing keeps amplitude: a high-pass filter removes baseline drift, the record is resampled (500 -> 100 Hz
by default: on PTB-XL that measured better than 250 Hz, and 2.5x faster) and multiplied by ONE scale for all
records and leads, fitted on the training set. Never a per-record normalisation: a low-voltage record must stay
low-voltage.
"""
import logging

import numpy as np
import paddle
from scipy import signal as sps
from tqdm import tqdm

from ..ecg.io import FS, read_record
from ..errors import ECGDataError
from .draws import seed_sample

log = logging.getLogger("ecg")
SCALE_RECORDS = 200  # training records the amplitude scale is fitted on (enough for a stable std)


def default_preprocess(fs=100, highpass_hz=0.5, crop_seconds=8.0):
    """Preprocessing settings before the scale is fitted (model.json's `input` for a signal model)."""
    return {"kind": "signal", "fs": fs, "highpass_hz": highpass_hz, "scale": 1.0,
            "length": int(round(10 * fs)), "crop": int(round(crop_seconds * fs))}


def preprocess(x, prep):
    """(12, 5000) mV at 500 Hz -> float32 (12, length): high-pass (zero phase), resampled, scaled."""
    x = np.asarray(x, dtype=np.float64)
    if prep["highpass_hz"]:
        sos = sps.butter(2, prep["highpass_hz"], btype="highpass", fs=FS, output="sos")
        x = sps.sosfiltfilt(sos, x, axis=1)
    if prep["fs"] != FS:
        g = np.gcd(int(prep["fs"]), FS)
        x = sps.resample_poly(x, int(prep["fs"]) // g, FS // g, axis=1)  # with its own anti-alias filter
    return (x * prep["scale"]).astype(np.float32)


def fit_scale(signals):
    """One amplitude scale for every record and lead: 1 / the pooled standard deviation (unscaled signals)."""
    sd = float(np.sqrt(np.mean([np.mean(s.astype(np.float64) ** 2) for s in signals])))
    return 1.0 / sd if sd > 0 else 1.0


def load_signals(paths, prep, desc="read records"):
    """Preprocessed signals of the MAT files `paths` -> (list of arrays, {path: problem} of those unreadable)."""
    out, bad = [], {}
    for p in tqdm(paths, desc=desc, unit="rec", leave=False, disable=len(paths) < 50):
        try:
            out.append(preprocess(read_record(p), prep))
        except ECGDataError as e:
            out.append(None)
            bad[str(p)] = e.problem
    return out, bad


class ECGSignalDataset(paddle.io.Dataset):
    """(signal (12, L) float32, label) from preprocessed records held in memory; labels None for the test set.

    `transform(x) -> x` (training augmentation, drawn from numpy's generator, which SeededBatchSampler seeds per
    sample); without it, the whole record."""

    def __init__(self, signals, labels=None, transform=None):
        self.signals = list(signals)
        self.labels = None if labels is None else np.asarray(labels)
        self.transform = transform

    def __len__(self):
        return len(self.signals)

    def __getitem__(self, key):
        i = seed_sample(key)
        x = self.signals[i]
        if self.transform:
            x = self.transform(x)
        return (x, self.labels[i]) if self.labels is not None else x
