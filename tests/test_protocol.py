"""The bench protocol (bench/protocol.py): bootstrap CIs of test figures and paired differences, on constructed data."""
import json
import time

import numpy as np
import pytest

from bench import protocol
from utils.artifacts import write_answer_files
from utils.scoring.metrics import binary_report, multilabel_report
from utils.scoring.tasks import get_task

T1, T2 = get_task(1), get_task(2)


def task1_set(tmp_path, n, seed=0, signal=1.0, tag="t1"):
    """n records, ~3/4 abnormal; P(abnormal) = sigmoid(signal * truth-direction + noise); answers at 0.5."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.75).astype(int)
    prob = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(0, 1, n))))
    names = [f"r{i:05d}" for i in range(n)]
    truth = tmp_path / f"{tag}_truth.csv"
    truth.write_text("name,tag\n" + "".join(f"{a},{b}\n" for a, b in zip(names, y)))
    return truth, names, [int(p >= 0.5) for p in prob], list(prob), y


def task2_set(tmp_path, n=148, seed=0):
    """n records of 12 classes: class 7 (index 6) has one positive, class 8 (index 7) none; probabilities informative."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 12)) < 0.15).astype(np.float32)
    y[:, 6], y[:, 7] = 0, 0
    y[rng.integers(n), 6] = 1
    y[y.sum(1) == 0, 0] = 1  # every record has a class (normal when nothing else)
    probs = np.clip(0.35 * y + rng.random((n, 12)) * 0.65, 0, 1)
    names = [f"r{i:05d}" for i in range(n)]
    truth = tmp_path / "t2_truth.csv"
    truth.write_text("".join(",".join([nm, *map(str, np.flatnonzero(r) + 1)]) + "\n" for nm, r in zip(names, y)))
    answers = T2.decide(probs, [0.5] * 12)
    return truth, names, answers, list(probs), y


def test_figures_equal_scikit_learn_on_resampled_records(tmp_path):
    """The vectorised figures on a resample's counts are those of utils/scoring/metrics.py on the drawn records,
    including resamples that miss a class's only positive (Task 2)."""
    truth, names, answers, probs, _ = task1_set(tmp_path, 60)
    s1 = protocol.align(T1, truth, names, answers, probs)
    truth2, names2, answers2, probs2, _ = task2_set(tmp_path, 60)
    s2 = protocol.align(T2, truth2, names2, answers2, probs2)
    rng = np.random.default_rng(1)
    probs2 = np.round(s2.prob, 1)  # ties in the scores
    s2.prob = probs2
    for _ in range(10):
        idx = rng.integers(0, 60, 60)
        W = np.bincount(idx, minlength=60)[None, :].astype(float)
        got = {k: v[0] for k, v in protocol._figures(T1, s1, W).items()}
        want = binary_report(s1.y[idx], s1.pred[idx], 0.5)
        assert got["f1"] == pytest.approx(want["f1"]) and got["accuracy"] == pytest.approx(want["accuracy"])
        assert got["auc"] == pytest.approx(binary_report(s1.y[idx], s1.prob[idx])["auc"])
        got = {k: v[0] for k, v in protocol._figures(T2, s2, W, per_class=True).items()}
        want = multilabel_report(s2.y[idx], s2.prob[idx], s2.pred[idx], T2.class_names)
        for k in ("macro_f1", "micro_f1", "macro_auc"):
            assert got[k] == pytest.approx(want[k]), k
        for k, r in enumerate(want["per_class"]):
            for kind in ("f1", "auc"):
                assert (np.isnan(got[f"{kind}/{k}"]) if r[kind] is None else got[f"{kind}/{k}"] == pytest.approx(r[kind]))
    # all records once: the values the task scores
    ones = np.ones((1, 60))
    assert protocol._figures(T1, s1, ones)["auc"][0] == pytest.approx(s1.report["auc"])
    assert protocol._figures(T2, s2, ones)["macro_f1"][0] == pytest.approx(s2.report["macro_f1"])


