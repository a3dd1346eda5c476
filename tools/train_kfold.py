"""Train every fold of a seeded k-fold split, each into its own directory, then score the out-of-fold predictions.

    python tools/train_kfold.py --num-folds 5 --output-dir output/kfold [--folds 0,1] -- <train.py flags>

Fold k runs `train.py <flags> --num-folds N --val-fold k --output-dir OUT/fold_k --resume auto`: the folds share
train.py's seeded split (same --seed, same records), so every labelled record is validated by exactly one fold.
A fold whose run finished (OUT/fold_k/finished.json) is skipped, and a killed fold continues from its latest
checkpoint (`--resume auto`; set --save-interval to checkpoint often), so re-running the command after a kill
picks up where it stopped. Changing the train.py flags between runs into the same OUT is refused.

At the end: OUT/oof_predictions.csv (every fold's best_model/val_predictions.csv, i.e. one out-of-fold prediction
per record), its scores with thresholds tuned on it, and OUT/kfold_summary.json. Fuse the folds with
    python predict.py --model OUT/fold_*/best_model ...
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.runtime import configure_cpu_threads  # noqa: E402

configure_cpu_threads()  # before paddle is imported: the train.py processes inherit the environment

from utils.artifacts import BEST_DIR, FINISHED_FILE, FOLD_DIR, KFOLD_SUMMARY, OOF_PREDICTIONS, VAL_PREDICTIONS, ModelCard  # noqa: E402
from utils.atomic import write_text  # noqa: E402
from utils.scoring import thresholds as tuning  # noqa: E402

MARKER = "kfold.json"  # the train.py flags a fold was started with
FITTED = {"scale"}  # model.json input settings each fold fits on its own training records: they differ by design
OWN_FLAGS = ("--output-dir", "--num-folds", "--val-fold", "--resume")


def fold_command(train_flags, num_folds, k, out):
    return [sys.executable, str(ROOT / "train.py"), *train_flags, "--num-folds", str(num_folds), "--val-fold", str(k),
            "--output-dir", str(out), "--resume", "auto"]


def check_marker(fold_dir, train_flags, num_folds):
    """Refuse to continue a fold started with other flags; record the flags of a new one."""
    marker = fold_dir / MARKER
    want = {"train_flags": train_flags, "num_folds": num_folds}
    if marker.is_file():
        had = json.loads(marker.read_text())
        if had != want:
            raise SystemExit(f"error: {marker}: this fold was started with other flags ({' '.join(had['train_flags'])}, "
                             f"{had['num_folds']} folds); use another --output-dir or delete {fold_dir}")
    else:
        fold_dir.mkdir(parents=True, exist_ok=True)
        write_text(marker, json.dumps(want, indent=2) + "\n")


def run_fold(train_flags, num_folds, k, out):
    fold_dir = out / FOLD_DIR.format(k)
    check_marker(fold_dir, train_flags, num_folds)
    if (fold_dir / FINISHED_FILE).is_file():
        print(f"=== fold {k}/{num_folds}: finished ({fold_dir / FINISHED_FILE}), skipped", flush=True)
        return 0.0
    cmd = fold_command(train_flags, num_folds, k, fold_dir)
    if not any(fold_dir.glob("iter_*")):  # nothing to continue: a run killed before its first checkpoint starts afresh
        cmd.append("--overwrite")
    print(f"\n=== fold {k}/{num_folds}: {' '.join(cmd[1:])}", flush=True)
    t = time.time()
    r = subprocess.run(cmd, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"error: fold {k} failed (train.py exit status {r.returncode}); re-run this command to "
                         f"continue from its latest checkpoint")
    return time.time() - t


def mixed_settings(cards):
    """The model.json input settings in which some fold differs from the first, beyond what each fold fits: folds that
    finished under another version of the code (a finished fold is skipped, not retrained), e.g. features folds
    trained before and after the trees changed."""
    first, *rest = (c.input for c in cards.values())
    return sorted({key for other in rest for key in set(first) | set(other)
                   if key not in FITTED and first.get(key) != other.get(key)})


def summarize(out, folds):
    """Out-of-fold predictions of all folds -> OUT/oof_predictions.csv, scores, OUT/kfold_summary.json."""
    import pandas as pd

    from utils.ecg.io import CSV_ENCODING
    from utils.scoring.tasks import get_task

    cards = {k: ModelCard.read(out / FOLD_DIR.format(k) / BEST_DIR) for k in folds}
    mixed = mixed_settings(cards)
    if mixed:
        print(f"warning: {out}: the folds' models differ in {', '.join(mixed)} (model.json input): some finished under "
              f"another version of the code; delete those fold_k directories and re-run to fuse like with like",
              file=sys.stderr, flush=True)
    task = get_task(next(iter(cards.values())).task)
    tables = [pd.read_csv(out / FOLD_DIR.format(k) / BEST_DIR / VAL_PREDICTIONS, dtype={"name": str, "truth": str},
                          keep_default_na=False, encoding=CSV_ENCODING).assign(fold=k) for k in folds]
    oof = pd.concat(tables, ignore_index=True).sort_values("name")
    oof.to_csv(out / OOF_PREDICTIONS, index=False, float_format="%.6g")
    _, y, probs = task.read_prediction_table(out / OOF_PREDICTIONS)
    result = task.evaluate(y, probs)
    print(f"\n=== out-of-fold ({len(oof)} records, {len(folds)} folds; thresholds tuned on them):")
    for line in result.lines(prefix=""):
        print(line)
    for k, c in cards.items():
        print(f"fold {k}: best validation {c.selected_by} {c.best_metric:.4f} at iter {c.iter}")
    summary = {"task": task.number, "folds": {k: {"best_metric": c.best_metric, "selected_by": c.selected_by,
                                                  "iter": c.iter} for k, c in cards.items()},
               "out_of_fold": {"n": len(oof), **result.record}, "thresholds": result.thresholds,
               "tuned_on": tuning.tuned_on(f"out of fold ({len(folds)} folds)", len(oof))}
    write_text(out / KFOLD_SUMMARY, json.dumps(summary, indent=2, default=str) + "\n")
    models = " ".join(str(out / FOLD_DIR.format(k) / BEST_DIR) for k in folds)
    print(f"fuse the folds: python predict.py --task {task.number} --model {models} ...")
    return summary


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    own, train_flags = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="flags after -- go to train.py")
    p.add_argument("--num-folds", type=int, default=5)
    p.add_argument("--output-dir", default="output/kfold")
    p.add_argument("--folds", default="", help="comma-separated fold numbers to train (default: all)")
    a = p.parse_args(own)
    clash = [f for f in train_flags if f.split("=")[0] in OWN_FLAGS]
    if clash:
        p.error(f"{', '.join(clash)}: set by this tool for each fold; pass --num-folds/--output-dir before --")
    if a.num_folds < 2:
        p.error("--num-folds must be at least 2")
    folds = [int(k) for k in a.folds.split(",")] if a.folds else list(range(a.num_folds))
    if any(not 0 <= k < a.num_folds for k in folds):
        p.error(f"--folds {a.folds}: folds are 0..{a.num_folds - 1}")
    out = Path(a.output_dir).resolve()
    t0 = time.time()
    for k in folds:
        run_fold(train_flags, a.num_folds, k, out)
    summary = summarize(out, folds)
    print(f"done: {len(folds)} folds in {out} ({(time.time() - t0) / 60:.1f} min this run)")
    return summary


if __name__ == "__main__":
    main()
