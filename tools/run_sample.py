"""The main job on the embedded sample, sized for a 2-core CPU (under 10 minutes): process.py -> train.py for the
picture model (ResNet50), the signal model (resnet1d) and the features model (ECG measurements + gradient boosting)
-> predict.py with the three fused, then print each model's and the fusion's test F1/AUC, the path of answer.zip
(the fusion's answer) and that of the printouts' index (OUTPUT_DIR/printouts/index.html: every test record as an
electrocardiograph prints it, with the fusion's answer).

    python tools/run_sample.py [--iters 120] [--signal-iters 150] [--image-size 224] [--batch-size 8] [--pretrained auto|none|PATH]

The full-size defaults (640 px, batch 32, 10000 iterations, for a GPU) are those of the scripts themselves.
`--pretrained auto` falls back to `none` (from scratch) with a notice when the ImageNet weights can be neither
found in Paddle's cache nor downloaded.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(step, args):
    print(f"\n=== {step}: {' '.join(args)}", flush=True)
    t = time.time()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)
    return time.time() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=ROOT / "dataset/sample", type=Path, help="raw competition layout (train/, val/, CSVs)")
    p.add_argument("--dataset-dir", default=ROOT / "dataset", type=Path)
    p.add_argument("--output-dir", default=ROOT / "output", type=Path)
    p.add_argument("--image-size", type=int, default=224, help="rendered and trained at this size")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--iters", type=int, default=120)
    p.add_argument("--signal-iters", type=int, default=150, help="iterations of the signal model (batch 16)")
    p.add_argument("--warmup-iters", type=int, default=10)
    p.add_argument("--pretrained", default="auto")
    p.add_argument("--num-workers", type=int, default=2)
    a = p.parse_args(argv)
    data_dir, dataset_dir, out = (str(x.resolve()) for x in (a.data_dir, a.dataset_dir, a.output_dir))

    pretrained = a.pretrained
    if pretrained == "auto":
        sys.path.insert(0, str(ROOT))
        from utils.runtime import configure_cpu_threads

        # Importing paddle pins OMP_NUM_THREADS=1 in this process's environment, which the scripts would inherit.
        configure_cpu_threads()
        from models.resnet import imagenet_weights_available

        if not imagenet_weights_available():
            print("notice: ImageNet weights are not cached and cannot be downloaded (offline): training from scratch "
                  "(--pretrained none). Put resnet50.pdparams in Paddle's cache or pass --pretrained PATH to fine-tune.")
            pretrained = "none"
    out = Path(out)
    answer = out / "answer.csv"
    signal_out, features_out = out / "signal", out / "features"
    times = {
        "process": run("process", ["process.py", "--data-dir", data_dir, "--out-dir", dataset_dir, "--size", str(a.image_size)]),
        "train": run("train", ["train.py", "--dataset-dir", dataset_dir, "--output-dir", str(out),
                               "--image-size", str(a.image_size), "--batch-size", str(a.batch_size), "--iters", str(a.iters),
                               "--warmup-iters", str(a.warmup_iters), "--pretrained", pretrained,
                               "--num-workers", str(a.num_workers), "--save-interval", str(a.iters), "--log-iters", "5",
                               "--overwrite"]),  # the demo starts afresh each time, replacing its previous run
        "train signal": run("train signal", ["train.py", "--arch", "resnet1d", "--data-dir", data_dir, "--output-dir",
                                             str(signal_out), "--batch-size", "16", "--iters", str(a.signal_iters),
                                             "--warmup-iters", str(a.warmup_iters), "--eval-interval", "10",
                                             "--num-workers", str(a.num_workers), "--save-interval", str(a.signal_iters),
                                             "--log-iters", "10", "--overwrite"]),
        "train features": run("train features", ["train.py", "--arch", "features", "--data-dir", data_dir,
                                                 "--output-dir", str(features_out), "--overwrite"]),
    }
    predict = ["predict.py", "--data-dir", data_dir, "--dataset-dir", dataset_dir, "--model", str(out / "best_model"),
               str(signal_out / "best_model"), str(features_out / "best_model"), "--out", str(answer),
               "--printouts", str(out / "printouts")]
    truth = Path(data_dir) / "val_reference.csv"
    if truth.exists():
        predict += ["--truth", str(truth)]
    times["predict"] = run("predict", predict)

    report = json.loads((out / "predict_report.json").read_text())
    print("\n=== done: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    if "metrics" in report:
        rows = [(m.get("label", m["arch"]), m["metrics"]) for m in report.get("members", [])]
        print(f"{'model':<28} {'test F1':>8} {'ROC AUC':>8}   ({report['metrics']['n']} test records, pretrained {pretrained})")
        for name, m in rows + [("fusion (mean)", report["metrics"])]:
            auc = "n/a" if m["auc"] is None else f"{m['auc']:.4f}"  # undefined when the test set has one class
            print(f"{name:<28} {m['f1']:>8.4f} {auc:>8}")
        print("54 training records make this a smoke run of the pipeline, not a model: see README's benches for accuracy.")
    print(f"submission: {report['zip']}")
    if report.get("printouts"):
        print(f"printouts: {report['printouts']} (open it in a browser: a page per test record)")


if __name__ == "__main__":
    main()
