"""k-fold training (tools/train_kfold.py) with a killed fold, and fusion of models in predict.py: the fused
probability is the (weighted) mean, its thresholds come from out-of-fold predictions, and bad mixes fail clearly."""
import contextlib
import io
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
from pipeline_fixtures import SIGNAL, scripts_in_process
from tools import train_kfold
from utils.errors import CheckpointError, ConfigError, ECGDataError
from utils.scoring.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
T1 = get_task(1)
KFOLD_TRAIN = ["--iters", "8", "--eval-interval", "4", "--save-interval", "4", "--num-workers", "0", *SIGNAL]


def _kfold_argv(raw, out, *train_flags):
    return ["--num-folds", "2", "--output-dir", str(out), "--", "--data-dir", str(raw), *KFOLD_TRAIN, *train_flags]


# One interpreter runs the k-fold command with its folds in-process (pipeline_fixtures.scripts_in_process): what is
# tested is a kill -9 of the whole process group mid-fold and the resume, not train.py's own start-up.
_IN_PROCESS = ("import sys; sys.path[:0] = {paths!r}; from pipeline_fixtures import scripts_in_process; "
               "from tools import train_kfold\nwith scripts_in_process(): train_kfold.main({argv!r})")


def _kfold(raw, out, log, *train_flags):
    """The k-fold command in its own session (a process group to kill), its output into the file `log`."""
    code = _IN_PROCESS.format(paths=[str(ROOT / "tests"), str(ROOT)], argv=_kfold_argv(raw, out, *train_flags))
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)


@pytest.fixture(scope="module")
def kfold(tiny_raw, tmp_path_factory):
    """2 folds of resnet1d; the command is killed (kill -9, whole process group) during fold 1, then re-run (in this
    process)."""
    out = tmp_path_factory.mktemp("kfold")
    killed_log = out.parent / f"{out.name}_killed.log"
    proc = _kfold(tiny_raw, out, killed_log)
    deadline = time.time() + 240
    while not (out / "fold_1" / "iter_4").is_dir():
        assert proc.poll() is None and time.time() < deadline, killed_log.read_text()[-4000:]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "fold_0" / "finished.json").is_file() and not (out / "fold_1" / "finished.json").is_file()
    fold0_weights = (out / "fold_0" / "best_model" / "model.pdparams").stat().st_mtime_ns
    log = io.StringIO()
    try:
        with scripts_in_process(), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            train_kfold.main(_kfold_argv(tiny_raw, out))
    except BaseException as e:  # the re-run's own output, which the redirection would otherwise hide
        pytest.fail(f"the re-run failed ({e!r}):\n{log.getvalue()[-4000:]}")
    return out, log.getvalue(), fold0_weights


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
    with pytest.raises(SystemExit, match="started with other flags"):  # in this process: kfold runs the command itself
        train_kfold.main(_kfold_argv(tiny_raw, out, "--seed", "5"))


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


def _half_unit(p):
    """Half a unit of the last significant digit the probabilities CSV keeps (predict.PROB_DIGITS) of each value:
    the most the CSV moved it."""
    p = np.abs(np.asarray(p, float))
    return 0.5 * 10.0 ** (np.floor(np.log10(np.maximum(p, 1e-30))) - (predict.PROB_DIGITS - 1))


def _stacked(rep, probs, groups_members):
    """The fusion the report describes, recomputed: per output, intercept + sum of each family's coefficient times
    the logit of that family's mean probability. -> (low, high): the probabilities CSV keeps PROB_DIGITS significant
    digits, and a member's 0.99999x loses much of 1 - p, which the logit magnifies, so the recomputation is the
    interval the rounded values allow (each family's mean moved by half a unit of the last digit, the way its
    coefficient pushes z down or up)."""
    fit = rep["fusion"]["fitted"]
    logit = lambda p: np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))  # noqa: E731

    def z(side):
        total = np.asarray(fit["intercept"], float)
        for g, ms in groups_members.items():
            coef = np.asarray(fit["per_family"][g], float)
            mean = np.mean([probs[m] for m in ms], axis=0)
            err = np.mean([_half_unit(probs[m]) for m in ms], axis=0)
            total = total + coef * logit(mean + side * np.sign(coef) * err)
        return total
    return tuple(1 / (1 + np.exp(-z(side))) for side in (-1, 1))


def _assert_within(got, interval):
    """`got`, itself rounded to PROB_DIGITS significant digits in the CSV, lies in the recomputed interval."""
    lo, hi = (np.squeeze(b) for b in interval)
    got = np.asarray(got, float)
    tol = _half_unit(got) + 1e-12
    assert np.all((got >= lo - tol) & (got <= hi + tol)), np.max(np.maximum(lo - got, got - hi))


