"""The features + gradient-boosting member through train.py and predict.py, on the real sample: the same
model.json, val_predictions.csv and answers as the networks, an importance figure, cached measurements, and
fusion with a signal model."""
import json

import numpy as np
import pandas as pd
import pytest

import predict
import train
from models.families import get_family
from utils.artifacts import FEATURE_CACHE, read_json
from utils.scoring.tasks import get_task

T1, T2 = get_task(1), get_task(2)


def _assert_reported_probabilities_are_the_models(report, model_dir, tiny_raw):
    """The Task 1 probabilities a predict.py report gives the sample's test records are the GBM's own, measured
    and predicted here directly."""
    from models.gbm import GBMModel
    from utils.ecg.cache import features_for_records

    names = sorted(p.stem for p in (tiny_raw / "val").glob("*.mat"))
    X, _ = features_for_records([tiny_raw / "val" / f"{n}.mat" for n in names])
    got = pd.read_csv(report["probabilities"], dtype={"name": str}).set_index("name").loc[names, "p_abnormal"]
    np.testing.assert_allclose(got, GBMModel.load(model_dir).predict_proba(X)[:, 0], rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def features_model(tiny_raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("features")
    state = train.main(["--arch", "features", "--data-dir", str(tiny_raw), "--output-dir", str(out), "--num-folds", "5"])
    return out, state


def test_features_model_trains_like_the_networks(features_model, tiny_raw):
    out, state = features_model
    best = out / "best_model"
    info = read_json(best / "model.json")
    assert info["arch"] == "features" and info["input"]["kind"] == "features" and (best / "gbm.json").is_file()
    assert (out / "finished.json").is_file() and (best / "importance.png").stat().st_size > 1000
    imp = pd.read_csv(best / "importance.csv")
    assert list(imp.columns) == ["class", "feature", "importance", "std", "measure"] and len(imp) > 0
    # 12 validation records are too few to measure a drop in AUC: the trees' split gain, a share of the total
    assert set(imp["measure"]) == {"gain_share"} and imp["importance"].gt(0).all() and imp["importance"].sum() <= 1 + 1e-9
    # val_predictions.csv: the validation fold of train.py's split, scored as model.json says
    table = pd.read_csv(best / "val_predictions.csv", dtype={"name": str, "truth": str})
    _, _, val = train.load_split(info["config"], T1, get_family("features"))
    assert list(table["name"]) == list(val["name"])
    metrics = T1.evaluate(val["y"].to_numpy(), table["p_abnormal"].to_numpy()).metrics
    assert info["best_metric"] == pytest.approx(metrics["at_threshold"]["f1"])
    # measurements are cached beside the data
    assert len(list((tiny_raw / FEATURE_CACHE).rglob("*.npy"))) >= 60


def test_features_model_predicts_and_fuses_with_a_signal_model(features_model, tiny_signal, tiny_raw, tmp_path,
                                                              monkeypatch, capsys):
    out, _ = features_model
    feat, sig = str(out / "best_model"), str(tiny_signal[0] / "best_model")
    rep = predict.main(["--data-dir", str(tiny_raw), "--model", feat, "--out", str(tmp_path / "a.csv"),
                        "--truth", str(tiny_raw / "val_reference.csv"), "--num-workers", "0"])
    assert rep["n_predicted"] == 20 and rep["metrics"]["n"] == 20
    _assert_reported_probabilities_are_the_models(rep, out / "best_model", tiny_raw)
    auto = ["--data-dir", str(tiny_raw), "--model", feat, sig, "--weights", "auto", "--num-workers", "0"]
    # the two members share 6 validation records: too few to fit a stacking on, so the plain mean, and it says so
    capsys.readouterr()
    small = predict.main([*auto, "--out", str(tmp_path / "s.csv"), "--report", str(tmp_path / "s.json")])
    assert small["fusion"]["method"] == "mean" and small["thresholds"] == 0.5
    assert "[WARNING] --weights auto: 6 out-of-fold records (< 30) are too few to fit a stacking on: the plain mean" \
        in capsys.readouterr().out
    monkeypatch.setattr("utils.scoring.thresholds.MIN_RECORDS", 5)  # the stacking itself, on the sample's small folds
    fused = predict.main([*auto, "--out", str(tmp_path / "b.csv"), "--report", str(tmp_path / "r.json")])
    fit = fused["fusion"]["fitted"]  # stacked: a coefficient per family on its logit, fitted out of fold
    assert len(fused["models"]) == 2 and fused["fusion"]["method"] == "stacking"
    assert set(fit["per_family"]) == {"features", "resnet1d"} and fit["n_records"] > 0
    with pytest.raises(Exception, match="no network"):
        predict.main(["--data-dir", str(tiny_raw), "--model", feat, "--out", str(tmp_path / "c.csv"),
                      "--export", str(tmp_path / "exp"), "--num-workers", "0"])


def test_features_model_task2(tiny_features2, tiny_raw, tmp_path):
    out, _ = tiny_features2  # trained with --importance-repeats 0: the figure is tested on Task 1
    assert not (out / "best_model" / "importance.csv").exists()
    info = read_json(out / "best_model" / "model.json")
    assert len(info["thresholds"]) == 12 and info["selected_by"] == "macro_f1"
    rep = predict.main(["--task", "2", "--data-dir", str(tiny_raw), "--model", str(out / "best_model"),
                        "--out", str(tmp_path / "a2.csv"), "--num-workers", "0"])
    rows = (tmp_path / "a2.csv").read_text().splitlines()
    assert len(rows) == 20 and all(1 <= int(c) <= 12 for r in rows for c in r.split(",")[1:])
    assert json.loads((tmp_path / "a2_task1.csv").read_text().splitlines()[0].replace("name,tag", '"ok"')) == "ok"
    assert rep["task1_zip"]


def test_saved_model_reloads_to_the_probabilities_it_was_chosen_on(features_model, tiny_raw):
    """The saved model, loaded back, gives exactly the validation probabilities train.py wrote from the fitted one."""
    from models.gbm import GBMModel
    from utils.ecg.cache import features_for_records

    out, _ = features_model
    names, _, p = T1.read_prediction_table(out / "best_model" / "val_predictions.csv")
    X, _ = features_for_records([tiny_raw / "train" / f"{n}.mat" for n in names], progress=False)
    np.testing.assert_allclose(GBMModel.load(out / "best_model").predict_proba(X)[:, 0], p, rtol=1e-5, atol=1e-6)


def test_fused_thresholds_come_from_out_of_fold_predictions(features_model, tiny_signal, tiny_raw, tmp_path):
    """Features (5 folds) + resnet1d (10 folds), each validated on its fold 0: the fused threshold is tuned on
    their validation predictions (a record both validated: the mean; one validated: that one's), not on the test
    records."""
    out, _ = features_model
    members = [str(out / "best_model"), str(tiny_signal[0] / "best_model")]
    rep = predict.main(["--data-dir", str(tiny_raw), "--model", *members, "--out", str(tmp_path / "a.csv"),
                        "--num-workers", "0", "--report", str(tmp_path / "r.json")])
    tables = [T1.read_prediction_table(f"{m}/val_predictions.csv") for m in members]
    by_name = [dict(zip(t[0], t[2])) for t in tables]
    truth = {**dict(zip(tables[0][0], tables[0][1])), **dict(zip(tables[1][0], tables[1][1]))}
    names = sorted(truth)
    assert set(by_name[0]) & set(by_name[1]) and len(names) == rep["fusion"]["out_of_fold"]["n"]
    fused = np.array([np.mean([b[n] for b in by_name if n in b]) for n in names])
    assert rep["thresholds"] == pytest.approx(T1.evaluate(np.array([truth[n] for n in names]), fused).thresholds)


def test_a_record_without_r_peaks_is_still_measured_and_answered(features_model, tiny_raw, tmp_path):
    """A flat test record (no beats): its measurements are mostly missing, the trees still answer it (no fallback)."""
    import shutil

    import scipy.io

    from utils.ecg.cache import features_for_records
    from utils.ecg.measurements import FEATURE_NAMES

    out, _ = features_model
    raw = tmp_path / "raw"
    shutil.copytree(tiny_raw, raw, ignore=shutil.ignore_patterns(FEATURE_CACHE))
    scipy.io.savemat(raw / "val" / "zz_flat.mat", {"ecgdata": np.zeros((12, 5000), np.float32)})
    X, bad = features_for_records([raw / "val" / "zz_flat.mat"], progress=False)
    assert bad == {} and np.isnan(X[0, FEATURE_NAMES.index("hr")]) and np.isnan(X).mean() > 0.5
    rep = predict.main(["--data-dir", str(raw), "--model", str(out / "best_model"), "--out", str(tmp_path / "a.csv"),
                        "--num-workers", "0", "--report", str(tmp_path / "r.json")])
    answers = pd.read_csv(tmp_path / "a.csv", dtype={"name": str})
    assert len(answers) == 21 and "zz_flat" in set(answers["name"]) and rep["fallback"] == []
    probs = pd.read_csv(rep["probabilities"], dtype={"name": str}).set_index("name")
    assert 0 <= probs.loc["zz_flat", "p_abnormal"] <= 1


def test_measurements_without_a_writable_cache_still_work(tmp_path, tiny_raw, caplog):
    """A cache folder that cannot be made (here: under a file) warns once and measures anyway."""
    from utils.ecg.cache import features_for_records

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    paths = sorted((tiny_raw / "val").glob("*.mat"))[:2]
    with caplog.at_level("WARNING", logger="ecg"):
        X, bad = features_for_records(paths, cache_dir=blocker / "cache", progress=False)
    want, _ = features_for_records(paths, progress=False)
    assert bad == {} and np.array_equal(X, want, equal_nan=True)
    warned = [r.getMessage() for r in caplog.records if "cannot cache measurements" in r.getMessage()]
    assert len(warned) == 1 and "measuring without a cache" in warned[0]


def test_resume_refits_its_own_unfinished_model_and_refuses_other_settings(features_model, tmp_path):
    """A k-fold fold killed after best_model but before finished.json: `--resume auto` (what train_kfold.py passes)
    fits it again over its own best_model; with other settings it refuses, naming them."""
    import shutil

    from utils.errors import ConfigError

    out, _ = features_model
    work = tmp_path / "fold"
    shutil.copytree(out, work)
    (work / "finished.json").unlink()
    before = read_json(work / "best_model" / "model.json")
    cfg = before["config"]
    args = ["--arch", "features", "--data-dir", cfg["DATA_DIR"], "--output-dir", str(work), "--num-folds", "5"]
    with pytest.raises(ConfigError, match="another run's best_model"):
        train.main(args)  # a new run without --resume still refuses another run's outputs
    with pytest.raises(ConfigError, match="SEED: 2021 -> 5"):
        train.main([*args, "--resume", "auto", "--seed", "5"])
    train.main([*args, "--resume", "auto", "--importance-repeats", "0"])  # not part of the settings compared
    after = read_json(work / "best_model" / "model.json")
    assert after["run_id"] != before["run_id"] and (work / "finished.json").is_file()
    assert after["best_metric"] == pytest.approx(before["best_metric"])  # the same fit again


def test_gain_augment_is_recorded_and_changes_the_fit(features_model, tiny_raw, tmp_path):
    """--gain-augment 0.2: the card records it, the log says so, and the trees are another fit (its validation
    probabilities differ from the plain model's on the same split); a value outside [0, 1) is refused before
    any record is measured."""
    from utils.errors import ConfigError

    plain, _ = features_model
    out = tmp_path / "gain"
    args = ["--arch", "features", "--data-dir", str(tiny_raw), "--num-folds", "5", "--importance-repeats", "0"]
    train.main([*args, "--output-dir", str(out), "--gain-augment", "0.2"])
    info = read_json(out / "best_model" / "model.json")
    assert info["input"]["gain_augment"] == 0.2 and read_json(plain / "best_model" / "model.json")["input"]["gain_augment"] == 0.0
    assert "also as recorded at x0.8 and x1.2" in (out / "train.log").read_text()
    a, b = (pd.read_csv(d / "best_model" / "val_predictions.csv", dtype={"name": str}) for d in (plain, out))
    assert list(a["name"]) == list(b["name"]) and not np.allclose(a["p_abnormal"], b["p_abnormal"])
    with pytest.raises(ConfigError, match=r"--gain-augment must be in \[0, 1\)"):
        train.main([*args, "--output-dir", str(tmp_path / "bad"), "--gain-augment", "1.5"])
    assert not (tmp_path / "bad" / "train.log").exists() or "measurements" not in (tmp_path / "bad" / "train.log").read_text()


def test_amplitudes_both_is_recorded_read_by_predict_and_refused_when_unknown(features_model, tiny_raw, tmp_path):
    """--amplitudes both: the card and gbm.json record it, the log says so, the trees read the ratios too (their
    validation probabilities differ from the plain model's on the same split), predict.py answers with exactly
    the model's own probabilities, and an unknown view is refused by the command line."""
    from utils.errors import CheckpointError

    plain, _ = features_model
    out = tmp_path / "both"
    args = ["--arch", "features", "--data-dir", str(tiny_raw), "--num-folds", "5", "--importance-repeats", "0"]
    train.main([*args, "--output-dir", str(out), "--amplitudes", "both"])
    assert read_json(out / "best_model" / "model.json")["input"]["amplitudes"] == "both"
    assert read_json(out / "best_model" / "gbm.json")["amplitudes"] == "both"
    assert "amplitudes both: every amplitude measurement also as a ratio" in (out / "train.log").read_text()
    a, b = (pd.read_csv(d / "best_model" / "val_predictions.csv", dtype={"name": str}) for d in (plain, out))
    assert list(a["name"]) == list(b["name"]) and not np.allclose(a["p_abnormal"], b["p_abnormal"])
    rep = predict.main(["--data-dir", str(tiny_raw), "--model", str(out / "best_model"), "--out", str(tmp_path / "a.csv"),
                        "--num-workers", "0"])
    _assert_reported_probabilities_are_the_models(rep, out / "best_model", tiny_raw)
    with pytest.raises(SystemExit):
        train.main([*args, "--output-dir", str(tmp_path / "bad"), "--amplitudes", "ratio"])
    card = read_json(out / "best_model" / "model.json")  # a gbm.json beside another run's card: refused, named
    (out / "best_model" / "model.json").write_text(json.dumps({**card, "input": {**card["input"], "amplitudes": "absolute"}}))
    with pytest.raises(CheckpointError, match="gbm.json reads amplitudes both, model.json says absolute"):
        predict.main(["--data-dir", str(tiny_raw), "--model", str(out / "best_model"), "--out", str(tmp_path / "c.csv"),
                      "--num-workers", "0"])


def test_a_damaged_model_file_is_a_clear_error(features_model, tiny_raw, tmp_path):
    """The model is LightGBM's text format (no pickle: loading runs no code). A file cut short (LightGBM's own
    parser would crash the process on it), a changed index or one for another task: one-line errors naming the file."""
    import shutil

    from models.gbm import GBMModel
    from utils.errors import CheckpointError

    out, _ = features_model
    assert not list((out / "best_model").glob("*.pkl"))
    bad = tmp_path / "bad_model"
    shutil.copytree(out / "best_model", bad)
    text = (bad / "gbm_0.txt").read_text()
    (bad / "gbm_0.txt").write_text(text[: len(text) // 2])  # a partial copy
    with pytest.raises(CheckpointError, match=r"gbm_0.txt: damaged or changed"):
        predict.main(["--data-dir", str(tiny_raw), "--model", str(bad), "--out", str(tmp_path / "a.csv"), "--num-workers", "0"])
    index = json.loads((bad / "gbm.json").read_text())
    for broken in ({"outputs": [1]}, {"outputs": "ab"}, {"outputs": [{"constant": "x"}]}, {"outputs": [{"file": "../x.txt", "sha256": "0"}]}):
        (bad / "gbm.json").write_text(json.dumps(broken))
        with pytest.raises(CheckpointError, match=r"gbm.json: not a features model index"):
            GBMModel.load(bad)
    (bad / "gbm.json").write_text(json.dumps({**index, "outputs": index["outputs"] + [{"constant": 0.5}]}))
    with pytest.raises(CheckpointError, match=r"gbm.json: 2 outputs, its model.json's task needs 1"):
        GBMModel.load(bad, n_outputs=1)
    (bad / "gbm.json").unlink()
    with pytest.raises(CheckpointError, match=r"gbm.json: not found"):
        GBMModel.load(bad)
    assert len(GBMModel.load(out / "best_model", n_outputs=1).models) == 1  # the real one loads


def test_gbm_early_stops_on_training_records_and_reloads_exactly(tmp_path):
    """Unit check of models/gbm.py on synthetic measurements: a class with enough positives early-stops on a
    hold-out of the training records, a rare one fits every tree, a one-valued one is a constant; all reload exactly."""
    from models.gbm import MIN_FOR_EARLY_STOP, GBMModel

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    X[rng.random(X.shape) < 0.05] = np.nan  # missing measurements
    common = (X[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(int)
    rare = np.zeros(300, int)
    rare[np.argsort(-X[:, 1])[:MIN_FOR_EARLY_STOP - 5]] = 1
    Y = np.column_stack([common, rare, np.zeros(300, int)])
    m = GBMModel(3, seed=1).fit(X, Y)
    assert m.models[0].best_iteration_ < 400 and m.models[1].n_estimators_ == 400 and m.models[2] == 0.0
    m.save(tmp_path)
    back = GBMModel.load(tmp_path, n_outputs=3)
    np.testing.assert_allclose(back.predict_proba(X), m.predict_proba(X), rtol=1e-6, atol=1e-9)
    assert back.predict_proba(X)[:, 0][common == 1].mean() > back.predict_proba(X)[:, 0][common == 0].mean() + 0.3


def test_lightgbm_is_loaded_before_paddle():
    """On Paddle 2.6, `import paddle` then `import lightgbm` crashes the process (a zlib symbol clash):
    configure_cpu_threads, which every script calls before importing Paddle, loads LightGBM first. In a fresh
    interpreter (this one has both loaded already); on Paddle 3 the bare sequence happens not to crash."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("from utils.runtime import configure_cpu_threads\nconfigure_cpu_threads()\nimport paddle\nimport lightgbm\n"
            "import train, predict\nfrom models.gbm import GBMModel\nprint('ok')")
    r = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]


def test_a_fit_without_validation_records_gives_the_same_model(tiny_raw):
    """bench/features_robustness.py fits with no validation records (it scores the model itself): the fit is the
    one train.py makes with a validation fold, and its validation probabilities are empty, per task."""
    from models.families import FeaturesOptions, Sources
    from utils.runtime import get_logger

    family, log = get_family("features"), get_logger()
    for task in (T1, T2):
        labelled = family.labels(task, Sources(tiny_raw, tiny_raw, 2), log)
        train_df, val_df = labelled.refs.iloc[:50], labelled.refs.iloc[50:]
        model, p, _ = family.fit(task, labelled, train_df, train_df.iloc[:0], 2021, FeaturesOptions(), log)
        with_val, p_val, _ = family.fit(task, labelled, train_df, val_df, 2021, FeaturesOptions(), log)
        assert p.shape == ((0,) if task.num_probs == 1 else (0, task.num_probs))
        X = np.stack([labelled.inputs[n] for n in val_df["name"]])
        full = with_val.predict_proba(X)
        np.testing.assert_array_equal(model.predict_proba(X), full)
        np.testing.assert_allclose(full[:, 0] if task.num_probs == 1 else full, p_val, rtol=1e-6)


def test_tree_settings_reach_lightgbm_and_every_bench_row_is_one(tiny_raw, tmp_path):
    """bench/features_robustness.py --trees fits the member with other LightGBM settings through FeaturesFamily.fit:
    on the real sample each row's settings are the saved trees' own (LightGBM's text model lists them), column
    subsampling changes the fit, the bench's default row is models/gbm.TREES, model.json records the trees, and an
    unknown setting or row subsampling LightGBM would skip is a clear error."""
    from sklearn.metrics import roc_auc_score

    from bench.features_robustness import TREE_ROWS
    from models.families import FeaturesOptions, Sources
    from models.gbm import TREES, GBMModel
    from utils.runtime import get_logger

    family, log = get_family("features"), get_logger()
    labelled = family.labels(T1, Sources(tiny_raw, tiny_raw, 2), log)
    train_df = labelled.refs.iloc[:45]
    X = np.stack([labelled.inputs[n] for n in labelled.refs["name"].iloc[45:]])
    p = {}
    for name, trees in TREE_ROWS.items():
        model, _, card_input = family.fit(T1, labelled, train_df, train_df.iloc[:0], 2021, FeaturesOptions(trees=trees), log)
        model.save(tmp_path / name)
        text = (tmp_path / name / "gbm_0.txt").read_text()
        want = {**TREES, **trees}
        assert f"[feature_fraction: {want['colsample_bytree']:g}]" in text, name
        assert f"[bagging_fraction: {want['subsample']:g}]" in text and f"[num_leaves: {want['num_leaves']}]" in text
        leaf = min(want["min_child_samples"], len(train_df) // 4)  # 45 records: a quarter, so the trees can split
        assert f"[bagging_freq: {want['subsample_freq']}]" in text and f"[min_data_in_leaf: {leaf}]" in text
        assert f"[lambda_l2: {want['reg_lambda']:g}]" in text and card_input["trees"] == want
        p[name] = model.predict_proba(X)[:, 0]
    assert TREE_ROWS["leaves7-cols0.5"] == TREES and not np.allclose(p["leaves15"], p["leaves15-cols0.5"])
    with pytest.raises(ValueError, match="unknown LightGBM setting.*max_depht"):
        GBMModel(1, trees={"max_depht": 3})
    with pytest.raises(ValueError, match="subsample 0.8 needs subsample_freq"):
        GBMModel(1, trees={"subsample": 0.8})
    few = labelled.refs.iloc[:30]  # under 2 x min_child_samples: without the cap on leaf size, a constant model
    small, _, _ = family.fit(T1, labelled, few, few.iloc[:0], 2021, FeaturesOptions(), log)
    rest = labelled.refs.iloc[30:]
    p_rest = small.predict_proba(np.stack([labelled.inputs[n] for n in rest["name"]]))[:, 0]
    assert np.ptp(p_rest) > 0 and roc_auc_score(T1.label_array(rest["y"]), p_rest) > 0.5


def test_kfold_warns_when_finished_folds_were_trained_with_other_settings(tiny_features_kfold, tiny_raw, tmp_path, capsys):
    """tools/train_kfold.py skips a finished fold, so after a code change (the trees of 2026-12-03) one folder can
    hold folds of two versions: the summary names what differs. A signal model's fitted scale differs by design."""
    import shutil
    from types import SimpleNamespace

    from pipeline_fixtures import features_kfold_argv
    from tools import train_kfold
    from tools.train_kfold import mixed_settings

    first, first_err = tiny_features_kfold  # a finished run of both folds: no warning
    assert "models differ" not in first_err and all((first / f"fold_{k}" / "finished.json").is_file() for k in (0, 1))
    out = tmp_path / "kfold"
    shutil.copytree(first, out)
    card = out / "fold_1" / "best_model" / "model.json"
    saved = json.loads(card.read_text())
    saved["input"]["trees"] = {**saved["input"]["trees"], "num_leaves": 15}  # as the folds before the change were
    card.write_text(json.dumps(saved))
    capsys.readouterr()
    train_kfold.main(features_kfold_argv(tiny_raw, out))  # the same command again
    again = capsys.readouterr()
    assert "fold 1/2: finished" in again.out, again.out + again.err
    assert "the folds' models differ in trees" in again.err
    signal = {k: SimpleNamespace(input={"kind": "signal", "fs": 100, "scale": s}) for k, s in ((0, 4.9), (1, 4.6))}
    assert mixed_settings(signal) == []
