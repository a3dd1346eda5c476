"""Which ensembles pay for themselves? Members and their fusions scored out of fold, against their training cost.

    python bench/oof_ensembles.py --data-dir RAW_DIR [--task 1|2] --run NAME=KFOLD_DIR [--run NAME=KFOLD_DIR ...]
                                  [--ensemble NAME+NAME[+...] ...] [--baseline NAME] [--stacking] [--json PATH]
                                  [--test-truth FILE --test ROW=PREDICT_REPORT [--test ROW=PREDICT_REPORT ...]]

Every --run is a finished tools/train_kfold.py run on RAW_DIR's development records (any family, any recipe or
seed; e.g. bench/time_to_accuracy.py's output folders). Nothing is trained or predicted again: each run's folds'
val_predictions.csv are its out-of-fold predictions, and an --ensemble is fused out of fold exactly as predict.py
fuses its members (utils/scoring/fusion.py: the mean of the probabilities, runs of one architecture averaged first
and each architecture weighted by its number of members, each record fused from the folds that validated it), or
with --stacking also as predict.py --weights auto does
(the logistic regression per output, cross-fitted over the members' folds, so never scored on the records it was
fitted on). Runs of different splits (another --seed) fuse too: a record is still predicted only by folds that
never trained on it.

Prints per run and ensemble the out-of-fold ROC AUC (Task 2: macro AUC, and per class) with its 95% bootstrap CI
over the records every run predicted, its training minutes (the folds' sum: train.py's clock, evaluations not
counted) and the paired difference (bench/protocol.py) against --baseline (default: the first --run) and against
the ensemble's own best member (picked on these same records, which flatters the member: the difference errs
against the ensemble). Choosing an ensemble here is choosing on the development records; its test figure
comes from predict.py on the test fold, once: --test names the predict.py reports (--report) of the rows chosen
here, run on the test records, and --test-truth their labels; each is scored with its 95% CI and compared, paired,
with every --test row before it (bench/protocol.py), and the JSON keeps them under "test".
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench import common, protocol  # noqa: E402
from utils.artifacts import BEST_DIR, ModelCard  # noqa: E402
from utils.scoring.fusion import crossfit, out_of_fold_fusion, pooled_logits, read_out_of_fold  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402


# -- the runs ------------------------------------------------------------------------------------------------------------
def fold_dirs(kfold):
    """The fold folders of a finished k-fold run (each with best_model/); a one-line error otherwise."""
    folds = common.finished_folds(kfold)
    if not folds:
        raise SystemExit(f"{kfold}: no fold_*/{BEST_DIR} (is this a finished tools/train_kfold.py output folder?)")
    return folds


def read_run(kfold, task):
    """{"oof": each fold's out-of-fold (names, labels, probabilities), read once, "groups": their architectures,
    "minutes": the folds' training minutes}."""
    folds = fold_dirs(kfold)
    cards = [ModelCard.read(f / BEST_DIR) for f in folds]
    wrong = [str(f) for f, c in zip(folds, cards) if c.task != task.number]
    if wrong:
        raise SystemExit(f"{wrong[0]}: a Task {3 - task.number} model; this bench scores Task {task.number}")
    minutes = [common.training_minutes(f, c) for f, c in zip(folds, cards)]
    return {"oof": read_out_of_fold([f / BEST_DIR for f in folds], task), "groups": [c.arch for c in cards],
            "minutes": None if None in minutes else sum(minutes)}


# -- out-of-fold probabilities ------------------------------------------------------------------------------------------
def fused(task, runs, names, how="mean"):
    """{record: out-of-fold probability} of the runs `names` fused as predict.py fuses them (`how`: mean or
    stacking, cross-fitted)."""
    oof = [t for n in names for t in runs[n]["oof"]]
    groups = [g for n in names for g in runs[n]["groups"]]
    if how == "mean":
        recs, _, p = out_of_fold_fusion(oof, np.ones(len(oof)), task, groups)
        return dict(zip(recs, p))
    recs, truth, L, fold_ids = pooled_logits(oof, groups)  # runs of one architecture are one family, as predict.py has it
    y = np.asarray(truth, dtype=np.float64).reshape(len(recs), -1)
    p, _ = crossfit(L, y, fold_ids, list(dict.fromkeys(groups)))
    return dict(zip(recs, p[:, 0] if task.num_probs == 1 else p))


def rows_of(task, runs, ensembles, stacking):
    """{row name: ({record: probability}, training minutes, its runs)} for every run and ensemble."""
    rows = {n: (fused(task, runs, [n]), runs[n]["minutes"], [n]) for n in runs}
    for e in ensembles:
        cost = [runs[n]["minutes"] for n in e]
        minutes = None if None in cost else sum(cost)
        rows[" + ".join(e)] = (fused(task, runs, e), minutes, e)
        if stacking:
            rows[" + ".join(e) + " (stacked)"] = (fused(task, runs, e, "stacking"), minutes, e)
    return rows


# -- scoring --------------------------------------------------------------------------------------------------------------
def score(task, truth_path, rows, baseline):
    """Figures of every row on the records every row predicted, and the paired differences against the baseline and
    against each ensemble's best member."""
    refs = task.read_labels(truth_path)
    y_of = dict(zip(refs["name"], task.label_array(refs["y"])))
    names = sorted(set.intersection(*(set(p) for p, _, _ in rows.values())) & set(y_of))
    if not names:
        raise SystemExit(f"{truth_path}: none of the runs' out-of-fold records are labelled here (another data dir?)")
    y = np.stack([y_of[n] for n in names])
    decided = {r: protocol.decided(task, np.stack([p[n] for n in names]), y=y) for r, (p, _, _) in rows.items()}
    ms = protocol.auc_metrics(task)
    figs = {r: protocol.test_figures(task, truth_path, names, *d) for r, d in decided.items()}
    main = protocol.auc_metric(task)
    out = {}
    for r, (_, minutes, parts) in rows.items():
        best = protocol.choose({n: {main: figs[n][main]["value"]} for n in parts}, main)
        against = {baseline} | ({best} if best is not None and len(parts) > 1 else set())
        out[r] = {"runs": parts, "training_minutes": minutes, main: figs[r][main], "best_member": best,
                  "differences": {b: protocol.paired_differences(task, truth_path, names, decided[r], decided[b], ms)
                                  for b in sorted(against) if b != r}}
    return names, out


# -- output ----------------------------------------------------------------------------------------------------------------
def table_lines(task, results, baseline):
    main = protocol.auc_metric(task)
    width = max(len(r) for r in results) + 2
    lines = [f"{'':<{width}}{'train min':>10}  {'oof ' + main + ' [95% CI]':<26}{'- ' + baseline:<60}- best member"]
    for r, v in results.items():
        d = v["differences"]
        vs_base = protocol.fmt_diff(d[baseline][main]) if baseline in d else ""
        vs_best = (f"{protocol.fmt_diff(d[v['best_member']][main])} ({v['best_member']})"
                   if len(v["runs"]) > 1 and v["best_member"] in d else "")
        minutes = f"{v['training_minutes']:.1f}" if v["training_minutes"] is not None else "?"
        lines.append(f"{r:<{width}}{minutes:>10}  {protocol.fmt_ci(v[main]):<26}{vs_base:<60}{vs_best}")
    return lines


def per_class_lines(task, results, baseline):
    """Task 2: each class's AUC per row, and each ensemble's difference from the baseline."""
    ms = protocol.auc_metrics(task)[1:]
    rows = [r for r, v in results.items() if baseline in v["differences"]]
    lines = [f"{'AUC per class, - ' + baseline:<24}{baseline[:12]:>13}" + "".join(f"{r[:20]:>22}" for r in rows)]
    for m in ms:
        first = results[rows[0]]["differences"][baseline][m] if rows else None
        base = f"{first['b']:.3f}" if first and first["b"] is not None else "n/a"
        cells = []
        for r in rows:
            d = results[r]["differences"][baseline][m]
            cells.append(f"{d['diff']:+.3f} [{d['ci95'][0]:+.2f},{d['ci95'][1]:+.2f}]" if d["diff"] is not None else "n/a")
        lines.append(f"{protocol.metric_label(task, m):<24}{base:>13}" + "".join(f"{c:>22}" for c in cells))
    return lines


def test_scores(task, a):
    """The --test reports scored on --test-truth once, each compared with every earlier one: protocol.compare."""
    rows = list(a.tests)
    res = protocol.compare(task, a.test_truth, a.tests, [(r, q) for i, r in enumerate(rows) for q in rows[:i]])
    print(f"\n=== the test records ({a.test_truth}), scored once; paired differences of each with every earlier one")
    for r, figs in res["figures"].items():
        print(f"  {r:<28} " + ", ".join(f"{k} {protocol.fmt_ci(v)}" for k, v in figs.items() if k != "per_class"))
    print("\n".join(protocol.difference_lines(res["differences"], protocol.headline(task))))
    return {"truth": a.test_truth, "reports": a.tests, **res}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="the converted records the runs trained on (its label files)")
    p.add_argument("--task", type=int, default=1, choices=(1, 2))
    p.add_argument("--run", action="append", default=[], metavar="NAME=KFOLD_DIR", required=True)
    p.add_argument("--ensemble", action="append", default=[], metavar="NAME+NAME")
    p.add_argument("--baseline", default=None, help="the run every row is compared with (default: the first)")
    p.add_argument("--stacking", action="store_true", help="also each ensemble stacked (predict.py --weights auto)")
    p.add_argument("--json", default=None)
    p.add_argument("--test", action="append", default=[], metavar="ROW=PREDICT_REPORT",
                   help="a predict.py report on the test records (scored once, compared with the earlier ones)")
    p.add_argument("--test-truth", default=None, help="the test records' labels (with --test)")
    a = p.parse_args(argv)
    if bool(a.test) != bool(a.test_truth):
        p.error("--test and --test-truth go together")
    a.tests = dict(t.split("=", 1) for t in a.test)
    bad = [r for r in a.run if "=" not in r or not r.split("=", 1)[0]]
    if bad:
        p.error(f"--run {bad[0]!r}: expected NAME=KFOLD_DIR")
    a.runs = dict(r.split("=", 1) for r in a.run)
    a.ensembles = [e.split("+") for e in a.ensemble]
    unknown = sorted({n for e in a.ensembles for n in e} - set(a.runs))
    if unknown:
        p.error(f"--ensemble: {', '.join(unknown)}: not a --run name ({', '.join(a.runs)})")
    a.baseline = a.baseline or next(iter(a.runs))
    if a.baseline not in a.runs:
        p.error(f"--baseline {a.baseline}: not a --run name")
    return a


def main(argv=None):
    a = parse(argv)
    task = get_task(a.task)
    truth = Path(a.data_dir) / task.label_file
    runs = {n: read_run(Path(d), task) for n, d in a.runs.items()}
    names, results = score(task, truth, rows_of(task, runs, a.ensembles, a.stacking), a.baseline)
    print(f"\n=== out-of-fold ensembles, Task {a.task}: {len(names)} development records predicted by every run "
          f"(no test record is read)")
    print("\n".join(table_lines(task, results, a.baseline)))
    if task.several:
        print("\n".join(per_class_lines(task, results, a.baseline)))
    test = test_scores(task, a) if a.tests else None
    print(protocol.HOW_TO_READ)
    if a.json:
        Path(a.json).write_text(json.dumps({"task": a.task, "data_dir": a.data_dir, "runs": a.runs,
                                            "n_records": len(names), "baseline": a.baseline, "results": results,
                                            "test": test, "bootstrap": protocol.bootstrap_info()},
                                           indent=2, default=float) + "\n")
        print(f"figures: {a.json}")
    return results


if __name__ == "__main__":
    main()