def test_stacking_fuses_families_as_its_report_says(kfold, tiny_raw, tiny_dataset, tiny_trained, tmp_path, monkeypatch):
    """--weights auto: a logistic regression on each family's out-of-fold logits (the k-fold folds one family),
    scored cross-fitted; the test records' fused probabilities are the stacker applied to the families'. The
    families share the picture model's 6 validation records, fewer than a stacking is fitted on
    (test_features_model checks that fallback): the limit is lowered to test the stacking itself."""
    monkeypatch.setattr("utils.scoring.thresholds.MIN_RECORDS", 5)
    out, _, _ = kfold
    picture = str(tiny_trained[0] / "best_model")
    folds = [str(out / f"fold_{k}" / "best_model") for k in (0, 1)]
    rep = predict.main(["--data-dir", str(tiny_raw), "--dataset-dir", str(tiny_dataset), "--model", picture, *folds,
                        "--weights", "auto", "--out", str(tmp_path / "a.csv"), "--num-workers", "0",
                        "--report", str(tmp_path / "r.json")])
    fusion = rep["fusion"]
    assert fusion["method"] == "stacking" and set(fusion["fitted"]["per_family"]) == {"resnet50", "resnet1d"}
    assert fusion["out_of_fold_crossfit"]["n"] == fusion["fitted"]["n_records"] > 0
    probs = _probabilities(rep).pivot(index="name", columns="model", values="p_abnormal")
    lo, hi = _stacked(rep, probs, {"resnet50": [picture], "resnet1d": folds})
    _assert_within(probs["fusion"], (lo[:, 0], hi[:, 0]) if lo.ndim > 1 else (lo, hi))
    # the thresholds are tuned on the cross-fitted probabilities, and those are not the in-sample ones
    assert rep["thresholds"] == pytest.approx(fusion["out_of_fold_crossfit"]["thresholds"])
    mean = predict.main(["--data-dir", str(tiny_raw), "--dataset-dir", str(tiny_dataset), "--model", picture, *folds,
                         "--out", str(tmp_path / "b.csv"), "--num-workers", "0", "--report", str(tmp_path / "m.json")])
    assert mean["fusion"]["method"] == "mean" and mean["fusion"]["out_of_fold_crossfit"] == mean["fusion"]["out_of_fold"]


def test_stacking_recovers_the_better_member_and_is_scored_cross_fitted(tmp_path):
    """A constructed case: family a knows class 1 and guesses class 2, family b the reverse; class 3 has three
    positives. The stacker trusts each class's expert, keeps near-equal weights where there is nothing to learn
    from, and its cross-fitted score is below its in-sample one."""
    import logging

    from utils.scoring.fusion import Fusion

    T2 = get_task(2)
    rng = np.random.default_rng(0)
    n = 300
    y = np.zeros((n, 12), np.float32)
    y[:, 1] = rng.integers(0, 2, n)
    y[:, 2] = rng.integers(0, 2, n)
    y[rng.choice(n, 3, replace=False), 3] = 1
    y[:, 11] = 1 - np.clip(y[:, 1] + y[:, 2] + y[:, 3], 0, 1)
    noise = rng.uniform(0.05, 0.95, (2, n, 12))
    sharp = lambda col: np.clip(np.where(col > 0, 0.8, 0.2) + rng.normal(0, 0.1, n), 0.01, 0.99)  # noqa: E731
    a, b = noise[0].copy(), noise[1].copy()
    a[:, 1], b[:, 2] = sharp(y[:, 1]), sharp(y[:, 2])
    names = [f"r{i:03d}" for i in range(n)]
    dirs = []
    for k, (fam, p) in enumerate([("a", a), ("b", b)]):
        for f in range(2):  # two folds per family, validating disjoint halves
            d = tmp_path / f"{fam}{f}"
            d.mkdir(parents=True, exist_ok=True)
            idx = np.arange(f, n, 2)
            T2.prediction_table([names[i] for i in idx], y[idx], p[idx]).to_csv(d / "val_predictions.csv", index=False)
            dirs.append(d)
    fusion = Fusion("auto", dirs, ["a", "a", "b", "b"], T2, logging.getLogger("test"))
    coef = fusion.stacker.coef  # (families, classes)
    assert coef[0, 1] > coef[1, 1] + 1 and coef[1, 2] > coef[0, 2] + 1  # each class trusts its expert
    assert abs(coef[0, 3] - coef[1, 3]) < 0.25 * (abs(coef[0, 1]) + abs(coef[1, 2])) / 2  # 3 positives: near equal
    assert fusion.report["out_of_fold_crossfit"]["macro_auc"] < fusion.report["out_of_fold"]["macro_auc"]
    assert fusion.report["fitted"]["crossfit_folds"] == "the members' folds"


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


