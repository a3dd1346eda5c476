"""The signal family's benchmark input recipe (issue 22, item 1): training crops of --crop-seconds, and test-time
aggregation over sliding windows (--tta-stride-seconds, --tta-agg) that validation, predict.py and the exported
runner share (utils/inputs/signals.py SlidingWindows), on real records of the sample."""
import json
import logging
import shutil

import numpy as np
import pandas as pd
import paddle
import pytest
from scipy.special import expit, softmax

import predict
import train
from models.families import get_family
from pipeline_fixtures import SIGNAL
from utils.artifacts import ModelCard, read_json
from utils.ecg.io import read_record
from utils.errors import ConfigError
from utils.inputs.loading import make_loader
from utils.inputs.signals import ECGSignalDataset, SlidingWindows, card_windows, default_preprocess, preprocess, windowed
from utils.scoring.tasks import get_task
from utils.training.engine import validate
from utils.training.losses import build_loss

T1, T2 = get_task(1), get_task(2)
LOG = logging.getLogger("ecg")
ARCH = "xresnet1d18"  # the cheapest benchmark network
WINDOWED = ["--crop-seconds", "2.5", "--tta-stride-seconds", "1.25", "--tta-agg", "max"]


@pytest.mark.parametrize("n, length, stride, want", [
    (1000, 250, 125, [0, 125, 250, 375, 500, 625, 750]),  # the benchmark's 2.5 s windows, half overlapping
    (1000, 300, 300, [0, 300, 600, 700]),  # the last window ends at the record's end, overlapping the one before
    (1000, 1000, 500, [0]),  # a window as long as the record: the whole record
    (999, 250, 250, [0, 250, 500, 749]),
    (200, 250, 125, [0]),  # a record shorter than a window: the whole record
])
def test_windows_cover_the_record_exactly(n, length, stride, want):
    w = SlidingWindows(length, stride)
    assert w.starts(n) == want
    covered = np.zeros(n, int)
    for s in want:
        covered[s:s + length] += 1
    assert covered.min() >= 1 and want[-1] + min(length, n) == n  # every sample seen; the last window flush with the end
    x = np.random.default_rng(0).normal(size=(2, 12, n)).astype(np.float32)
    parts = w.split(x)
    assert parts.shape == (2 * len(want), 12, min(length, n))
    for r in range(2):  # record r's windows, in order, one after another
        for k, s in enumerate(want):
            np.testing.assert_array_equal(parts[r * len(want) + k], x[r, :, s:s + length])


def _fixed(logits):
    """A forward that returns `logits` (one row per window) whatever windows it is given (checking their count)."""
    def forward(windows):
        assert len(windows) == len(logits)
        return logits
    return forward


@pytest.mark.parametrize("agg", ["mean", "max", "episodic"])
def test_aggregation_is_of_probabilities_task1_softmax(agg):
    # 2 records x 3 windows (n 500, windows 250 every 125), 2 logits each: P(abnormal) is the softmax's second column
    logits = np.array([[0, 0], [0, 2], [1, -1], [3, 0], [-2, 2], [0, 0]], np.float32)
    p = softmax(logits.astype(np.float64), axis=1)[:, 1].reshape(2, 3)
    want = p.max(1) if agg == "max" else p.mean(1)  # episodic: Task 1 has no episodic output, the mean
    got = SlidingWindows(250, 125, agg).logits(_fixed(logits), np.zeros((2, 12, 500), np.float32), T1)
    assert got.shape == (2, 2)
    np.testing.assert_allclose(T1.probs(got), want, rtol=1e-5)
    from_logits = softmax(getattr(logits.reshape(2, 3, 2).astype(np.float64), "max" if agg == "max" else "mean")(axis=1),
                          axis=1)[:, 1]
    assert np.abs(from_logits - want).max() > 0.05  # which is not the aggregate of the logits


