"""mixup (utils/training/mixup.py, train.py --mixup): a batch of real records blended pairwise with its loss blended
the same way, for both tasks' losses; the draws fixed by the seed, so a resumed run trains exactly as the whole."""
import shutil

import numpy as np
import paddle
import pytest

import train
from pipeline_fixtures import SIGNAL
from utils.ecg.io import read_record
from utils.errors import ConfigError
from utils.inputs.signals import default_preprocess, preprocess
from utils.scoring.tasks import get_task
from utils.training.losses import build_loss
from utils.training.mixup import Mixup, build_mix, no_mix


def _batch(raw, n=6):
    prep = {**default_preprocess(), "scale": 1.0}
    paths = sorted((raw / "train").glob("*.mat"))[:n]
    return np.stack([preprocess(read_record(p), prep) for p in paths])


def _labels(task, n):
    if task.number == 1:
        return np.array([0, 1] * (n // 2), dtype="int64"), [0, 1] * (n // 2)
    rows = np.zeros((n, task.num_outputs), dtype="float32")
    rows[np.arange(n), np.arange(n) % task.num_outputs] = 1
    return rows, list(rows)  # Task 2's label column holds 0/1 rows


@pytest.mark.parametrize("number", [1, 2])
def test_mixup_blends_records_and_their_losses(tiny_raw, number):
    task, x = get_task(number), _batch(tiny_raw)
    y, ys = _labels(task, len(x))
    loss = build_loss(task, ys)
    onehot = np.eye(2, dtype="float32")[y] if task.number == 1 else y
    logits = paddle.to_tensor(6 * (onehot - 0.5))  # confident and right about each record's own labels
    mixed, objective = Mixup(0.4)(paddle.to_tensor(x), paddle.to_tensor(y), loss, seed=7)

    rng = np.random.default_rng(7)  # the draws the mix made: lam, then the pairing
    lam, pair = rng.beta(0.4, 0.4), rng.permutation(len(x))
    assert 0 < lam < 1 and not np.array_equal(pair, np.arange(len(x)))
    np.testing.assert_allclose(mixed.numpy(), lam * x + (1 - lam) * x[pair], rtol=1e-5, atol=1e-6)
    want = lam * float(loss(logits, paddle.to_tensor(y))) + (1 - lam) * float(loss(logits, paddle.to_tensor(y[pair])))
    assert float(objective(logits)) == pytest.approx(want, rel=1e-5)
    assert float(objective(logits)) > 1.3 * float(loss(logits, paddle.to_tensor(y)))  # the partners' labels count

    again, _ = Mixup(0.4)(paddle.to_tensor(x), paddle.to_tensor(y), loss, seed=7)  # a seed's draws are its own
    other, _ = Mixup(0.4)(paddle.to_tensor(x), paddle.to_tensor(y), loss, seed=8)
    np.testing.assert_array_equal(again.numpy(), mixed.numpy())
    assert not np.allclose(other.numpy(), mixed.numpy())


def test_no_mix_and_bad_alphas(tiny_raw):
    task, x = get_task(1), paddle.to_tensor(_batch(tiny_raw, 4))
    y, ys = _labels(task, 4)
    loss, logits = build_loss(task, ys), paddle.to_tensor(np.eye(4, 2, dtype="float32"))
    assert build_mix(0) is no_mix and build_mix(0.2) == Mixup(0.2)
    same, objective = build_mix(0)(x, paddle.to_tensor(y), loss, seed=3)
    assert same is x and float(objective(logits)) == pytest.approx(float(loss(logits, paddle.to_tensor(y))))
    for bad in (-0.1, float("nan")):
        with pytest.raises(ConfigError, match="--mixup"):
            build_mix(bad)


def test_training_with_mixup_resumes_exactly(tiny_raw, tmp_path):
    """The mix is drawn from (seed, iteration): a run resumed from its checkpoint at 4 trains iterations 5-8 exactly
    as the whole run did (across the epoch boundary after 6), loaders with workers; and mixing changes the training
    (the losses differ from --mixup 0)."""
    flags = ["--data-dir", str(tiny_raw), "--iters", "8", "--eval-interval", "4", "--save-interval", "4",
             "--num-workers", "2", *SIGNAL, "--log-iters", "2"]
    full = train.main([*flags, "--output-dir", str(tmp_path / "full"), "--mixup", "0.4"])
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "full", part)
    for p in [part / "iter_8", part / "best_model", part / "finished.json"]:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    resumed = train.main([*flags, "--output-dir", str(part), "--mixup", "0.4", "--resume", "auto"])
    assert "resumed run" in (part / "train.log").read_text()
    losses = [[r["loss"] for r in s["history"]["train"]] for s in (full, resumed)]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4, atol=1e-6)
    plain = train.main([*flags, "--output-dir", str(tmp_path / "plain")])
    assert not np.allclose([r["loss"] for r in plain["history"]["train"]], losses[0], rtol=1e-3)
