"""Accuracy on real patients: PTB-XL subset -> competition layout -> process -> train -> predict.

    python bench/ptbxl_accuracy.py [--task 1|2] [--arch resnet50|resnet18|...|resnet1d|xresnet1d101|...] [--src PTBXL_DIR]
                                   [--test-fold 8]
                                   [--work-dir DIR] [--iters N] [--image-size 160] [--batch-size B] [--lr LR] [--json PATH]
                                   [-- TRAIN_FLAGS]

Defaults per family (CPU-sized): pictures 160 px, batch 16, 700 iterations, LR 0.01 (Momentum); the signal family
(resnet1d, xresnet1d18/34/50/101, inception1d) batch 32, 600 iterations, LR 0.001 (Adam). A signal model needs no
pictures: the process stage is skipped.

The test fold (default 8) is the test set, the other folds train and validate (PTB-XL folds separate patients).
The configuration is sized to finish in under an hour on a 2-core CPU, and trains from scratch: ImageNet weights
cannot be downloaded here (pass --pretrained auto or a .pdparams path where they can). Prints the test scores
(Task 1: accuracy, F1 with abnormal positive, ROC AUC; Task 2: macro/micro F1, macro AUC and the per-class
table), each with its 95% bootstrap CI over the test patients (bench/protocol.py: 1000 seeded resamples), the
validation figures of the best model (the development records: what may choose a setting; the test fold only
reports), the configuration and the wall time of each stage; --json writes all of it to a file (the test
metrics as predict.py reports them, with "ci95": {figure: [low, high]} beside them). Flags after `--` go
to train.py as they are (e.g. `-- --pos-weight none`).

--external RAW_DIR (a converted set with val/ and its truth files, e.g. from tools/convert_cinc.py): after the run,
its test records are rendered into the work dir and the same best model predicts them; their scores are printed
beside the in-distribution ones and written to the --json output under "external".
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

configure_cpu_threads()  # before paddle is imported (below): it would pin OMP_NUM_THREADS=1 for the scripts we start

from bench import common, protocol  # noqa: E402
from utils.artifacts import BEST_DIR, INFO_FILE, VAL_PREDICTIONS  # noqa: E402
from utils.scoring.metrics import fmt  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402


def external_truth(parser, raw_dir, task):
    """The --external set's truth file for the task; a set without val/ records or truth is refused up front."""
    raw_dir = Path(raw_dir)
    truth = common.truth_of(raw_dir, task)
    if not any((raw_dir / "val").glob("*.mat")):
        parser.error(f"--external {raw_dir}: no test records in {raw_dir / 'val'}")
    if not truth.is_file():
        parser.error(f"--external {raw_dir}: truth file {truth} not found")
    return truth


def run_external(a, truth, work, out, times):
    """Render the external set into the work dir (picture models) and predict it with the same best model: (its
    predict report's metrics, their bootstrap figures)."""
    ds = work / "external_dataset"
    report = out / "external_predict_report.json"
    if common.is_picture(a.arch):
        common.stage("process external", ["process.py", "--data-dir", a.external, "--out-dir", ds, "--size",
                                          a.image_size, *a.render.split()], times)
    common.stage("predict external", ["predict.py", "--task", a.task, "--data-dir", a.external, "--dataset-dir", ds,
                                      "--model", out / BEST_DIR, "--out", out / "external_answer.csv", "--truth", truth,
                                      "--report", report], times)
    return json.loads(report.read_text())["metrics"], protocol.report_figures(get_task(a.task), truth, report)


def print_scores(label, task, m, figs):
    """The test scores line with 95% CIs (and Task 2's per-class table) of one predict report's metrics."""
    c = protocol.fmt_ci
    if not task.several:
        print(f"{label}: accuracy {c(figs['accuracy'])}, F1 {c(figs['f1'])}, ROC AUC {c(figs['auc'])}, "
              f"confusion {m['confusion']}")
    else:
        print(f"{label}: macro F1 {c(figs['macro_f1'])}, micro F1 {c(figs['micro_f1'])}, macro AUC {c(figs['macro_auc'])}")
        print("\n".join(protocol.per_class_ci_lines(figs)))


