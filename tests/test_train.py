"""train.py on real (embedded PTB-XL) pictures at a tiny size: learning, saving, reloading, resuming,
pretrained loading, the LR schedule, augmentation, two-process launch and bad input."""
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paddle
import pytest

import train
from models import build_model
from models.families import Sources, get_family
from pipeline_fixtures import TINY
from transforms import ECG_MEAN, ECG_STD, build_transforms
from utils.artifacts import load_weights
from utils.errors import CheckpointError, ConfigError, ECGDataError, PretrainedWeightsError
from utils.inputs.loading import make_loader
from utils.inputs.pictures import ECGImageDataset
from utils.inputs.render import band_edges, render_image
from utils.scoring.tasks import get_task
from utils.training.engine import build_loaders, build_optimizer, build_scheduler, train_step, validate
from utils.training.losses import build_loss

T1 = get_task(1)

ROOT = Path(__file__).resolve().parents[1]


def test_loss_falls_on_real_data(tiny_trained, tiny_dataset):
    """train.py's own loader, model, optimizer and step on one batch of real (augmented) pictures: repeated steps
    must cut its loss. (The 30-iteration fixture run from scratch is too short and noisy to show a trend reliably.)"""
    import paddle

    from utils.config import parse_config, script_constants
    from utils.scoring.tasks import get_task

    _, state = tiny_trained
    assert len(state["history"]["train"]) == 6 and all(np.isfinite(r["loss"]) for r in state["history"]["train"])
    cfg = parse_config(script_constants(vars(train)), ["--dataset-dir", str(tiny_dataset), "--lr", "0.001",
                                                       "--warmup-iters", "0", "--iters", "20", *TINY])
    task, family = get_task(1), get_family("resnet50")
    labelled, train_df, val_df = train.load_split(cfg, task, family)
    src = Sources(Path(cfg["DATA_DIR"]), Path(cfg["DATASET_DIR"]))
    train_ds, val_ds, _ = family.datasets(task, labelled, train_df, val_df, src, family.options(cfg), logging.getLogger("ecg"))
    _, loader, val_loader = build_loaders(train_ds, val_ds, cfg["BATCH_SIZE"], cfg["SEED"], cfg["NUM_WORKERS"], 1)
    with loader, val_loader:
        inputs, labels = next(iter(loader))
    paddle.seed(0)
    model = family.build("resnet50", task.num_outputs, "none")
    model.train()
    optimizer = build_optimizer(family.optimizer, build_scheduler(0.001, 20, 0, 1e-8, 0.9), model, 0.9, 2e-4)
    loss = build_loss(task, train_df["y"])
    losses = [train_step(model, lambda z: loss(z, labels), inputs, optimizer, None, None) for _ in range(20)]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3]), losses


def test_outputs_written(tiny_trained):
    out, state = tiny_trained
    assert state["iter"] == 30
    for d in ("iter_15", "iter_30"):
        assert {p.name for p in (out / d).iterdir()} == {"model.pdparams", "model.pdopt", "state.json", "trainer.json"}
    info = json.loads((out / "best_model" / "model.json").read_text())
    assert info["iter"] == state["best_iter"] and info["input"]["image_size"] == 64 and "image_size" not in info
    # 6 validation records choose nothing: best_model is the latest evaluation, its threshold 0.5, and it says so
    assert info["iter"] == 30 and info["thresholds"] == 0.5 and info["class_names"] == ["normal", "abnormal"]
    assert info["tuned_on"] == "validation fold 0 of 10, 6 records < 30: a smoke check, thresholds 0.5, nothing tuned"
    assert info["config"]["ITERS"] == 30 and info["fallback_answer"] == 1 and info["task"] == 1
    assert (out / "training_curves.png").stat().st_size > 10_000
    log = (out / "train.log").read_text()
    assert "[TRAIN] epoch: 1, iter: 5/30, loss:" in log and "reader_cost:" in log and "ips:" in log and "| ETA" in log
    assert "[EVAL] #Records: 6, loss: " in log
    assert log.count("[EVAL] The latest model was saved at iter") == 2 and "best validation" not in log
    assert not list(out.glob(".*tmp")), "temporary files left behind"


