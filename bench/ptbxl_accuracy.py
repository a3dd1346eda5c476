"""Accuracy on real patients: PTB-XL subset -> competition layout -> process -> train -> predict.

    python bench/ptbxl_accuracy.py [--work-dir DIR] [--iters 700] [--image-size 160] [--batch-size 16] [--lr 0.01]

Fold 8 is the test set, folds 1-7 train and validate (PTB-XL folds separate patients). The configuration is
sized to finish in under an hour on a 2-core CPU, and trains from scratch: ImageNet weights cannot be downloaded
here (pass --pretrained auto or a .pdparams path where they can). Prints test accuracy, F1 (abnormal positive),
ROC AUC and the wall time of each stage.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stage(name, args, times):
    print(f"\n=== {name}: {' '.join(map(str, args))}", flush=True)
    t = time.time()
    subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, check=True)
    times[name] = time.time() - t


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default=str(ROOT.parent / "shared" / "data" / "ptbxl"))
    p.add_argument("--work-dir", default=None, help="default: a new temporary directory")
    p.add_argument("--test-fold", type=int, default=8)
    p.add_argument("--image-size", type=int, default=160)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--iters", type=int, default=700)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--warmup-iters", type=int, default=50)
    p.add_argument("--eval-interval", type=int, default=100)
    p.add_argument("--pretrained", default="none")
    p.add_argument("--num-workers", type=int, default=2)
    a = p.parse_args()

    work = Path(a.work_dir or tempfile.mkdtemp(prefix="ptbxl_accuracy_"))
    raw, ds, out = work / "raw", work / "dataset", work / "output"
    times = {}
    stage("convert", ["tools/convert_ptbxl.py", "--src", a.src, "--dst", raw, "--test-fold", a.test_fold], times)
    stage("process", ["process.py", "--data-dir", raw, "--out-dir", ds, "--size", a.image_size], times)
    stage("train", ["train.py", "--dataset-dir", ds, "--output-dir", out, "--image-size", a.image_size,
                    "--batch-size", a.batch_size, "--iters", a.iters, "--lr", a.lr, "--warmup-iters", a.warmup_iters,
                    "--eval-interval", a.eval_interval, "--save-interval", a.iters, "--pretrained", a.pretrained,
                    "--num-workers", a.num_workers, "--log-iters", 20], times)
    stage("predict", ["predict.py", "--data-dir", raw, "--dataset-dir", ds, "--model", out / "best_model",
                      "--out", out / "answer.csv", "--truth", raw / "val_reference.csv"], times)

    m = json.loads((out / "predict_report.json").read_text())["metrics"]
    info = json.loads((out / "best_model" / "model.json").read_text())
    n_train = sum(1 for _ in open(raw / "trainreference.csv")) - 1
    print("\n=== PTB-XL accuracy (Task 1: normal vs abnormal, abnormal = positive)")
    print(f"data: {n_train} labelled records from folds != {a.test_fold} (90/10 train/validation), "
          f"{m['n']} test records from fold {a.test_fold}; real patients, patients never cross folds")
    print(f"config: ResNet50 from scratch (pretrained {a.pretrained}), {a.image_size} px, batch {a.batch_size}, "
          f"{a.iters} iterations, lr {a.lr} (warmup {a.warmup_iters}, poly 0.9), CPU, {os.cpu_count()} cores; "
          f"best validation F1 {info['metrics']['at_threshold']['f1']:.4f} at iter {info['iter']}, threshold {info['threshold']:.3f}")
    print(f"test: accuracy {m['accuracy']:.4f}, F1 {m['f1']:.4f}, ROC AUC {m['auc']:.4f}, confusion {m['confusion']}")
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + f", total {sum(times.values()) / 60:.1f} min")
    print(f"outputs: {out} (training_curves.png, train.log)")


if __name__ == "__main__":
    main()
