"""Task 2 (12 diagnoses, several per record) through train.py and predict.py on the embedded real sample:
multi-label folds, learning, thresholds, the answer rules, the derived Task 1 answer, metrics, and clear
errors when a model of the other task is given."""
import csv
import json
import shutil

import numpy as np
import pandas as pd
import pytest

import predict
import process
import train
from pipeline_fixtures import SAMPLE, TINY, TINY_RENDER
from utils.ecg.io import CLASS_NAMES, list_records, read_reference_task2
from utils.errors import CheckpointError
from utils.scoring.metrics import multilabel_report
from utils.scoring.tasks import get_task
from utils.training.sampling import multilabel_folds

T2 = get_task(2)


def rows(path):
    with open(path, newline="") as f:
        return [(r[0], [int(c) for c in r[1:]]) for r in csv.reader(f)]


def run_predict(raw, ds, model, out, *extra):
    return predict.main(["--task", "2", "--data-dir", str(raw), "--dataset-dir", str(ds), "--model", str(model),
                         "--out", str(out), "--num-workers", "0", *extra])


def test_multilabel_folds_keep_every_class_in_every_fold(tiny_raw):
    labels = read_reference_task2(tiny_raw / "trainreference_task2.csv")
    y = np.stack([T2.encode(c) for c in labels.values()])
    folds = multilabel_folds(y, 5, seed=2021)
    assert np.array_equal(folds, multilabel_folds(y, 5, seed=2021)) and set(folds) == set(range(5))
    common = np.flatnonzero(y.sum(0) >= 5)
    assert len(common) >= 6  # normal, AF, T-wave, ST, other, ... in this sample
    for k in range(5):
        assert (y[folds == k][:, common].sum(0) > 0).all(), f"fold {k} lacks a class"


def test_task2_training_learns_and_records_thresholds(tiny_trained2):
    out, state = tiny_trained2
    losses = [r["loss"] for r in state["history"]["train"]]
    assert len(losses) == 4 and losses[-1] < 0.9 * losses[0], losses  # means over 5 iterations
    info = json.loads((out / "best_model" / "model.json").read_text())
    assert info["task"] == 2 and info["num_classes"] == 12 and info["selected_by"] == "macro_f1"
    assert len(info["thresholds"]) == 12 and all(0 <= t <= 1 for t in info["thresholds"])
    per_class = info["metrics"]["per_class"]
    assert [r["name"] for r in per_class] == list(CLASS_NAMES)
    assert [r["threshold"] for r in per_class] == info["thresholds"]
    assert isinstance(info["fallback_answer"], list) and info["fallback_answer"]
    log = (out / "train.log").read_text()
    assert "macro F1:" in log and "micro F1:" in log and "macro AUC:" in log and "first-degree AV block" in log
    assert (out / "per_class.png").stat().st_size > 10_000 and (out / "training_curves.png").is_file()


def test_answer_rules():
    thresholds = [0.5] * 12
    p = np.full((4, 12), 0.1)
    p[0, 4] = 0.3  # nothing passes: the most probable class (AF)
    p[1, [0, 9]] = 0.9  # normal and T-wave change: the abnormal finding wins
    p[2, 0] = 0.8  # normal alone stays normal
    p[3, [5, 6]] = 0.7  # two abnormal classes: both
    assert T2.decide(p, thresholds) == [[5], [10], [1], [6, 7]]
    assert T2.task1_answers([[5], [10], [1], [6, 7]]) == [1, 1, 0, 1]


def test_fallback_follows_the_margins_not_the_raw_probabilities():
    """No class reaches its threshold: the answer is the class nearest its threshold, not the most probable one
    (a frequent class with a high threshold would otherwise win every such record)."""
    t = np.full(12, 0.5)
    t[11], t[5] = 0.7, 0.3  # "other" is frequent (high threshold), PVC rare (low threshold)
    p = np.full((2, 12), 0.05)
    p[0, 11], p[0, 5] = 0.5, 0.25  # other: 0.2 below its threshold, PVC: 0.05 below -> PVC
    p[1, 11], p[1, 5] = 0.65, 0.1  # other: 0.05 below, PVC: 0.2 below -> other
    assert T2.decide(p, t) == [[6], [12]]