def test_ci_brackets_the_value_and_shrinks_with_more_records(tmp_path):
    widths = {}
    for n in (100, 1600):
        figs = protocol.test_figures(T1, *task1_set(tmp_path, n, tag=f"n{n}")[:4])
        assert set(figs) == {"f1", "auc", "accuracy"}
        for k, f in figs.items():
            lo, hi = f["ci95"]
            assert lo <= f["value"] <= hi, (n, k, f)
        widths[n] = {k: f["ci95"][1] - f["ci95"][0] for k, f in figs.items()}
    for k in widths[100]:  # 16x the records: about a quarter of the width
        assert widths[1600][k] < 0.5 * widths[100][k], (k, widths)


def test_same_seed_same_ci_other_seed_other_ci(tmp_path):
    args = task1_set(tmp_path, 148)[:4]
    a, b = protocol.test_figures(T1, *args, seed=3), protocol.test_figures(T1, *args, seed=3)
    assert a == b
    assert protocol.test_figures(T1, *args, seed=4)["auc"]["ci95"] != a["auc"]["ci95"]
    assert protocol.test_figures(T1, *args, n_resamples=1000) == protocol.test_figures(T1, *args)  # the defaults


def test_ci_agrees_with_scipy_bootstrap(tmp_path):
    """The same percentile bootstrap as scipy.stats.bootstrap (other random draws: equal within Monte Carlo error)."""
    from scipy.stats import bootstrap

    truth, names, answers, probs, _ = task1_set(tmp_path, 148)
    s = protocol.align(T1, truth, names, answers, probs)
    ours = protocol.test_figures(T1, truth, names, answers, probs, n_resamples=4000)["auc"]["ci95"]

    def auc(idx, axis=-1):
        idx = np.atleast_2d(idx).astype(int)
        W = np.stack([np.bincount(r, minlength=len(s.y)) for r in idx]).astype(float)
        return protocol._auc(W, s.y, s.prob)

    ref = bootstrap((np.arange(len(s.y)),), auc, vectorized=True, paired=True, n_resamples=4000, method="percentile",
                    random_state=0).confidence_interval
    assert ours == pytest.approx([ref.low, ref.high], abs=0.01)


def test_paired_difference_of_a_model_with_itself_is_zero(tmp_path):
    truth, names, answers, probs, _ = task1_set(tmp_path, 148)
    d = protocol.paired_difference(T1, truth, names, (answers, probs), (answers, probs), "auc")
    assert d["diff"] == 0 and d["ci95"] == [0.0, 0.0] and d["p_a_not_better"] == 1.0
    assert d["a"] == d["b"] == protocol.test_figures(T1, truth, names, answers, probs)["auc"]["value"]


def test_paired_difference_finds_a_clearly_better_model(tmp_path):
    truth, names, answers, probs, y = task1_set(tmp_path, 148, signal=2.0)
    rng = np.random.default_rng(5)
    weak = 1 / (1 + np.exp(-(0.3 * (2 * y - 1) + rng.normal(0, 1, len(y)))))
    b = ([int(p >= 0.5) for p in weak], list(weak))
    d = protocol.paired_differences(T1, truth, names, (answers, probs), b)
    assert d["auc"]["diff"] > 0 and d["auc"]["ci95"][0] > 0 and d["auc"]["p_a_not_better"] < 0.025
    assert d["f1"]["ci95"][0] <= d["f1"]["diff"] <= d["f1"]["ci95"][1]
    rev = protocol.paired_difference(T1, truth, names, b, (answers, probs), "auc")  # the other way round
    assert rev["diff"] == pytest.approx(-d["auc"]["diff"]) and rev["ci95"][1] < 0 and rev["p_a_not_better"] > 0.975


def test_paired_difference_needs_the_same_records_for_both(tmp_path):
    truth, names, answers, probs, _ = task1_set(tmp_path, 20)
    with pytest.raises(ValueError):
        protocol.paired_differences(T1, truth, names, (answers, probs), (answers[:-1], probs))


