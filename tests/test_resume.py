"""Training you can trust, on real (embedded PTB-XL) pictures at a tiny size: distinct and reproducible
augmentation draws across DataLoader workers, checkpoints owned by their run, exact resume after kill -9,
VisualDL curves that survive resume, and predict refusing pictures drawn with other settings."""
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import predict
import train
from models.families import PictureOptions, Sources, get_family
from utils.artifacts import read_json
from utils.errors import ConfigError, ECGDataError
from utils.scoring.tasks import get_task
from utils.training.engine import build_loaders
from utils.training.runs import find_resumable, keep_newer_best, prune_checkpoints

ROOT = Path(__file__).resolve().parents[1]
# Evaluate every 5, save every 4 (so the checkpoint before a kill is often mid-epoch and older than best_model);
# 54 training pictures in batches of 4 make 13 iterations an epoch, so 16 iterations cross an epoch boundary (a run
# killed at 11 resumes from iter_8 across it).
# LR 0.001: at 0.01 these from-scratch runs diverge (losses ~16), and there the last-digit float differences
# between two processes grow within 3 iterations, so no comparison of two runs could be exact.
# ResNet18: the picture family's smallest network; resuming does not depend on depth, and its checkpoints are half
# the size of ResNet50's (the 3 runs here write and copy gigabytes of them).
ITERS = 16
RUN = ["--arch", "resnet18", "--iters", str(ITERS), "--warmup-iters", "2", "--lr", "0.001", "--eval-interval", "5",
       "--save-interval", "4", "--log-iters", "1", "--keep-checkpoints", "2", "--image-size", "64", "--batch-size", "4",
       "--pretrained", "none", "--num-workers", "0", "--use-vdl"]


def _loader_batches(dataset_dir, workers, seed, n=4):
    """Augmented training batches of one real picture repeated, through train.py's own loader."""
    name = sorted(p.stem for p in (dataset_dir / "train").glob("*.png"))[0]
    df = pd.DataFrame({"name": [name] * (2 * n), "y": [1] * (2 * n)})
    family, src = get_family("resnet50"), Sources(Path("unused"), Path(dataset_dir))
    train_ds, val_ds, _ = family.datasets(get_task(1), None, df, df, src, PictureOptions(64), logging.getLogger("ecg"))
    sampler, loader, val_loader = build_loaders(train_ds, val_ds, batch_size=2, seed=seed, num_workers=workers, world=1)
    with loader, val_loader:  # their workers end here
        sampler.set_epoch(0)
        return np.concatenate([images.numpy() for images, _ in loader])


def test_workers_draw_distinct_augmentations_reproducibly(tiny_dataset):
    two = _loader_batches(tiny_dataset, 2, seed=7)
    assert len(two) == 8
    flat = two.reshape(len(two), -1)
    for i in range(len(flat)):  # the same picture, augmented 8 times: no two draws alike, whichever worker drew it
        for j in range(i + 1, len(flat)):
            assert not np.array_equal(flat[i], flat[j]), (i, j)
    # Each draw is fixed by (seed, epoch, sample): the same with no workers, again, and different for another seed.
    np.testing.assert_array_equal(two, _loader_batches(tiny_dataset, 0, seed=7))
    np.testing.assert_array_equal(two, _loader_batches(tiny_dataset, 2, seed=7))
    assert not np.array_equal(two, _loader_batches(tiny_dataset, 2, seed=8))


def _train(dataset, out, *extra):
    return train.main(["--dataset-dir", str(dataset), "--output-dir", str(out), *RUN, *extra])


def _vdl_scalars(out, tag):
    from visualdl import LogReader

    files = list((out / "vdl").glob("vdlrecords.*.log"))
    assert len(files) == 1, files
    return [(r.id, r.value) for r in LogReader(file_path=str(files[0])).get_data("scalar", tag)]