def test_normal_threshold_is_tuned_with_the_exclusivity_rule():
    """Normal is answered only when no abnormal class is: its threshold is the one whose decided answers score
    best, not the one that scores best on its probability alone. Checked against a brute-force search."""
    rng = np.random.default_rng(1)
    n = 200
    y = np.zeros((n, 12), np.float32)
    y[:, 0] = rng.random(n) < 0.4
    y[y[:, 0] == 0, 9] = 1  # the abnormal records have a T-wave change
    p = np.clip(rng.normal(0.3, 0.15, (n, 12)), 0.01, 0.99)
    p[:, 0] = np.clip(0.35 + 0.3 * y[:, 0] + rng.normal(0, 0.15, n), 0.01, 0.99)
    p[:, 9] = np.clip(0.35 + 0.3 * y[:, 9] + rng.normal(0, 0.2, n), 0.01, 0.99)
    t = np.asarray(T2.thresholds(y, p))

    def f1_normal(tn):
        pred = T2.indicator(T2.decide(p, np.r_[tn, t[1:]]))[:, 0]
        return 2 * (pred * y[:, 0]).sum() / (pred.sum() + y[:, 0].sum())
    grid = np.linspace(0.005, 1, 400)
    assert f1_normal(t[0]) >= max(f1_normal(g) for g in grid) - 1e-9
    from utils.scoring.thresholds import best_threshold

    alone = best_threshold(y[:, 0], p[:, 0])  # the rule ignored: normal's F1-best threshold on its probability
    assert f1_normal(t[0]) > f1_normal(alone)


def test_metrics_against_hand_computed_values():
    y = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1], [1, 0, 0]])
    p = np.array([[.9, .1, .2], [.2, .8, .3], [.1, .4, .7], [.6, .5, .1]])
    m = multilabel_report(y, p, (p >= 0.5).astype(int), ["a", "b", "c"], [0.5] * 3)
    # class b: truth 0110, answers 0101 -> tp 1, fp 1, fn 1 -> F1 0.5; AUC: 3 of 4 positive/negative pairs ranked right
    assert [r["f1"] for r in m["per_class"]] == [1.0, 0.5, 1.0]
    assert [r["auc"] for r in m["per_class"]] == [1.0, 0.75, 1.0]
    assert m["macro_f1"] == pytest.approx(2.5 / 3) and m["macro_auc"] == pytest.approx(2.75 / 3)
    assert m["micro_f1"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 1))  # tp 4, fp 1, fn 1
    absent = multilabel_report(y[:, :2], p[:, :2], np.zeros((4, 2)), ["a", "b"])
    assert absent["per_class"][0]["f1"] == 0.0
    one_class = multilabel_report(np.zeros((3, 1)), np.ones((3, 1)), np.ones((3, 1)), ["x"])
    assert one_class["per_class"][0]["f1"] is None and one_class["macro_auc"] is None
    json.dumps(one_class, allow_nan=False)


def test_task2_answer_one_row_per_record_sorted_with_fallback_and_task1(tiny_damaged, tiny_trained2, tmp_path):
    raw, ds = tiny_damaged
    out, _ = tiny_trained2
    report = run_predict(raw, ds, out / "best_model", tmp_path / "answer.csv", "--report", str(tmp_path / "r.json"))
    got = rows(tmp_path / "answer.csv")
    assert [n for n, _ in got] == sorted(list_records(raw / "val")) and len(got) == 21
    for _, classes in got:
        assert classes and set(classes) <= set(range(1, 13)) and not (1 in classes and len(classes) > 1)
    fallback = json.loads((out / "best_model" / "model.json").read_text())["fallback_answer"]
    assert dict(got)["zz_truncated"] == fallback
    assert [f["name"] for f in report["fallback"]] == ["zz_truncated"] and "truncated or corrupt" in report["fallback"][0]["reason"]
    assert not (tmp_path / "answer.csv").read_text().startswith("name")  # header-less rows
    task1 = pd.read_csv(tmp_path / "answer_task1.csv")
    assert list(task1["name"]) == [n for n, _ in got]
    assert list(task1["tag"]) == [0 if c == [1] else 1 for _, c in got]
    assert (tmp_path / "answer.zip").is_file() and (tmp_path / "answer_task1.zip").is_file()


def test_thresholds_from_model_json_are_used(tiny_raw, tiny_dataset, tiny_trained2, tmp_path):
    out, _ = tiny_trained2
    model = tmp_path / "best_model"
    shutil.copytree(out / "best_model", model)
    info = json.loads((model / "model.json").read_text())
    (model / "model.json").write_text(json.dumps({**info, "thresholds": [0.0] * 12}))  # every class passes
    run_predict(tiny_raw, tiny_dataset, model, tmp_path / "a.csv")
    assert {tuple(c) for _, c in rows(tmp_path / "a.csv")} == {tuple(range(2, 13))}  # ... and normal is dropped
    (model / "model.json").write_text(json.dumps({**info, "thresholds": [1.01] * 12}))  # none passes: one class each
    run_predict(tiny_raw, tiny_dataset, model, tmp_path / "a.csv")
    assert all(len(c) == 1 for _, c in rows(tmp_path / "a.csv"))


