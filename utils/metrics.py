"""Binary metrics with "abnormal" (1) as the positive class: the competition scores Task 1 by F1."""
import numpy as np
import paddle


def confusion(y_true, y_pred):
    """2x2 confusion matrix, rows = truth (normal, abnormal), columns = prediction."""
    return np.bincount(2 * np.asarray(y_true, int) + np.asarray(y_pred, int), minlength=4).reshape(2, 2)


def f1_from_confusion(cm):
    tp, fp, fn = cm[1, 1], cm[0, 1], cm[1, 0]
    return float(2 * tp / (2 * tp + fp + fn)) if tp else 0.0


def roc_auc(y_true, prob):
    """ROC AUC via paddle.metric.Auc; NaN when only one class is present."""
    y_true = np.asarray(y_true, int)
    if len(np.unique(y_true)) < 2:
        return float("nan")
    auc = paddle.metric.Auc(num_thresholds=4095)
    p = np.asarray(prob, dtype=np.float64)
    auc.update(np.stack([1 - p, p], axis=1), y_true.reshape(-1, 1))
    return float(auc.accumulate())


def best_threshold(y_true, prob):
    """Decision threshold on P(abnormal) that maximises F1 (ties: the one nearest 0.5)."""
    cands = np.unique(np.concatenate([[0.5], np.asarray(prob, dtype=np.float64)]))
    scores = [(f1_from_confusion(confusion(y_true, prob >= t)), -abs(t - 0.5), t) for t in cands]
    return float(max(scores)[2])


def binary_report(y_true, prob, threshold=0.5):
    """accuracy, F1, AUC and confusion matrix at `threshold` on P(abnormal)."""
    y_true, prob = np.asarray(y_true, int), np.asarray(prob, dtype=np.float64)
    cm = confusion(y_true, prob >= threshold)
    return {"accuracy": float(np.trace(cm) / max(1, cm.sum())), "f1": f1_from_confusion(cm), "auc": roc_auc(y_true, prob),
            "threshold": float(threshold), "confusion": cm.tolist(), "n": int(len(y_true))}
