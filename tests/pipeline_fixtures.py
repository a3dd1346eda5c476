"""Session fixtures for the training and prediction tests: the embedded real sample rendered small, and a
model trained on it for a few iterations (64 px, batch 4), shared so the slow parts run once: once per test run,
not once per pytest-xdist worker (`built_once`)."""
import contextlib
import fcntl
import io
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from utils.artifacts import mirror_data_inputs

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "dataset" / "sample"
TINY_RENDER = ["--mv-range", "4", "--line-width", "1"]
TINY = ["--image-size", "64", "--batch-size", "4", "--pretrained", "none", "--num-workers", "0", "--log-iters", "5"]


def built_once(tmp_path_factory, name, build):
    """`build(directory)`'s result, run once per test run: the pytest-xdist workers share the directory (under
    their common base temp) and the result (JSON: what the others read back, so every worker sees the same
    types); whoever comes first builds it under a lock, the others wait for it and reuse it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-of-user/pytest-N/popen-gwK -> pytest-N, shared by this run's workers
    folder, done = root / f"shared-{name}", root / f"shared-{name}.json"
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if the build fails
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed in another worker
            folder.mkdir()
            done.write_text(json.dumps(build(folder), default=str))
    return json.loads(done.read_text())


def _trained(out, argv):
    """Train into `out` -> [out, the run's final state] (what the trained-model fixtures return)."""
    import train

    return [str(out), train.main([*argv, "--output-dir", str(out)])]


def _as_run(result):
    out, state = result
    return Path(out), state


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory):
    """A copy of the embedded sample (60 train, 20 test real PTB-XL records) that tests may damage."""
    def build(d):
        mirror_data_inputs(SAMPLE, d / "sample")  # the tracked inputs: never a cache the main job left beside them
        return str(d / "sample")
    return Path(built_once(tmp_path_factory, "raw", build))


@pytest.fixture(scope="session")
def tiny_dataset(tiny_raw, tmp_path_factory):
    import process

    def build(out):
        # The earlier 4 mV / 1 px pictures: at 64 px a 2 px line fills half of a 5 px band, and the tiny runs' LR
        # 0.01 from scratch, which the exact-resume and loss checks were set up on, is near divergence on denser ones.
        process.main(["--data-dir", str(tiny_raw), "--out-dir", str(out), "--size", "64", *TINY_RENDER, "--workers", "1"])
        return str(out)
    return Path(built_once(tmp_path_factory, "dataset", build))


@pytest.fixture(scope="session")
def tiny_trained(tiny_dataset, tmp_path_factory):
    """(output dir, train state) after 30 iterations that save checkpoints at 15 and 30."""
    return _as_run(built_once(tmp_path_factory, "output", lambda out: _trained(out, [
        "--dataset-dir", str(tiny_dataset), "--iters", "30", "--warmup-iters", "0", "--lr", "0.01", "--eval-interval",
        "15", "--save-interval", "15", *TINY])))



@pytest.fixture(scope="session")
def tiny_trained2(tiny_dataset, tmp_path_factory):
    """(output dir, train state) of a Task 2 model: 20 iterations with 2 DataLoader workers, 5 folds."""
    return _as_run(built_once(tmp_path_factory, "output2", lambda out: _trained(out, [
        "--task", "2", "--dataset-dir", str(tiny_dataset), "--iters", "20", "--warmup-iters", "0", "--lr", "0.003",
        "--eval-interval", "10", "--save-interval", "20", "--num-folds", "5", *TINY, "--num-workers", "2",
        "--log-iters", "5"])))  # the last value wins


