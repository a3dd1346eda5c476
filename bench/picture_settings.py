"""Which picture should the picture model see? The same CPU-sized training on PTB-XL pictures drawn with
several render settings, scored on the same unseen test patients.

    python bench/picture_settings.py [--src PTBXL_DIR] [--test-fold 8] [--arch resnet18] [--task 1] [--json PATH]
                                     [-- PTBXL_ACCURACY_FLAGS]

Each setting runs bench/ptbxl_accuracy.py with its process.py flags; one table at the end (test F1, AUC and
accuracy for Task 1; macro F1/AUC for Task 2; each with its 95% bootstrap CI over the test patients; the
validation AUC; minutes). Flags after `--` go to every ptbxl_accuracy.py run.

The setting is chosen by the validation AUC (Task 2: macro AUC) of each run's best model, on the development
records (the same 90/10 split for every setting), never by the test fold; the test fold is scored once per
setting, and the chosen setting's paired differences to each other setting on the same test patients
(bench/protocol.py) say whether the choice is a finding. --json: one entry per setting as before (ptbxl_accuracy's
figures with "ci95" beside the test values), plus "chosen_by_validation" and "differences_vs_chosen".
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.runtime import configure_cpu_threads  # noqa: E402

configure_cpu_threads()

from bench import protocol  # noqa: E402
from utils.scoring.metrics import fmt  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402

SETTINGS = {  # name: process.py flags
    "fixed 4 mV, 1 px (before)": "--mv-range 4 --line-width 1",
    "fixed 2 mV, 2 px": "--mv-range 2 --line-width 2",
    "per-lead autoscale, 1 px (original look)": "--scale per-lead --line-width 1",
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default=str(ROOT.parent / "shared" / "data" / "ptbxl"))
    p.add_argument("--test-fold", type=int, default=8)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--task", type=int, default=1, choices=(1, 2))
    p.add_argument("--json", default=None)
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    a = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    work = Path(tempfile.mkdtemp(prefix="picture_settings_"))
    results = {}
    for name, flags in SETTINGS.items():
        out = work / f"{len(results)}.json"
        t = time.time()
        subprocess.run([sys.executable, "bench/ptbxl_accuracy.py", "--src", a.src, "--test-fold", str(a.test_fold),
                        "--arch", a.arch, "--task", str(a.task), "--render", flags, "--json", str(out),
                        "--work-dir", str(work / f"run{len(results)}"), *extra], cwd=ROOT, check=True)
        results[name] = {**json.loads(out.read_text()), "minutes": (time.time() - t) / 60, "render": flags}
    keys = ("f1", "auc", "accuracy") if a.task == 1 else ("macro_f1", "macro_auc", "micro_f1")
    sel = keys[1]  # the threshold-free AUC chooses
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
    print(f"{'setting':<42} " + " ".join(f"{k:>20}" for k in keys) + f" {'val ' + sel:>14} {'minutes':>8}")
    for name, r in results.items():
        v = (r.get("validation") or {}).get(sel)
        print(f"{name:<42} " + " ".join(f"{protocol.fmt_ci(cmp['figures'][name][k]):>20}" for k in keys)
              + f" {fmt(v):>14} {r['minutes']:>8.1f}" + ("  <- chosen" if name == chosen else ""))
    print(f"chosen by the validation {sel} ({n_val} development records, the same split for every setting; they also "
          f"chose each run's checkpoint, so all are optimistic alike): {chosen}")
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
