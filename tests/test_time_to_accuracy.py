"""bench/time_to_accuracy.py's core on made-up evaluation histories: the folds' mean curve, the minutes to the
target, the out-of-fold CI, and the figure and JSON it writes (train.py's clock and --max-minutes: test_resume.py)."""
import argparse
import json

import numpy as np
import pytest

from bench import common
from bench import time_to_accuracy as tta
from utils.scoring.tasks import get_task


def _evals(points):
    return [{"iter": 50 * (i + 1), "auc": v, "train_seconds": 60 * m} for i, (m, v) in enumerate(points)]


def test_mean_curve_starts_when_every_fold_has_evaluated_and_steps_with_the_latest_evaluations():
    a = tta.fold_curve(_evals([(1, 0.80), (2, 0.90), (3, 0.95)]), "auc")
    b = tta.fold_curve(_evals([(1.5, 0.70), (2.5, 0.91)]), "auc")
    curve = tta.mean_curve([a, b])
    assert [t for t, _ in curve] == [1.5, 2, 2.5, 3]
    np.testing.assert_allclose([v for _, v in curve], [0.75, 0.80, 0.905, 0.93])
    assert tta.minutes_to(curve, 0.92) == 3 and tta.minutes_to(curve, 0.99) is None
    assert tta.fold_curve([{"iter": 1, "auc": None, "train_seconds": 1.0}, {"iter": 2, "auc": 0.5}], "auc") == []


def test_arch_result_figure_and_json(tmp_path):
    results = {"resnet1d": tta.arch_result({0: _evals([(1, 0.85), (2, 0.93)]), 1: _evals([(1.2, 0.88), (2.2, 0.94)])},
                                           "auc", 0.92),
               "inception1d": tta.arch_result({0: _evals([(4, 0.80), (9, 0.86)]), 1: _evals([(5, 0.82)])}, "auc", 0.92)}
    r = results["resnet1d"]
    assert r["minutes_to_target"] == 2.2 and r["train_minutes"] == pytest.approx(4.2)
    slow = results["inception1d"]
    assert slow["minutes_to_target"] is None and slow["best"] == {"minutes": 9, "auc": pytest.approx(0.84)}
    r.update(cpu_minutes=8.0, wall_minutes=4.5)
    slow.update(cpu_minutes=None, wall_minutes=None, folds_trained_now=0)  # every fold had finished before
    lines = tta.table_lines(results, "auc", 0.92)
    assert "2.2" in lines[1] and "not (0.8400 @9.0)" in lines[2]
    assert lines[1].split()[-2:] == ["8.0", "4.5"] and lines[2].split()[-2:] == ["earlier", "earlier"]
    r.update(folds_trained_now=1)  # one of its two folds had finished before: the minutes cover the other only
    assert tta.table_lines(results, "auc", 0.92)[1].split()[-2:] == ["8.0*", "4.5*"]

    a = argparse.Namespace(task=1, num_folds=2, fold_list=[0, 1], minutes=10.0, target=0.92, eval_interval=50, iters=3000,
                           figure=str(tmp_path / "fig" / "tta.png"), json=str(tmp_path / "tta.json"))
    tta.write_outputs(a, results, "auc")
    assert (tmp_path / "fig" / "tta.png").read_bytes()[:4] == b"\x89PNG"
    got = json.loads((tmp_path / "tta.json").read_text())
    assert got["results"]["resnet1d"]["minutes_to_target"] == 2.2 and got["target"] == 0.92


def test_out_of_fold_figures_have_a_ci(tmp_path):
    task = get_task(1)
    rng = np.random.default_rng(0)
    names = [f"r{i:03d}" for i in range(80)]
    y = (rng.random(80) < 0.5).astype(int)
    p = np.clip(0.5 + 0.3 * (2 * y - 1) + rng.normal(0, 0.2, 80), 0.01, 0.99)
    task.prediction_table(names, y, p).to_csv(tmp_path / "oof_predictions.csv", index=False)
    (tmp_path / "kfold_summary.json").write_text(json.dumps({"thresholds": 0.5}))
    (tmp_path / "trainreference.csv").write_text("name,tag\n" + "".join(f"{n},{t}\n" for n, t in zip(names, y)))
    figs = common.oof_figures(task, tmp_path, tmp_path)
    lo, hi = figs["auc"]["ci95"]
    assert lo < figs["auc"]["value"] < hi and figs["auc"]["value"] > 0.8


def test_only_signal_networks_are_accepted(capsys):
    assert tta.parse(["--archs", "resnet1d,inception1d", "--folds", "0,2"]).fold_list == [0, 2]
    with pytest.raises(SystemExit):
        tta.parse(["--archs", "resnet1d,features"])
    assert "features: not a signal network" in capsys.readouterr().err


def test_a_recipe_reaches_every_arch_and_names_its_runs():
    a = tta.parse(["--archs", "xresnet1d18", "--recipe", "--crop-seconds 2.5 --tta-stride-seconds 1.25"])
    flags = [str(f) for f in tta.budget_flags("xresnet1d18", a, "RAW")]
    assert flags[-4:] == ["--crop-seconds", "2.5", "--tta-stride-seconds", "1.25"]  # last: they win over the bench's
    name = tta.run_name("xresnet1d18", a)
    assert name == "xresnet1d18 --crop-seconds 2.5 --tta-stride-seconds 1.25"
    assert tta.folder_name(name) == "xresnet1d18_--crop-seconds_2.5_--tta-stride-seconds_1.25"
    assert tta.run_name("xresnet1d18", tta.parse(["--archs", "xresnet1d18"])) == "xresnet1d18"  # no recipe: the arch