@pytest.fixture(scope="session")
def tiny_damaged(tiny_raw, tiny_dataset, tmp_path_factory):
    """The sample plus a truncated test record, rendered at 64 px: (raw dir, dataset dir). The sample's pictures
    are tiny_dataset's (drawn with the same settings, copied with their times, so process.py finds them up to
    date): process.py here tries the truncated record and reports it failed, without drawing the 80 others again."""
    import process

    def build(d):
        raw, ds = d / "raw", d / "ds"
        shutil.copytree(tiny_raw, raw, ignore=shutil.ignore_patterns("*_cache"))  # the records, not another's caches
        good = (raw / "val" / "ptbxl_00108.mat").read_bytes()
        (raw / "val" / "zz_truncated.mat").write_bytes(good[: len(good) // 3])
        shutil.copytree(tiny_dataset, ds)
        process.main(["--data-dir", str(raw), "--out-dir", str(ds), "--size", "64", *TINY_RENDER, "--workers", "1"])
        return [str(raw), str(ds)]
    return tuple(Path(p) for p in built_once(tmp_path_factory, "damaged", build))


SIGNAL = ["--arch", "resnet1d", "--batch-size", "8", "--warmup-iters", "2", "--lr", "0.003", "--log-iters", "5",
          "--pretrained", "none"]


@pytest.fixture(scope="session")
def tiny_signal(tiny_raw, tmp_path_factory):
    """(output dir, train state) of a resnet1d Task 1 model on the raw sample: 24 iterations, 2 workers,
    evaluations at 8, 16, 24, checkpoints at 12 and 24."""
    return _as_run(built_once(tmp_path_factory, "signal", lambda out: _trained(out, [
        "--data-dir", str(tiny_raw), "--iters", "24", "--eval-interval", "8", "--save-interval", "12",
        "--num-workers", "2", *SIGNAL])))


@pytest.fixture(scope="session")
def tiny_features2(tiny_raw, tmp_path_factory):
    """(output dir, train state) of a Task 2 features model on the raw sample: 5 folds, no importance figure (it
    is tested on Task 1; 12 classes of it cost a minute here). Shared by the features and the fusion tests."""
    return _as_run(built_once(tmp_path_factory, "features2", lambda out: _trained(out, [
        "--task", "2", "--arch", "features", "--data-dir", str(tiny_raw), "--num-folds", "5",
        "--importance-repeats", "0"])))


@contextlib.contextmanager
def scripts_in_process():
    """The benches' stages (bench/common.stage) and tools/train_kfold.py's folds run in this process through the
    scripts' own main(): the same code and flags without ~5 s of interpreter and Paddle start-up each (a test whose
    point is the process boundary runs the command itself). Yields the scripts run, in order."""
    import predict
    import process
    import train
    from bench import common
    from tools import convert_ptbxl, digitize, make_paper, train_kfold

    mains = {"tools/convert_ptbxl.py": convert_ptbxl.main, "tools/train_kfold.py": train_kfold.main,
             "tools/make_paper.py": make_paper.main, "tools/digitize.py": digitize.main,
             "predict.py": predict.main, "process.py": process.main, "train.py": train.main}
    ran = []

    def stage(name, args, times=None, cpu=None):
        script, *argv = map(str, args)
        print(f"\n=== {name}: {script} {' '.join(argv)}", flush=True)
        t, c = time.time(), time.process_time()
        mains[script](argv)
        if times is not None:
            times[name] = time.time() - t
        if cpu is not None:  # this process's CPU seconds: the script's own, as a child's would be
            cpu[name] = time.process_time() - c
        ran.append(script)

    def run(cmd, cwd=None):
        assert cmd[1].endswith("train.py")
        train.main([str(x) for x in cmd[2:]])
        return subprocess.CompletedProcess(cmd, 0)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(common, "stage", stage)
        m.setattr(train_kfold, "subprocess", SimpleNamespace(run=run))
        yield ran


def features_kfold_argv(raw, out):
    """tools/train_kfold.py's arguments for 2 folds of a features model of `raw` into `out`."""
    return ["--num-folds", "2", "--output-dir", str(out), "--", "--data-dir", str(raw), "--arch", "features",
            "--importance-repeats", "0"]


@pytest.fixture(scope="session")
def tiny_features_kfold(tiny_raw, tmp_path_factory):
    """(output dir, its stderr) of tools/train_kfold.py --num-folds 2 on a features model of the raw sample, the folds
    in this process (scripts_in_process). Shared by the fusion bench and the k-fold tests."""
    def build(out):
        from tools import train_kfold

        err = io.StringIO()
        with scripts_in_process(), contextlib.redirect_stderr(err):
            train_kfold.main(features_kfold_argv(tiny_raw, out))
        return [str(out), err.getvalue()]
    return _as_run(built_once(tmp_path_factory, "features_kfold", build))
