"""Rendering speed: our numpy renderer vs a seed-style matplotlib renderer, on the same 100 real records.

    python bench/render.py [--records 100] [--size 640] [--repeat 3]

Both include reading the MAT file and writing the PNG. Also times process.py's whole command line with
1 and 2 workers (records/s). Each figure is the best of --repeat runs. OMP_NUM_THREADS is set to the core count.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["OMP_NUM_THREADS"] = str(os.cpu_count() or 1)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from utils.ecg.io import list_records, read_record  # noqa: E402


def seed_render(mat, png):
    """The seed's way: 12 stacked matplotlib axes, savefig at 6.4 in x 100 dpi (640 x 640 px)."""
    sig = read_record(mat)
    fig, axes = plt.subplots(12, 1, figsize=(6.4, 6.4))
    for ax, lead in zip(axes, sig):
        ax.plot(lead, color="black", linewidth=0.5)
        ax.axis("off")
    fig.subplots_adjust(0, 0, 1, 1, 0, 0)
    fig.savefig(png, dpi=100)
    plt.close(fig)


def per_record_ms(fn, jobs):
    t = time.perf_counter()
    for job in jobs:
        fn(*job)
    return (time.perf_counter() - t) / len(jobs) * 1000


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--src", default=str(ROOT.parent / "shared" / "data" / "ptbxl"))
    p.add_argument("--records", type=int, default=100)
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--repeat", type=int, default=3, help="report the best of this many timed runs")
    a = p.parse_args()

    import process

    tmp = Path(tempfile.mkdtemp(prefix="bench_render_"))
    try:
        run_bench(a, tmp, process)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_bench(a, tmp, process):
    raw = tmp / "raw"
    subprocess.run([sys.executable, "tools/convert_ptbxl.py", "--src", a.src, "--dst", str(raw), "--test-fold", "8",
                    "--max-records", str(a.records), "--max-test-records", "0"], cwd=ROOT, check=True, capture_output=True)
    names = list_records(raw / "train")[: a.records]
    mats = [raw / "train" / f"{n}.mat" for n in names]
    assert len(mats) == a.records, f"converted {len(mats)} records, wanted {a.records}"
    cfg = {**{k: getattr(process, k) for k in process.RENDER_KEYS}, "FORCE": True, "SIZE": a.size}  # process.py's defaults
    (tmp / "ours").mkdir()
    (tmp / "seed").mkdir()
    ours_jobs = [(("train", m.stem, m, tmp / "ours" / f"{m.stem}.png", cfg),) for m in mats]
    per_record_ms(process.render_one, ours_jobs[:5])  # warm up imports and caches
    ours = min(per_record_ms(process.render_one, ours_jobs) for _ in range(a.repeat))
    seed_render(mats[0], tmp / "seed" / "warmup.png")
    seed = min(per_record_ms(seed_render, [(m, tmp / "seed" / f"{m.stem}.png") for m in mats]) for _ in range(a.repeat))

    cli = {}
    for workers in (1, 2):
        best = float("inf")
        for _ in range(a.repeat):
            t = time.perf_counter()
            subprocess.run([sys.executable, "process.py", "--data-dir", str(raw), "--out-dir", str(tmp / f"cli{workers}"),
                            "--size", str(a.size), "--workers", str(workers), "--force"], cwd=ROOT, check=True,
                           capture_output=True)
            best = min(best, time.perf_counter() - t)
        cli[workers] = len(mats) / best

    print(f"{len(mats)} real PTB-XL records, {a.size} x {a.size} px, {os.cpu_count()} cores, "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, best of {a.repeat}")
    print(f"{'':54}{'ms/record':>10}{'records/s':>11}")
    print(f"{'ours: read MAT + numpy draw + PNG, 1 process':54}{ours:10.2f}{1000 / ours:11.1f}")
    print(f"{'seed-style matplotlib: read MAT + 12 axes + savefig':54}{seed:10.2f}{1000 / seed:11.1f}")
    for w, r in cli.items():
        print(f"{f'process.py CLI --force, --workers {w} (whole run)':54}{1000 / r:10.2f}{r:11.1f}")
    print(f"speed-up ours vs seed-style, per core: {seed / ours:.1f}x")


if __name__ == "__main__":
    main()
