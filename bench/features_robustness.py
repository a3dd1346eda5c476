"""The features member made robust to the recording device: gain augmentation (train.py --gain-augment),
amplitude-relative measurements (train.py --amplitudes) and other hospitals' records in training, chosen on
out-of-fold results of the development records, scored once on the test fold and on the external records.

    python bench/features_robustness.py --external RAW_DIR [--src PTBXL_DIR] [--test-fold 8] [--task 1|2]
                                        [--gains 0,0.2] [--amplitudes absolute,relative,both]
                                        [--trees leaves15,leaves7-cols0.5,...] [--num-folds 3] [--external-folds 5]
                                        [--work-dir DIR] [--json PATH]

Each configuration (every gain augmentation G of --gains with every view of --amplitudes and every LightGBM tree
setting of --trees, TREE_ROWS below; the first of each is the reference) is the features member as train.py fits it
(FeaturesFamily.fit, the same measurements, LightGBM and seed), on:
- the development records (PTB-XL without the test fold): out of fold over train.py's --num-folds group-aware
  folds, on the records as they are and as recorded at gain x0.8 and x1.2 (utils/ecg/gain.at_gain: exact for 97%
  of record-gain pairs, docs/results.md). The configuration is chosen by the mean of those three out-of-fold AUCs (Task 2:
  macro AUC);
- the test fold, by a model fitted on every development record, as recorded and at x0.8 / x1.2;
- the external records (--external, a converted set: its val/ records, e.g. CPSC2018 by tools/convert_cinc.py),
  two ways: trained on PTB-XL only, and "+ external": cross-fitted over --external-folds folds of the external
  records (each predicted by a model that trained on the development records plus the other external folds, never
  on itself), which is what training with other hospitals' records buys on a hospital's unseen patients
  (--external-folds 0 leaves this out: it costs more than half the fits).
Every test figure has its 95% bootstrap CI; the paired differences (bench/protocol.py) compare each configuration
with the reference on the same records, and "+ external" with PTB-XL only. Thresholds (F1) come from the
out-of-fold predictions.
"""
import argparse
import itertools
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
import pandas as pd  # noqa: E402

from bench import common, protocol  # noqa: E402
from models.families import FeaturesOptions, Labelled, Sources, get_family  # noqa: E402
from utils.ecg.cache import features_for_records  # noqa: E402
from utils.ecg.gain import AMPLITUDES, at_gain  # noqa: E402
from utils.runtime import get_logger, worker_count  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402
from utils.training.sampling import multilabel_folds, stratified_folds  # noqa: E402

SHIFTS = (1.0, 0.8, 1.2)  # the gains every model is scored at: as recorded, and a device calibrated 20% off
# LightGBM tree settings (docs/results.md, "Tree settings"), each whole: column and row subsampling decorrelate trees over 219
# correlated measurements; smaller leaves suit a few hundred records. leaves7-cols0.5 is models/gbm.TREES (the default
# since 2026-12-03, chosen by this bench); leaves15 the default before it.
LEAVES15 = {"num_leaves": 15, "min_child_samples": 10, "reg_lambda": 1.0, "colsample_bytree": 1.0, "subsample": 1.0,
            "subsample_freq": 0}
TREE_ROWS = {"leaves15": LEAVES15, "leaves15-cols0.5": {**LEAVES15, "colsample_bytree": 0.5},
             "leaves15-cols0.25": {**LEAVES15, "colsample_bytree": 0.25},
             "leaves15-cols0.5-rows0.8": {**LEAVES15, "colsample_bytree": 0.5, "subsample": 0.8, "subsample_freq": 1},
             "leaves7-cols0.5": {**LEAVES15, "num_leaves": 7, "min_child_samples": 20, "colsample_bytree": 0.5},
             # more leaves for twice the records (2,010; docs/results.md, "Tree settings ... on 2,010 records")
             "leaves31-cols0.5-rows0.8": {**LEAVES15, "num_leaves": 31, "colsample_bytree": 0.5, "subsample": 0.8,
                                          "subsample_freq": 1}}
DEFAULT_TREES = "leaves7-cols0.5"
FEATURES = get_family("features")


def measured(task, raw, names_file):
    """(refs name/y, {name: measurements}) of the val/ records `names_file` lists in a converted `raw` folder."""
    refs = task.read_labels(raw / names_file, data_dir=raw / "val", ext=".mat")
    X, bad = features_for_records([raw / "val" / f"{n}.mat" for n in refs["name"]], cache_dir=raw / "features_cache",
                                  workers=worker_count(0))
    if bad:
        raise SystemExit(f"{raw}: {len(bad)} records could not be measured (first: {next(iter(bad.items()))})")
    return refs, dict(zip(refs["name"], X))


