"""Atomic file writes: a kill at any moment leaves either the old file or the new one, never half of one."""
import contextlib
import csv
import os
import shutil
import tempfile
from pathlib import Path


def umask_mode(mode):
    """`mode` as the umask lets open()/mkdir create it: mkstemp/mkdtemp make owner-only (0600/0700) temporaries,
    which would otherwise become the outputs' permissions. Reading the umask means setting it, so restore it."""
    mask = os.umask(0)
    try:
        return mode & ~mask
    finally:
        os.umask(mask)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success it is renamed onto `path` (same filesystem, so atomic)."""
    with atomic_paths([path]) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(paths, remove_first=()):
    """Yield a temporary path beside each of `paths`; on success the files `remove_first` are removed, then each
    temporary is renamed onto its path, in order: each file is always whole, and the order is the caller's way to
    keep files that belong together consistent after a kill (utils/scoring/tasks.py's answer files)."""
    paths, tmps = [Path(p) for p in paths], []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            tmps.append(Path(tmp))
        yield tmps
        for tmp in tmps:
            os.chmod(tmp, umask_mode(0o666))
        for stale in remove_first:
            if os.path.lexists(stale):
                os.remove(stale)
        for tmp, path in zip(tmps, paths):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.remove(tmp)


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path, rows, columns):
    """Rows (dicts) as a CSV with the header `columns`, written atomically (a reader never sees half a file)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary directory; on success it replaces `path` as a whole.

    Directories cannot be renamed over non-empty ones, so the old copy is first moved to `<path>.old` and removed
    only after the new one is in place. A kill at any moment leaves one complete copy, which `resolve_dir` finds:
      before the old copy is moved aside    `path` (old); a `<path>.old` of an earlier swap may be there, stale
      after it is moved aside               `<path>.old` alone: the only copy, kept by the next write until its
                                            new copy is in place
      after the new copy is in place        `path` (new), and `<path>.old` whole or partly removed
    A kill also leaves the hidden temporary directory (`.<name>.*.tmp`) behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = path.with_name(path.name + ".old")
    try:
        yield tmp
        os.chmod(tmp, umask_mode(0o777))
        if path.exists():
            if old.exists():  # stale: `path` is complete (a partly removed .old is only ever left beside it)
                shutil.rmtree(old)
            os.replace(path, old)
        # else: an interrupted swap left `old` as the only copy (or there is none yet): it stays until `tmp` is in place
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_dir(path):
    """`path`, or the `<path>.old` copy an interrupted `atomic_dir` swap left behind."""
    path = Path(path)
    old = path.with_name(path.name + ".old")
    if not path.exists() and old.exists():
        return old
    return path