def test_best_model_reloads_with_identical_validation_outputs(tiny_trained, tiny_dataset):
    out, _ = tiny_trained
    info = json.loads((out / "best_model" / "model.json").read_text())
    cfg = info["config"]
    _, _, val = train.load_split(cfg, T1, get_family("resnet50"))
    ds = ECGImageDataset(tiny_dataset / "train", val["name"], T1.label_array(val["y"]), 64, build_transforms(False))
    model = build_model(2, "none")
    load_weights(model, out / "best_model" / "model.pdparams")
    with make_loader(ds, "validation", batch_size=4, shuffle=False) as loader:
        loss, probs, labels = validate(model, loader, T1, build_loss(T1, val["y"]))
        assert loss == pytest.approx(info["metrics"]["val_loss"], rel=1e-5, abs=1e-6)
        loss2, probs2, _ = validate(model, loader, T1, build_loss(T1, val["y"]))
    np.testing.assert_array_equal(probs, probs2)
    assert ((probs >= info["thresholds"]).astype(int) == labels).mean() == pytest.approx(info["metrics"]["at_threshold"]["accuracy"])


def test_lr_schedule_values():
    sched = build_scheduler(lr=0.001, iters=100, warmup_iters=10, end_lr=1e-8, power=0.9)
    seen = []
    for _ in range(100):
        seen.append(sched())
        sched.step()
    assert seen[0] == 0.0
    assert seen[5] == pytest.approx(0.0005)
    assert seen[10] == pytest.approx(0.001)
    poly = lambda step: (0.001 - 1e-8) * (1 - step / 90) ** 0.9 + 1e-8  # noqa: E731
    assert seen[55] == pytest.approx(poly(45))
    assert seen[99] == pytest.approx(poly(89)) and seen[99] < 2e-5
    assert all(a >= b for a, b in zip(seen[10:], seen[11:]))


def test_pretrained_weights_file_loads_all_but_head(tmp_path, caplog):
    paddle.seed(1)
    imagenet = build_model(1000, "none")  # same keys and shapes as Paddle's hapi ImageNet weights
    path = tmp_path / "resnet50.pdparams"
    paddle.save(imagenet.state_dict(), str(path))
    paddle.seed(2)
    with caplog.at_level("INFO", logger="ecg"):
        model = build_model(2, str(path))
    src, dst = imagenet.state_dict(), model.state_dict()
    for k in dst:
        if k.startswith("fc."):
            assert list(dst[k].shape)[-1] == 2
        else:
            np.testing.assert_array_equal(dst[k].numpy(), src[k].numpy(), err_msg=k)
    assert "skipped fc.weight [2048, 1000] vs [2048, 2]" in caplog.text


def test_pretrained_bad_files(tmp_path):
    with pytest.raises(PretrainedWeightsError, match="not found"):
        build_model(2, str(tmp_path / "nope.pdparams"))
    bogus = tmp_path / "other.pdparams"
    paddle.save({"encoder.weight": paddle.zeros([3, 3])}, str(bogus))
    with pytest.raises(PretrainedWeightsError, match="no tensor matches"):
        build_model(2, str(bogus))


