"""Fusion of several models' probabilities (folds, families, or both) and its decision thresholds.

`mean` and `weights`: the fused probability of a record is the weighted mean of the probabilities of the members
that could read it (weights renormalised over them). `stacking` (--weights auto): a regularised logistic regression
per output on each family's logits (class `Fusion` below). The fusion's thresholds are tuned on the members' out-of-fold predictions
(each best_model's val_predictions.csv), never on the test set: a record's out-of-fold fused probability is the
weighted mean over the members that VALIDATED it, i.e. that never trained on it; members that trained on it are
left out for that record (their probability would be over-confident). Records no member validated play no part.
"""
from pathlib import Path

import numpy as np

from ..artifacts import VAL_PREDICTIONS
from ..errors import CheckpointError, ConfigError
from . import thresholds as tuning

MIN_COMMON = 5  # stacking: fewer records validated by every family cannot say anything


def parse_weights(text, n):
    """--weights "1,2,1" -> n floats (default: all 1). "auto" is stacking instead: see Fusion."""
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

    `member_probs`: one {name: probability (scalar or vector)} per member; `weights`: one number per member (an
    array of one per output works too)."""
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


# -- stacking ("--weights auto") ---------------------------------------------------------------------------------
STACK_C = 0.1  # inverse L2 strength on each family's deviation from equal weights (scikit-learn's C)
MEAN_SCALE = 10.0  # the equal-weight feature is scaled up, so its coefficient is all but unpenalised


def _logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def pooled_logits(oof, groups):
    """Each group's out-of-fold logits on the records every group validated: (names, their labels, L (G, N, K), fold
    of each record). Within a group (the folds of one k-fold run) a record's probability is the mean of the members
    that validated it; its fold is the set of members that did."""
    order = list(dict.fromkeys(groups))
    pooled, folds = [], {}
    for g in order:
        acc = {}
        for i, ((ns, y, p), grp) in enumerate(zip(oof, groups)):
            if grp == g:
                for n, t, q in zip(ns, y, p):
                    acc.setdefault(n, [t, []])[1].append(np.asarray(q, dtype=np.float64))
                    folds.setdefault(n, []).append(i)
        pooled.append({n: (t, np.mean(qs, axis=0)) for n, (t, qs) in acc.items()})
    common = sorted(set.intersection(*(set(d) for d in pooled)))
    y = [pooled[0][n][0] for n in common]
    L = np.stack([_logit(np.stack([d[n][1] for n in common]).reshape(len(common), -1)) for d in pooled])
    fold_ids = np.unique([str(folds[n]) for n in common], return_inverse=True)[1]
    return common, y, L, fold_ids


def fit_output(X, y):
    """(coefficient per group, intercept) of one output: a logistic regression on the groups' logits X (N, G),
    parametrised as the equal-weight mean logit (all but unpenalised) plus each group's deviation from it
    (L2-penalised), so an output with few positives falls back towards equal weights. A constant output (no
    positive or no negative) keeps equal weights."""
    G = X.shape[1]
    if y.min() == y.max():
        return np.full(G, 1.0 / G), 0.0
    from sklearn.linear_model import LogisticRegression

    m = X.mean(axis=1, keepdims=True)
    lr = LogisticRegression(C=STACK_C, max_iter=2000).fit(np.hstack([MEAN_SCALE * m, X - m]), y.astype(int))
    a = lr.coef_[0]
    dev = a[1:] - a[1:].mean()
    return dev + MEAN_SCALE * a[0] / G, float(lr.intercept_[0])


class Stacker:
    """Per output, fused logit = intercept + sum over groups of coefficient x the group's logit."""

    def __init__(self, groups, coef, intercept):
        self.groups, self.coef, self.intercept = list(groups), np.asarray(coef), np.asarray(intercept)  # (G, K), (K,)

    @classmethod
    def fit(cls, groups, L, y):
        fits = [fit_output(L[:, :, k].T, y[:, k]) for k in range(L.shape[2])]
        return cls(groups, np.stack([c for c, _ in fits], axis=1), np.array([b for _, b in fits]))

    def predict(self, L):
        """L (G, N, K) -> probabilities (N, K)."""
        from scipy.special import expit

        return expit(np.einsum("gnk,gk->nk", L, self.coef) + self.intercept)

    def describe(self):
        per = {g: (c.tolist() if len(c) > 1 else float(c[0])) for g, c in zip(self.groups, self.coef)}
        return {"per_family": per, "intercept": self.intercept.tolist()}


