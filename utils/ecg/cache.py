"""The measurements of many records, each record's row cached beside the data so a second run reads it instead of
measuring again. The cache is keyed by the measurement code itself (its names, FEATURES_VERSION and a hash of the
source of the modules that read and measure a record, CACHE_MODULES), and each row by its record's split, size
and modification time: changed measurement code never reuses the rows of the old one.

`map_records` is the per-record machinery itself (also used for the preprocessed signals, utils/inputs/signals.py):
cached records are read in this process, the others computed by a pool of worker processes and written atomically,
so several processes (the ranks of paddle.distributed.launch, two runs on one DATA_DIR) may build one cache at once:
each file appears whole or not at all, and two writers of one record write the same bytes (the last rename wins).
"""
import hashlib
import logging
import multiprocessing
import os
import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..atomic import atomic_path
from ..errors import ECGDataError
from ..runtime import local_ranks
from .io import read_record
from . import measurements  # by module: the names and version are read when used

log = logging.getLogger("ecg")
MEASUREMENT_MODULES = ("beats", "delineation", "measurements")  # utils/ecg/<name>.py: signal -> measurements
CACHE_MODULES = ("io", "gaps") + MEASUREMENT_MODULES  # and the record reader: a cached row depends on them all


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


_ENTRY = re.compile(r"(.+)\.\d+-\d+\.npy")  # <stem>.<size>-<mtime_ns>.npy


def _entries(folders):
    """{(folder, stem): [its cache files]} of the cache folders, each listed once: a per-record glob would read
    the whole folder for every record (quadratic in the records: 16,000 of them took 3x as long per record)."""
    found = {}
    for folder in folders:
        try:
            names = [e.name for e in os.scandir(folder)]
        except OSError:
            continue
        for name in names:
            if m := _ENTRY.fullmatch(name):
                found.setdefault((folder, m.group(1)), []).append(folder / name)
    return found


def _save_cached(cached, row, stale=()):
    """Write the row atomically and remove the record's older entries `stale` (its other sizes and times)."""
    for old in stale:
        if old != cached:
            old.unlink(missing_ok=True)
    # np.save appends ".npy" to a path without it (atomic_path's temporary ends in .tmp): give it a file object
    with atomic_path(cached) as tmp, open(tmp, "wb") as f:
        np.save(f, row)


_TASK = None  # (compute, keep_file) of the running map_records: set in this process, inherited by forked workers


def _init_worker(compute, keep_file):
    global _TASK
    _TASK = (compute, keep_file)
    try:  # one thread per worker: the workers are the parallelism (NumPy's BLAS would otherwise use every core)
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass


def _run_job(job):
    """(index, value or its cache file, problem, cache write error) of one record: read, compute, cache."""
    i, path, cached, stale = job
    compute, keep_file = _TASK
    try:
        sig = read_record(path)
    except ECGDataError as e:
        return i, None, e.problem, None
    value = compute(sig)
    if cached is None:
        return i, value, None, None
    try:
        _save_cached(cached, value, stale)
    except OSError as e:  # a read-only data folder: the value itself, and the caller warns
        return i, value, None, e.strerror or str(e)
    return i, (cached if keep_file else value), None, None


def _rank_order(jobs):
    """The jobs rotated by this process's share: ranks of one machine building one cache start at different
    records, so each computes about its own share and then finds the others' files (when they start together)."""
    rank, size = local_ranks()
    k = len(jobs) * rank // size
    return jobs[k:] + jobs[:k]


def map_records(paths, compute, folder=None, load=None, keep_file=False, workers=1, desc="records", progress=True,
                what="results", fallback="computing without a cache"):
    """`compute(read_record(path))` of every MAT file, cached per record under `folder` (None: no cache).

    Returns (a list of one item per path: the value, or with `keep_file` its cache file; None for an unreadable
    record, {path: problem} of those). `load(cache file)` returns what a cached record gives (its value, or the
    file itself), or None when the file is missing or not well-formed: the record is then computed again. With
    `workers` > 1 the records not cached are computed by that many forked processes (results in order); cached
    ones are only read, here. A folder that cannot be written warns once ("cannot cache `what`; `fallback`").
    """
    paths = [Path(p) for p in paths]
    out, bad, jobs = [None] * len(paths), {}, []  # bad: {index: problem}
    warned = False

    def warn(reason):
        nonlocal warned
        if not warned:
            log.warning(f"{folder}: cannot cache {what} there ({reason}); {fallback}")
        warned = True

    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            warn(e.strerror or str(e))
            folder = None
    bar = tqdm(total=len(paths), desc=desc, unit="rec", leave=False, disable=not progress)
    try:
        for i, path in enumerate(paths):
            try:
                cached = _cache_file(folder, path) if folder is not None else None
            except OSError:  # the record is missing: read_record says so below
                cached = None
            hit = load(cached) if cached is not None and load is not None else None
            if hit is None:
                jobs.append((i, path, cached))
            else:
                out[i] = hit
                bar.update()
        entries = _entries({c.parent for _, _, c in jobs if c is not None})
        jobs = _rank_order([(i, p, c, entries.get((c.parent, p.stem), []) if c is not None else [])
                            for i, p, c in jobs])
        workers = max(1, min(workers, len(jobs)))
        global _TASK
        pool, saved = None, _TASK
        if workers > 1:  # fork: the workers need nothing pickled, and a script's __main__ (Paddle) is not re-imported
            pool = multiprocessing.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(compute, keep_file))
            results = pool.imap_unordered(_run_job, jobs, chunksize=max(1, min(16, len(jobs) // (8 * workers))))
        else:
            _TASK = (compute, keep_file)
            results = map(_run_job, jobs)
        try:
            for i, value, problem, cache_error in results:
                if problem is not None:
                    bad[i] = problem
                else:
                    out[i] = value
                if cache_error is not None:
                    warn(cache_error)
                bar.update()
        except BaseException:  # an error or Ctrl-C: do not wait for the records still queued
            if pool is not None:
                pool.terminate()
                pool.join()
                pool = None
            raise
        finally:
            _TASK = saved
            if pool is not None:  # close + join, not terminate: workers forked from Paddle report SIGTERM loudly
                pool.close()
                pool.join()
    finally:
        bar.close()
    return out, {str(paths[i]): bad[i] for i in sorted(bad)}


def features_for_records(paths, cache_dir=None, progress=True, workers=1):
    """Measurements of the MAT files `paths` -> (float32 (N, F), {path: problem} of unreadable records).

    An unreadable record gets a row of NaN. With `cache_dir`, each record's row is kept as
    `<cache_dir>/<cache_key()>/<split folder>/<stem>.<size>-<mtime_ns>.npy` and reused while the MAT file keeps
    that size and modification time. `workers` > 1 measures that many records at once (processes).
    """
    folder = Path(cache_dir) / cache_key() if cache_dir is not None else None
    rows, bad = map_records(paths, lambda sig: measurements.extract_features(sig), folder, _load_cached,
                            workers=workers, desc="ECG measurements", progress=progress, what="measurements",
                            fallback="measuring without a cache")
    X = np.full((len(rows), len(measurements.FEATURE_NAMES)), np.nan, dtype=np.float32)
    for i, row in enumerate(rows):
        if row is not None:
            X[i] = row
    return X, bad
