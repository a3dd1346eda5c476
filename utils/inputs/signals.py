"""The raw-signal input of the signal family (resnet1d, xresnet1d*, inception1d): preprocessing (decided once at
training, stored in model.json, repeated by predict.py) and the paddle.io dataset that reads the MAT records
themselves.

Preprocessing keeps amplitude: a high-pass filter removes baseline drift, the record is resampled (500 -> 100 Hz
by default: on PTB-XL that measured better than 250 Hz, and 2.5x faster) and multiplied by ONE scale for all
records and leads, fitted on the training set. Never a per-record normalisation: a low-voltage record must stay
low-voltage.

Preprocessed records are cached once per record (`prepare_signals`: DATA_DIR/signal_cache/<signal_cache_key>/
<split>/<stem>.<size>-<mtime_ns>.npy, unscaled float32), keyed by the preprocessing settings and the source of
the code that makes them, and read back memory-mapped one item at a time (the scale applied then), so a run's
resident memory does not grow with the number of records; folds, resumes and predict.py reuse them.
"""
import functools
import hashlib
import inspect
import json
import logging
from pathlib import Path

import numpy as np
import paddle
import scipy
from scipy import signal as sps

from ..ecg.cache import map_records
from ..ecg.filters import highpass
from ..ecg.io import FS, read_record
from .draws import seed_sample

log = logging.getLogger("ecg")
SCALE_RECORDS = 200  # training records the amplitude scale is fitted on (enough for a stable std)


def default_preprocess(fs=100, highpass_hz=0.5, crop_seconds=8.0):
    """Preprocessing settings before the scale is fitted (model.json's `input` for a signal model)."""
    return {"kind": "signal", "fs": fs, "highpass_hz": highpass_hz, "scale": 1.0,
            "length": int(round(10 * fs)), "crop": int(round(crop_seconds * fs))}


def preprocess(x, prep):
    """(12, 5000) mV at 500 Hz -> float32 (12, length): high-pass (zero phase), resampled, scaled."""
    x = highpass(x, prep["highpass_hz"])
    if prep["fs"] != FS:
        g = np.gcd(int(prep["fs"]), FS)
        x = sps.resample_poly(x, int(prep["fs"]) // g, FS // g, axis=1)  # with its own anti-alias filter
    return (x * prep["scale"]).astype(np.float32)


def fit_scale(signals):
    """One amplitude scale for every record and lead: 1 / the pooled standard deviation (unscaled signals)."""
    sd = float(np.sqrt(np.mean([np.mean(s.astype(np.float64) ** 2) for s in signals])))
    return 1.0 / sd if sd > 0 else 1.0


def signal_cache_key(prep):
    """Sub-folder of the signal cache for these settings and this code: the settings that shape the preprocessed
    record (every one but `scale`, applied when an item is read), the source of read_record, preprocess and
    highpass and the SciPy/NumPy versions (their filters). Any change starts a new folder."""
    settings = json.dumps({k: v for k, v in sorted(prep.items()) if k != "scale"}, sort_keys=True)
    code = "".join(inspect.getsource(f) for f in (read_record, preprocess, highpass))
    text = f"{settings}\nFS {FS}\n{code}\nscipy {scipy.__version__} numpy {np.__version__}"
    return f"fs{prep['fs']}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"


def _header_ok(path, shape):
    """The cached file `path` holds a whole C-ordered float32 array of `shape` (cheap: its header and size only)."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with open(path, "rb") as f:
            read = readers.get(np.lib.format.read_magic(f))
            if read is None:
                return False
            got, fortran, dtype = read(f)
            start, end = f.tell(), f.seek(0, 2)
    except (OSError, ValueError, EOFError):
        return False
    return tuple(got) == shape and not fortran and dtype == np.float32 and end - start == 4 * int(np.prod(shape))


def prepare_signals(paths, prep, cache_dir=None, workers=1, desc="read records", progress=None):
    """Preprocess the MAT files `paths` once (without the scale) -> (items, {path: problem} of those unreadable).

    An item is the record's cache file (`cache_dir`/signal_cache_key(prep)/<split>/...npy) or, without a cache
    (none given, or one that cannot be written), the preprocessed array itself; None for an unreadable record.
    `read_signal(item, scale)` gives the model's input. `workers` > 1 preprocesses that many records at once."""
    shape = (12, int(prep["length"]))
    folder = Path(cache_dir) / signal_cache_key(prep) if cache_dir is not None else None

    def cached(path):
        return str(path) if _header_ok(path, shape) else None

    items, bad = map_records(paths, functools.partial(preprocess, prep={**prep, "scale": 1.0}), folder, cached,
                             keep_file=True, workers=workers, desc=desc,
                             progress=len(paths) >= 50 if progress is None else progress,
                             what="preprocessed signals", fallback="holding them in memory instead")
    return [str(x) if isinstance(x, Path) else x for x in items], bad


def read_signal(item, scale=1.0):
    """The model's input from an item of prepare_signals: the array, or its cache file read memory-mapped (only
    this record's pages, released when the array is), times the one amplitude scale."""
    if isinstance(item, np.ndarray):
        return item * np.float32(scale) if scale != 1.0 else item
    x = np.asarray(np.load(item, mmap_mode="r"))
    return x * np.float32(scale) if scale != 1.0 else np.array(x)


class ECGSignalDataset(paddle.io.Dataset):
    """(signal (12, L) float32, label) of prepare_signals' items (cache files read one at a time, or arrays) times
    `scale`; labels None for the test set.

    `transform(x) -> x` (training augmentation, drawn from numpy's generator, which SeededBatchSampler seeds per
    sample); without it, the whole record."""

    def __init__(self, signals, labels=None, transform=None, scale=1.0):
        self.signals = list(signals)
        self.labels = None if labels is None else np.asarray(labels)
        self.transform, self.scale = transform, float(scale)

    def __len__(self):
        return len(self.signals)

    def __getitem__(self, key):
        i = seed_sample(key)
        x = read_signal(self.signals[i], self.scale)
        if self.transform:
            x = self.transform(x)
        return (x, self.labels[i]) if self.labels is not None else x