def fit(task, labelled, train_df, config, seed, log):
    """The member fitted on `train_df` as train.py fits it with `config` (gain_augment, amplitudes, trees: its
    FeaturesOptions) (FeaturesFamily.fit, with no validation records: this bench scores the model itself): the model."""
    model, _, _ = FEATURES.fit(task, labelled, train_df, train_df.iloc[:0], seed, FeaturesOptions(**config), log)
    return model


def probs(task, model, inputs, names, shift=1.0):
    p = model.predict_proba(at_gain(np.stack([inputs[n] for n in names]), shift))
    return p[:, 0] if task.num_probs == 1 else p


def out_of_fold(task, dev, a, config, log):
    """{shift: (n, ...) probabilities of every development record by the fold that did not train on it}."""

    def fit_predict(fold, tr, val_names):
        model = fit(task, dev, tr, config, a.seed, log)
        return {s: probs(task, model, dev.inputs, val_names, s) for s in SHIFTS}

    return common.out_of_fold(task, dev, a.num_folds, a.seed, fit_predict)


def external_folds(task, refs, n, seed):
    y = task.label_array(refs["y"])
    return (stratified_folds if y.ndim == 1 else multilabel_folds)(y, n, seed)


def cross_fitted(task, dev, ext_refs, ext_inputs, a, config, log):
    """Each external record predicted by a model trained on the development records plus the other external folds."""
    folds = external_folds(task, ext_refs, a.external_folds, a.seed)
    both = Labelled(dev.label_file, pd.concat([dev.refs, ext_refs], ignore_index=True), {**dev.inputs, **ext_inputs})
    out = [None] * len(ext_refs)
    for k in range(a.external_folds):
        model = fit(task, both, pd.concat([dev.refs, ext_refs[folds != k]], ignore_index=True), config, a.seed, log)
        held = np.flatnonzero(folds == k)
        for i, p in zip(held, probs(task, model, ext_inputs, ext_refs["name"].iloc[held].tolist())):
            out[i] = p
    return np.stack(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default=str(ROOT.parent / "shared" / "data" / "ptbxl"))
    p.add_argument("--test-fold", type=int, default=8)
    p.add_argument("--task", type=int, default=1, choices=(1, 2))
    p.add_argument("--gains", default="0,0.2", help="comma-separated --gain-augment values; 0 is the reference")
    p.add_argument("--amplitudes", default="absolute", help=f"comma-separated --amplitudes views ({', '.join(AMPLITUDES)}); "
                                                            "the first is the reference")
    p.add_argument("--trees", default=DEFAULT_TREES, help=f"comma-separated tree settings ({', '.join(TREE_ROWS)}); "
                                                       "the first is the reference")
    p.add_argument("--num-folds", type=int, default=3)
    p.add_argument("--external", required=True, metavar="RAW_DIR", help="a converted set of other hospitals (val/)")
    p.add_argument("--external-folds", type=int, default=5, help="0: leave out '+ external in training'")
    p.add_argument("--seed", type=int, default=2021)
    p.add_argument("--work-dir", default=None)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    gains = [float(g) for g in a.gains.split(",")]
    views, trees = a.amplitudes.split(","), a.trees.split(",")
    if not set(trees) <= set(TREE_ROWS):
        p.error(f"--trees: each one of {', '.join(TREE_ROWS)}, got {a.trees}")
    if a.external_folds == 1 or a.external_folds < 0:
        p.error(f"--external-folds: 0 (off) or at least 2, got {a.external_folds}")
    if gains[0] != 0:
        p.error("--gains: the first value is the reference and must be 0")
    if not set(views) <= set(AMPLITUDES):
        p.error(f"--amplitudes: each one of {', '.join(AMPLITUDES)}, got {a.amplitudes}")
    t0 = time.time()
    work = Path(a.work_dir or tempfile.mkdtemp(prefix="features_robustness_")).resolve()
    raw = common.convert_ptbxl(a.src, work / "raw", a.test_fold, once=True)
    ext = Path(a.external).resolve()
    task, log = get_task(a.task), get_logger()
    dev = FEATURES.labels(task, Sources(raw, raw, worker_count(0)), log)
    truth_file = task.truth_file
    test_refs, test_inputs = measured(task, raw, truth_file)
    ext_refs, ext_inputs = measured(task, ext, truth_file)
    dev_truth = raw / task.label_file
    dev_names, test_names, ext_names = dev.refs["name"].tolist(), test_refs["name"].tolist(), ext_refs["name"].tolist()
    y_dev = task.label_array(dev.refs["y"])

    rows = {}
    for g, view, tree in itertools.product(gains, views, trees):
        config = {"gain_augment": g, "amplitudes": view, "trees": TREE_ROWS[tree]}
        oof = out_of_fold(task, dev, a, config, log)
        thr = task.evaluate(y_dev, oof[1.0]).thresholds
        model = fit(task, dev, dev.refs, config, a.seed, log)
        name = (f"gain augment {g:g}" + (f", amplitudes {view}" if len(views) > 1 or view != "absolute" else "")
                + (f", trees {tree}" if len(trees) > 1 or tree != DEFAULT_TREES else ""))
        rows[name] = {**{f"oof x{s:g}": protocol.decided(task, oof[s], thr) for s in SHIFTS},
                      **{f"test x{s:g}": protocol.decided(task, probs(task, model, test_inputs, test_names, s), thr) for s in SHIFTS},
                      "external": protocol.decided(task, probs(task, model, ext_inputs, ext_names), thr)}
        if a.external_folds:
            rows[name]["external, + external in training"] = protocol.decided(
                task, cross_fitted(task, dev, ext_refs, ext_inputs, a, config, log), thr)
        print(f"{name}: done ({time.time() - t0:.0f} s)", flush=True)
    report(a, task, rows, dev_truth, raw / truth_file, ext / truth_file, (dev_names, test_names, ext_names), t0)


