"""Model-only CPU cost of the signal family's networks: forward + backward (BCE on random labels) of one batch of
random (N, 12, L) input, milliseconds per batch, with the threads train.py uses (utils.runtime).

    python bench/signal_nets_speed.py [--archs resnet1d,xresnet1d18,...] [--batch-size 32] [--length 1000] [--iters 5]

--length 1000 is 10 s at 100 Hz (the whole record, as validation and prediction run it); 250 is a 2.5 s crop.
Prints per arch: trainable parameters, the median and the minimum of --iters timed steps after 2 warm-up steps
(the minimum is the least disturbed by other jobs on a shared machine), and eval-mode forward alone.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.runtime import configure_cpu_threads  # noqa: E402

configure_cpu_threads()

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402


def timed(step, iters, warmup=2):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        times.append(1000 * (time.perf_counter() - t))
    return float(np.median(times)), float(np.min(times))


def main():
    from models.families import SIGNAL_ARCHS, get_family

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--archs", default=",".join(SIGNAL_ARCHS))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--length", type=int, default=1000)
    p.add_argument("--iters", type=int, default=5)
    a = p.parse_args()
    paddle.set_device("cpu")
    rng = np.random.default_rng(0)
    x = paddle.to_tensor(rng.standard_normal((a.batch_size, 12, a.length)).astype(np.float32))
    y = paddle.to_tensor(rng.integers(0, 2, (a.batch_size, 2)).astype(np.float32))
    print(f"batch {a.batch_size} x 12 x {a.length}, {a.iters} timed steps, OMP threads "
          f"{__import__('os').environ.get('OMP_NUM_THREADS')}")
    for arch in a.archs.split(","):
        paddle.seed(0)
        model = get_family(arch).build(arch, 2, "none")
        n = sum(int(np.prod(q.shape)) for q in model.parameters() if not q.stop_gradient)

        def train_step():
            model.train()
            loss = F.binary_cross_entropy_with_logits(model(x), y)
            loss.backward()
            model.clear_gradients()
            float(loss)

        @paddle.no_grad()
        def forward():
            model.eval()
            model(x).numpy()
        (med, low), (fmed, flow) = timed(train_step, a.iters), timed(forward, a.iters)
        print(f"{arch:14s} {n / 1e6:5.2f} M params  forward+backward {med:7.0f} ms (min {low:.0f})  "
              f"forward (eval) {fmed:6.0f} ms (min {flow:.0f})", flush=True)


if __name__ == "__main__":
    main()
