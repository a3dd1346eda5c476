"""Writes that a kill cannot half-do: a kill before any file-system change of utils/atomic.py (simulated: the
step raises, and no later step changes anything, as after a real kill -9) must leave one complete copy of a
model directory, and never an answer zip that disagrees with the CSV beside it."""
import itertools
import os
import shutil
import zipfile

import pytest

import utils.atomic
from utils.artifacts import write_answer_files
from utils.atomic import atomic_dir, resolve_dir
from utils.scoring.tasks import Task1, Task2


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


# -- answer.csv and answer.zip ------------------------------------------------------------------------------------
NAMES = ["a1", "a2", "a3"]
RUNS = {1: [[0, 1, 0], [1, 1, 0]], 2: [[[1], [2, 3], [1]], [[4], [1], [5, 6]]]}  # two predict runs' answers


@pytest.mark.parametrize("task", [Task1(), Task2()], ids=["task1", "task2"])
def test_answer_files_killed_at_each_step_never_leave_a_wrong_zip(tmp_path, monkeypatch, task):
    """A second predict run killed at each step: every zip left holds exactly the CSV beside it, and is of the
    newest run that wrote any answer there (Task 2 writes answer.csv and answer_task1.csv, each with its zip)."""
    runs = []
    for i, answers in enumerate(RUNS[task.number]):
        (tmp_path / f"run{i}").mkdir()
        write_answer_files(task.answer_files(NAMES, answers, tmp_path / f"run{i}" / "answer.csv"))
        runs.append({p.name: p.read_bytes() for p in (tmp_path / f"run{i}").glob("*.csv")})
    for kill_at in itertools.count():
        out = tmp_path / f"kill{kill_at}"
        write_answer_files(task.answer_files(NAMES, RUNS[task.number][0], out / "answer.csv"))
        second = task.answer_files(NAMES, RUNS[task.number][1], out / "answer.csv")
        killed = run_killed(monkeypatch, kill_at, lambda: write_answer_files(second))
        csv_run = {name: [r[name] for r in runs].index((out / name).read_bytes()) for name in runs[0]}
        for name in runs[0]:
            zip_path = (out / name).with_suffix(".zip")
            if zip_path.exists():
                with zipfile.ZipFile(zip_path) as z:
                    assert z.namelist() == [name] and z.read(name) == (out / name).read_bytes(), \
                        f"kill {kill_at}: {zip_path.name} disagrees with {name}"
                assert csv_run[name] == max(csv_run.values()), f"kill {kill_at}: {zip_path.name} beside a newer answer"
        if not killed:
            break
    assert max(csv_run.values()) == 1 and kill_at >= 2
