"""Mean or max over the test-time windows, per class, out of fold: does a premature beat (PVC, PAC), present in a
few 2.5 s windows only, want the max of the windows' probabilities where diffuse findings want their mean?

    python bench/window_aggregation.py --kfold-dir KFOLD_DIR --data-dir RAW_DIR [--task 2] [--against KFOLD_DIR]
                                       [--json PATH]

KFOLD_DIR is a tools/train_kfold.py run of a signal network trained with test-time windows (train.py
--crop-seconds 2.5 --tta-stride-seconds 1.25; e.g. bench/time_to_accuracy.py's). Every fold's best_model predicts
the development records it validated (RAW_DIR/train: out of fold, the test fold is not read) twice, its card's
windows aggregated by the mean, by the max of their probabilities and "episodic" (the max for PVC and PAC, the
mean for the rest: train.py --tta-agg episodic) (SlidingWindows, as predict.py does; the same weights, chosen
under the card's own aggregation). Pooled over the folds, each class's ROC AUC under each, and max minus mean and
episodic minus mean paired on the same records with their 95% bootstrap CIs (bench/protocol.py). --against another
k-fold run of the same split (e.g. the whole 10 s record, 8 s training crops): its out-of-fold predictions
(oof_predictions.csv) per class against the windowed mean, which asks whether short training crops, which often
miss the one labelled ectopic beat, cost those classes.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.runtime import configure_cpu_threads, load_before_paddle  # noqa: E402

configure_cpu_threads()
load_before_paddle()

import numpy as np  # noqa: E402

from bench import common, protocol  # noqa: E402
from models.families import Sources, family_of  # noqa: E402
from models.inference import predict_probs  # noqa: E402
from utils.artifacts import BEST_DIR, FOLD_DIR, OOF_PREDICTIONS, VAL_PREDICTIONS, ModelCard  # noqa: E402
from utils.runtime import get_logger, worker_count  # noqa: E402
from utils.inputs.signals import AGGREGATIONS  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402

AGGS = AGGREGATIONS  # mean, max, episodic (max for PVC and PAC only)


def fold_probs(task, model_dir, raw, log):
    """(names, {agg: probabilities}) of one fold's validation records; the card's own aggregation must give
    val_predictions.csv back (the check that this is what validation did)."""
    card = ModelCard.read(model_dir)
    if not card.input.get("windows"):
        raise SystemExit(f"{model_dir}: trained without test-time windows (--tta-stride-seconds): nothing to aggregate")
    names, _, saved = task.read_prediction_table(model_dir / VAL_PREDICTIONS)
    with tempfile.TemporaryDirectory() as tmp:  # the family reads test records from DATA_DIR/val
        (Path(tmp) / "val").symlink_to(raw / "train")
        dataset, _, missing = family_of(card).test_inputs(card, Sources(Path(tmp), Path(tmp), worker_count(0)),
                                                             names, model_dir, log)
        if missing:
            raise SystemExit(f"{model_dir}: {len(missing)} validation records unreadable (first: {next(iter(missing))})")
        out = {}
        own = card.input["windows"]["agg"]
        for agg in AGGS:  # the card is this function's own copy: changing its aggregation touches no file
            card.input["windows"]["agg"] = agg
            run, _ = family_of(card).load_runner(model_dir, card, task)
            out[agg] = predict_probs(run, task, dataset, 32, 0, f"{model_dir.parent.name} {agg}")
    if not np.allclose(out[own], saved, atol=2e-6):
        raise SystemExit(f"{model_dir}: its {own} aggregation does not give val_predictions.csv back")
    return names, out


def pooled(task, kfold, raw, log):
    unfinished = sorted(set(Path(kfold).glob(FOLD_DIR.format("*"))) - set(common.finished_folds(kfold)))
    if unfinished:  # pooling the others would score fewer records without saying so
        raise SystemExit(f"{unfinished[0]}: no {BEST_DIR} (an unfinished fold): finish it with tools/train_kfold.py")
    names, probs = [], {a: [] for a in AGGS}
    for fold in common.finished_folds(kfold):
        n, p = fold_probs(task, fold / BEST_DIR, raw, log)
        names += n
        for a in AGGS:
            probs[a].append(p[a])
    return names, {a: np.concatenate(v) for a, v in probs.items()}


def against(task, kfold, names):
    got, _, p = task.read_prediction_table(Path(kfold) / OOF_PREDICTIONS)
    order = {n: i for i, n in enumerate(got)}
    missing = [n for n in names if n not in order]
    if missing:
        raise SystemExit(f"--against {kfold}: {len(missing)} records not predicted there (another split?)")
    return p[[order[n] for n in names]]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kfold-dir", required=True)
    p.add_argument("--data-dir", required=True, help="the converted records the k-fold run trained on")
    p.add_argument("--task", type=int, default=2, choices=(1, 2))
    p.add_argument("--against", default=None, metavar="KFOLD_DIR")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    task, log, raw = get_task(a.task), get_logger(), Path(a.data_dir).resolve()
    names, probs = pooled(task, Path(a.kfold_dir), raw, log)
    truth = raw / task.label_file
    refs = task.read_labels(truth)
    y = dict(zip(refs["name"], task.label_array(refs["y"])))
    y = np.stack([y[n] for n in names])
    rows = {a_: protocol.decided(task, probs[a_], y=y) for a_ in AGGS}
    if a.against:
        rows["against"] = protocol.decided(task, against(task, a.against, names), y=y)
    report(a, task, truth, names, rows)


def report(a, task, truth, names, rows):
    ms = protocol.auc_metrics(task)
    label = {m: protocol.metric_label(task, m) for m in ms}
    pairs = [("max", "mean"), ("episodic", "mean")] + ([("mean", "against")] if "against" in rows else [])
    diffs = {f"{x} - {y_}": protocol.paired_differences(task, truth, names, rows[x], rows[y_], ms) for x, y_ in pairs}
    print(f"\n=== test-time windows, mean, max or episodic: {a.kfold_dir}, {len(names)} development records out of fold "
          f"(Task {a.task}; AUC, and paired differences with 95% CIs)")
    head = f"{'':<24}{'mean':>8}{'max':>8}{'episodic':>9}" + (f"{'against':>9}" if "against" in rows else "")
    print(head + "".join(f"  {k:<46}" for k in diffs))
    for m in ms:
        d0 = next(iter(diffs.values()))[m]
        ep = diffs["episodic - mean"][m]["a"]
        vals = (f"{d0['b'] if d0['b'] is not None else float('nan'):>8.3f}{d0['a'] if d0['a'] is not None else float('nan'):>8.3f}"
                f"{ep if ep is not None else float('nan'):>9.3f}")
        if "against" in rows:
            v = diffs["mean - against"][m]["b"]
            vals += f"{v if v is not None else float('nan'):>9.3f}"
        print(f"{label[m]:<24}{vals}" + "".join(f"  {protocol.fmt_diff(d[m]) if d[m]['diff'] is not None else 'n/a':<46}"
                                                for d in diffs.values()))
    if "against" in rows:
        print(f"against: {a.against} (its out-of-fold predictions)")
    print(protocol.HOW_TO_READ)
    if a.json:
        Path(a.json).write_text(json.dumps({"kfold_dir": a.kfold_dir, "against": a.against, "task": a.task,
                                            "n_records": len(names), "differences": diffs,
                                            "bootstrap": protocol.bootstrap_info()}, indent=2, default=float) + "\n")
        print(f"figures: {a.json}")


if __name__ == "__main__":
    main()
