"""Time to accuracy: how many minutes of CPU training each signal network needs to reach a validation AUC.

    python bench/time_to_accuracy.py [--src PTBXL_DIR] [--test-fold 8] [--task 1|2]
                                     [--archs resnet1d,xresnet1d18,xresnet1d50,inception1d] [--minutes 10]
                                     [--num-folds 3] [--folds 0,1,2] [--eval-interval 50] [--iters 3000] [--target 0.92]
                                     [--recipe "--crop-seconds 2.5 --tta-stride-seconds 1.25"]
                                     [--work-dir DIR] [--json PATH] [--figure PNG]

Each --archs network trains on the development records only (PTB-XL converted with --test-fold held out; the test
fold is never read) with tools/train_kfold.py: --num-folds folds of the same seeded split (--folds picks some), the
bench's CPU-sized configuration (bench/common.py) with a --minutes budget per fold (train.py --max-minutes:
the run stops after the first evaluation past it) and an evaluation every --eval-interval iterations. --iters only
shapes the learning-rate schedule (it decays to its last iteration); the default is more than any of these networks
trains in 10 minutes on 2 cores, so every run stops on its budget mid-schedule: the curve is one fixed schedule
seen at every moment, not a schedule tuned to each budget.

The clock is train.py's `train_seconds` of each evaluation record: training time (batches, with their data
loading) of that fold, evaluations and checkpoints not counted; it continues across a resume. The curve of an
arch is the MEAN OF ITS FOLDS' validation AUCs (Task 2: macro AUC) at each minute: each fold's AUC is its latest
evaluation's at that time (a step function), and the mean is defined from the time every fold has evaluated once.
(Pooling the folds' predictions would need every evaluation's predictions; only best_model's are kept.)
best_model is chosen by the AUC (--select-metric auc / macro_auc), so the final out-of-fold AUC (every development
record predicted by the fold that validated it, tools/train_kfold.py's pooled figure) is the best the budget gave.

Prints a table: per arch the minutes for its curve to reach --target (else the best it reached and when), the
final out-of-fold AUC with its 95% bootstrap CI over the development records (bench/protocol.py), the training
minutes (the folds' sum), the CPU minutes of the training processes (user + system time: cores x wall) and the
wall minutes of this run ("earlier" when every fold had finished before it: re-running only gathers the figures;
a * when some had, so they cover only the folds trained now). --json writes the curves and figures; --figure one
plot (AUC against training minutes, one line per arch, the target dashed).
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.runtime import configure_cpu_threads  # noqa: E402

configure_cpu_threads()  # before paddle is imported: the scripts we start inherit the environment

from bench import common, protocol  # noqa: E402
from utils.artifacts import FINISHED_FILE, FOLD_DIR  # noqa: E402
from utils.scoring.metrics import fmt  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402

ARCHS = "resnet1d,xresnet1d18,xresnet1d50,inception1d"


def budget_flags(arch, a, raw):
    """The bench's CPU-sized configuration, with the budget, the evaluations and the AUC choosing best_model (the
    later flags win)."""
    return [*common.train_flags(arch, a.task, raw, raw), "--iters", a.iters, "--eval-interval", a.eval_interval,
            "--save-interval", 10 * a.eval_interval, "--max-minutes", a.minutes, "--select-metric", protocol.auc_metric(get_task(a.task)),
            *a.recipe.split()]


def run_name(arch, a):
    """An arch's name in the table, the figure and the output folder: with --recipe, the recipe too."""
    return arch if not a.recipe else f"{arch} {a.recipe}"


def folder_name(name):
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("_")


# -- the curves: pure functions of the evaluation records ---------------------------------------------------------------
def fold_curve(evals, metric):
    """[(training minutes, value)] of one fold's evaluation records (those with a clock and a defined value)."""
    return [(r["train_seconds"] / 60, r[metric]) for r in evals
            if r.get("train_seconds") is not None and r.get(metric) is not None]


def mean_curve(folds):
    """The mean of the folds' step curves at every time one of them evaluated, from the time all have: [(minutes,
    mean value)]."""
    if not folds or any(not f for f in folds):
        return []
    times = sorted({t for f in folds for t, _ in f if t >= max(f[0][0] for f in folds)})
    return [(t, sum(latest(f, t) for f in folds) / len(folds)) for t in times]


