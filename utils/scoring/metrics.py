"""Binary metrics with "abnormal" (1) as the positive class: the competition scores Task 1 by F1.
Exact (scikit-learn); an undefined value (AUC of a one-class fold) is None, which JSON writes as null."""
import math

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score


def fmt(x, digits=4):
    """A metric for log lines: `x` with `digits` decimals, "n/a" when undefined (None or NaN)."""
    return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def roc_auc(y_true, prob):
    """Exact ROC AUC; None when only one class is present (no pair to rank)."""
    return float(roc_auc_score(y_true, prob)) if len(np.unique(y_true)) == 2 else None


def binary_report(y_true, prob, threshold=0.5):
    """accuracy, F1, AUC and confusion matrix (rows: truth normal/abnormal, columns: prediction) at `threshold`."""
    y_true, prob = np.asarray(y_true, int), np.asarray(prob, dtype=np.float64)
    y_pred = (prob >= threshold).astype(int)
    cm = confusion_matrix(y_true, y_pred, labels=[0, 1])  # 2x2 even when a fold holds one class
    return {"accuracy": float(np.trace(cm) / max(1, cm.sum())), "f1": float(f1_score(y_true, y_pred, zero_division=0)),
            "auc": roc_auc(y_true, prob), "threshold": float(threshold), "confusion": cm.tolist(), "n": int(len(y_true))}


def multilabel_report(y_true, prob, pred, class_names, thresholds=None):
    """Task 2: per class support, F1 of the answers `pred` (0/1 rows), ROC AUC of `prob`, threshold; macro F1 and
    macro AUC average the classes that have at least one positive in `y_true` (F1 and AUC are undefined for the
    rest, which the table shows as None); micro F1 pools every record and class."""
    y_true, prob, pred = (np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in (y_true, prob, pred))
    rows = []
    for k, name in enumerate(class_names):
        support = int(y_true[:, k].sum())
        rows.append({"index": k + 1, "name": name, "support": support,
                     "f1": float(f1_score(y_true[:, k], pred[:, k], zero_division=0)) if support else None,
                     "auc": roc_auc(y_true[:, k], prob[:, k]) if len(y_true) else None,
                     "threshold": None if thresholds is None else float(thresholds[k])})
    f1s = [r["f1"] for r in rows if r["f1"] is not None]
    aucs = [r["auc"] for r in rows if r["auc"] is not None]
    micro = float(f1_score(y_true, pred, average="micro", zero_division=0)) if len(y_true) else 0.0
    return {"n": int(len(y_true)), "macro_f1": float(np.mean(f1s)) if f1s else 0.0, "micro_f1": micro,
            "macro_auc": float(np.mean(aucs)) if aucs else None, "per_class": rows}