class _Fresh:
    """train.py in a fresh interpreter, as a user runs it (and as the killed run ran), started at once; state()
    waits for it and returns its final state.json. The runs compared for exactness all start fresh, so nothing
    this test session left in its process can differ."""

    def __init__(self, dataset, out, *extra):
        self.out, self.err, self._state = out, tempfile.TemporaryFile("w+"), None
        self.proc = subprocess.Popen([sys.executable, "train.py", "--dataset-dir", str(dataset), "--output-dir", str(out),
                                      *RUN, *extra], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.err, text=True)

    def state(self):
        if self._state is None:
            try:
                returncode = self.proc.wait(timeout=300)
            finally:
                self.stop()
            self.err.seek(0)
            assert returncode == 0, self.err.read()[-3000:]
            self._state = read_json(self.out / f"iter_{ITERS}" / "state.json")
        return self._state

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _train_fresh(dataset, out, *extra):
    return _Fresh(dataset, out, *extra).state()


@pytest.fixture(scope="module")
def uninterrupted_run(tiny_dataset, tmp_path_factory):
    """The uninterrupted run, started and not waited for: a test with other runs to make makes them meanwhile (the
    subprocesses run one thread each: two at once use two cores), then waits with .state()."""
    run = _Fresh(tiny_dataset, tmp_path_factory.mktemp("uninterrupted"))
    yield run
    run.stop()


@pytest.fixture(scope="module")
def uninterrupted(uninterrupted_run):
    return uninterrupted_run.out, uninterrupted_run.state()


def _start_and_kill(dataset, out, at_iter):
    """Run train.py in a real subprocess and kill -9 it once its log shows iteration `at_iter`."""
    args = [sys.executable, "train.py", "--dataset-dir", str(dataset), "--output-dir", str(out), *RUN]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log, deadline = out / "train.log", time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and f"iter: {at_iter}/{ITERS}," in log.read_text():
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"


def test_killed_run_resumes_exactly(tiny_dataset, uninterrupted_run, tmp_path):
    killed = tmp_path / "killed"
    killed.mkdir()
    _start_and_kill(tiny_dataset, killed, at_iter=11)  # while the uninterrupted run runs
    left = sorted(p.name for p in killed.glob("iter_*"))
    assert left and f"iter_{ITERS}" not in left
    resumed = _train_fresh(tiny_dataset, killed, "--resume", "auto")
    out, full = uninterrupted_run.out, uninterrupted_run.state()
    log = (killed / "train.log").read_text()
    assert f"resumed run {resumed['run_id']} from {killed / left[-1]}" in log

    # Same samples, same order, same draws: the same loss at every iteration, and the same evaluations.
    got = {r["iter"]: r["loss"] for r in resumed["history"]["train"]}
    want = {r["iter"]: r["loss"] for r in full["history"]["train"]}
    assert sorted(got) == list(range(1, ITERS + 1)) == sorted(want)
    np.testing.assert_allclose([got[i] for i in sorted(got)], [want[i] for i in sorted(got)], rtol=1e-4, atol=1e-6)
    lrs = [[r["lr"] for r in s["history"]["train"]] for s in (resumed, full)]
    np.testing.assert_allclose(lrs[0], lrs[1], rtol=1e-9)  # the same schedule, continued
    assert [e["iter"] for e in resumed["history"]["eval"]] == [5, 10, 15, 16]
    np.testing.assert_allclose([e["loss"] for e in resumed["history"]["eval"]], [e["loss"] for e in full["history"]["eval"]],
                               rtol=1e-4)
    # ... and the same best_model.
    assert (resumed["best_iter"], resumed["best_metric"]) == (full["best_iter"], pytest.approx(full["best_metric"]))
    a, b = (read_json(d / "best_model" / "model.json") for d in (out, killed))
    assert a["iter"] == b["iter"] and b["run_id"] == resumed["run_id"]
    import paddle
    pa, pb = (paddle.load(str(d / "best_model" / "model.pdparams")) for d in (out, killed))
    for k in pa:
        np.testing.assert_allclose(pb[k].numpy(), pa[k].numpy(), rtol=1e-4, atol=1e-5, err_msg=k)
    # VisualDL continues the same curves: one value per iteration, none twice, equal to the uninterrupted run's.
    steps = _vdl_scalars(killed, "Train/loss")
    assert [s for s, _ in steps] == list(range(1, ITERS + 1))
    np.testing.assert_allclose([v for _, v in steps], [v for _, v in _vdl_scalars(out, "Train/loss")], rtol=1e-4)
    # Only this run's newest checkpoints are kept.
    assert sorted(p.name for p in killed.glob("iter_*")) == ["iter_12", "iter_16"]