def latest(curve, t):
    return [v for s, v in curve if s <= t][-1]


def minutes_to(curve, target):
    """The first minute the curve reaches `target`, or None."""
    return next((t for t, v in curve if v >= target), None)


def arch_result(fold_evals, metric, target):
    """One arch's figures from its folds' evaluation records ({fold: [record, ...]})."""
    folds = {k: fold_curve(e, metric) for k, e in fold_evals.items()}
    curve = mean_curve(list(folds.values()))
    best = max(curve, key=lambda p: p[1]) if curve else None
    return {"curve": [{"minutes": t, metric: v} for t, v in curve],
            "folds": {k: [{"minutes": t, metric: v} for t, v in c] for k, c in folds.items()},
            "minutes_to_target": minutes_to(curve, target),
            "best": {"minutes": best[0], metric: best[1]} if best else None,
            "train_minutes": sum(c[-1][0] for c in folds.values() if c)}


# -- a finished k-fold run ----------------------------------------------------------------------------------------------
def fold_evals(fold_dir):
    """The evaluation records of a fold's run: its last checkpoint's history (saved at its last iteration)."""
    from utils.training.checkpoint import STATE_FILE
    from utils.training.runs import checkpoint_dirs

    last = checkpoint_dirs(fold_dir)[-1]
    return json.loads((last / STATE_FILE).read_text())["history"]["eval"]


# -- output ---------------------------------------------------------------------------------------------------------------
def table_lines(results, metric, target):
    width = max([14, *map(len, results)])
    lines = [f"{'arch':<{width}} {'minutes to ' + format(target, 'g'):>16} {'final oof ' + metric + ' [95% CI]':>30} "
             f"{'train min':>10} {'CPU min':>8} {'wall min':>9}"]
    for arch, r in results.items():
        reached = (f"{r['minutes_to_target']:.1f}" if r["minutes_to_target"] is not None else
                   f"not ({fmt(r['best'][metric])} @{r['best']['minutes']:.1f})" if r["best"] else "n/a")
        oof = protocol.fmt_ci(r["oof"][metric]) if r.get("oof") else "n/a"
        part = "*" if r.get("folds_trained_now", len(r["folds"])) < len(r["folds"]) else ""  # some folds earlier
        cpu, wall = (f"{r[k]:.1f}{part}" if r.get(k) is not None else "earlier" for k in ("cpu_minutes", "wall_minutes"))
        lines.append(f"{arch:<{width}} {reached:>16} {oof:>30} {r['train_minutes']:>10.1f} {cpu:>8} {wall:>9}")
    return lines


def where(a):
    """The folds and the CPU the figures come from: '1 of 3 folds, CPU 2 cores, 1 thread'."""
    return (f"{len(a.fold_list)} of {a.num_folds} folds, CPU {os.cpu_count()} cores, "
            f"{os.environ.get('OMP_NUM_THREADS', '?')} thread(s)")


