"""Training speed on CPU: model-only step time (fixed tensors) vs the full train.py loop (DataLoader workers,
augmentation, logging), on real rendered records.

    python bench/train_speed.py [--image-size 224] [--batch-size 8] [--iters 30] [--num-workers 2]

Prints the model-only step time, the full loop's batch_cost, ips and reader_cost, and the ratio
(goal: full loop >= 95% of model-only). Threads: OMP_NUM_THREADS = cores, MKL_DEBUG_CPU_TYPE=5 on AMD
(set by utils.runtime.configure_cpu_threads, as in train.py).
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
import paddle.nn.functional as F  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--src", default=str(ROOT.parent / "shared" / "data" / "ptbxl"), help="PTB-XL subset to convert")
    p.add_argument("--records", type=int, default=400, help="real records to train on (epochs long enough that "
                   "epoch starts, where the reader refills, weigh as little as in a real run)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--log-iters", type=int, default=5)
    p.add_argument("--num-workers", type=int, default=2)
    a = p.parse_args()

    import process
    import train
    from transforms import build_transforms
    from utils.ecg.io import read_reference
    from utils.inputs.pictures import ECGImageDataset

    tmp = Path(tempfile.mkdtemp(prefix="bench_train_speed_"))
    ds_dir = tmp / "dataset"
    from tools import convert_ptbxl

    convert_ptbxl.main(["--src", a.src, "--dst", str(tmp / "raw"), "--test-fold", "8", "--max-records", str(a.records),
                        "--max-test-records", "0"])
    process.main(["--data-dir", str(tmp / "raw"), "--out-dir", str(ds_dir), "--size", str(a.image_size)])
    paddle.set_device("cpu")

    # Model-only: the same model, loss and optimizer on one fixed batch of real pictures.
    refs = read_reference(ds_dir / "trainreference.csv")
    ds = ECGImageDataset(ds_dir / "train", refs["name"][: a.batch_size], refs["tag"][: a.batch_size], a.image_size,
                         build_transforms(True))
    x = paddle.to_tensor(np.stack([ds[i][0] for i in range(a.batch_size)]))
    y = paddle.to_tensor(np.asarray(refs["tag"][: a.batch_size], dtype=np.int64))
    from models import build_model

    paddle.seed(0)
    model = build_model(2, "none")
    opt = paddle.optimizer.Momentum(learning_rate=0.001, momentum=0.9, parameters=model.parameters(), weight_decay=2e-4)
    times = []
    for i in range(a.iters):
        t = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
        float(loss)
        times.append(time.perf_counter() - t)
    model_step = float(np.mean(times[a.log_iters:]))  # the first interval warms up, as in the loop below
    del model, opt

    # Full loop: train.py itself.
    state = train.main(["--dataset-dir", str(ds_dir), "--output-dir", str(tmp / "out"), "--iters", str(a.iters),
                        "--image-size", str(a.image_size), "--batch-size", str(a.batch_size), "--pretrained", "none",
                        "--num-workers", str(a.num_workers), "--log-iters", str(a.log_iters), "--warmup-iters", "5",
                        "--eval-interval", str(10 ** 9), "--save-interval", str(10 ** 9)])
    logs = state["history"]["train"][1:]  # skip the warm-up interval
    batch_cost = float(np.mean([r["batch_cost"] for r in logs]))
    reader_cost = float(np.mean([r["reader_cost"] for r in logs]))

    print()
    print(f"CPU, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"MKL_DEBUG_CPU_TYPE={os.environ.get('MKL_DEBUG_CPU_TYPE', '-')}, paddle {paddle.__version__}")
    print(f"ResNet50, {a.image_size} px, batch {a.batch_size}, {a.iters} iterations ({a.log_iters} warm-up), "
          f"{a.num_workers} DataLoader workers, real PTB-XL pictures")
    print(f"{'':28}{'s/iter':>10}{'img/s':>10}")
    print(f"{'model only (fixed tensors)':28}{model_step:10.3f}{a.batch_size / model_step:10.2f}")
    print(f"{'full train.py loop':28}{batch_cost:10.3f}{a.batch_size / batch_cost:10.2f}")
    print(f"full loop / model only: {model_step / batch_cost:.1%} of model-only throughput (goal >= 95%)")
    print(f"reader_cost {reader_cost * 1000:.1f} ms = {reader_cost / batch_cost:.1%} of batch_cost")


if __name__ == "__main__":
    main()
