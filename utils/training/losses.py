"""The training loss of each task, built from the training labels (train.py builds it once per run; the loop's
step and validation call it). A loss is a function (logits, labels, reduction="mean"|"sum") -> a Paddle scalar;
"sum" adds the per-record losses (validation averages them over every record).

Task 1: softmax cross-entropy over the two outputs (the original design).
Task 2: binary cross-entropy with logits, averaged over the 12 classes of a record, each class's positives
  weighted by `positive_weights` of the training labels (--pos-weight, --max-pos-weight).
"""
import numpy as np
import paddle
import paddle.nn.functional as F

from ..errors import ConfigError

POS_WEIGHTS = ("none", "sqrt", "balanced")  # Task 2: weight of a class's positives, from its training frequency


def positive_weights(y, pos_weight="sqrt", max_pos_weight=10.0):
    """Per class, the weight of its positives from the training labels `y` (N, classes): 1 (`none`), the square
    root of its negatives per positive (`sqrt`) or that ratio (`balanced`), clipped to [1, max_pos_weight]."""
    if pos_weight not in POS_WEIGHTS:
        raise ConfigError(f"--pos-weight must be one of {', '.join(POS_WEIGHTS)}, got {pos_weight!r}")
    ratio = (len(y) - y.sum(0)) / np.maximum(y.sum(0), 1)  # negatives per positive
    w = {"none": np.ones_like(ratio), "sqrt": np.sqrt(ratio), "balanced": ratio}[pos_weight]
    return np.clip(w, 1.0, max_pos_weight).astype(np.float32)


class CrossEntropy:
    """Task 1: softmax cross-entropy of the logits (N, 2) against the tags (N,)."""

    def __call__(self, logits, y, reduction="mean"):
        return F.cross_entropy(logits, y, reduction=reduction)


class WeightedBCE:
    """Task 2: binary cross-entropy with logits z (N, classes) against 0/1 rows y, each class's positives weighted
    by `pos_weight` w (numpy, one per class), averaged over the classes of a record:
    w y log(1 + e^-z) + (1 - y) log(1 + e^z) = (1 - y) z + (1 + (w - 1) y) softplus(-z).

    Written out rather than F.binary_cross_entropy_with_logits(pos_weight=...): Paddle 2.6.2 (what GPU users get
    from PyPI) leaves the max(-z, 0) part of the positives' term unweighted, so a positive with a negative logit
    weighs less than w times (tests/test_losses.py measures it); Paddle 3 agrees with this formula to 1e-6."""

    def __init__(self, pos_weight):
        self.pos_weight = np.asarray(pos_weight, dtype=np.float32)

    def __call__(self, logits, y, reduction="mean"):
        w = paddle.to_tensor(self.pos_weight)
        per = ((1 - y) * logits + (1 + (w - 1) * y) * F.softplus(-logits)).mean(axis=1)  # per record
        return per.sum() if reduction == "sum" else per.mean()


def task1_loss(task, train_ys, pos_weight, max_pos_weight):
    return CrossEntropy()  # --pos-weight and --max-pos-weight are Task 2's


def task2_loss(task, train_ys, pos_weight, max_pos_weight):
    return WeightedBCE(positive_weights(task.label_array(train_ys), pos_weight, max_pos_weight))


LOSSES = {1: task1_loss, 2: task2_loss}  # task number -> (task, training labels, pos_weight, max_pos_weight) -> loss


def build_loss(task, train_ys, pos_weight="sqrt", max_pos_weight=10.0):
    """The loss of `task` for a run whose training records have the labels `train_ys` (a column of task.read_labels'
    `y`)."""
    return LOSSES[task.number](task, train_ys, pos_weight, max_pos_weight)
