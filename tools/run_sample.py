"""The main job: the whole pipeline on the embedded sample, sized for a 2-core CPU (about 6 minutes).

process.py -> train.py for the picture model (ResNet50), the signal model (resnet1d) and the features model (ECG
measurements + gradient boosting) -> predict.py with the three fused; then each model's and the fusion's test
F1/AUC, the path of answer.zip and that of the printouts' index (a page per test record, as an
electrocardiograph prints it, with the fusion's answer).

    python tools/run_sample.py [--iters 120] [--signal-iters 150] [--image-size 224] [--pretrained auto|none|PATH]

Everything it writes lands in OUTPUT_DIR: a copy of DATA_DIR's records and label files (sample/, where the
measurement and signal caches then live), the pictures (dataset/), the three models, the answer and the printouts.
So the checkout stays as it was: the tests and a second run read the tracked sample, never a cache beside it.
The full-size defaults (640 px, batch 32, 10000 iterations, for a GPU) are those of the scripts themselves.
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.artifacts import BEST_DIR, VAL_PREDICTIONS, mirror_data_inputs  # noqa: E402
from utils.config import parse_config, script_constants  # noqa: E402
from utils.errors import PipelineError  # noqa: E402
from utils.runtime import run_script, run_stage  # noqa: E402
from utils.scoring.thresholds import enough  # noqa: E402

# -- configuration: the main job's sizes (every constant is also a flag: SIGNAL_ITERS -> --signal-iters) ------------
DATA_DIR = str(ROOT / "dataset" / "sample")  # records and label files (train/, val/, CSVs); copied to OUTPUT_DIR/sample first
OUTPUT_DIR = str(ROOT / "output")  # everything the job writes
IMAGE_SIZE = 224  # pictures are drawn and trained at this size (the scripts' default is 640)
BATCH_SIZE = 8  # picture model
ITERS = 120  # picture model
SIGNAL_BATCH_SIZE = 16
SIGNAL_ITERS = 150
WARMUP_ITERS = 10  # both networks
EVAL_INTERVAL = 30  # iterations between evaluations (both networks): enough to see a curve, few log lines
LOG_ITERS = 20
PRETRAINED = "auto"  # auto: ImageNet weights when cached or downloadable, else from scratch (with a notice) | none | PATH
NUM_WORKERS = 2  # DataLoader workers
# ------------------------------------------------------------------------------------------------------------


def run(step, args):
    """One script in a child process -> its wall seconds; a failed step ends the job in one line (the script has
    printed its own error above it)."""
    code, seconds, _ = run_stage(step, args, ROOT)
    if code:
        raise PipelineError(f"{step}: {args[0]} failed (exit status {code}); its message is above")
    return seconds


def pretrained_weights(requested):
    """--pretrained, with `auto` resolved to `none` (and a notice) when the ImageNet weights cannot be had."""
    if requested != "auto":
        return requested
    from utils.runtime import configure_cpu_threads

    configure_cpu_threads()  # importing paddle pins OMP_NUM_THREADS in this process's environment, which the scripts inherit
    from models.resnet import imagenet_weights_available

    if imagenet_weights_available():
        return requested
    print("notice: ImageNet weights are not cached and cannot be downloaded (offline): training from scratch "
          "(--pretrained none). Put resnet50.pdparams in Paddle's cache or pass --pretrained PATH to fine-tune.")
    return "none"


def steps(cfg, raw, out, pretrained):
    """{step: its script's arguments}, in order."""
    ds, signal_out, features_out = out / "dataset", out / "signal", out / "features"
    loop = ["--warmup-iters", cfg["WARMUP_ITERS"], "--eval-interval", cfg["EVAL_INTERVAL"], "--log-iters", cfg["LOG_ITERS"],
            "--num-workers", cfg["NUM_WORKERS"], "--overwrite"]  # the demo starts afresh each time, replacing its last run
    predict = ["predict.py", "--data-dir", raw, "--dataset-dir", ds, "--model", out / "best_model",
               signal_out / "best_model", features_out / "best_model", "--out", out / "answer.csv",
               "--printouts", out / "printouts"]
    if (raw / "val_reference.csv").exists():
        predict += ["--truth", raw / "val_reference.csv"]
    return {
        "process": ["process.py", "--data-dir", raw, "--out-dir", ds, "--size", cfg["IMAGE_SIZE"]],
        "train": ["train.py", "--dataset-dir", ds, "--output-dir", out, "--image-size", cfg["IMAGE_SIZE"],
                  "--batch-size", cfg["BATCH_SIZE"], "--iters", cfg["ITERS"], "--pretrained", pretrained,
                  "--save-interval", cfg["ITERS"], *loop],
        "train signal": ["train.py", "--arch", "resnet1d", "--data-dir", raw, "--output-dir", signal_out,
                         "--batch-size", cfg["SIGNAL_BATCH_SIZE"], "--iters", cfg["SIGNAL_ITERS"],
                         "--save-interval", cfg["SIGNAL_ITERS"], *loop],
        "train features": ["train.py", "--arch", "features", "--data-dir", raw, "--output-dir", features_out, "--overwrite"],
        "predict": predict,
    }


def print_table(report, pretrained, n_validation):
    if "metrics" not in report:
        return
    rows = [(m.get("title", m["arch"]), m["metrics"]) for m in report.get("members", [])]
    print(f"{'model':<28} {'test F1':>8} {'ROC AUC':>8}   ({report['metrics']['n']} test records, pretrained {pretrained})")
    for name, m in rows + [("fusion (mean)", report["metrics"])]:
        auc = "n/a" if m["auc"] is None else f"{m['auc']:.4f}"  # undefined when the test set has one class
        print(f"{name:<28} {m['f1']:>8.4f} {auc:>8}")
    if not enough(n_validation):
        print(f"{n_validation} validation records per model make this a smoke run of the pipeline, not a model: "
              f"docs/results.md has the accuracy measured on real patients.")


def main(argv=None):
    cfg = parse_config(script_constants(globals()), argv, description=__doc__.split("\n")[0], source_file=__file__)
    out = Path(cfg["OUTPUT_DIR"]).resolve()
    raw = mirror_data_inputs(Path(cfg["DATA_DIR"]).resolve(), out / "sample")
    pretrained = pretrained_weights(cfg["PRETRAINED"])
    times = {step: run(step, args) for step, args in steps(cfg, raw, out, pretrained).items()}

    report = json.loads((out / "predict_report.json").read_text())
    print("\n=== done: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    validated = (out / "features" / BEST_DIR / VAL_PREDICTIONS).read_text().splitlines()[1:]  # the folds all share
    print_table(report, pretrained, len(validated))
    print(f"submission: {report['zip']}")
    if report.get("printouts"):
        print(f"printouts: {report['printouts']} (open it in a browser: a page per test record)")


if __name__ == "__main__":
    run_script(main)
