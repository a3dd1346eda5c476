"""LightGBM or scikit-learn's HistGradientBoostingClassifier for the features member, chosen on out-of-fold
results of the development records (PTB-XL folds 1-7), never on the test fold (which this bench does not read).

    python bench/gbm_choice.py [--src PTBXL_DIR] [--test-fold 8] [--task 1|2] [--num-folds 5] [--work-dir DIR] [--json PATH]

Both learners get the same measurements, train.py's group-aware folds (--seed 2021), balanced class weights, the
same trees (models/gbm.TREES: leaves, records per leaf, L2, the share of measurements a tree sees; scikit-learn draws
that share per split, LightGBM per tree), learning rate 0.05 and up to 400 trees with early
stopping on 15% of the training records (30 rounds without improvement) where a class has 20 positives. Every
development record is predicted once, by the fold that did not train on it; the out-of-fold AUC (Task 2: macro
AUC) is reported with its 95% bootstrap CI, and LightGBM minus HistGradientBoosting paired on the same records
(bench/protocol.py). F1 uses thresholds tuned on the same out-of-fold predictions (optimistic for both alike).
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.runtime import configure_cpu_threads, load_before_paddle  # noqa: E402

configure_cpu_threads()
load_before_paddle()

import numpy as np  # noqa: E402

from bench import common, protocol  # noqa: E402
from models.families import Sources, get_family  # noqa: E402
from models.gbm import MIN_FOR_EARLY_STOP, TREES, GBMModel  # noqa: E402
from utils.runtime import get_logger, worker_count  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402


def hgb_fit_predict(X, Y, X_val, seed):
    """scikit-learn's histogram gradient boosting with LightGBM's settings of models/gbm.py: (n_val, C)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    cols = []
    for k in range(Y.shape[1]):
        y = Y[:, k].astype(int)
        if y.min() == y.max():
            cols.append(np.full(len(X_val), float(y[0])))
            continue
        clf = HistGradientBoostingClassifier(max_iter=400, learning_rate=0.05, max_leaf_nodes=TREES["num_leaves"],
                                             min_samples_leaf=TREES["min_child_samples"],
                                             l2_regularization=TREES["reg_lambda"],
                                             max_features=TREES["colsample_bytree"],  # per split; LightGBM's is per tree
                                             class_weight="balanced", random_state=seed,
                                             early_stopping=bool(np.bincount(y).min() >= MIN_FOR_EARLY_STOP),
                                             validation_fraction=0.15, n_iter_no_change=30)
        cols.append(clf.fit(X, y).predict_proba(X_val)[:, 1])
    return np.stack(cols, axis=1)


def lgb_fit_predict(X, Y, X_val, seed):
    return GBMModel(Y.shape[1], seed=seed).fit(X, Y).predict_proba(X_val)


LEARNERS = {"lightgbm": lgb_fit_predict, "hist_gradient_boosting": hgb_fit_predict}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default=str(ROOT.parent / "shared" / "data" / "ptbxl"))
    p.add_argument("--test-fold", type=int, default=8, help="left out by the conversion, never read")
    p.add_argument("--task", type=int, default=1, choices=(1, 2))
    p.add_argument("--num-folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=2021)
    p.add_argument("--work-dir", default=None)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    work = Path(a.work_dir or tempfile.mkdtemp(prefix="gbm_choice_")).resolve()
    raw = common.convert_ptbxl(a.src, work / "raw", a.test_fold, once=True)
    task, log = get_task(a.task), get_logger()
    labelled = get_family("features").labels(task, Sources(raw, raw, worker_count(0)), log)
    names = labelled.refs["name"].tolist()
    y = task.label_array(labelled.refs["y"])
    seconds = dict.fromkeys(LEARNERS, 0.0)

    def fit_predict(fold, tr, val_names):
        """Both learners fitted on the fold's training records: {learner: (n_val, C) probabilities}."""
        X, X_val = (np.stack([labelled.inputs[n] for n in ns]) for ns in (tr["name"], val_names))
        Y = task.label_array(tr["y"]).reshape(len(tr), -1)
        got = {}
        for k, fit in LEARNERS.items():
            t = time.perf_counter()
            got[k] = fit(X, Y, X_val, a.seed)
            seconds[k] += time.perf_counter() - t
        print(f"fold {fold + 1}/{a.num_folds}: " + ", ".join(f"{k} {s:.1f} s" for k, s in seconds.items()), flush=True)
        return got

    oof = common.out_of_fold(task, labelled, a.num_folds, a.seed, fit_predict)
    truth = raw / task.label_file
    preds = {}
    for k, p_ in oof.items():
        probs = p_[:, 0] if task.num_probs == 1 else p_
        preds[k] = protocol.decided(task, probs, y=y)
    figs = {k: protocol.test_figures(task, truth, names, *v) for k, v in preds.items()}
    diff = protocol.paired_differences(task, truth, names, preds["lightgbm"], preds["hist_gradient_boosting"])
    keys = protocol.headline(task)
    print(f"\n=== features member, Task {a.task}: out-of-fold on {len(names)} development records ({a.num_folds} "
          f"group-aware folds; the test fold {a.test_fold} is not read)")
    print(f"{'learner':<24} " + " ".join(f"{m:>22}" for m in keys) + f" {'fit s':>8}")
    for k, f in figs.items():
        print(f"{k:<24} " + " ".join(f"{protocol.fmt_ci(f[m]):>22}" for m in keys) + f" {seconds[k]:>8.1f}")
    print("paired, lightgbm minus hist_gradient_boosting:")
    print("\n".join(protocol.difference_lines({"lightgbm": {"hist_gradient_boosting": diff}}, keys)))
    print(protocol.HOW_TO_READ)
    if a.json:
        Path(a.json).write_text(json.dumps({"task": a.task, "num_folds": a.num_folds, "seed": a.seed,
                                            "n_records": len(names), "figures": figs, "difference": diff,
                                            "fit_seconds": seconds, "bootstrap": protocol.bootstrap_info()},
                                           indent=2) + "\n")
        print(f"figures: {a.json}")


if __name__ == "__main__":
    main()