def test_task2_resamples_without_a_class_do_not_crash_and_are_fast(tmp_path):
    truth, names, answers, probs, y = task2_set(tmp_path, 148)
    t = time.time()
    figs = protocol.test_figures(T2, truth, names, answers, probs, per_class=True)
    seconds = time.time() - t
    assert seconds < 20, seconds  # about 0.1 s alone; generous for a shared CPU
    for k in ("macro_f1", "micro_f1", "macro_auc"):
        lo, hi = figs[k]["ci95"]
        assert 0 <= lo <= figs[k]["value"] <= hi <= 1
    one, none = figs["per_class"][6], figs["per_class"][7]
    assert one["support"] == 1 and 0 < one["auc"]["n_undefined"] < 1000 and one["auc"]["ci95"] is not None
    assert none["support"] == 0 and none["auc"] == {"value": None, "ci95": None, "n_undefined": 1000}
    assert none["f1"]["value"] is None
    lines = protocol.per_class_ci_lines(figs)
    assert len(lines) == 13 and "n/a" in lines[8]
    d = protocol.paired_differences(T2, truth, names, (answers, probs), (answers, list(np.asarray(probs) * 0.5)))
    assert d["macro_auc"]["diff"] == pytest.approx(0) and d["macro_f1"]["ci95"] is not None


def test_read_predictions_of_a_fused_report(tmp_path):
    """The fusion's rows of predict_report_probabilities.csv and the answer CSV; a fallback record gets its answer."""
    truth, names, answers, probs, _ = task1_set(tmp_path, 10)
    answer = tmp_path / "answer.csv"
    write_answer_files(T1.answer_files(names, answers, answer))
    tables = [T1.prob_table(names[:-1], np.zeros(9), model="/m/a"), T1.prob_table(names[:-1], probs[:-1], model="fusion")]
    import pandas as pd

    pd.concat(tables).to_csv(tmp_path / "p.csv", index=False)
    (tmp_path / "r.json").write_text(json.dumps({"answer": str(answer), "probabilities": str(tmp_path / "p.csv")}))
    n, a, p = protocol.read_predictions(T1, tmp_path / "r.json")
    assert n == names and a == answers
    assert np.allclose(p[:-1], probs[:-1]) and p[-1] == float(answers[-1])

    truth2, names2, answers2, probs2, _ = task2_set(tmp_path, 12)
    write_answer_files(T2.answer_files(names2, answers2, tmp_path / "a2.csv"))
    T2.prob_table(names2, np.asarray(probs2), model="/m/b").to_csv(tmp_path / "p2.csv", index=False)
    (tmp_path / "r2.json").write_text(json.dumps({"answer": str(tmp_path / "a2.csv"), "probabilities": str(tmp_path / "p2.csv")}))
    n, a, p = protocol.read_predictions(T2, tmp_path / "r2.json")
    assert n == names2 and a == answers2 and np.allclose(np.stack(p), np.stack(probs2), atol=1e-6)


def test_with_ci_keeps_the_report_and_adds_ci95(tmp_path):
    truth, names, answers, probs, _ = task2_set(tmp_path, 40)
    figs = protocol.test_figures(T2, truth, names, answers, probs, per_class=True)
    m, _, _ = T2.score(truth, names, answers, probs)
    out = protocol.with_ci(m, figs)
    assert {k: out[k] for k in m if k != "per_class"} == {k: m[k] for k in m if k != "per_class"}
    assert out["ci95"]["macro_auc"] == figs["macro_auc"]["ci95"]
    assert all(r["f1"] == m["per_class"][i]["f1"] and "auc_ci95" in r for i, r in enumerate(out["per_class"]))
    assert protocol.fmt_ci(figs["macro_auc"]).count("[") == 1
    assert protocol.fmt_diff({"diff": 0.01, "ci95": [-0.01, 0.03], "p_a_not_better": 0.2}).endswith("(CI includes 0)")


def _fake_report(tmp_path, tag, names, answers, probs):
    """A predict.py report of one model: answer CSV, probabilities CSV and the report pointing at them."""
    write_answer_files(T1.answer_files(names, answers, tmp_path / f"answer_{tag}.csv"))
    T1.prob_table(names, probs, model=f"/m/{tag}").to_csv(tmp_path / f"p_{tag}.csv", index=False)
    path = tmp_path / f"report_{tag}.json"
    path.write_text(json.dumps({"answer": str(tmp_path / f"answer_{tag}.csv"), "probabilities": str(tmp_path / f"p_{tag}.csv")}))
    return path


