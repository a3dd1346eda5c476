"""Exact metrics (scikit-learn) for validation and test reports, and training checkpoints that resume under
Paddle 2.6 as well as 3.x."""
import json
import subprocess
from pathlib import Path

import numpy as np
import paddle
import pytest
from sklearn.metrics import f1_score

from utils.scoring.metrics import binary_report
from utils.scoring.thresholds import best_threshold
from utils.scoring.plots import plot_training_curves

ROOT = Path(__file__).resolve().parents[1]


def test_auc_is_exact_where_paddle_buckets_merge_scores():
    # all four scores fall into one of paddle.metric.Auc's 4095 buckets, which reports 0.5;
    # exactly, 3 of the 4 (abnormal, normal) pairs are ranked right
    report = binary_report([0, 1, 0, 1], [0.5, 0.50001, 0.50002, 0.50003])
    assert report["auc"] == 0.75


def _brute_force_threshold(y, prob):
    """Every distinct score and 0.5 as candidates: best F1 (prob >= t is abnormal), ties nearest 0.5, then higher."""
    cands = np.unique(np.append(prob, 0.5))
    return max(cands, key=lambda t: (f1_score(y, prob >= t, zero_division=0), -abs(t - 0.5), t))


@pytest.mark.parametrize("seed", range(6))
def test_best_threshold_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 120))
    y = (rng.random(n) < rng.uniform(0.1, 0.9)).astype(int)
    prob = np.round(rng.beta(2, 2, n) * 0.6 + 0.4 * y * rng.random(n), int(rng.integers(1, 4)))  # rounding makes ties
    expected = _brute_force_threshold(y, prob)
    assert best_threshold(list(y), list(prob)) == expected  # plain lists, as read back from JSON
    assert best_threshold(y, prob.astype(np.float32)) == pytest.approx(expected, abs=1e-7)


def test_best_threshold_handles_100k_samples():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100_000)
    prob = np.clip(0.3 * y + rng.random(100_000) * 0.7, 0, 1)
    assert 0 < best_threshold(y, prob) < 1


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_fold_gives_json_without_nan(label):
    from utils.scoring.metrics import fmt

    y = [label] * 5
    prob = [0.1, 0.4, 0.5, 0.7, 0.9]
    report = binary_report(y, prob, best_threshold(y, prob))
    assert report["auc"] is None
    assert np.array(report["confusion"]).shape == (2, 2) and np.array(report["confusion"]).sum() == 5
    assert json.loads(json.dumps(report, allow_nan=False))["auc"] is None
    assert fmt(report["auc"]) == "n/a" and fmt(float("nan")) == "n/a" and fmt(0.123456) == "0.1235"


def test_training_curves_accept_undefined_auc(tmp_path):
    evals = [{"iter": i, "loss": 0.5, "f1": 0.6, "f1_at_0.5": 0.5, "auc": auc} for i, auc in ((5, None), (10, 0.7))]
    plot_training_curves({"train": [{"iter": 5, "loss": 0.7, "lr": 0.01}], "eval": evals}, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0


# Checkpoints: optimizer state keyed by structured names must reach this process's accumulators, whatever
# unique names (layer counter, accumulator counter) they got here, and under Paddle 2.6 and 3.x alike.

def _small_model():
    return paddle.nn.Sequential(paddle.nn.Conv2D(1, 2, 3), paddle.nn.BatchNorm2D(2), paddle.nn.Flatten(),
                                paddle.nn.Linear(8, 2))


def _optimizer(model):
    lr = paddle.optimizer.lr.PolynomialDecay(0.01, decay_steps=10, end_lr=1e-4)
    return paddle.optimizer.Momentum(learning_rate=lr, momentum=0.9, parameters=model.parameters(),
                                     weight_decay=paddle.regularizer.L2Decay(1e-4))


def _train_steps(model, opt, steps, seed=0):
    paddle.seed(seed)
    for _ in range(steps):
        model(paddle.rand([2, 1, 4, 4])).mean().backward()
        opt.step()
        opt.clear_grad()
        opt._learning_rate.step()


def _velocities(model, opt):
    """structured name -> velocity (numpy) of each trainable parameter, found by its name in this process."""
    state = opt.state_dict()
    out = {}
    for s, p in model.named_parameters():
        if p.stop_gradient:  # batch-norm statistics
            continue
        keys = [k for k in state if k.startswith(p.name + "_velocity_")]
        assert len(keys) == 1, f"{s}: velocity keys {keys} in {sorted(state)}"
        out[s] = state[keys[0]].numpy()
    return out


def write_checkpoint(path):
    """Train a small model 3 steps and checkpoint it; also return its velocities (run in either Paddle)."""
    from utils.training.checkpoint import save_checkpoint

    model = _small_model()
    opt = _optimizer(model)
    _train_steps(model, opt, 3)
    save_checkpoint(path, model, opt, {"iter": 3})
    np.savez(Path(path).with_suffix(".npz"), **_velocities(model, opt))
    return _velocities(model, opt)


def _load_in_a_busy_process(path, step_first):
    """Load as a process would that had built other layers (shifted parameter names), an earlier optimizer over
    the same model (shifted accumulator names) and, with `step_first`, already stepped the new optimizer."""
    from utils.training.checkpoint import load_checkpoint

    for _ in range(3):
        _small_model()
    model = _small_model()
    _train_steps(model, _optimizer(model), 1)
    opt = _optimizer(model)
    if step_first:
        _train_steps(model, opt, 1, seed=1)
    state = load_checkpoint(path, model, opt)
    assert state["iter"] == 3 and opt._learning_rate.last_epoch == 3  # the LR scheduler came back too
    return model, opt


@pytest.mark.parametrize("step_first", [False, True], ids=["fresh-optimizer", "stepped-optimizer"])
def test_checkpoint_velocity_survives_shifted_names(tmp_path, step_first):
    saved = write_checkpoint(tmp_path / "ckpt")
    model, opt = _load_in_a_busy_process(tmp_path / "ckpt", step_first)
    restored = _velocities(model, opt)
    assert restored.keys() == saved.keys()
    for name in saved:
        np.testing.assert_array_equal(restored[name], saved[name], err_msg=name)
    _train_steps(model, opt, 1)  # and training goes on (a wrongly named pending state fails here)


def test_checkpoint_from_the_other_paddle_version(tmp_path):
    """A checkpoint written under the other Paddle major version (its venv beside this one) loads here."""
    other = ROOT / (".venv" if paddle.__version__.startswith("2.") else ".venv26") / "bin" / "python"
    if not other.exists():
        pytest.skip(f"{other} not found: no second Paddle version to write a checkpoint")
    code = (f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]; "
            f"import test_metrics_compat as t; t.write_checkpoint({str(tmp_path / 'ckpt')!r})")
    run = subprocess.run([str(other), "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    saved = dict(np.load(tmp_path / "ckpt.npz"))
    from utils.training.checkpoint import restore_trainer_state

    restore_trainer_state(tmp_path / "ckpt")  # the random generators' states too
    for step_first in (False, True):
        model, opt = _load_in_a_busy_process(tmp_path / "ckpt", step_first)
        restored = _velocities(model, opt)
        assert restored.keys() == saved.keys()
        for name in saved:
            np.testing.assert_array_equal(restored[name], saved[name], err_msg=name)
        _train_steps(model, opt, 1)