def test_task2_stacking_through_predict(tiny_raw, tiny_dataset, tiny_trained2, tiny_features2, tmp_path, monkeypatch):
    """Task 2: one logistic regression per class over the families, applied to the test records as reported (on
    the 12 records both validate: the limit a stacking is fitted on is lowered to test it)."""
    monkeypatch.setattr("utils.scoring.thresholds.MIN_RECORDS", 5)
    feat = tiny_features2[0]
    members = [str(tiny_trained2[0] / "best_model"), str(feat / "best_model")]
    rep = predict.main(["--task", "2", "--data-dir", str(tiny_raw), "--dataset-dir", str(tiny_dataset), "--model", *members,
                        "--weights", "auto", "--out", str(tmp_path / "a.csv"), "--num-workers", "0",
                        "--report", str(tmp_path / "r.json")])
    assert rep["fusion"]["method"] == "stacking" and np.shape(rep["fusion"]["fitted"]["per_family"]["features"]) == (12,)
    probs = _probabilities(rep).set_index(["model", "name"]).sort_index()
    cols = [c for c in probs.columns if c.startswith("p_")]
    per = {m: probs.loc[m, cols].to_numpy() for m in [*members, "fusion"]}
    _assert_within(per["fusion"], _stacked(rep, per, {"resnet50": [members[0]], "features": [members[1]]}))


def test_oof_ensembles_bench_fuses_runs_out_of_fold_as_predict_does(kfold, tiny_features_kfold, tiny_raw, tmp_path, capsys):
    """bench/oof_ensembles.py: a signal k-fold run and a features k-fold run of the same split, each alone and
    fused: the fused out-of-fold probability is the mean of the runs' oof_predictions.csv (what predict.py's fusion
    tunes on), the stacked row is cross-fitted, and the training minutes are the folds' clocks (finished.json)."""
    from bench import oof_ensembles

    out, _, _ = kfold
    feat, _ = tiny_features_kfold  # the same split's features k-fold run
    res = oof_ensembles.main(["--data-dir", str(tiny_raw), "--run", f"sig={out}", "--run", f"feat={feat}",
                              "--ensemble", "sig+feat", "--stacking", "--json", str(tmp_path / "e.json")])
    assert list(res) == ["sig", "feat", "sig + feat", "sig + feat (stacked)"]
    a, b = (pd.read_csv(d / "oof_predictions.csv", dtype={"name": str}).set_index("name")["p_abnormal"]
            for d in (out, feat))
    runs = {n: oof_ensembles.read_run(d, T1) for n, d in (("sig", out), ("feat", feat))}
    got = oof_ensembles.fused(T1, runs, ["sig", "feat"])
    assert set(got) == set(a.index) and np.allclose([got[n] for n in a.index], (a + b[a.index]) / 2, atol=1e-6)
    stacked = oof_ensembles.fused(T1, runs, ["sig", "feat"], "stacking")
    assert set(stacked) == set(got) and not np.allclose([stacked[n] for n in a.index], [got[n] for n in a.index])
    secs = [json.loads((out / f"fold_{k}" / "finished.json").read_text())["train_seconds"] for k in (0, 1)]
    assert sum(secs) > 0 and res["sig"]["training_minutes"] == pytest.approx(sum(secs) / 60, abs=1e-3)
    assert res["sig + feat"]["training_minutes"] == pytest.approx(sum(runs[n]["minutes"] for n in runs))
    members = [str(d / f"fold_{k}" / "best_model") for d in (out, feat) for k in (0, 1)]
    truth = str(tiny_raw / "val_reference.csv")
    for weights, row in (("", "sig + feat"), ("auto", "sig + feat (stacked)")):  # predict.py's own out-of-fold figure
        rep = predict.main(["--data-dir", str(tiny_raw), "--dataset-dir", str(tiny_raw), "--model", *members,
                            "--weights", weights, "--out", str(tmp_path / f"a{weights}.csv"), "--num-workers", "0",
                            "--report", str(tmp_path / f"r{weights}.json"), "--truth", truth])
        assert res[row]["auc"]["value"] == pytest.approx(rep["fusion"]["out_of_fold_crossfit"]["auc"], abs=1e-9)
    # the two predict.py runs, scored once on the test records
    oof_ensembles.main(["--data-dir", str(tiny_raw), "--run", f"sig={out}", "--test-truth", truth,
                        "--test", f"mean={tmp_path / 'r.json'}", "--test", f"stacked={tmp_path / 'rauto.json'}",
                        "--json", str(tmp_path / "t.json")])
    test = json.loads((tmp_path / "t.json").read_text())["test"]
    assert test["figures"]["stacked"]["auc"]["value"] == pytest.approx(
        json.loads((tmp_path / "rauto.json").read_text())["metrics"]["auc"])
    assert test["differences"]["stacked"]["mean"]["auc"]["diff"] == pytest.approx(
        test["figures"]["stacked"]["auc"]["value"] - test["figures"]["mean"]["auc"]["value"])
    diff = res["sig + feat"]["differences"]
    assert set(diff) == {"sig", res["sig + feat"]["best_member"]}  # the baseline and the better member
    assert diff["sig"]["auc"]["b"] == pytest.approx(res["sig"]["auc"]["value"])
    saved = json.loads((tmp_path / "e.json").read_text())
    assert saved["n_records"] == len(a) and saved["baseline"] == "sig"
    assert "sig + feat (stacked)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        oof_ensembles.main(["--data-dir", str(tiny_raw), "--run", f"sig={out}", "--ensemble", "sig+nope"])
    assert "nope: not a --run name" in capsys.readouterr().err
