"""Fusion of several models' probabilities (folds, families, or both) and its decision thresholds.

The fused probability of a record is the weighted mean of the probabilities of the members that could read it
(weights renormalised over them). The fusion's thresholds are tuned on the members' out-of-fold predictions
(each best_model's val_predictions.csv), never on the test set: a record's out-of-fold fused probability is the
weighted mean over the members that VALIDATED it, i.e. that never trained on it; members that trained on it are
left out for that record (their probability would be over-confident). Records no member validated play no part.
"""
from pathlib import Path

import numpy as np

from .checkpoint import VAL_PREDICTIONS, CheckpointError


def parse_weights(text, n):
    """--weights "1,2,1" -> n floats (default: all 1)."""
    if not text:
        return np.ones(n)
    try:
        w = np.array([float(x) for x in str(text).split(",")])
    except ValueError:
        raise CheckpointError(f"--weights {text!r}: expected {n} comma-separated numbers, one per --model") from None
    if len(w) != n or (w < 0).any() or w.sum() <= 0:
        raise CheckpointError(f"--weights {text!r}: expected {n} non-negative numbers (one per --model), not all zero")
    return w


def fuse(member_probs, weights, names):
    """{name: fused probability} for every name that at least one member predicted.

    `member_probs`: one {name: probability (scalar or vector)} per member."""
    out = {}
    for n in names:
        have = [(w, p[n]) for w, p in zip(weights, member_probs) if n in p]
        if have:
            ws = np.array([w for w, _ in have], dtype=np.float64)
            if ws.sum() <= 0:
                ws = np.ones(len(have))
            out[n] = sum(w * np.asarray(p, dtype=np.float64) for w, p in zip(ws, (p for _, p in have))) / ws.sum()
    return out


def read_out_of_fold(model_dirs, task):
    """One (names, labels, probabilities) per member, from each best_model's val_predictions.csv."""
    out = []
    for d in model_dirs:
        path = Path(d) / VAL_PREDICTIONS
        if not path.is_file():
            raise CheckpointError(f"{d}: no {VAL_PREDICTIONS} (out-of-fold predictions, written by train.py at each "
                                  f"best model); fusion tunes its thresholds on them: retrain this member")
        out.append(task.read_prediction_table(path))
    return out


def out_of_fold_fusion(oof, weights, task):
    """(names, labels, fused out-of-fold probabilities) over every record some member validated."""
    truth, per_member = {}, []
    for names, y, probs in oof:
        per_member.append(dict(zip(names, probs)))
        for n, t in zip(names, y):
            if n in truth and not np.array_equal(truth[n], t):
                raise CheckpointError(f"record {n} has different labels in the members' {VAL_PREDICTIONS}: "
                                      f"were they trained on the same label file?")
            truth[n] = t
    names = sorted(truth)
    fused = fuse(per_member, weights, names)
    return names, task.label_array([truth[n] for n in names]), np.array([fused[n] for n in names])
