"""Writes that a kill cannot half-do: a kill before any file-system change of utils/atomic.py (simulated: the
step raises, and no later step changes anything, as after a real kill -9) must leave one complete copy of a
model directory, and never an answer zip that disagrees with the CSV beside it."""
import itertools
import os
import shutil
import zipfile

import utils.atomic
from utils.atomic import atomic_dir, resolve_dir


class Killed(BaseException):
    """The simulated kill -9 (a BaseException, so no `except Exception` of the code under test catches it)."""


class Dying:
    """Stands in for `os` or `shutil` inside utils/atomic.py: forwards every name, but the calls that change the
    file system are numbered, the one numbered `kill_at` raises Killed instead of running, and after it none runs."""

    CHANGES = {"replace", "rename", "remove", "unlink", "rmdir", "chmod", "rmtree"}

    def __init__(self, module, clock):
        self._module, self._clock = module, clock

    def __getattr__(self, name):
        attr = getattr(self._module, name)
        if name not in self.CHANGES:
            return attr

        def step(*args, **kwargs):
            clock = self._clock
            if clock["dead"]:
                return None
            if clock["step"] == clock["kill_at"]:
                clock["dead"] = True
                raise Killed(f"killed before {name}{args}")
            clock["step"] += 1
            return attr(*args, **kwargs)
        return step


def run_killed(monkeypatch, kill_at, write):
    """Run `write()` killed before its file-system change number `kill_at` (0-based); True if it was killed."""
    clock = {"step": 0, "kill_at": kill_at, "dead": False}
    with monkeypatch.context() as m:
        m.setattr(utils.atomic, "os", Dying(os, clock))
        m.setattr(utils.atomic, "shutil", Dying(shutil, clock))
        try:
            write()
        except Killed:
            return True
    return False


# -- a directory swapped in as a whole ----------------------------------------------------------------------------
def write_dir(path, version):
    with atomic_dir(path) as tmp:
        for name in ("a.txt", "b.txt"):  # complete = both files, of one version
            (tmp / name).write_text(version)


def read_dir(path):
    """The version of the copy a reader finds (resolve_dir), checked complete; None if there is none."""
    found = resolve_dir(path)
    if not found.is_dir():
        return None
    texts = {p.name: p.read_text() for p in found.iterdir()}
    assert texts.keys() == {"a.txt", "b.txt"} and len(set(texts.values())) == 1, f"{found}: incomplete copy {texts}"
    return texts["a.txt"]


def test_directory_swap_killed_at_each_step_keeps_one_complete_copy(tmp_path, monkeypatch):
    for first in itertools.count():
        case = tmp_path / f"first{first}"
        write_dir(case / "model", "v1")
        killed = run_killed(monkeypatch, first, lambda: write_dir(case / "model", "v2"))
        after_first = read_dir(case / "model")
        assert after_first in ("v1", "v2") and (killed or after_first == "v2"), (first, after_first)
        # A second write after the interrupted one, killed at each of its steps too.
        for second in itertools.count():
            again = tmp_path / f"first{first}_second{second}"
            shutil.copytree(case, again)
            killed_again = run_killed(monkeypatch, second, lambda: write_dir(again / "model", "v3"))
            assert read_dir(again / "model") in (after_first, "v3"), (first, second)
            write_dir(again / "model", "v4")  # and a write that completes leaves the new copy alone
            assert read_dir(again / "model") == "v4" and not (again / "model.old").exists(), (first, second)
            if not killed_again:
                break
        if not killed:
            break
    assert first >= 3, "fewer steps than expected: is the kill simulated?"