@pytest.mark.parametrize("agg", ["mean", "max", "episodic"])
def test_aggregation_is_of_probabilities_task2_sigmoids(agg):
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (3 * 4, 12)).astype(np.float32)  # 3 records x 4 windows (n 1000, 300 every 300)
    p = expit(logits.astype(np.float64)).reshape(3, 4, 12)
    want = p.mean(1) if agg == "mean" else p.max(1)
    if agg == "episodic":  # the max for PVC and PAC (classes 6 and 7, 1-based), the mean for the rest
        want = p.mean(1)
        want[:, [5, 6]] = p.max(1)[:, [5, 6]]
    got = SlidingWindows(300, 300, agg).logits(_fixed(logits), np.zeros((3, 12, 1000), np.float32), T2)
    assert got.shape == (3, 12)
    np.testing.assert_allclose(T2.probs(got), want, rtol=1e-5, atol=1e-6)


def test_the_card_says_how_to_run_and_an_old_card_runs_the_whole_record():
    prep = default_preprocess(crop_seconds=2.5, tta_stride_seconds=1.25, tta_agg="max")
    assert prep["crop"] == 250 and prep["windows"] == {"length": 250, "stride": 125, "agg": "max"}
    assert get_family("resnet1d").input_spec(prep) == [None, 12, 250]  # an exported network takes one window
    old = default_preprocess()  # stride 0, and every card written before windows: no `windows`
    assert "windows" not in old and old["crop"] == 800 and card_windows(old) is None
    assert get_family("resnet1d").input_spec(old) == [None, 12, 1000]
    forward = _fixed(np.zeros((1, 2), np.float32))
    assert windowed(forward, old, T1) is forward


@pytest.mark.parametrize("flags, match", [
    (["--crop-seconds", "0"], "--crop-seconds"), (["--crop-seconds", "12"], "--crop-seconds"),
    (["--crop-seconds", "2.5", "--tta-stride-seconds", "3"], "--tta-stride-seconds"),
    (["--tta-stride-seconds", "-1"], "--tta-stride-seconds"), (["--tta-stride-seconds", "0.001"], "--tta-stride-seconds"),
])
def test_bad_crop_or_stride_is_a_one_line_error_naming_the_flag(flags, match, tmp_path):
    with pytest.raises(ConfigError, match=match) as e:  # before any record is read: no data dir needed
        train.main(["--arch", "resnet1d", "--data-dir", str(tmp_path / "none"), "--output-dir", str(tmp_path), *flags])
    assert "\n" not in str(e.value)


