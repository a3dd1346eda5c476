"""Which picture should the picture model see? The same CPU-sized training on PTB-XL pictures drawn with
several render settings, scored on the same unseen test patients.

    python bench/picture_settings.py [--src PTBXL_DIR] [--test-fold 8] [--arch resnet18] [--task 1] [--json PATH]
                                     [--settings KEY,KEY,...] [--num-folds K] [--image-size 160] [--work-dir DIR]
                                     [-- FLAGS]

--settings picks rows of SETTINGS by key (default: issue 22's whole-waveform comparison, DEFAULT_SETTINGS; the
earlier table: `--settings 4mv-1px,2mv-2px,per-lead`).

Without --num-folds each setting runs bench/ptbxl_accuracy.py with its process.py flags and is chosen by the
validation AUC of its best model on the development records (the same 90/10 split for every setting); flags after
`--` go to every ptbxl_accuracy.py run (e.g. `-- --iters 400`). With --num-folds K (>= 2) the records are
converted once, each setting's pictures are drawn into its own dataset directory and trained K times with
tools/train_kfold.py (the same seeded K-fold split of the development records for every setting, so every
development record is validated exactly once per setting), the K fold models are fused on the test fold by
predict.py, and the setting is chosen by its out-of-fold AUC (Task 2: macro AUC); flags after `--` go to every
train.py run (e.g. `-- --iters 400`; ptbxl_accuracy.py's CPU-sized picture configuration otherwise). With
--work-dir a killed K-fold run continues where it stopped when the command is run again.

One table at the end (test F1, AUC and accuracy for Task 1; macro F1/AUC for Task 2; each with its 95% bootstrap
CI over the test patients; the validation or out-of-fold AUC; minutes). The test fold is scored once per setting,
never chooses, and the chosen setting's paired differences to each other setting on the same test patients
(bench/protocol.py) say whether the choice is a finding. --json: one entry per setting (ptbxl_accuracy's figures
with "ci95" beside the test values; K-fold: "validation" is the out-of-fold figures), plus "chosen_by_validation"
and "differences_vs_chosen".
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.runtime import configure_cpu_threads  # noqa: E402

configure_cpu_threads()

from bench import common, protocol  # noqa: E402
from utils.scoring.metrics import fmt  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402

# Every row spells out every render setting: a row that leaned on process.py's defaults changed meaning when the
# defaults became soft + 0.5 Hz (its "clip" and "high-pass alone" rows then drew the new default's pictures).
SETTINGS = {  # key: (name in the table, process.py flags)
    "4mv-1px": ("fixed 4 mV, 1 px (before)",
                "--layout 12x1 --scale fixed --mv-range 4 --line-width 1 --amplitude clip --highpass 0"),
    "2mv-2px": ("fixed 2 mV, 2 px, clip, no high-pass (the default before)",
                "--layout 12x1 --scale fixed --mv-range 2 --line-width 2 --amplitude clip --highpass 0"),
    "per-lead": ("per-lead autoscale, 1 px (original look)",
                 "--layout 12x1 --scale per-lead --mv-range 2 --line-width 1 --amplitude clip --highpass 0"),
    "soft": ("2 mV, soft beyond the band, no high-pass",
             "--layout 12x1 --scale fixed --mv-range 2 --line-width 2 --amplitude soft --highpass 0"),
    "highpass": ("2 mV, clip, high-pass 0.5 Hz",
                 "--layout 12x1 --scale fixed --mv-range 2 --line-width 2 --amplitude clip --highpass 0.5"),
    "soft-highpass": ("2 mV, soft, high-pass 0.5 Hz (the default now)",
                      "--layout 12x1 --scale fixed --mv-range 2 --line-width 2 --amplitude soft --highpass 0.5"),
    "6x2-soft-highpass": ("6x2, 4 mV (taller bands), soft, 0.5 Hz",
                          "--layout 6x2 --scale fixed --mv-range 4 --line-width 2 --amplitude soft --highpass 0.5"),
}
DEFAULT_SETTINGS = "2mv-2px,soft,highpass,soft-highpass,6x2-soft-highpass"  # issue 22: a picture of the whole waveform


def run_kfold(a, key, flags, raw, work, extra):
    """One setting, K-fold: its pictures, K fold models, the folds fused on the test fold -> a result entry as
    ptbxl_accuracy.py's --json writes one (the out-of-fold figures as "validation")."""
    ds, out = work / f"dataset-{key}", work / f"kfold-{key}"  # by key: a re-run with other --settings finds its own
    common.stage("process", ["process.py", "--data-dir", raw, "--out-dir", ds, "--size", a.image_size, *flags.split()])
    d = common.BENCH_DEFAULTS["picture"]
    train = ["--task", a.task, "--arch", a.arch, "--image-size", a.image_size, "--batch-size", d["batch_size"],
             "--iters", d["iters"], "--lr", d["lr"], "--warmup-iters", d["warmup_iters"], "--weight-decay",
             d["weight_decay"], "--eval-interval", 100,
             "--save-interval", 100, "--pretrained", "none", "--num-workers", 2, "--log-iters", 50,
             *extra]  # later flags win: `-- --iters 400` overrides the default
    common.stage("train folds", ["tools/train_kfold.py", "--num-folds", a.num_folds, "--output-dir", out, "--",
                                 "--data-dir", raw, "--dataset-dir", ds, *train])
    truth = common.truth_of(raw, a.task)
    report = out / "predict_report.json"
    common.stage("predict", ["predict.py", "--task", a.task, "--data-dir", raw, "--dataset-dir", ds, "--model",
                             *common.fold_models(out, range(a.num_folds)), "--out", out / "answer.csv",
                             "--truth", truth, "--report", report])
    m = json.loads(report.read_text())["metrics"]
    summary = common.kfold_summary(out)
    config = f"{a.num_folds} folds fused, train.py " + " ".join(map(str, train))
    return {"task": a.task, "config": config, "test": m, "validation": summary["out_of_fold"], "kfold": summary,
            "predict_report": str(report), "truth": str(truth)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default=str(ROOT.parent / "shared" / "data" / "ptbxl"))
    p.add_argument("--test-fold", type=int, default=8)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--task", type=int, default=1, choices=(1, 2))
    p.add_argument("--settings", default=DEFAULT_SETTINGS, help=f"comma-separated keys of: {', '.join(SETTINGS)}")
    p.add_argument("--num-folds", type=int, default=0, help="K >= 2: choose by out-of-fold AUC of K-fold runs")
    p.add_argument("--image-size", type=int, default=160)
    p.add_argument("--work-dir", default=None, help="default: a new temporary directory")
    p.add_argument("--json", default=None)
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    a = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    keys_chosen = a.settings.split(",")
    unknown = [k for k in keys_chosen if k not in SETTINGS]
    if unknown or len(set(keys_chosen)) != len(keys_chosen):
        p.error(f"--settings: unknown or repeated {unknown or keys_chosen}; choose from {', '.join(SETTINGS)}")
    if a.num_folds == 1 or a.num_folds < 0:
        p.error("--num-folds must be 0 (one 90/10 run per setting) or at least 2")
    work = Path(a.work_dir or tempfile.mkdtemp(prefix="picture_settings_")).resolve()
    raw = work / "raw"
    if a.num_folds:  # converted once, for every setting
        common.convert_ptbxl(a.src, raw, a.test_fold, once=True)
    results = {}
    for i, key in enumerate(keys_chosen):
        name, flags = SETTINGS[key]
        t = time.time()
        if a.num_folds:
            r = run_kfold(a, key, flags, raw, work, extra)
        else:
            out = work / f"{i}.json"
            common.stage(f"setting {key}", ["bench/ptbxl_accuracy.py", "--src", a.src, "--test-fold", a.test_fold,
                                            "--arch", a.arch, "--task", a.task, "--image-size", a.image_size,
                                            "--render", flags, "--json", out, "--work-dir", work / f"run{i}", *extra])
            r = json.loads(out.read_text())
        results[name] = {**r, "minutes": (time.time() - t) / 60, "render": flags, "key": key}
    keys, sel = get_task(a.task).headline, get_task(a.task).auc_metric  # the threshold-free AUC chooses
    chosen = protocol.choose({k: r.get("validation") for k, r in results.items()}, sel)
    task, truth = get_task(a.task), next(iter(results.values()))["truth"]
    pairs = [(chosen, k) for k in results if k != chosen] if chosen else []
    cmp = protocol.compare(task, truth, {k: r["predict_report"] for k, r in results.items()}, pairs, keys)
    for name, r in results.items():
        r["chosen_by_validation"] = name == chosen
        if name != chosen and chosen:
            r["differences_vs_chosen"] = {"chosen": chosen, **cmp["differences"][chosen][name]}
    n_val = (next(iter(results.values())).get("validation") or {}).get("n")
    print(f"\n=== picture settings, {a.arch}, Task {a.task}, PTB-XL test fold {a.test_fold}: "
          f"{next(iter(results.values()))['config']}")
    dev = "oof " if a.num_folds else "val "
    print(f"{'setting':<42} " + " ".join(f"{k:>20}" for k in keys) + f" {dev + sel:>14} {'minutes':>8}")
    for name, r in results.items():
        v = (r.get("validation") or {}).get(sel)
        print(f"{name:<42} " + " ".join(f"{protocol.fmt_ci(cmp['figures'][name][k]):>20}" for k in keys)
              + f" {fmt(v):>14} {r['minutes']:>8.1f}" + ("  <- chosen" if name == chosen else ""))
    if a.num_folds:
        print(f"chosen by the out-of-fold {sel} ({n_val} development records, each validated once by one of "
              f"{a.num_folds} folds, the same split for every setting; they also chose each fold's checkpoint, so all "
              f"are optimistic alike): {chosen}")
    else:
        print(f"chosen by the validation {sel} ({n_val} development records, the same split for every setting; they "
              f"also chose each run's checkpoint, so all are optimistic alike): {chosen}")
    if pairs:
        print(f"paired differences on the {results[chosen]['test']['n']} test patients (chosen minus other; "
              f"p(not better): share of resamples where the chosen setting is not better):")
        print("\n".join(protocol.difference_lines(cmp["differences"], keys)))
    print(protocol.HOW_TO_READ)
    print(protocol.PROTOCOL)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"figures: {a.json}")


if __name__ == "__main__":
    main()