def plot(results, metric, target, path, title):
    """AUC against training minutes, one line per arch, the target dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arch, r in results.items():
        if r["curve"]:
            ax.step([p["minutes"] for p in r["curve"]], [p[metric] for p in r["curve"]], where="post", marker=".",
                    label=arch)
    ax.axhline(target, ls="--", color="grey", label=f"target {target:g}")
    ax.set(xlabel="training minutes per fold (evaluations not counted)",
           ylabel=f"validation {metric} (mean of the folds)")
    ax.set_title(title, fontsize="medium")  # the default size cuts a long title off at the figure's edge
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small", ncol=2)  # below the curves, which peak early
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(a, results, metric, extra=None):
    """The --figure and --json files."""
    title = f"Task {a.task}: time to accuracy ({where(a)}, {a.minutes:g} min per fold)"
    plot(results, metric, a.target, a.figure, title)
    print(f"figure: {a.figure}")
    if a.json:
        Path(a.json).write_text(json.dumps({"task": a.task, "metric": metric, "target": a.target, "minutes": a.minutes,
                                            "num_folds": a.num_folds, "eval_interval": a.eval_interval, "iters": a.iters,
                                            "curve": "mean of the folds' validation values at each training minute",
                                            "results": results, "bootstrap": protocol.bootstrap_info(), **(extra or {})},
                                           indent=2, default=str) + "\n")
        print(f"figures: {a.json}")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default=str(ROOT.parent / "shared" / "data" / "ptbxl"))
    p.add_argument("--test-fold", type=int, default=8)
    p.add_argument("--task", type=int, default=1, choices=(1, 2))
    p.add_argument("--archs", default=ARCHS)
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per fold (train.py --max-minutes)")
    p.add_argument("--num-folds", type=int, default=3)
    p.add_argument("--folds", default="", help="comma-separated folds to train (default: all)")
    p.add_argument("--eval-interval", type=int, default=50)
    p.add_argument("--iters", type=int, default=3000, help="the learning-rate schedule's length (the budget stops first)")
    p.add_argument("--target", type=float, default=0.92)
    p.add_argument("--recipe", default="", help="more train.py flags for every arch, e.g. the benchmark's input: "
                                                "'--crop-seconds 2.5 --tta-stride-seconds 1.25'")
    p.add_argument("--work-dir", default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--figure", default=None, help="default: time_to_accuracy.png in --work-dir (README's figures "
                                                   "are written only when named here)")
    a = p.parse_args(argv)
    from models.families import ARCHS as KNOWN

    a.archs = [s for s in a.archs.split(",") if s]
    wrong = [s for s in a.archs if KNOWN.get(s) != "signal"]
    if wrong or not a.archs:
        p.error(f"--archs: {', '.join(wrong) or '(none)'}: not a signal network ({', '.join(k for k, f in KNOWN.items() if f == 'signal')})")
    a.fold_list = [int(k) for k in a.folds.split(",")] if a.folds else list(range(a.num_folds))
    return a


def main(argv=None):
    a = parse(argv)
    task = get_task(a.task)
    metric = protocol.auc_metric(task)
    work = Path(a.work_dir or tempfile.mkdtemp(prefix="time_to_accuracy_")).resolve()
    a.figure = a.figure or str(work / "time_to_accuracy.png")
    raw, out = work / "raw", work / "output"
    times, cpu = {}, {}
    common.convert_ptbxl(a.src, raw, a.test_fold, times, cpu)
    results = {}
    for arch in a.archs:
        name = run_name(arch, a)
        kfold = out / folder_name(name)
        folds = {k: kfold / FOLD_DIR.format(k) for k in a.fold_list}
        now = [k for k, d in folds.items() if not (d / FINISHED_FILE).is_file()]  # to train in this run
        common.stage(f"train {name}", ["tools/train_kfold.py", "--num-folds", a.num_folds,
                                       "--folds", ",".join(map(str, a.fold_list)), "--output-dir", kfold, "--",
                                       *budget_flags(arch, a, raw)], times, cpu)
        evals = {k: fold_evals(d) for k, d in folds.items()}
        results[name] = {**arch_result(evals, metric, a.target), "oof": common.oof_figures(task, raw, kfold),
                         "cpu_minutes": cpu[f"train {name}"] / 60 if now else None,
                         "wall_minutes": times[f"train {name}"] / 60 if now else None, "folds_trained_now": len(now)}

    print(f"\n=== time to accuracy, Task {a.task}: {where(a)} (development records only, test fold {a.test_fold} "
          f"never read), {a.minutes:g} min per fold")
    print("\n".join(table_lines(results, metric, a.target)))
    print(f"minutes to {a.target:g}: when the mean of the folds' validation {metric} first reaches it (training time, "
          f"evaluations not counted); 'not (best @min)' when it never did; final oof: the best_model of each fold "
          f"(chosen by {metric}) on the records it validated, pooled, with its 95% bootstrap CI; CPU and wall: this "
          f"run's ('earlier': every fold had finished before; *: only the folds trained now)")
    print(protocol.PROTOCOL)
    write_outputs(a, results, metric, {"src": a.src, "test_fold": a.test_fold, "folds": a.fold_list, "seconds": times,
                                       "cpu_seconds": cpu,
                                       "configs": {run_name(m, a): budget_flags(m, a, "RAW") for m in a.archs}})
    return results


if __name__ == "__main__":
    main()