def test_offline_auto_fails_fast_even_in_a_non_zero_rank(tmp_path, monkeypatch):
    import paddle.utils.download as download

    import models.resnet as resnet

    monkeypatch.setattr(download, "WEIGHTS_HOME", str(tmp_path / "cache"))  # nothing cached
    # A closed local port stands in for the unreachable host; rank 1 of 2 would wait forever in Paddle's downloader.
    monkeypatch.setitem(resnet.model_urls, "resnet50", ("http://127.0.0.1:9/resnet50.pdparams", "0" * 32))
    monkeypatch.setenv("PADDLE_TRAINER_ENDPOINTS", "127.0.0.1:6170,127.0.0.1:6171")
    monkeypatch.setenv("PADDLE_CURRENT_ENDPOINT", "127.0.0.1:6171")
    t = time.time()
    with pytest.raises(PretrainedWeightsError) as e:
        build_model(2, "auto")
    assert time.time() - t < 10
    msg = str(e.value)
    assert str(tmp_path / "cache" / "resnet50.pdparams") in msg and "--pretrained" in msg and "none" in msg


def _spike_picture(size=256):
    """A rendered ECG whose lead I has one tall upward spike early in time (left) and flat elsewhere."""
    sig = np.zeros((12, 5000), np.float32)
    sig[0, 400:420] = 1.8
    return render_image(sig, size=size).convert("L")


def test_augmentations_keep_shape_and_never_flip():
    img = _spike_picture()
    edges = band_edges(256, 12)
    centre = (edges[0] + edges[1]) / 2
    train_tf = build_transforms(True)
    np.random.seed(0)
    seen = 0
    for _ in range(60):
        x = train_tf(img)
        assert x.shape == (3, 256, 256) and x.dtype == np.float32
        gray = x[0] * ECG_STD[0] + ECG_MEAN[0]  # back to [0, 1]; ink is dark
        band = gray[edges[0]:edges[1]]
        ink = band < 0.5 * np.median(band)
        rows, cols = np.nonzero(ink)
        tall = cols[rows < centre - 4]  # ink well above the centre line: the spike (unless a time window erased it)
        if len(tall):
            seen += 1
            assert tall.mean() < 256 * 0.2, "spike moved away from the start: time reversed?"
        assert not np.any(rows > centre + 4), "ink below the line: polarity inverted?"
    assert seen >= 45
    names = [type(t).__name__ for t in train_tf.transforms]
    assert not any("Flip" in n for n in names)
    ev = build_transforms(False)
    np.testing.assert_array_equal(ev(img), ev(img))


def test_two_process_cpu_launch(tiny_dataset, tmp_path):
    out = tmp_path / "dist"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
                        str(tmp_path / "logs"), "train.py", "--dataset-dir", str(tiny_dataset), "--output-dir", str(out),
                        "--iters", "4", "--warmup-iters", "0", "--save-interval", "4", *TINY,
                        "--arch", "resnet18"],  # the launch is what is tested: the smallest picture network
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    log = (out / "train.log").read_text()
    assert "batch 4 x 2 process(es)" in log and "iter: 4/4" in log
    assert (out / "best_model" / "model.pdparams").is_file() and (out / "iter_4" / "model.pdopt").is_file()