def report(a, task, rows, dev_truth, test_truth, ext_truth, names, t0):
    dev_names, test_names, ext_names = names
    m = protocol.auc_metric(task)
    where = {"oof": (dev_truth, dev_names), "test": (test_truth, test_names), "external": (ext_truth, ext_names)}

    def truth_of(col):
        return where[col.split(" ")[0].rstrip(",")]

    figs = {r: {c: protocol.test_figures(task, truth_of(c)[0], truth_of(c)[1], *v) for c, v in cols.items()}
            for r, cols in rows.items()}
    development = {r: {"mean_oof_auc": float(np.mean([f[f"oof x{s:g}"][m]["value"] for s in SHIFTS]))}
                   for r, f in figs.items()}
    chosen = protocol.choose(development, "mean_oof_auc")
    ref = next(iter(rows))
    diffs = {r: {c: protocol.paired_differences(task, *truth_of(c), rows[r][c], rows[ref][c], (m,))[m]
                 for c in rows[r]} for r in rows if r != ref}
    if a.external_folds:
        diffs["external training"] = {
            r: protocol.paired_differences(task, ext_truth, ext_names, rows[r]["external, + external in training"],
                                           rows[r]["external"], (m,))[m] for r in rows}
    cols = list(next(iter(rows.values())))
    print(f"\n=== features member, Task {a.task}, {m} [95% CI]: development out of fold ({len(dev_names)} records, "
          f"{a.num_folds} folds), test fold {a.test_fold} ({len(test_names)}), external {a.external} ({len(ext_names)}); "
          f"xG: the records as recorded at gain G")
    for r, f in figs.items():
        print(f"{r}{'  <- chosen (mean out-of-fold AUC over x1, x0.8, x1.2)' if r == chosen else ''}: mean out-of-fold "
              f"{development[r]['mean_oof_auc']:.4f}")
        for c in cols:
            print(f"  {c:<36} {protocol.fmt_ci(f[c][m]):>24}")
    for r, d in diffs.items():
        print(f"paired, {r} minus {ref if r != 'external training' else 'PTB-XL only'}:" if r != "external training"
              else "paired, + external in training minus PTB-XL only (external records):")
        for c, v in d.items():
            print(f"  {c:<36} {protocol.fmt_diff(v):>28}")
    print(protocol.HOW_TO_READ)
    print(protocol.PROTOCOL)
    print(f"wall {time.time() - t0:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps({"task": a.task, "metric": m, "gains": a.gains, "amplitudes": a.amplitudes,
                                            "trees": {t: TREE_ROWS[t] for t in a.trees.split(",")}, "num_folds": a.num_folds,
                                            "external": a.external, "external_folds": a.external_folds, "seed": a.seed,
                                            "figures": figs, "development": development, "chosen": chosen,
                                            "differences": diffs, "wall_seconds": round(time.time() - t0),
                                            "bootstrap": protocol.bootstrap_info()}, indent=2, default=float) + "\n")
        print(f"figures: {a.json}")


if __name__ == "__main__":
    main()