def test_compare_reports_and_choose_on_development_figures(tmp_path):
    """compare: each run's figures and the paired differences of runs that list their records in other orders;
    choose: by the development figure, not the test one."""
    truth, names, answers, probs, y = task1_set(tmp_path, 148, signal=2.0)
    weak = np.asarray(probs) * 0.3 + np.random.default_rng(2).random(148) * 0.7
    ra = _fake_report(tmp_path, "a", names, answers, probs)
    rb = _fake_report(tmp_path, "b", names[::-1], [int(p >= 0.5) for p in weak][::-1], list(weak)[::-1])
    out = protocol.compare(T1, truth, {"a": ra, "b": rb}, [("a", "b")], ("auc",))
    assert out["figures"]["a"] == protocol.test_figures(T1, truth, names, answers, probs)
    d = out["differences"]["a"]["b"]["auc"]
    assert d["diff"] == pytest.approx(out["figures"]["a"]["auc"]["value"] - out["figures"]["b"]["auc"]["value"])
    assert d["ci95"][0] > 0
    assert len(protocol.difference_lines(out["differences"], ("auc",))) == 2
    assert protocol.choose({"a": {"auc": 0.8}, "b": {"auc": 0.9}, "c": None, "d": {"auc": None}}, "auc") == "b"
    assert protocol.choose({"c": None}, "auc") is None
    rc = _fake_report(tmp_path, "c", names[:-1], answers[:-1], probs[:-1])
    with pytest.raises(ValueError, match="different test records"):
        protocol.report_differences(T1, truth, ra, rc)


def test_paired_difference_of_one_class(tmp_path):
    truth, names, answers, probs, y = task2_set(tmp_path, 148)
    better = np.asarray(probs).copy()
    better[:, 0] = 0.9 * y[:, 0] + 0.1 * better[:, 0]  # class 1 (normal) all but perfectly ranked
    d = protocol.paired_differences(T2, truth, names, (answers, list(better)), (answers, probs), ("auc/0", "auc/7"))
    assert d["auc/0"]["ci95"][0] > 0 and d["auc/7"]["diff"] is None  # class 8 has no positive: no AUC


class _Stop(Exception):
    pass


def test_members_best_expands_to_the_recipe_and_an_unknown_member_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from bench import common
    from bench import fusion_accuracy as fa

    ran = []

    def stage(name, args, times=None, cpu=None):  # record what would run; stop at the first prediction (nothing trains)
        ran.append((name, [str(x) for x in args]))
        if name.startswith("predict"):
            raise _Stop

    monkeypatch.setattr(common, "stage", stage)
    with pytest.raises(_Stop):
        fa.main(["--members", "best", "--src", str(tmp_path / "ptbxl"), "--work-dir", str(tmp_path / "w")])
    trained = [(n, args) for n, args in ran if n.startswith("train")]
    assert [n for n, _ in trained] == [f"train {m}" for m in common.BEST["members"]] == ["train features"]
    for _, args in trained:
        assert args[args.index("--num-folds") + 1] == "3" and args[args.index("--folds") + 1] == "0,1,2"
    assert common.recipe_row("best") == "fusion (mean)"  # one member: its folds averaged

    ran.clear()
    with pytest.raises(_Stop):
        fa.main(["--members", "fusion", "--src", str(tmp_path / "ptbxl"), "--work-dir", str(tmp_path / "w")])
    assert [n for n, _ in ran if n.startswith("train")] == ["train resnet1d", "train features"]
    assert common.recipe_row("fusion") == "fusion (weights auto)"

    with pytest.raises(SystemExit) as e:
        fa.main(["--members", "resnet1d,resnet1dd", "--work-dir", str(tmp_path / "w2")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "unknown member resnet1dd" in err[-1] and "best" in err[-1]
    assert not (tmp_path / "w2").exists()  # refused before anything ran
