"""Fusion of several models' probabilities (folds, families, or both) and its decision thresholds.

The fused probability of a record is the weighted mean of the probabilities of the members that could read it
(weights renormalised over them). The fusion's thresholds are tuned on the members' out-of-fold predictions
(each best_model's val_predictions.csv), never on the test set: a record's out-of-fold fused probability is the
weighted mean over the members that VALIDATED it, i.e. that never trained on it; members that trained on it are
left out for that record (their probability would be over-confident). Records no member validated play no part.
"""
from pathlib import Path

import numpy as np

from ..artifacts import VAL_PREDICTIONS
from ..errors import CheckpointError, ConfigError

MIN_COMMON = 5  # --weights auto: fewer records validated by every family cannot say anything


def parse_weights(text, n):
    """--weights "1,2,1" -> n floats (default: all 1). "auto" is fitted instead: see fit_weights."""
    if not text:
        return np.ones(n)
    try:
        w = np.array([float(x) for x in str(text).split(",")])
    except ValueError:
        raise ConfigError(f"--weights {text!r}: expected {n} comma-separated numbers, one per --model") from None
    if len(w) != n or (w < 0).any() or w.sum() <= 0:
        raise ConfigError(f"--weights {text!r}: expected {n} non-negative numbers (one per --model), not all zero")
    return w


def fuse(member_probs, weights, names):
    """{name: fused probability} for every name that at least one member predicted.

    `member_probs`: one {name: probability (scalar or vector)} per member; `weights`: one per member, a number
    or (fitted for Task 2) one per output."""
    out = {}
    for n in names:
        have = [(w, p[n]) for w, p in zip(weights, member_probs) if n in p]
        if have:
            ws = np.array([w for w, _ in have], dtype=np.float64)
            ws[..., ws.sum(axis=0) <= 0] = 1.0  # every member that read it has weight 0 (for that output): equal
            out[n] = sum(w * np.asarray(p, dtype=np.float64) for w, p in zip(ws, (p for _, p in have))) / ws.sum(axis=0)
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


def out_of_fold_fusion(oof, weights, task, groups=None):
    """(names, labels, fused out-of-fold probabilities) over every record some member validated.

    `groups`: one label per member (predict.py uses the architecture): the folds of one k-fold run validate
    disjoint records, so within a group a record's probability is that of the group's members that validated
    it, and the groups are fused with the group's total weight, as they are at test time. Without groups every
    member is its own group."""
    groups = list(range(len(oof))) if groups is None else list(groups)
    truth = {}
    for names, y, _ in oof:
        for n, t in zip(names, y):
            if n in truth and not np.array_equal(truth[n], t):
                raise CheckpointError(f"record {n} has different labels in the members' {VAL_PREDICTIONS}: "
                                      f"were they trained on the same label file?")
            truth[n] = t
    names = sorted(truth)
    per_group, group_w = [], []
    for g in dict.fromkeys(groups):  # in order of first appearance
        idx = [i for i, grp in enumerate(groups) if grp == g]
        per_group.append(fuse([dict(zip(oof[i][0], oof[i][2])) for i in idx], [weights[i] for i in idx], names))
        group_w.append(sum(weights[i] for i in idx))
    fused = fuse(per_group, group_w, names)
    return names, task.label_array([truth[n] for n in names]), np.array([fused[n] for n in names])


def _fit_simplex(P, y):
    """Weights (non-negative, summing to 1) of the G probability sets P (G, N, K) minimising the binary
    cross-entropy of their weighted mean against y (N, K)."""
    from scipy.optimize import minimize
    from scipy.special import softmax

    def loss(z):
        q = np.clip(np.tensordot(softmax(z), P, axes=1), 1e-6, 1 - 1e-6)
        return -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))
    return softmax(minimize(loss, np.zeros(len(P)), method="Nelder-Mead").x)


def fit_weights(oof, groups, task):
    """Member weights fitted on out-of-fold predictions ("--weights auto").

    Members of one group (one architecture: the folds of a k-fold run) validate disjoint records, so a weight is
    fitted per group, on the group's pooled out-of-fold predictions, and shared equally by its members. The
    weights (non-negative, summing to 1) minimise the binary cross-entropy of the fused probabilities over the
    records that every group validated: for Task 1 one weight per group; for Task 2 one per group and class,
    each class fitted on its own (the families are good at different diagnoses). Returns (weights per member:
    (M,) or (M, classes), {group: weight or [weight per class]}, n records).
    """
    names = sorted(set(groups))
    pooled = []
    for g in names:  # name -> mean probability over the group's members that validated it
        acc = {}
        for (ns, y, p), grp in zip(oof, groups):
            if grp == g:
                for n, t, q in zip(ns, y, p):
                    acc.setdefault(n, [t, []])[1].append(np.asarray(q, dtype=np.float64))
        pooled.append({n: (t, np.mean(qs, axis=0)) for n, (t, qs) in acc.items()})
    common = sorted(set.intersection(*(set(d) for d in pooled)))
    if len(names) > 1 and len(common) < MIN_COMMON:
        raise CheckpointError(f"--weights auto: only {len(common)} records were validated by every model family "
                              f"({', '.join(names)}); train them on the same split (same --seed and --num-folds)")
    if len(names) == 1:
        group_w = np.ones(1)
    else:
        y = np.asarray(task.label_array([pooled[0][n][0] for n in common]), dtype=np.float64).reshape(len(common), -1)
        P = np.stack([np.stack([d[n][1] for n in common]).reshape(len(common), -1) for d in pooled])  # (G, N, K)
        # one set of weights per output (Task 2: per class); Task 1 has one output (P(abnormal)): one set
        group_w = np.stack([_fit_simplex(P[:, :, k:k + 1], y[:, k:k + 1]) for k in range(P.shape[2])], axis=1)
        group_w = group_w[:, 0] if P.shape[2] == 1 else group_w
    per_group = dict(zip(names, group_w))
    sizes = {g: groups.count(g) for g in names}
    described = {g: (w.round(6).tolist() if np.ndim(w) else float(w)) for g, w in per_group.items()}
    return np.array([per_group[g] / sizes[g] for g in groups]), described, len(common)