def test_visualdl_scalars(uninterrupted):
    out, full = uninterrupted
    for tag in ("Train/loss", "Train/lr", "Train/batch_cost", "Train/reader_cost", "Train/ips"):
        assert [s for s, _ in _vdl_scalars(out, tag)] == list(range(1, ITERS + 1)), tag
    lr = dict(_vdl_scalars(out, "Train/lr"))
    assert lr[1] == pytest.approx(0.0) and lr[3] == pytest.approx(float(RUN[RUN.index("--lr") + 1]))
    for tag in ("Evaluate/f1", "Evaluate/loss", "Evaluate/accuracy", "Evaluate/thresholds", "Evaluate/auc"):
        assert [s for s, _ in _vdl_scalars(out, tag)] == [5, 10, 15, 16], tag
    f1 = [v for _, v in _vdl_scalars(out, "Evaluate/f1")]
    np.testing.assert_allclose(f1, [e["f1"] for e in full["history"]["eval"]], rtol=1e-6)


def test_visualdl_continues_an_earlier_versions_threshold_curve(tmp_path):
    """A checkpoint of an earlier version keeps `threshold` in its evaluation records: replayed on resume, they
    join today's `Evaluate/thresholds` curve instead of starting a second one."""
    from utils.training.progress import VDLWriter

    history = {"train": [], "eval": [{"iter": 5, "threshold": 0.4, "f1": 0.5}, {"iter": 10, "thresholds": 0.45, "f1": 0.6}]}
    writer = VDLWriter(tmp_path / "vdl", history)
    writer.close()
    assert _vdl_scalars(tmp_path, "Evaluate/thresholds") == [(5, pytest.approx(0.4)), (10, pytest.approx(0.45))]


def test_checkpoints_belong_to_their_run(tiny_dataset, uninterrupted, tmp_path):
    out, full = uninterrupted
    reused = tmp_path / "reused"
    shutil.copytree(out, reused)
    before = sorted(p.name for p in reused.glob("iter_*"))
    # A new run with other settings is not resumed from the old run's checkpoints: it says what differs...
    with pytest.raises(ConfigError, match=r"ITERS: 16 -> 8"):
        _train(tiny_dataset, reused, "--iters", "8", "--resume", "auto")
    # ... and a fresh run does not silently mix with them.
    with pytest.raises(ConfigError, match=r"another run's iter_\d+, iter_\d+, best_model \(run .*--overwrite"):
        _train(tiny_dataset, reused, "--iters", "8")
    assert sorted(p.name for p in reused.glob("iter_*")) == before
    state = _train(tiny_dataset, reused, "--iters", "8", "--overwrite")
    assert sorted(p.name for p in reused.glob("iter_*")) == ["iter_4", "iter_8"]
    assert read_json(reused / "best_model" / "model.json")["run_id"] == state["run_id"] != full["run_id"]


def test_pruning_never_touches_another_run(tmp_path):
    for name, run in (("iter_10000", "A"), ("iter_40", "B"), ("iter_80", "B"), ("iter_120", "B")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "state.json").write_text(json.dumps({"run_id": run}))
    prune_checkpoints(tmp_path, 2, "B")
    assert sorted(p.name for p in tmp_path.glob("iter_*")) == ["iter_10000", "iter_120", "iter_80"]


def test_checkpoint_left_as_old_by_a_killed_swap_is_found_and_pruned(tmp_path):
    """A kill mid-swap of iter_N (rewritten by a run resumed from an earlier checkpoint) can leave iter_N.old alone:
    it is still iteration N's checkpoint, for --resume auto and for pruning."""
    for name in ("iter_4", "iter_8.old", "iter_12", "iter_12.old"):  # iter_12.old: a stale copy beside a whole iter_12
        (tmp_path / name).mkdir()
        (tmp_path / name / "state.json").write_text(json.dumps({"run_id": "R", "signature": {"S": 1}}))
    assert [p.name for p, _ in find_resumable(tmp_path, {"S": 2})[1]] == ["iter_12", "iter_8.old", "iter_4"]
    prune_checkpoints(tmp_path, 2, "R")
    assert sorted(p.name for p in tmp_path.glob("iter_*")) == ["iter_12", "iter_12.old", "iter_8.old"]
    prune_checkpoints(tmp_path, 1, "R")
    assert sorted(p.name for p in tmp_path.glob("iter_*")) == ["iter_12", "iter_12.old"]  # the stale one goes at the next swap