def validation_figures(task, model_dir):
    """The best model's figures on its validation records (best_model/val_predictions.csv, thresholds tuned on
    them as train.py did): the development records' say, which a bench may choose settings by."""
    path = Path(model_dir) / VAL_PREDICTIONS
    if not path.is_file():
        return None
    _, y, probs = task.read_prediction_table(path)
    return {"n": int(len(y)), **task.evaluate(y, probs).record}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default=str(ROOT.parent / "shared" / "data" / "ptbxl"))
    p.add_argument("--work-dir", default=None, help="default: a new temporary directory")
    p.add_argument("--test-fold", type=int, default=8)
    p.add_argument("--image-size", type=int, default=160)
    p.add_argument("--arch", default="resnet50", help="resnet18 | resnet34 | resnet50 | resnet101 | resnet1d | "
                   "xresnet1d18 | xresnet1d34 | xresnet1d50 | xresnet1d101 | inception1d | features")
    p.add_argument("--batch-size", type=int, default=None, help="default: per family (see above)")
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--warmup-iters", type=int, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--eval-interval", type=int, default=100)
    p.add_argument("--render", default="", help='process.py flags for the pictures, e.g. "--mv-range 2 --line-width 2"')
    p.add_argument("--pretrained", default="none")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--task", type=int, default=1, choices=(1, 2))
    p.add_argument("--json", default=None, help="also write every printed figure to this JSON file")
    p.add_argument("--external", default=None, metavar="RAW_DIR",
                   help="also score the model on this converted set's val/ records (other hospitals)")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    a = p.parse_args(argv[:len(argv) - len(extra) - (1 if extra or "--" in argv else 0)])
    for k, v in common.BENCH_DEFAULTS[common.family(a.arch)].items():
        if getattr(a, k) is None:
            setattr(a, k, v)

    if a.external:  # the stages run in the repository: resolve from here
        a.external = str(Path(a.external).resolve())
    ext_truth = external_truth(p, a.external, a.task) if a.external else None  # checked before the long run
    work = Path(a.work_dir or tempfile.mkdtemp(prefix="ptbxl_accuracy_")).resolve()  # the stages run in ROOT
    raw, ds, out = work / "raw", work / "dataset", work / "output"
    times = {}
    common.convert_ptbxl(a.src, raw, a.test_fold, times)
    if common.is_picture(a.arch):
        common.stage("process", ["process.py", "--data-dir", raw, "--out-dir", ds, "--size", a.image_size,
                                 *a.render.split()], times)
    common.stage("train", ["train.py", "--task", a.task, "--arch", a.arch, "--data-dir", raw, "--dataset-dir", ds,
                           "--output-dir", out, "--image-size", a.image_size, "--batch-size", a.batch_size,
                           "--iters", a.iters, "--lr", a.lr, "--warmup-iters", a.warmup_iters,
                           "--weight-decay", a.weight_decay, "--eval-interval", a.eval_interval, "--save-interval", a.iters, "--pretrained", a.pretrained,
                           "--num-workers", a.num_workers, "--log-iters", 20, *extra], times)
    truth = common.truth_of(raw, a.task)
    common.stage("predict", ["predict.py", "--task", a.task, "--data-dir", raw, "--dataset-dir", ds, "--model",
                             out / BEST_DIR, "--out", out / "answer.csv", "--truth", truth], times)

    ext_m, ext_figs = run_external(a, ext_truth, work, out, times) if a.external else (None, None)
    task = get_task(a.task)
    m = json.loads((out / "predict_report.json").read_text())["metrics"]
    figs = protocol.report_figures(task, truth, out / "predict_report.json")
    val = validation_figures(task, out / BEST_DIR)
    info = json.loads((out / BEST_DIR / INFO_FILE).read_text())
    n_train = sum(1 for _ in open(raw / "trainreference.csv")) - 1
    inp = {"picture": f"{a.image_size} px{(' ' + a.render) if a.render else ''}", "features": "ECG measurements",
           "signal": f"raw signal {info['input'].get('fs')} Hz"}[common.family(a.arch)]
    loop = (f"batch {a.batch_size}, {a.iters} iterations, lr {a.lr} (warmup {a.warmup_iters}, poly 0.9)"
            if common.family(a.arch) != "features" else "gradient boosting, fitted at once")
    config = (f"{a.arch} (pretrained {a.pretrained}), {inp}, {loop}, CPU, {os.cpu_count()} cores"
              + (f", {' '.join(extra)}" if extra else ""))
    throughput = (a.iters * a.batch_size if common.family(a.arch) != "features" else n_train) / times["train"]
    print(f"\n=== PTB-XL accuracy, Task {a.task}")
    print(f"data: {n_train} labelled records from folds != {a.test_fold} (90/10 train/validation), "
          f"{m['n']} test records from fold {a.test_fold}; real patients, patients never cross folds")
    print(f"config: {config}; best validation {info['selected_by']} {info['best_metric']:.4f} at iter {info['iter']}")
    if val is not None:
        print(f"validation ({val['n']} development records, thresholds tuned on them): "
              + ", ".join(f"{k} {fmt(val[k])}" for k in task.headline))
    print_scores("test", get_task(a.task), m, figs)
    if ext_m is not None:
        print(f"external: {ext_m['n']} test records of {a.external} (other hospitals; same model and thresholds)")
        print_scores("external test", get_task(a.task), ext_m, ext_figs)
    print(protocol.HOW_TO_READ)
    print(protocol.PROTOCOL)
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + f", total {sum(times.values()) / 60:.1f} min; "
          f"training throughput {throughput:.1f} records/s (including evaluations)")
    print(f"outputs: {out} (training_curves.png, train.log{', per_class.png' if a.task == 2 else ''})")
    if a.json:
        Path(a.json).write_text(json.dumps({"task": a.task, "src": str(a.src), "test_fold": a.test_fold, "config": config,
                                            "args": vars(a), "n_train": n_train, "test": protocol.with_ci(m, figs),
                                            "best_model": {k: info[k] for k in ("iter", "selected_by", "best_metric",
                                                                                 "thresholds")},
                                            "validation": val, "bootstrap": protocol.bootstrap_info(),
                                            "predict_report": str(out / "predict_report.json"), "truth": str(truth),
                                            "seconds": times, "train_records_per_s": throughput,
                                            **({"external": {"raw_dir": str(a.external), "truth": str(ext_truth),
                                                             "test": protocol.with_ci(ext_m, ext_figs),
                                                             "predict_report": str(out / "external_predict_report.json")}}
                                               if ext_m is not None else {})},
                                           indent=2, default=str) + "\n")
        print(f"figures: {a.json}")


if __name__ == "__main__":
    main()