def test_validate_with_windows_is_what_the_runner_gives_task2(tiny_raw):
    """Task 2 (sigmoids): validate's probabilities and loss are those of the windowed runner's logits."""
    names = sorted(p.stem for p in (tiny_raw / "train").glob("*.mat"))[:8]
    inp = default_preprocess(crop_seconds=2.5, tta_stride_seconds=2.0, tta_agg="mean")
    x = np.stack([preprocess(read_record(tiny_raw / "train" / f"{n}.mat"), inp) for n in names])
    y = np.zeros((len(x), 12), np.float32)
    y[np.arange(len(x)), np.arange(len(x)) % 12] = 1
    paddle.seed(0)
    model = get_family("xresnet1d18").build("xresnet1d18", 12, "none")
    with make_loader(ECGSignalDataset(x, y), "validation", batch_size=3, num_workers=0) as loader:
        loss, probs, labels = validate(model, loader, T2, build_loss(T2, y, "none"), card_windows(inp))
    model.eval()  # validate leaves it training
    with paddle.no_grad():
        logits = windowed(lambda b: model(paddle.to_tensor(b)).numpy(), inp, T2)(x)
    np.testing.assert_allclose(probs, T2.probs(logits), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(labels, y)
    bce = np.mean(np.logaddexp(0, logits) - y * logits)  # unweighted binary cross-entropy with logits
    assert loss == pytest.approx(bce, rel=1e-4)


@pytest.fixture(scope="module")
def windowed_model(tiny_raw, tmp_path_factory):
    """(output dir, train state): xresnet1d18 on 2.5 s crops, validated on windows every 1.25 s (max), 40
    iterations of batch 8, 2 DataLoader workers. (resnet1d for 8-16 iterations, or LR 0.003, gives every validation
    record P(abnormal) 1, which would compare nothing.)"""
    out = tmp_path_factory.mktemp("windowed")
    flags = [ARCH if f == "resnet1d" else f for f in SIGNAL]
    state = train.main(["--data-dir", str(tiny_raw), "--output-dir", str(out), "--iters", "40", "--eval-interval", "20",
                        "--save-interval", "40", "--num-workers", "2", *flags, "--lr", "0.001", *WINDOWED])
    return out, state


def _validation_as_test_set(tiny_raw, names, dest):
    """A data dir whose test records (val/) are the model's validation records."""
    (dest / "val").mkdir(parents=True)
    for n in names:
        shutil.copy2(tiny_raw / "train" / f"{n}.mat", dest / "val" / f"{n}.mat")
    return dest


def _predicted(data, model_dir, tmp_path, tag, *flags):
    """predict.py's probabilities per record (its _probabilities.csv), by name."""
    report = tmp_path / f"{tag}.json"
    predict.main(["--data-dir", str(data), "--model", str(model_dir), "--out", str(tmp_path / f"{tag}.csv"),
                  "--report", str(report), "--num-workers", "2", "--batch-size", "8", *flags])
    return pd.read_csv(json.loads(report.read_text())["probabilities"], dtype={"name": str}).set_index("name")


def test_windowed_model_predicts_what_it_validated_also_exported(windowed_model, tiny_raw, tmp_path):
    out, state = windowed_model
    best = out / "best_model"
    info = read_json(best / "model.json")
    assert info["input"]["crop"] == 250 and info["input"]["windows"] == {"length": 250, "stride": 125, "agg": "max"}
    assert info["config"]["CROP_SECONDS"] == 2.5 and len(state["history"]["eval"]) == 2
    assert info["arch"] == ARCH
    table = pd.read_csv(best / "val_predictions.csv", dtype={"name": str, "truth": str}).set_index("name")
    data = _validation_as_test_set(tiny_raw, table.index, tmp_path / "data")

    got = _predicted(data, best, tmp_path, "dygraph", "--export", str(tmp_path / "exported"))
    np.testing.assert_allclose(got.loc[table.index, "p_abnormal"], table["p_abnormal"], rtol=1e-4, atol=1e-5)
    exported = _predicted(data, tmp_path / "exported", tmp_path, "exported")  # Paddle Inference, windows in numpy
    assert read_json(tmp_path / "exported" / "model.json")["input"]["windows"] == info["input"]["windows"]
    np.testing.assert_allclose(exported.loc[table.index, "p_abnormal"], table["p_abnormal"], rtol=1e-3, atol=1e-4)

    # the same network, its card without `windows` (as every card before them): the whole record, as before
    old = tmp_path / "old_card"
    shutil.copytree(best, old)
    card = read_json(old / "model.json")
    del card["input"]["windows"]
    (old / "model.json").write_text(json.dumps(card, indent=2))
    whole = _predicted(data, old, tmp_path, "old")
    _, model = get_family(ARCH).load_runner(old, ModelCard.read(old), T1)
    x = np.stack([preprocess(read_record(data / "val" / f"{n}.mat"), card["input"]) for n in table.index])
    with paddle.no_grad():
        direct = T1.probs(model(paddle.to_tensor(x)).numpy())  # the network on the whole 10 s record
    np.testing.assert_allclose(whole.loc[table.index, "p_abnormal"], direct, rtol=1e-4, atol=1e-5)
    assert np.abs(direct - table["p_abnormal"]).max() > 1e-3  # the windows did change the answer


def test_window_aggregation_bench_repredicts_each_fold_both_ways(windowed_model, tiny_raw, tmp_path):
    """bench/window_aggregation.py on a k-fold dir of the windowed model (as one fold): its own aggregation (max)
    gives val_predictions.csv back, the mean is another answer, and mean <= max for every record (a mean of
    probabilities never exceeds their max)."""
    from bench import window_aggregation

    out, _ = windowed_model
    kfold = tmp_path / "kfold"
    kfold.mkdir()
    (kfold / "fold_0").symlink_to(out)
    names, probs = window_aggregation.pooled(T1, kfold, tiny_raw, logging.getLogger("test"))
    table = pd.read_csv(out / "best_model" / "val_predictions.csv", dtype={"name": str, "truth": str})
    assert names == table["name"].tolist()
    np.testing.assert_allclose(probs["max"], table["p_abnormal"], atol=2e-6)
    assert (probs["mean"] <= probs["max"] + 1e-7).all() and np.abs(probs["mean"] - probs["max"]).max() > 1e-3
    np.testing.assert_array_equal(probs["episodic"], probs["mean"])  # Task 1 has no episodic output