def test_truth_scores_and_per_class_figure(tiny_raw, tiny_dataset, tiny_trained2, tmp_path):
    out, _ = tiny_trained2
    report = run_predict(tiny_raw, tiny_dataset, out / "best_model", tmp_path / "a.csv", "--truth",
                         str(tiny_raw / "val_reference_task2.csv"), "--report", str(tmp_path / "r.json"))
    m = report["metrics"]
    truth = read_reference_task2(tiny_raw / "val_reference_task2.csv")
    answers = dict(rows(tmp_path / "a.csv"))
    y = np.stack([T2.encode(truth[n]) for n in sorted(truth)])
    pred = np.stack([T2.encode(answers[n]) for n in sorted(truth)])
    hand = [r for r in m["per_class"] if r["support"]]
    assert m["n"] == 20 and m["micro_f1"] == pytest.approx(2 * (y * pred).sum() / (y.sum() + pred.sum()))
    assert m["macro_f1"] == pytest.approx(np.mean([r["f1"] for r in hand]))
    assert (tmp_path / "r_per_class.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "r.json").read_text())["metrics"] == m


def test_model_of_the_other_task_is_a_clear_error(tiny_raw, tiny_dataset, tiny_trained, tiny_trained2, tmp_path):
    with pytest.raises(CheckpointError, match=r"a Task 1 model \(2 outputs\), but this run is --task 2"):
        run_predict(tiny_raw, tiny_dataset, tiny_trained[0] / "best_model", tmp_path / "a.csv")
    with pytest.raises(CheckpointError, match=r"a Task 2 model \(12 outputs\), but this run is --task 1"):
        predict.main(["--data-dir", str(tiny_raw), "--dataset-dir", str(tiny_dataset), "--model",
                      str(tiny_trained2[0] / "best_model"), "--out", str(tmp_path / "a.csv")])
    assert not (tmp_path / "a.csv").exists()


def test_task2_needs_its_label_file(tiny_dataset, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(tiny_dataset, ds)
    (ds / "trainreference_task2.csv").unlink()
    with pytest.raises(Exception, match=r"trainreference_task2.csv: label file not found"):
        train.main(["--task", "2", "--dataset-dir", str(ds), "--output-dir", str(tmp_path / "o"), "--iters", "1"])


BOM = b"\xef\xbb\xbf"  # Excel's "CSV UTF-8" starts every file with it


def test_bom_label_files_train_with_every_record(tmp_path):
    """Raw label files saved with a BOM: process.py keeps every labelled record (the first one was silently
    dropped), and both training paths (pictures from process.py, signals from the raw folder) see them all."""
    raw, ds = tmp_path / "raw", tmp_path / "ds"
    labels = dict(list(read_reference_task2(SAMPLE / "trainreference_task2.csv").items())[:12])
    (raw / "train").mkdir(parents=True)
    for n in labels:
        shutil.copy(SAMPLE / "train" / f"{n}.mat", raw / "train")
    task1 = pd.read_csv(SAMPLE / "trainreference.csv", dtype={"name": str}).set_index("name").loc[list(labels)]
    (raw / "trainreference.csv").write_bytes(BOM + task1.reset_index().to_csv(index=False).encode())
    (raw / "trainreference_task2.csv").write_bytes(
        BOM + "".join(f"{n},{','.join(map(str, c))}\r\n" for n, c in labels.items()).encode())
    process.main(["--data-dir", str(raw), "--out-dir", str(ds), "--size", "64", *TINY_RENDER, "--workers", "1"])
    assert read_reference_task2(ds / "trainreference_task2.csv") == labels
    out = tmp_path / "out"
    train.main(["--task", "2", "--dataset-dir", str(ds), "--output-dir", str(out), "--iters", "1", "--warmup-iters", "0",
                "--num-folds", "3", "--eval-interval", "1", *TINY])
    assert "data (task 2): 12 labelled records" in (out / "train.log").read_text()
    cfg = {"DATA_DIR": str(raw), "DATASET_DIR": str(ds), "NUM_FOLDS": 3, "VAL_FOLD": 0, "SEED": 2021}
    labelled, tr, va = train.load_split(cfg, T2, train.get_family("resnet1d"))  # the raw BOM'd file itself
    assert sorted(labelled.refs["name"]) == sorted(labels) and len(tr) + len(va) == 12


def test_truth_with_a_bom_scores_every_record(tiny_raw, tiny_dataset, tiny_trained2, tmp_path):
    out, _ = tiny_trained2
    truth = tmp_path / "val_reference_task2.csv"
    truth.write_bytes(BOM + (tiny_raw / "val_reference_task2.csv").read_bytes())
    report = run_predict(tiny_raw, tiny_dataset, out / "best_model", tmp_path / "a.csv", "--truth", str(truth))
    assert report["metrics"]["n"] == len(read_reference_task2(tiny_raw / "val_reference_task2.csv")) == 20
