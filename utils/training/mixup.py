"""Mixing a training batch (mixup, Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization"): each record
of a batch is blended with another record of the same batch, x = lam x_i + (1 - lam) x_j, lam ~ Beta(a, a), and
the loss is the same blend of the loss against each record's labels, lam L(f(x), y_i) + (1 - lam) L(f(x), y_j).
Written on the loss rather than on soft labels, so every task's loss (utils/training/losses.py) mixes unchanged.

A mix is a function (inputs, labels, loss_fn, seed) -> (inputs to train on, objective: logits -> loss); the loop
calls the one train.py built (`build_mix`) on every batch, with a seed fixed by (run seed, iteration, rank), so a
resumed run draws the same lam and pairs."""
from dataclasses import dataclass

import numpy as np
import paddle

from ..errors import ConfigError


def no_mix(inputs, labels, loss_fn, seed):
    """The batch as it is (--mixup 0)."""
    return inputs, lambda logits: loss_fn(logits, labels)


@dataclass(frozen=True)
class Mixup:
    """Blend each record of the batch with a random other of the batch, lam ~ Beta(alpha, alpha) per batch."""

    alpha: float

    def __call__(self, inputs, labels, loss_fn, seed):
        rng = np.random.default_rng(seed)
        lam = float(rng.beta(self.alpha, self.alpha))
        pair = paddle.to_tensor(rng.permutation(len(labels)).astype("int64"))
        other = paddle.gather(labels, pair)
        mixed = lam * inputs + (1.0 - lam) * paddle.gather(inputs, pair)
        return mixed, lambda logits: lam * loss_fn(logits, labels) + (1.0 - lam) * loss_fn(logits, other)


def build_mix(alpha):
    """The mix of --mixup ALPHA: 0 none, > 0 mixup with lam ~ Beta(ALPHA, ALPHA) (0.1-0.4 is usual)."""
    if not alpha >= 0:  # also refuses NaN
        raise ConfigError(f"--mixup must be 0 (off) or a positive Beta parameter, got {alpha}")
    return Mixup(float(alpha)) if alpha > 0 else no_mix
