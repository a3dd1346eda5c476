"""The measurements of many records, each record's row cached beside the data so a second run reads it instead of
measuring again. The cache is keyed by the measurement code itself (its names, FEATURES_VERSION and a hash of the
source of the modules that read and measure a record, CACHE_MODULES), and each row by its record's split, size
and modification time: changed measurement code never reuses the rows of the old one."""
import contextlib
import hashlib
import logging
import multiprocessing
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from glob import escape as glob_escape
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..atomic import atomic_path
from ..errors import ECGDataError
from .io import read_record
from . import measurements  # by module: the names and version are read when used

log = logging.getLogger("ecg")
MEASUREMENT_MODULES = ("beats", "delineation", "measurements")  # utils/ecg/<name>.py: signal -> measurements
CACHE_MODULES = ("io",) + MEASUREMENT_MODULES  # and the record reader: a cached row depends on them all
POOL_MIN_RECORDS = 400  # records to measure from which features_for_records uses a process per core (~5 s of work)


def measurement_code_hash(modules=MEASUREMENT_MODULES):
    """SHA-1 of the source of utils/ecg/<module>.py for `modules` (line endings normalised): any edit changes it.
    Of MEASUREMENT_MODULES, tests/test_measure.py ties it to FEATURES_VERSION, which a trained model records; of
    CACHE_MODULES, it keys the cache."""
    h = hashlib.sha1()
    for name in modules:
        h.update(f"{name}\n".encode())
        h.update((Path(__file__).parent / f"{name}.py").read_bytes().replace(b"\r\n", b"\n"))
    return h.hexdigest()


def cache_key():
    """Sub-folder of the cache for this code's measurements: a change of names, version or measurement code
    starts a new one."""
    text = ("\n".join(measurements.FEATURE_NAMES) + f"\nversion {measurements.FEATURES_VERSION}"
            f"\ncode {measurement_code_hash(CACHE_MODULES)}")
    return f"v{measurements.FEATURES_VERSION}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def _cache_file(folder, mat):
    """<folder>/<split>/<stem>.<size>-<mtime_ns>.npy: a record of another split, or rewritten (even with an older
    time, as `cp -p` or unzip leave it), or of another size, has another name, so it is measured again."""
    st = mat.stat()
    return folder / mat.parent.name / f"{mat.stem}.{st.st_size}-{st.st_mtime_ns}.npy"


def _load_cached(cached):
    """The cached row if it is there and well-formed, else None."""
    try:
        row = np.load(cached, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return row if row.shape == (len(measurements.FEATURE_NAMES),) and row.dtype == np.float32 else None


def _save_cached(cached, row, stem):
    """Write the row atomically and remove the record's older entries (its other sizes and times)."""
    mine = re.compile(rf"{re.escape(stem)}\.\d+-\d+\.npy")
    for old in cached.parent.glob(f"{glob_escape(stem)}.*.npy"):
        if old != cached and mine.fullmatch(old.name):
            old.unlink(missing_ok=True)
    # np.save appends ".npy" to a path without it (atomic_path's temporary ends in .tmp): give it a file object
    with atomic_path(cached) as tmp, open(tmp, "wb") as f:
        np.save(f, row)


def _measure(path):
    """(row, None) of one MAT record, or (None, problem) if it cannot be read. In a worker process too."""
    try:
        sig = read_record(path)
    except ECGDataError as e:
        return None, e.problem
    return measurements.extract_features(sig), None


@contextlib.contextmanager
def _workers_skip_main():
    """A spawned worker first imports the parent's main script (its __spec__ or __file__): train.py or predict.py
    would load Paddle in every worker (seconds and ~400 MB each) for a measurement that needs only this module.
    While the workers start, the main module shows neither, so they import only what the task needs."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.update(saved)
        if "__spec__" not in saved:
            del main.__spec__


def features_for_records(paths, cache_dir=None, progress=True, workers=None):
    """Measurements of the MAT files `paths` -> (float32 (N, F), {path: problem} of unreadable records).

    An unreadable record gets a row of NaN. With `cache_dir`, each record's row is kept as
    `<cache_dir>/<cache_key()>/<split folder>/<stem>.<size>-<mtime_ns>.npy` and reused while the MAT file keeps
    that size and modification time. POOL_MIN_RECORDS or more records to measure are measured by `workers`
    processes (default: one per core); fewer, here (starting the processes would cost more than it saves).
    """
    paths = [Path(p) for p in paths]
    X = np.full((len(paths), len(measurements.FEATURE_NAMES)), np.nan, dtype=np.float32)
    bad = {}
    folder = Path(cache_dir) / cache_key() if cache_dir is not None else None
    todo = []  # (index, cache file or None) of the records to measure
    for i, path in enumerate(paths):
        try:
            cached = _cache_file(folder, path) if folder is not None else None
        except OSError:  # the record is missing: read_record says so when it is measured
            cached = None
        row = _load_cached(cached) if cached is not None else None
        if row is None:
            todo.append((i, cached))
        else:
            X[i] = row
    workers = max(1, os.cpu_count() or 1) if workers is None else max(1, workers)
    todo_paths = [paths[i] for i, _ in todo]
    bar = dict(total=len(todo), desc="ECG measurements", unit="rec", leave=False, disable=not progress)
    if workers > 1 and len(todo) >= POOL_MIN_RECORDS:
        # spawn, not fork: the caller may have threads running (Paddle's), which a forked child must not inherit
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn")) as ex:
            with _workers_skip_main():  # map submits every task now, which starts the workers
                results = ex.map(_measure, todo_paths, chunksize=16)
            results = list(tqdm(results, **bar))
    else:
        results = (_measure(p) for p in tqdm(todo_paths, **bar))
    for (i, cached), (row, problem) in zip(todo, results):
        if row is None:
            bad[str(paths[i])] = problem
            continue
        X[i] = row
        if cached is not None and folder is not None:
            try:
                _save_cached(cached, row, paths[i].stem)
            except OSError as e:  # a read-only data folder: measure every time rather than fail
                log.warning(f"{folder}: cannot cache measurements there ({e.strerror}); measuring without a cache")
                folder = None
    return X, bad