def test_best_model_newer_than_the_checkpoint_is_not_replaced_by_a_worse_one(tmp_path):
    (tmp_path / "best_model").mkdir()
    (tmp_path / "best_model" / "model.json").write_text(json.dumps({"run_id": "R", "iter": 12, "best_metric": 0.9}))
    state = {"run_id": "R", "best_metric": 0.7, "best_iter": 5}
    keep_newer_best(tmp_path, state, logging.getLogger("test"))
    assert (state["best_metric"], state["best_iter"]) == (0.9, 12)
    other = {"run_id": "S", "best_metric": 0.7, "best_iter": 5}  # best_model is another run's: rewritten at next eval
    keep_newer_best(tmp_path, other, logging.getLogger("test"))
    assert other["best_metric"] < 0


class _Scaler:  # the fp16 GradScaler's interface and state (no GPU here to build a real enabled one)
    def __init__(self, scale):
        self.state = {"scale": np.array([scale], np.float32), "incr_ratio": 2.0, "incr_count": 3,
                      "use_dynamic_loss_scaling": True}

    def state_dict(self):
        return self.state

    def load_state_dict(self, d):
        self.state = d


def _small_checkpoint(path, scaler=None):
    import paddle

    from utils.training.checkpoint import save_checkpoint

    model = paddle.nn.Linear(3, 2)
    save_checkpoint(path, model, paddle.optimizer.Momentum(learning_rate=0.1, parameters=model.parameters()),
                    {"iter": 1}, scaler)


def test_resume_restores_random_generators_and_loss_scaler_without_pickle(tmp_path):
    import random

    from utils.training.checkpoint import restore_trainer_state

    random.seed(1), np.random.seed(1)
    np.random.randn()  # numpy's generator holds a cached Gaussian now: restored too
    _small_checkpoint(tmp_path / "iter_1", _Scaler(512.0))
    want = (random.random(), np.random.randn(), np.random.rand())
    assert sorted(p.name for p in (tmp_path / "iter_1").iterdir()) == ["model.pdopt", "model.pdparams", "state.json",
                                                                      "trainer.json"]
    json.loads((tmp_path / "iter_1" / "trainer.json").read_text())  # plain data
    random.seed(2), np.random.seed(2)
    scaler = _Scaler(1.0)
    restore_trainer_state(tmp_path / "iter_1", scaler)
    assert (random.random(), np.random.randn(), np.random.rand()) == want
    assert scaler.state["scale"].dtype == np.float32 and scaler.state["scale"].tolist() == [512.0]
    assert {k: v for k, v in scaler.state.items() if k != "scale"} == {"incr_ratio": 2.0, "incr_count": 3,
                                                                       "use_dynamic_loss_scaling": True}


