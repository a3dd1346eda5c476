"""The training losses (utils/training/losses.py), built from the training labels: Task 1 cross-entropy, Task 2
weighted binary cross-entropy with the per-class positive weights of --pos-weight and --max-pos-weight."""
import numpy as np
import paddle
import pytest
from scipy.special import log_softmax

from pipeline_fixtures import SAMPLE
from utils.errors import ConfigError
from utils.scoring.tasks import get_task
from utils.training.losses import POS_WEIGHTS, WeightedBCE, build_loss, positive_weights

T1, T2 = get_task(1), get_task(2)


def sample_task2_labels():
    return T2.read_labels(SAMPLE / "trainreference_task2.csv")["y"]


@pytest.mark.parametrize("mode", POS_WEIGHTS)
@pytest.mark.parametrize("cap", [10.0, 2.0])
def test_positive_weights_from_training_frequencies(mode, cap):
    """Negatives per positive of each class (a class without positives counts one), as is (balanced), its square
    root (sqrt) or 1 (none), clipped to [1, cap], float32: the weights Task 2 trained with before the loss left Task."""
    y = T2.label_array(sample_task2_labels())
    pos = y.sum(0)
    ratio = (len(y) - pos) / np.maximum(pos, 1)
    want = np.clip({"none": np.ones_like(ratio), "sqrt": np.sqrt(ratio), "balanced": ratio}[mode], 1.0, cap)
    got = positive_weights(y, mode, cap)
    assert got.dtype == np.float32 and got.shape == (12,)
    np.testing.assert_array_equal(got, want.astype(np.float32))
    if mode != "none":
        assert got.max() > 1  # the sample's rare classes do get weight


def test_a_bad_pos_weight_is_a_one_line_error_naming_the_flag():
    with pytest.raises(ConfigError, match=r"^--pos-weight must be one of none, sqrt, balanced, got 'square'$"):
        build_loss(T2, sample_task2_labels(), "square")
    build_loss(T1, [0, 1], "square")  # Task 1 has no positive weights: the flag is not read


def test_task2_loss_is_weighted_bce_per_record_then_mean_or_sum():
    ys = sample_task2_labels()
    loss = build_loss(T2, ys, "balanced", 10.0)
    w = positive_weights(T2.label_array(ys), "balanced", 10.0)
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(5, 12)).astype(np.float32), T2.label_array(list(ys)[:5])
    per = (w * y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z)).mean(axis=1)
    zt, yt = paddle.to_tensor(z), paddle.to_tensor(y)
    assert float(loss(zt, yt)) == pytest.approx(per.mean(), rel=1e-5)
    assert float(loss(zt, yt, reduction="sum")) == pytest.approx(per.sum(), rel=1e-5)


def test_task2_loss_stays_finite_and_exact_at_extreme_logits():
    """softplus keeps the weighted BCE finite where exp(z) overflows float32, and its gradient is the textbook one:
    sigmoid(z) - y for a negative, w (sigmoid(z) - 1) for a positive."""
    loss = WeightedBCE(np.full(12, 4.0, np.float32))
    z = np.array([[-100, -30, -1, 0, 1, 30, 100, -100, 100, -5, 5, 0]], np.float32)
    y = np.array([[1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]], np.float32)
    zt = paddle.to_tensor(z, stop_gradient=False)
    value = loss(zt, paddle.to_tensor(y), reduction="sum")
    want = (4 * y * np.logaddexp(0, -z.astype(np.float64)) + (1 - y) * np.logaddexp(0, z.astype(np.float64))).mean()
    assert np.isfinite(float(value)) and float(value) == pytest.approx(want, rel=1e-5)
    value.backward()
    s = 1 / (1 + np.exp(-z.astype(np.float64)))
    grad = np.where(y > 0, 4 * (s - 1), s) / 12
    np.testing.assert_allclose(zt.grad.numpy(), grad, rtol=1e-4, atol=1e-7)


def test_task1_loss_is_softmax_cross_entropy():
    loss = build_loss(T1, [0, 1, 1])
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(4, 2)).astype(np.float32), np.array([0, 1, 1, 0], np.int64)
    per = -log_softmax(z, axis=1)[np.arange(4), y]
    zt, yt = paddle.to_tensor(z), paddle.to_tensor(y)
    assert float(loss(zt, yt)) == pytest.approx(per.mean(), rel=1e-5)
    assert float(loss(zt, yt, reduction="sum")) == pytest.approx(per.sum(), rel=1e-5)


def test_a_task_keeps_no_loss_state():
    """Building a loss leaves the task as it was: two runs' losses never share weights through it."""
    before = dict(vars(T2))
    build_loss(T2, sample_task2_labels(), "balanced")
    assert vars(T2) == before