def _copy_dataset(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_missing_picture_is_a_clear_error(tiny_dataset, tmp_path):
    ds = _copy_dataset(tiny_dataset, tmp_path / "ds")
    (ds / "train" / "ptbxl_00412.png").unlink()
    with pytest.raises(ECGDataError, match=r"trainreference.csv: row 3: record 'ptbxl_00412' has no file .*ptbxl_00412.png"):
        train.main(["--dataset-dir", str(ds), "--output-dir", str(tmp_path / "o"), "--iters", "1", *TINY])


def test_bad_tag_is_a_clear_error(tiny_dataset, tmp_path):
    ds = _copy_dataset(tiny_dataset, tmp_path / "ds")
    csv = ds / "trainreference.csv"
    csv.write_text(csv.read_text().replace("ptbxl_00412,1", "ptbxl_00412,2"))
    with pytest.raises(ECGDataError, match="row 3 \\('ptbxl_00412'\\): tag must be 0 or 1, found '2'"):
        train.main(["--dataset-dir", str(ds), "--output-dir", str(tmp_path / "o"), "--iters", "1", *TINY])


def test_empty_training_set_is_a_clear_error(tmp_path):
    ds = tmp_path / "ds"
    (ds / "train").mkdir(parents=True)
    (ds / "trainreference.csv").write_text("name,tag\n")
    with pytest.raises(ECGDataError, match="trainreference.csv: the training set is empty"):  # printed as one line:
        train.main(["--dataset-dir", str(ds), "--output-dir", str(tmp_path / "o"), *TINY])  # test_runtime


def test_checkpoint_for_another_number_of_classes(tiny_trained, tiny_dataset, tmp_path):
    out, _ = tiny_trained
    bad = tmp_path / "iter_15"
    shutil.copytree(out / "iter_15", bad)
    paddle.save(build_model(3, "none").state_dict(), str(bad / "model.pdparams"))
    with pytest.raises(CheckpointError, match="trained for 3 classes, this model has 2"):
        train.main(["--dataset-dir", str(tiny_dataset), "--output-dir", str(tmp_path / "o"), "--iters", "30",
                    "--warmup-iters", "0", "--lr", "0.01", "--eval-interval", "15", "--resume", str(bad), *TINY])


def test_resume_of_an_old_pickled_checkpoint_needs_trust_pickle(tiny_trained, tiny_dataset, tmp_path):
    """A checkpoint of an earlier version (trainer.pkl) is refused with what to do; --trust-pickle resumes it."""
    import pickle
    import random

    out, state = tiny_trained
    old = tmp_path / "out"
    shutil.copytree(out, old)
    (old / "iter_30" / "trainer.json").unlink()
    with open(old / "iter_30" / "trainer.pkl", "wb") as f:
        pickle.dump({"rng": {"random": random.getstate(), "numpy": np.random.get_state(), "paddle": paddle.get_rng_state()},
                     "scaler": None}, f, protocol=4)
    args = ["--dataset-dir", str(tiny_dataset), "--output-dir", str(old), "--iters", "30", "--warmup-iters", "0", "--lr",
            "0.01", "--eval-interval", "15", "--save-interval", "15", *TINY, "--resume", "auto"]
    with pytest.raises(CheckpointError, match=r"iter_30/trainer.pkl: .*--trust-pickle"):
        train.main(args)
    assert train.main(args + ["--trust-pickle"])["run_id"] == state["run_id"]
    assert f"resumed run {state['run_id']} from {old / 'iter_30'}" in (old / "train.log").read_text()


def test_checkpoint_restores_optimizer_state_in_a_fresh_model(tiny_trained):
    from utils.training.checkpoint import load_checkpoint

    out, _ = tiny_trained
    saved = paddle.load(str(out / "iter_15" / "model.pdopt"))
    assert "conv1.weight_velocity_0" in saved and "LR_Scheduler" in saved
    build_model(2, "none")  # shifts Paddle's unique parameter names, as a longer-lived process would
    model = build_model(2, "none")
    opt = paddle.optimizer.Momentum(learning_rate=build_scheduler(0.01, 30, 0, 1e-8, 0.9), momentum=0.9, parameters=model.parameters())
    state = load_checkpoint(out / "iter_15", model, opt)
    assert state["iter"] == 15
    conv1 = dict(model.named_parameters())["conv1.weight"]
    velocity = opt.state_dict()[f"{conv1.name}_velocity_0"]
    np.testing.assert_array_equal(velocity.numpy(), saved["conv1.weight_velocity_0"].numpy())
    assert np.abs(velocity.numpy()).sum() > 0


def test_split_is_stratified_seeded_and_k_fold(tiny_dataset):
    from utils.training.sampling import stratified_folds

    cfg = {"DATA_DIR": "unused", "DATASET_DIR": str(tiny_dataset), "NUM_FOLDS": 10, "VAL_FOLD": 0, "SEED": 2021}
    pictures = get_family("resnet50")
    labelled, tr, va = train.load_split(cfg, T1, pictures)
    refs = labelled.refs
    assert len(tr) == 54 and len(va) == 6 and not set(tr["name"]) & set(va["name"])
    assert sorted(va["y"]) == [0, 0, 1, 1, 1, 1]  # 16 normal / 44 abnormal spread over 10 folds
    assert list(train.load_split(cfg, T1, pictures)[2]["name"]) == list(va["name"])  # same seed, same split
    vals = [set(train.load_split({**cfg, "VAL_FOLD": k}, T1, pictures)[2]["name"]) for k in range(10)]
    assert set().union(*vals) == set(refs["name"]) and sum(map(len, vals)) == len(refs)  # k-fold covers every record once
    folds = stratified_folds(refs["y"], 10, 7)
    assert np.bincount(folds).max() - np.bincount(folds).min() <= 1
    with pytest.raises(ConfigError, match="VAL_FOLD"):
        train.load_split({**cfg, "VAL_FOLD": 10}, T1, pictures)
    # too few labelled records for the folds asked for: one line naming the label file, the count and the folds
    with pytest.raises(ECGDataError, match=r"trainreference.csv: 60 labelled records .* too few for 61 folds"):
        train.load_split({**cfg, "NUM_FOLDS": 61}, T1, pictures)


def test_corrupt_picture_is_a_clear_error(tiny_dataset, tmp_path):
    ds = _copy_dataset(tiny_dataset, tmp_path / "ds")
    (ds / "train" / "ptbxl_00412.png").write_bytes(b"\x89PNG\r\n\x1a\n not a picture")
    dataset = ECGImageDataset(ds / "train", ["ptbxl_00412"], [1], 64, build_transforms(False))
    with pytest.raises(ECGDataError, match=r"ptbxl_00412.png: cannot read the picture .*process.py --force"):
        dataset[0]


def test_too_few_validation_records_tune_nothing_and_the_figures_say_so(monkeypatch, tmp_path):
    """Below MIN_RECORDS validation records the thresholds stay 0.5 (both tasks); from it on they are tuned; the
    training curves name their record count and call a small fold a smoke check."""
    from utils.scoring import plots
    from utils.scoring.thresholds import MIN_RECORDS, smoke_banner

    rng = np.random.default_rng(0)
    for n in (MIN_RECORDS - 1, MIN_RECORDS):
        y = np.arange(n) % 3 == 0  # a third abnormal, scored low: the F1-best threshold is far below 0.5
        p = np.where(y, 0.3, 0.1) + rng.uniform(0, 0.05, n)
        t1 = get_task(1).evaluate(y.astype(int), p)
        Y = np.tile(y[:, None], (1, 12)).astype(int)
        Y[:, 0] = 1 - Y[:, 0]
        t2 = get_task(2).evaluate(Y, np.tile(p[:, None], (1, 12)))
        if n < MIN_RECORDS:
            assert t1.thresholds == 0.5 and t2.thresholds == [0.5] * 12 and "smoke check" in t1.summary + t2.summary
        else:
            assert 0.1 < t1.thresholds < 0.35 and 0.1 < t2.thresholds[1] < 0.35 and "smoke" not in t1.summary

    texts = {}

    def keep(fig, path, plt, dpi=90):
        texts[Path(path).name] = " ".join(t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text")))
        plt.close(fig)

    monkeypatch.setattr(plots, "_save", keep)
    history = {"train": [{"iter": 5, "loss": 0.7, "lr": 0.01}], "eval": [{"iter": 5, "loss": 0.6, "f1": 1.0, "auc": 1.0}]}
    plots.plot_training_curves(history, tmp_path / "small.png", "f1", n_records=6, smoke=smoke_banner(6))
    plots.plot_training_curves(history, tmp_path / "large.png", "f1", n_records=185, smoke=smoke_banner(185))
    assert "validation (6 records)" in texts["small.png"] and "Smoke check" in texts["small.png"]
    assert "validation (185 records)" in texts["large.png"] and "Smoke check" not in texts["large.png"]