class _Runs:
    """Unpickling this creates a file: what a trainer.pkl from someone else could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _old_checkpoint(path, payload):
    """A checkpoint as earlier versions wrote it: trainer.pkl (pickle) for trainer.json."""
    import pickle

    _small_checkpoint(path)
    (path / "trainer.json").unlink()
    with open(path / "trainer.pkl", "wb") as f:
        pickle.dump(payload, f, protocol=4)


def test_pickled_trainer_state_is_refused_unless_trusted(tmp_path):
    import random

    import paddle

    from utils.errors import CheckpointError
    from utils.training.checkpoint import restore_trainer_state

    marker = tmp_path / "code_ran"
    _old_checkpoint(tmp_path / "foreign", {"rng": _Runs(marker), "scaler": None})
    with pytest.raises(CheckpointError, match=r"trainer.pkl: .*pickle.* --trust-pickle"):
        restore_trainer_state(tmp_path / "foreign")
    assert not marker.exists()
    # An earlier version's own checkpoint, accepted knowingly: its generators come back.
    random.seed(1), np.random.seed(1)
    rng = {"random": random.getstate(), "numpy": np.random.get_state(), "paddle": paddle.get_rng_state()}
    _old_checkpoint(tmp_path / "mine", {"rng": rng, "scaler": None})
    want = (random.random(), np.random.rand())
    random.seed(2), np.random.seed(2)
    restore_trainer_state(tmp_path / "mine", trust_pickle=True)
    assert (random.random(), np.random.rand()) == want


def _predict(raw, ds, model, out):
    return predict.main(["--data-dir", str(raw), "--dataset-dir", str(ds), "--model", str(model), "--out", str(out),
                         "--num-workers", "0"])


def test_predict_refuses_pictures_drawn_with_other_settings(tiny_raw, tiny_dataset, tiny_trained, tmp_path, capsys):
    out, _ = tiny_trained
    ds = tmp_path / "ds"
    shutil.copytree(tiny_dataset, ds)
    rc_path = ds / "render_config.json"
    rc = json.loads(rc_path.read_text())
    for key, value in (("mv_range", 2.0), ("layout", "6x2"), ("line_width", 3), ("scale", "per-lead"),
                       ("amplitude", "clip" if rc["amplitude"] == "soft" else "soft"), ("highpass", 0.0 if rc["highpass"] else 0.5)):
        rc_path.write_text(json.dumps({**rc, key: value}))
        with pytest.raises(ECGDataError, match=rf"other settings .*{key}: model {rc[key]!r}, pictures {value!r}"):
            _predict(tiny_raw, ds, out / "best_model", tmp_path / "a.csv")
    assert not (tmp_path / "a.csv").exists()
    rc_path.write_text(json.dumps({**rc, "size": 128}))  # only resized: allowed, with a warning
    _predict(tiny_raw, ds, out / "best_model", tmp_path / "a.csv")
    assert "pictures are 128 px" in capsys.readouterr().out and (tmp_path / "a.csv").exists()
    rc_path.unlink()
    with pytest.raises(ECGDataError, match="render_config.json: missing"):
        _predict(tiny_raw, ds, out / "best_model", tmp_path / "a.csv")
    rc_path.write_text('{"size": 64, "layout"')  # cut short: a one-line error naming the file, no traceback
    with pytest.raises(ECGDataError, match="render_config.json: not valid JSON"):
        _predict(tiny_raw, ds, out / "best_model", tmp_path / "a.csv")


def test_max_minutes_stops_after_the_evaluation_past_the_budget_and_the_clock_continues_on_resume(tiny_raw, tmp_path):
    from pipeline_fixtures import SIGNAL

    out = tmp_path / "budget"
    run = ["--data-dir", str(tiny_raw), "--output-dir", str(out), "--iters", "8", "--eval-interval", "4",
           "--save-interval", "100", "--num-workers", "0", *SIGNAL]
    first = train.main([*run, "--max-minutes", "1e-6"])  # any training passes it: stop at the first evaluation
    assert first["iter"] == 4 and [e["iter"] for e in first["history"]["eval"]] == [4]
    secs = first["history"]["eval"][0]["train_seconds"]
    assert 0 < secs == pytest.approx(first["train_seconds"], abs=1e-3)
    assert sorted(p.name for p in out.glob("iter_*")) == ["iter_4"]  # saved as at the last iteration
    done = read_json(out / "finished.json")
    assert done["stopped"]["iter"] == 4 and done["stopped"]["reason"] == "--max-minutes 1e-06"
    assert read_json(out / "best_model" / "model.json")["iter"] == 4

    resumed = train.main([*run, "--resume", "auto"])  # no budget (MAX_MINUTES 0): on to the last iteration
    evals = resumed["history"]["eval"]
    assert resumed["iter"] == 8 and [e["iter"] for e in evals] == [4, 8]
    assert evals[0]["train_seconds"] == secs and evals[1]["train_seconds"] > secs  # the clock continued
    assert "stopped" not in read_json(out / "finished.json")


def test_a_checkpoint_from_before_a_setting_existed_resumes_at_its_earlier_value():
    """CROP_SECONDS and the TTA settings came later: an older checkpoint ran 8 s crops on whole records."""
    from utils.training.runs import signature_diff

    old = {"ARCH": "resnet1d", "LR": 0.001}
    now = {**old, "CROP_SECONDS": 8.0, "TTA_STRIDE_SECONDS": 0.0, "TTA_AGG": "mean"}
    assert signature_diff(old, now) == []
    assert signature_diff(old, {**now, "CROP_SECONDS": 2.5}) == ["CROP_SECONDS: 8.0 -> 2.5"]
    assert signature_diff(old, {**now, "SEED": 1}) == ["SEED: '(unset)' -> 1"]  # any other new setting still differs
