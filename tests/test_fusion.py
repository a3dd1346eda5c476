"""k-fold training (tools/train_kfold.py) with a killed fold, and fusion of models in predict.py: the fused
probability is the (weighted) mean, its thresholds come from out-of-fold predictions, and bad mixes fail clearly."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import predict
from pipeline_fixtures import SIGNAL
from utils.errors import CheckpointError, ConfigError, ECGDataError
from utils.scoring.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
T1 = get_task(1)
KFOLD_TRAIN = ["--iters", "12", "--eval-interval", "4", "--save-interval", "4", "--num-workers", "0", *SIGNAL]


def _kfold(raw, out, *train_flags, **kw):
    return subprocess.Popen([sys.executable, "tools/train_kfold.py", "--num-folds", "2", "--output-dir", str(out), "--",
                             "--data-dir", str(raw), *KFOLD_TRAIN, *train_flags], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, **kw)


@pytest.fixture(scope="module")
def kfold(tiny_raw, tmp_path_factory):
    """2 folds of resnet1d; the command is killed (kill -9, whole process group) during fold 1, then re-run."""
    out = tmp_path_factory.mktemp("kfold")
    proc = _kfold(tiny_raw, out)
    deadline = time.time() + 240
    while not (out / "fold_1" / "iter_4").is_dir():
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "fold_0" / "finished.json").is_file() and not (out / "fold_1" / "finished.json").is_file()
    fold0_weights = (out / "fold_0" / "best_model" / "model.pdparams").stat().st_mtime_ns
    rerun = _kfold(tiny_raw, out)
    log = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, log
    return out, log, fold0_weights


def test_kfold_resumes_after_a_killed_fold(kfold, tiny_raw):
    out, log, fold0_weights = kfold
    assert "fold 0/2: finished" in log and "skipped" in log  # the finished fold is not trained again
    assert (out / "fold_0" / "best_model" / "model.pdparams").stat().st_mtime_ns == fold0_weights
    assert "resumed run" in (out / "fold_1" / "train.log").read_text()  # the killed fold continues its checkpoint
    assert all((out / f"fold_{k}" / "finished.json").is_file() for k in (0, 1))
    oof = pd.read_csv(out / "oof_predictions.csv", dtype={"name": str})
    labelled = pd.read_csv(tiny_raw / "trainreference.csv", dtype={"name": str})
    assert sorted(oof["name"]) == sorted(labelled["name"])  # every record validated exactly once across the folds
    assert set(oof["fold"]) == {0, 1}
    summary = json.loads((out / "kfold_summary.json").read_text())
    assert summary["out_of_fold"]["n"] == len(labelled)
    _, y, p = T1.read_prediction_table(out / "oof_predictions.csv")
    assert summary["out_of_fold"]["f1"] == pytest.approx(T1.evaluate(y, p).metrics["at_threshold"]["f1"])


def test_kfold_refuses_other_flags_in_the_same_directory(kfold, tiny_raw):
    out, _, _ = kfold
    proc = _kfold(tiny_raw, out, "--seed", "5")
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0 and "started with other flags" in log


def _probabilities(report):
    return pd.read_csv(report["probabilities"], dtype={"name": str})


def test_fusion_is_the_weighted_mean_with_out_of_fold_thresholds(kfold, tiny_raw, tmp_path):
    out, _, _ = kfold
    members = [str(out / f"fold_{k}" / "best_model") for k in (0, 1)]
    for weights, w in (([], (1, 1)), (["--weights", "1,3"], (1, 3))):
        rep = predict.main(["--data-dir", str(tiny_raw), "--model", *members, *weights,
                            "--out", str(tmp_path / "a.csv"), "--num-workers", "0", "--truth",
                            str(tiny_raw / "val_reference.csv"), "--report", str(tmp_path / "r.json")])
        probs = _probabilities(rep).pivot(index="name", columns="model", values="p_abnormal")
        want = (w[0] * probs[members[0]] + w[1] * probs[members[1]]) / sum(w)
        np.testing.assert_allclose(probs["fusion"], want, rtol=1e-5)
        # thresholds: tuned on the out-of-fold predictions (each record validated by one fold), not on the test set
        tables = [T1.read_prediction_table(Path(m) / "val_predictions.csv") for m in members]
        y = np.concatenate([t[1] for t in tables])
        p = np.concatenate([t[2] for t in tables])
        assert rep["thresholds"] == pytest.approx(T1.evaluate(y, p).thresholds)
        assert rep["fusion"]["out_of_fold"]["n"] == len(y) == 60
        assert [m["model"] for m in rep["members"]] == members and rep["metrics"]["n"] == 20
    answers = pd.read_csv(tmp_path / "a.csv", dtype={"name": str})
    assert list(answers["name"]) == sorted(p.stem for p in (tiny_raw / "val").glob("*.mat"))


def test_fusing_a_picture_model_with_k_folds_of_a_signal_model(kfold, tiny_raw, tiny_dataset, tiny_trained, tmp_path):
    """The README's rule: a record's out-of-fold probability is, per family, that of the family's fold that
    validated it, and the families are fused with their total weight; a record the picture model did not validate
    is fused over the signal family alone."""
    out, _, _ = kfold
    picture = str(tiny_trained[0] / "best_model")
    folds = [str(out / f"fold_{k}" / "best_model") for k in (0, 1)]
    rep = predict.main(["--data-dir", str(tiny_raw), "--dataset-dir", str(tiny_dataset), "--model", picture, *folds,
                        "--out", str(tmp_path / "a.csv"), "--num-workers", "0", "--report", str(tmp_path / "r.json")])
    probs = _probabilities(rep).pivot(index="name", columns="model", values="p_abnormal")
    np.testing.assert_allclose(probs["fusion"], (probs[picture] + probs[folds[0]] + probs[folds[1]]) / 3, rtol=1e-5)
    a = T1.read_prediction_table(Path(picture) / "val_predictions.csv")
    pa = dict(zip(a[0], a[2]))
    sig, truth = {}, {}
    for f in folds:
        names, y, p = T1.read_prediction_table(Path(f) / "val_predictions.csv")
        sig.update(zip(names, p))
        truth.update(zip(names, y))
    assert 0 < len(set(pa) & set(sig)) < len(sig) == 60  # the picture model validated a few, the folds all
    names = sorted(truth)
    fused = [(2 * sig[n] + pa[n]) / 3 if n in pa else sig[n] for n in names]  # the signal family weighs 2 members
    assert rep["thresholds"] == pytest.approx(T1.evaluate(np.array([truth[n] for n in names]), np.array(fused)).thresholds)
    assert rep["fusion"]["out_of_fold"]["n"] == 60


def test_fitted_weights_minimise_out_of_fold_loss(kfold, tiny_raw, tiny_dataset, tiny_trained, tmp_path):
    from utils.scoring.fusion import fit_weights, read_out_of_fold

    out, _, _ = kfold
    members = [str(tiny_trained[0] / "best_model"), *(str(out / f"fold_{k}" / "best_model") for k in (0, 1))]
    groups = ["resnet50", "resnet1d", "resnet1d"]
    oof = read_out_of_fold(members, T1)
    w, per_group, n = fit_weights(oof, groups, T1)
    assert sum(per_group.values()) == pytest.approx(1) and w[1] == w[2] == pytest.approx(per_group["resnet1d"] / 2)
    pic = dict(zip(oof[0][0], zip(oof[0][1], oof[0][2])))
    sig = {nm: p for o in oof[1:] for nm, p in zip(o[0], o[2])}
    assert n == len(pic)  # the records both families validated

    def loss(wp):
        y = np.array([pic[k][0] for k in pic])
        q = np.clip(np.array([wp * pic[k][1] + (1 - wp) * sig[k] for k in pic]), 1e-6, 1 - 1e-6)
        return -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))
    best = loss(per_group["resnet50"])
    assert all(best <= loss(x) + 1e-4 for x in np.linspace(0, 1, 21))  # no weight on a grid does better
    rep = predict.main(["--data-dir", str(tiny_raw), "--dataset-dir", str(tiny_dataset), "--model", *members,
                        "--weights", "auto", "--out", str(tmp_path / "a.csv"), "--num-workers", "0",
                        "--report", str(tmp_path / "r.json")])
    assert rep["fusion"]["weights"] == pytest.approx(list(w)) and rep["fusion"]["fitted"]["n_records"] == n
    probs = _probabilities(rep).pivot(index="name", columns="model", values="p_abnormal")
    np.testing.assert_allclose(probs["fusion"], sum(wi * probs[m] for wi, m in zip(w, members)), rtol=1e-5)


def test_bad_fusions_fail_clearly(kfold, tiny_raw, tiny_trained2, tmp_path):
    out, _, _ = kfold
    sig = str(out / "fold_0" / "best_model")
    args = ["--data-dir", str(tiny_raw), "--out", str(tmp_path / "a.csv"), "--num-workers", "0"]
    with pytest.raises(CheckpointError, match="different tasks.*Task 1.*Task 2"):
        predict.main([*args, "--model", sig, str(tiny_trained2[0] / "best_model")])
    with pytest.raises(ConfigError, match="--weights"):  # a bad flag is a ConfigError, like every other
        predict.main([*args, "--model", sig, sig, "--weights", "1"])
    no_oof = tmp_path / "no_oof"
    shutil.copytree(sig, no_oof)
    (no_oof / "val_predictions.csv").unlink()
    with pytest.raises(CheckpointError, match="no val_predictions.csv"):
        predict.main([*args, "--model", sig, str(no_oof)])
    empty = tmp_path / "raw_without_test_records"
    (empty / "val").mkdir(parents=True)
    with pytest.raises(ECGDataError, match="no test records"):
        predict.main([*args, "--data-dir", str(empty), "--model", sig])
    with pytest.raises(ECGDataError, match="no pictures.*run process.py first"):  # a picture model's pictures missing
        predict.main([*args, "--dataset-dir", str(tmp_path), "--model", str(tiny_trained2[0] / "best_model"), "--task", "2"])


def test_task2_weights_are_fitted_per_class(tiny_raw, tiny_dataset, tiny_trained2, tmp_path):
    """Task 2: --weights auto fits one weight per family and class, each class on its own out-of-fold loss, and
    predict.py fuses each class with its own weights."""
    import train
    from utils.scoring.fusion import fit_weights

    T2 = get_task(2)
    # unit check: family a knows class 1 and guesses class 2, family b the reverse -> each class trusts its expert
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (200, 2))
    noise = rng.uniform(0.2, 0.8, (200, 2))
    names = [f"r{i}" for i in range(200)]
    a = np.column_stack([np.where(y[:, 0], 0.9, 0.1), noise[:, 1]])
    b = np.column_stack([noise[:, 0], np.where(y[:, 1], 0.9, 0.1)])
    _, per_group, n = fit_weights([(names, y, a), (names, y, b)], ["a", "b"], T2)
    assert n == 200 and np.array(per_group["a"]) == pytest.approx([1, 0], abs=0.05)
    assert np.array(per_group["b"]) == pytest.approx([0, 1], abs=0.05)
    # real members: the Task 2 picture model and a Task 2 features model on the same 5-fold split
    feat = tmp_path / "features2"
    train.main(["--task", "2", "--arch", "features", "--data-dir", str(tiny_raw), "--output-dir", str(feat),
                "--num-folds", "5", "--importance-repeats", "0"])
    members = [str(tiny_trained2[0] / "best_model"), str(feat / "best_model")]
    rep = predict.main(["--task", "2", "--data-dir", str(tiny_raw), "--dataset-dir", str(tiny_dataset), "--model", *members,
                        "--weights", "auto", "--out", str(tmp_path / "a.csv"), "--num-workers", "0",
                        "--report", str(tmp_path / "r.json")])
    w = np.array(rep["fusion"]["weights"])
    assert w.shape == (2, 12) and w.sum(axis=0) == pytest.approx(np.ones(12))
    probs = _probabilities(rep).set_index(["model", "name"])
    cols = [c for c in probs.columns if c.startswith("p_")]
    got = probs.loc["fusion", cols].sort_index().to_numpy()
    want = sum(w[i] * probs.loc[m, cols].sort_index().to_numpy() for i, m in enumerate(members))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
