"""Decision thresholds, for both tasks, in one place: how they are tuned (best F1, ties to the one nearest 0.5),
how answers are decided from them (Task 2's exclusive "normal" and its largest-margin fallback), and when
validation records are too few to tune on at all. Training, fusion, tools/train_kfold.py and the benches all tune
through `Task.thresholds` / `Task.evaluate`, which call these functions; the models' cards, kfold_summary.json and
predict.py's report keep the result under one key, `thresholds`, beside `tuned_on` (which records tuned them).

A threshold tuned for the best F1 on a handful of records, or a best_model crowned by one lucky evaluation, says
more about those records than about the model (on the sample's 6 validation records the F1 swings from 0 to 1
between evaluations). Below MIN_RECORDS nothing is tuned: thresholds stay at DEFAULT, best_model is the latest
evaluated model, and the log, model.json and the figures say it was a smoke check.
"""
import numpy as np
from sklearn.metrics import precision_recall_curve

MIN_RECORDS = 30
DEFAULT = 0.5  # the threshold of an untuned model (a probability's natural cut)


def enough(n):
    """Are `n` validation records enough to tune thresholds and choose a model on?"""
    return n >= MIN_RECORDS


def smoke_note(n):
    """What a log line says of a choice made on `n` records."""
    return "" if enough(n) else f"{n} records < {MIN_RECORDS}: a smoke check, thresholds {DEFAULT}, nothing tuned"


def smoke_banner(n):
    """What a figure of a training run validated on `n` records says above its plots ("" when they are enough)."""
    return "" if enough(n) else (f"Smoke check, not a measurement: {n} validation records (< {MIN_RECORDS}), "
                                 f"thresholds {DEFAULT}, the latest model kept")


def tuned_on(where, n):
    """`tuned_on` of a card or summary: which records tuned the thresholds, e.g. "validation fold 3 of 10, 185
    records" or "out of fold, 927 records" (a smoke check says so)."""
    return f"{where}, " + (smoke_note(n) if not enough(n) else f"{n} records")


# -- tuning -----------------------------------------------------------------------------------------------------
def best_threshold(y_true, prob):
    """Decision threshold on a probability (positive iff prob >= threshold) that maximises F1; among equal F1s the
    one nearest 0.5, so 0.5 itself when it predicts the same as the best score."""
    y_true, prob = np.asarray(y_true, int), np.asarray(prob, dtype=np.float64)
    n_pos = int(y_true.sum())
    if n_pos == 0:
        return 0.5  # F1 is 0 at every threshold
    _, recall, thresholds = precision_recall_curve(y_true, prob)
    # F1 = 2 tp / (predicted + positives) from integer counts, so equal F1s compare equal for the tie-break
    tp = np.rint(recall[:-1] * n_pos)
    predicted = len(prob) - np.searchsorted(np.sort(prob), thresholds)
    at_half = prob >= 0.5
    cands = np.append(thresholds, 0.5)
    f1 = np.append(2 * tp / (predicted + n_pos), 2 * np.sum(at_half & (y_true == 1)) / (at_half.sum() + n_pos))
    return float(cands[np.lexsort((cands, -np.abs(cands - 0.5), f1))[-1]])  # best F1, then nearest 0.5, then higher


def tune_binary(y, prob):
    """Task 1: the F1-best threshold on P(abnormal), DEFAULT on too few records."""
    return best_threshold(y, prob) if enough(len(y)) else DEFAULT


def tune_multilabel(y, probs, exclusive):
    """Task 2: per class, the F1-best threshold (DEFAULT where the records hold no positive or no negative of it,
    or are too few to tune on). Class `exclusive` ("normal") is answered only when no other class is, so its
    threshold is tuned with that rule applied."""
    y = np.asarray(y)
    num = y.shape[1]
    if not enough(len(y)):
        return [DEFAULT] * num
    t = [best_threshold(y[:, k], probs[:, k]) if 0 < y[:, k].sum() < len(y) else DEFAULT for k in range(num)]
    if 0 < y[:, exclusive].sum() < len(y):
        t[exclusive] = _exclusive_threshold(y[:, exclusive], probs, np.asarray(t), exclusive)
    return t


def _exclusive_threshold(y_ex, probs, t, exclusive):
    """The threshold t_n for the exclusive class whose answers, under `decide_multilabel`'s rules (answered only
    when no other class reaches its threshold, or when none does and it has the largest margin), give the best
    F1; among equal F1s the one nearest 0.5. The answered set changes only where t_n passes p_n or p_n - (the
    largest other margin), so those are the candidates."""
    others = np.delete(np.arange(probs.shape[1]), exclusive)
    p_n = probs[:, exclusive]
    other_margin = (probs[:, others] - t[others]).max(axis=1)
    free = other_margin < 0  # no other class reaches its threshold
    cands = np.unique(np.concatenate([p_n, p_n - other_margin, [0.5]]))
    cands = cands[(cands > 0) & (cands <= 1)]
    pred = free & ((p_n[None, :] >= cands[:, None]) | (p_n[None, :] - cands[:, None] >= other_margin))
    tp = (pred & (y_ex > 0.5)).sum(axis=1)
    f1 = 2 * tp / (pred.sum(axis=1) + (y_ex > 0.5).sum())
    return float(cands[np.lexsort((cands, -np.abs(cands - 0.5), f1))[-1]])


# -- deciding ---------------------------------------------------------------------------------------------------
def decide_binary(probs, threshold):
    """Task 1: abnormal (1) iff P(abnormal) reaches the threshold."""
    return [int(p >= threshold) for p in probs]


def decide_multilabel(probs, thresholds, exclusive):
    """Task 2's answer rules: each record gets the classes whose probability reaches their threshold; if none does,
    the class closest to its threshold (the largest probability-to-threshold margin: the raw argmax would favour
    the frequent classes, whose thresholds are high); class `exclusive` ("normal") is kept only when no other
    class is found (an abnormal finding wins, so a record is never both normal and abnormal). Returns 1-based
    class lists."""
    out, t = [], np.asarray(thresholds, dtype=np.float64)
    for p in np.atleast_2d(probs):
        found = np.flatnonzero(p >= t)
        if len(found) == 0:
            found = [int(np.argmax(p - t))]
        elif len(found) > 1:
            found = [k for k in found if k != exclusive]
        out.append([int(k) + 1 for k in found])
    return out
