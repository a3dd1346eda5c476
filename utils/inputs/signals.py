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

Training reads random crops (CROP_SECONDS, 8 s by default; the PTB-XL benchmark of Strodthoff et al. 2020 uses
2.5 s). Validation and prediction read the whole record, or with `windows` in the card's input (train.py
--tta-stride-seconds) run the network on sliding windows of the crop's length and aggregate each record's window
probabilities (mean, max, or episodic: the max for PVC and PAC, the mean for the rest): `SlidingWindows`, which
validation, predict.py and the exported runner share.
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

from ..ecg import gaps
from ..ecg.cache import map_records
from ..ecg.filters import highpass
from ..ecg.io import CLASS_NAMES, FS, read_record
from ..errors import ConfigError
from .draws import seed_sample

log = logging.getLogger("ecg")
SCALE_RECORDS = 200  # training records the amplitude scale is fitted on (enough for a stable std)
SIGNAL_FS = 100  # Hz the records are resampled to (on PTB-XL better than 250 Hz, and 2.5x faster)
RECORD_SECONDS = 10  # every record's length (the competition's and PTB-XL's: 5000 samples at 500 Hz)
AGGREGATIONS = ("mean", "max", "episodic")  # how a record's window probabilities become its probability
# episodic: findings one beat can make (a single premature beat lies in a few windows), aggregated by the max; the
# rest by the mean. Named before measuring (issue 22); bench/window_aggregation.py measured max vs mean per class.
EPISODIC = tuple(CLASS_NAMES.index(c) for c in ("PVC", "PAC"))
NOT_CACHED = ("scale", "crop", "windows")  # settings applied after the cache (when an item is read or run)


def default_preprocess(fs=SIGNAL_FS, highpass_hz=0.5, crop_seconds=8.0, tta_stride_seconds=0.0, tta_agg="mean"):
    """Preprocessing settings before the scale is fitted (model.json's `input` for a signal model). A stride > 0
    adds `windows`: validation and prediction aggregate windows of the crop's length (SlidingWindows)."""
    check_windows(crop_seconds, tta_stride_seconds, tta_agg, fs)
    crop = int(round(crop_seconds * fs))
    prep = {"kind": "signal", "fs": fs, "highpass_hz": highpass_hz, "scale": 1.0,
            "length": int(round(RECORD_SECONDS * fs)), "crop": crop}
    if tta_stride_seconds > 0:
        prep["windows"] = {"length": crop, "stride": int(round(tta_stride_seconds * fs)), "agg": tta_agg}
    return prep


def check_windows(crop_seconds, stride_seconds, agg, fs=SIGNAL_FS):
    """One-line errors naming the flag: a crop within the record, a stride that leaves no gap between windows."""
    if not 0 < crop_seconds <= RECORD_SECONDS or round(crop_seconds * fs) < 1:
        raise ConfigError(f"--crop-seconds must be > 0 and <= {RECORD_SECONDS} (the record's length), got {crop_seconds}")
    if stride_seconds < 0 or stride_seconds > crop_seconds or (stride_seconds > 0 and round(stride_seconds * fs) < 1):
        raise ConfigError(f"--tta-stride-seconds must be 0 (off: the whole record) or from 1/{fs} s to --crop-seconds "
                          f"{crop_seconds} (windows that leave no gap), got {stride_seconds}")
    if agg not in AGGREGATIONS:
        raise ConfigError(f"--tta-agg must be one of {', '.join(AGGREGATIONS)}, got {agg!r}")


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
    record (every one but NOT_CACHED: the scale, applied when an item is read, the crop and the test-time
    windows), the source of read_record, utils/ecg/gaps.py, preprocess and highpass and the SciPy/NumPy versions (their filters).
    Any change starts a new folder."""
    settings = json.dumps({k: v for k, v in sorted(prep.items()) if k not in NOT_CACHED}, sort_keys=True)
    code = "".join(inspect.getsource(f) for f in (read_record, gaps, preprocess, highpass))
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


class SlidingWindows:
    """Test-time aggregation over windows of `length` samples (the card's input["windows"]): starts 0, stride,
    2 stride, ... and a last window flush with the record's end, so every sample is seen. A record's probability
    (per class) is the mean or the max of its windows' probabilities (episodic: the max for PVC and PAC, Task 2's
    outputs EPISODIC, the mean for every other output and for Task 1), never of their logits: Task 1's softmax and
    Task 2's sigmoids are taken first (task.probs), and the result goes back to logits (task.logits) for callers
    that want logits, e.g. the validation loss."""

    def __init__(self, length, stride, agg="mean"):
        self.length, self.stride, self.agg = int(length), int(stride), agg

    def starts(self, n):
        """The first sample of each window of a record of `n` samples (one window, 0, when n <= length)."""
        last = max(n - self.length, 0)
        return sorted(set(range(0, last + 1, self.stride)) | {last})

    def split(self, x):
        """(N, 12, n) -> (N * W, 12, length): each record's W windows, one after another."""
        return np.stack([x[:, :, s:s + self.length] for s in self.starts(x.shape[-1])], axis=1).reshape(
            -1, *x.shape[1:-1], min(self.length, x.shape[-1]))

    def aggregate(self, probs, n_records):
        """Window probabilities (N * W[, C]) -> record probabilities (N[, C])."""
        per = np.asarray(probs).reshape(n_records, -1, *np.shape(probs)[1:])
        if self.agg == "max":
            return per.max(axis=1)
        out = per.mean(axis=1)
        if self.agg == "episodic" and out.ndim == 2 and out.shape[1] == len(CLASS_NAMES):
            out[:, EPISODIC] = per[:, :, EPISODIC].max(axis=1)
        return out

    def logits(self, forward, x, task):
        """Logits (N, outputs) of records `x` (N, 12, n) numpy, from `forward` (windows numpy -> logits numpy)."""
        x = np.asarray(x)
        return task.logits(self.aggregate(task.probs(np.asarray(forward(self.split(x)))), len(x)))


def card_windows(inp):
    """The SlidingWindows of a card's `input`, or None: the whole record (models trained before windows too)."""
    w = inp.get("windows")
    return SlidingWindows(w["length"], w["stride"], w["agg"]) if w else None


def windowed(forward, inp, task):
    """`forward` (batch numpy -> logits numpy) run as the card's `input` says: over its windows, or as it is."""
    w = card_windows(inp)
    return forward if w is None else functools.partial(w.logits, forward, task=task)