def crossfit(L, y, fold_ids, groups, seed=0):
    """Cross-fitted stacked probabilities: for every fold, a stacker fitted on the other folds predicts it. The
    folds are those of the members (records validated by the same members); with a single such fold, 5 seeded
    random folds. Returns (probabilities (N, K), how the folds were made)."""
    how = "the members' folds"
    if len(np.unique(fold_ids)) < 2:
        from sklearn.model_selection import KFold

        fold_ids = np.empty(len(y), dtype=int)
        for k, (_, idx) in enumerate(KFold(min(5, len(y)), shuffle=True, random_state=seed).split(y)):
            fold_ids[idx] = k
        how = f"{len(np.unique(fold_ids))} seeded random folds (the members share one validation fold)"
    out = np.empty(y.shape, dtype=np.float64)
    for f in np.unique(fold_ids):
        test = fold_ids == f
        out[test] = Stacker.fit(groups, L[:, ~test], y[~test]).predict(L[:, test])
    return out, how


class Fusion:
    """How several models' probabilities become one, and its thresholds tuned on out-of-fold predictions.

    `mean` / `weights`: the weighted mean of the members (each group, e.g. the folds of one k-fold run, fused
    first), thresholds tuned on the same fusion of their out-of-fold predictions. `stacking` (--weights auto): a
    logistic regression per output on each group's out-of-fold logits, its score and thresholds taken from
    cross-fitted probabilities (never scored on the records it was fitted on); the final stacker is fitted on all.
    """

    def __init__(self, text, model_dirs, groups, task, log):
        self.groups, self.task = list(groups), task
        oof = read_out_of_fold(model_dirs, task)
        if text == "auto":
            self._fit_stacker(oof, log)
        else:
            self._fit_mean(text, oof, log)

    def _fit_mean(self, text, oof, log):
        self.method = "weights" if text else "mean"
        self.weights = parse_weights(text, len(oof))
        names, y, probs = out_of_fold_fusion(oof, self.weights, self.task, self.groups)
        result = self.task.evaluate(y, probs)
        self.thresholds, self.report = result.thresholds, {
            "method": self.method, "weights": self.weights.tolist(), "tuned_on": tuning.tuned_on("out of fold", len(names)),
            "out_of_fold": {"n": len(names), **result.record},
            "out_of_fold_crossfit": {"n": len(names), **result.record}}  # nothing fitted: the same records
        how = "tuned on" if tuning.enough(len(names)) else f"{tuning.DEFAULT}, not tuned: too few,"
        log.info(f"fusion ({self.method}): thresholds {how} {len(names)} out-of-fold validation records:")
        for line in result.lines(prefix="  "):
            log.info(line)

    def _fit_stacker(self, oof, log):
        self.method, order = "stacking", list(dict.fromkeys(self.groups))
        names, truth, L, fold_ids = pooled_logits(oof, self.groups)
        if len(order) > 1 and len(names) < MIN_COMMON:
            raise CheckpointError(f"--weights auto: only {len(names)} records were validated by every model family "
                                  f"({', '.join(order)}); train them on the same split (same --seed and --num-folds)")
        if not tuning.enough(len(names)):  # a logistic regression fitted on a handful of records is noise
            log.warning(f"--weights auto: {len(names)} out-of-fold records (< {tuning.MIN_RECORDS}) are too few to fit "
                        f"a stacking on: the plain mean of the members instead")
            return self._fit_mean("", oof, log)
        labels, y = self.task.label_array(truth), np.asarray(truth, dtype=np.float64).reshape(len(names), -1)
        probs, how = crossfit(L, y, fold_ids, order)
        result = self.task.evaluate(labels, self._as_task(probs))
        self.stacker = Stacker.fit(order, L, y)
        in_sample = self.task.evaluate(labels, self._as_task(self.stacker.predict(L)))
        self.thresholds = result.thresholds
        self.report = {"method": "stacking", "tuned_on": tuning.tuned_on("out of fold, cross-fitted", len(names)),
                       "fitted": {**self.stacker.describe(), "n_records": len(names),
                                                        "crossfit_folds": how, "C": STACK_C},
                       "out_of_fold_crossfit": {"n": len(names), **result.record},
                       "out_of_fold": {"n": len(names), **in_sample.record}}  # in-sample: optimistic, for comparison
        log.info(f"fusion (stacking, --weights auto): a logistic regression per output on {len(names)} out-of-fold "
                 f"records validated by every family ({', '.join(order)}); cross-fitted over {how}:")
        for line in result.lines(prefix="  "):
            log.info(line)

    def _as_task(self, p):
        return p[:, 0] if self.task.num_probs == 1 else p

    def fuse(self, member_probs, names):
        """{name: fused probability} for every name some member predicted."""
        if self.method != "stacking":
            return fuse(member_probs, self.weights, names)
        order = self.stacker.groups
        per_group = [fuse([p for p, g in zip(member_probs, self.groups) if g == grp],
                          [1.0] * self.groups.count(grp), names) for grp in order]
        out, mean = {}, fuse(per_group, [1.0] * len(order), names)  # a record some family could not read: the mean
        for n in names:
            if all(n in d for d in per_group):
                L = np.stack([_logit(np.asarray(d[n], dtype=np.float64).reshape(1, -1)) for d in per_group])
                out[n] = self._as_task(self.stacker.predict(L))[0]
            elif n in mean:
                out[n] = mean[n]
        return out

