"""Inference speed on CPU: dygraph eval (`paddle.no_grad`) vs the exported model in Paddle Inference (oneDNN).

    python bench/predict_speed.py [--image-size 640] [--batch-size 8] [--batches 4]

Uses real rendered pictures of the embedded sample and an untrained ResNet50 (speed does not depend on the
weights). Threads: OMP_NUM_THREADS = cores, MKL_DEBUG_CPU_TYPE=5 on AMD, as predict.py sets them.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.runtime import configure_cpu_threads  # noqa: E402

configure_cpu_threads()

import os  # noqa: E402

import numpy as np  # noqa: E402
import paddle  # noqa: E402


def timed(fn, batch, n):
    fn(batch)  # warm-up: kernel selection, oneDNN primitive creation
    t = time.perf_counter()
    for _ in range(n):
        out = fn(batch)
    return (time.perf_counter() - t) / n, out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image-size", type=int, default=640)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--batches", type=int, default=4)
    a = p.parse_args()

    import process
    from models import build_model
    from models.inference import InferencePredictor, export_model
    from transforms import build_transforms
    from utils.ecg.io import list_records
    from utils.inputs.pictures import ECGImageDataset

    tmp = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    process.main(["--data-dir", str(ROOT / "dataset" / "sample"), "--out-dir", str(tmp / "ds"), "--size", str(a.image_size)])
    names = list_records(ROOT / "dataset" / "sample" / "val")[: a.batch_size]
    ds = ECGImageDataset(tmp / "ds" / "val", names, None, a.image_size, build_transforms(False))
    batch = np.stack([ds[i] for i in range(len(ds))])

    paddle.set_device("cpu")
    model = build_model(2, "none")
    model.eval()

    @paddle.no_grad()
    def dygraph(x):
        return model(paddle.to_tensor(x)).numpy()

    export_model(model, tmp / "export", a.image_size, {"num_classes": 2})
    static = InferencePredictor(tmp / "export", "cpu")
    t_dy, out_dy = timed(dygraph, batch, a.batches)
    t_st, out_st = timed(static, batch, a.batches)
    print(f"\nCPU, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"MKL_DEBUG_CPU_TYPE={os.environ.get('MKL_DEBUG_CPU_TYPE', '-')}, paddle {paddle.__version__}")
    print(f"ResNet50 inference, {a.image_size} px, batch {len(batch)}, mean of {a.batches} batches after one warm-up")
    print(f"{'':36}{'s/batch':>10}{'img/s':>10}")
    print(f"{'dygraph eval (paddle.no_grad)':36}{t_dy:10.3f}{len(batch) / t_dy:10.2f}")
    print(f"{'Paddle Inference, oneDNN':36}{t_st:10.3f}{len(batch) / t_st:10.2f}")
    print(f"speed-up {t_dy / t_st:.2f}x; max |logit difference| {np.abs(out_dy - out_st).max():.2e} "
          f"(logits up to {np.abs(out_dy).max():.1f})")


if __name__ == "__main__":
    main()
