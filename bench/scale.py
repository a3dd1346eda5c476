"""How the pipeline grows with the number of records: every per-record stage timed at several dataset sizes, with
its peak resident memory, the growth exponents between sizes, the 2-worker and second-pass speedups of the
cached stages, and what a PhysioNet/CinC-sized collection (88,000 records) would cost on this machine.

    python bench/scale.py [--sizes 1000,4000,16000] [--json PATH] [--work DIR] [--keep]

For each N it builds a dataset in the competition layout: N training records (with labels) and N/10 test
records, each a copy of a development record (the PTB-XL subset beside the checkout, converted once; test copies
from PTB-XL fold 8, training copies from the other folds) under its own name, slightly perturbed (+-2 uV, on
PTB-XL's 1 uV grid) so no two files are alike. Then, each stage in its own process (its peak resident memory is
that process's, or its largest descendant's, ru_maxrss), timed inside it (interpreter start and imports left out):

    process                  process.py: every record rendered to a 640 px picture (--workers: every core)
    measurements             the ECG measurements of the training records, cold cache (every core)
    measurements_second_pass the same again: read from the cache
    signals                  the resnet1d preprocessing of the training records, cold cache (every core)
    signals_second_pass      the same again: read from the cache
    train_2proc              one epoch of resnet1d training, 2 processes of paddle.distributed.launch (batch 32 each)
    train_1proc              one epoch of resnet1d training, 1 process (batch 32)
    features_fit             train.py --arch features (gradient boosting on the cached measurements)
    predict                  predict.py with the resnet1d model on the N/10 test records (their preprocessing included)

and, at the smallest size, measurements and signals on a cold cache with 1 worker and with 2 (parallel_speedup),
and how long a picture takes to read (PNG decoded and resized, as the picture dataset does at every sample,
against a cached uint8 array) beside the augmentation it then goes through.

JSON (--json): sizes.<N>.<stage>.{seconds, records, records_per_s, peak_rss_mb, wall_seconds},
growth.<stage>.{time_exponent, memory_ratio} (largest size against the smallest), parallel_speedup.<stage> and
second_pass_speedup.<stage> (measurements, signals), extrapolation.<stage>.{seconds, peak_rss_mb} at --extrapolate
records, picture_read, machine.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("process", "measurements", "measurements_second_pass", "signals", "signals_second_pass", "train_2proc",
          "train_1proc", "features_fit", "predict")
SPEEDUP_STAGES = ("measurements", "signals")
SOURCE_DONE = ".bench_source_complete"
DATASET_DONE = ".bench_dataset_complete"


# -- datasets ---------------------------------------------------------------------------------------------------
def source_records(src, work):
    """(training source records [(path, tag)], test source records [path]) of the development records: a PTB-XL
    folder (converted once into `work`/source, test = fold 8) or a folder in the competition layout."""
    from utils.ecg.io import list_records, read_reference

    src = Path(src)
    if (src / "ptbxl_database.csv").is_file():
        conv = Path(work) / "source"
        if not (conv / SOURCE_DONE).is_file():
            from tools import convert_ptbxl

            convert_ptbxl.main(["--src", str(src), "--dst", str(conv), "--test-fold", "8"])
            (conv / SOURCE_DONE).touch()
        src = conv
    refs = read_reference(src / "trainreference.csv", data_dir=src / "train")
    train = [(src / "train" / f"{n}.mat", int(t)) for n, t in zip(refs["name"], refs["tag"])]
    test = [src / "val" / f"{n}.mat" for n in list_records(src / "val")] or [p for p, _ in train]
    return train, test


def _write_copy(job):
    """One perturbed copy: the source record plus integer microvolts in -2..2 drawn from a per-copy seed."""
    import numpy as np

    from utils.ecg.io import read_record, write_record

    src, dst, seed = job
    x = read_record(src).astype(np.float64)
    noise = np.random.default_rng(seed).integers(-2, 3, size=x.shape) / 1000.0
    write_record(dst, np.round((x + noise) * 1000) / 1000)
    return dst


def build_dataset(n, train_src, test_src, dst, workers):
    """N training records (name,tag in trainreference.csv) and N/10 test records in `dst`: perturbed copies."""
    from multiprocessing import Pool

    import pandas as pd

    from utils.ecg.io import write_reference

    dst = Path(dst)
    if (dst / DATASET_DONE).is_file():
        return dst
    shutil.rmtree(dst, ignore_errors=True)
    n_test = max(1, n // 10)
    jobs, rows = [], []
    for i in range(n):
        src, tag = train_src[i % len(train_src)]
        name = f"rec{i:06d}"
        jobs.append((src, dst / "train" / f"{name}.mat", [n, 0, i]))
        rows.append((name, tag))
    for i in range(n_test):
        jobs.append((test_src[i % len(test_src)], dst / "val" / f"test{i:06d}.mat", [n, 1, i]))
    for split in ("train", "val"):
        (dst / split).mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with Pool(workers) as pool:
        for k, _ in enumerate(pool.imap_unordered(_write_copy, jobs, chunksize=32), 1):
            if k % 2000 == 0:
                print(f"  built {k}/{len(jobs)} records", flush=True)
    write_reference(dst / "trainreference.csv", pd.DataFrame(rows, columns=["name", "tag"]))
    (dst / DATASET_DONE).write_text(json.dumps({"train": n, "test": n_test, "seconds": time.perf_counter() - t}))
    return dst


# -- stages, each run in its own process ---------------------------------------------------------------------------
def run_stage(stage, spec):
    """Inside the stage's process: run it, time it (imports done), write {"seconds", "records"} to spec["result"]."""
    data = Path(spec.get("data", "."))
    train_paths = lambda: sorted((data / "train").glob("*.mat"))  # noqa: E731
    if stage == "process":
        import process

        t = time.perf_counter()
        process.main(["--data-dir", str(data), "--out-dir", spec["out"], "--workers", str(spec["workers"])])
        seconds, records = time.perf_counter() - t, len(train_paths()) + len(list((data / "val").glob("*.mat")))
    elif stage == "measurements":
        from utils.ecg.cache import features_for_records

        paths = train_paths()
        t = time.perf_counter()
        _, bad = features_for_records(paths, cache_dir=spec["cache"], workers=spec["workers"])
        seconds, records = time.perf_counter() - t, len(paths)
        assert not bad, bad
    elif stage == "signals":
        from utils.inputs.signals import default_preprocess, prepare_signals

        paths = train_paths()
        t = time.perf_counter()
        items, bad = prepare_signals(paths, default_preprocess(), spec["cache"], spec["workers"], "preprocess records")
        seconds, records = time.perf_counter() - t, len(paths)
        assert not bad and all(isinstance(i, str) for i in items), "signals were not cached"
    elif stage in ("train", "features_fit"):
        import train

        t = time.perf_counter()
        state = train.main(spec["argv"])
        seconds, records = time.perf_counter() - t, spec["records"]
        if os.environ.get("PADDLE_TRAINER_ID", "0") != "0":
            return
        if stage == "train":
            spec["extra"] = {"iterations": state["iter"]}
    elif stage == "predict":
        import predict

        t = time.perf_counter()
        report = predict.main(spec["argv"])
        seconds, records = time.perf_counter() - t, report["n_records"]
    elif stage == "picture_read":
        seconds, records = 0.0, 0
        spec["extra"] = picture_read(Path(spec["dataset"]), spec["sizes"], spec["n"])
    else:
        raise SystemExit(f"unknown stage {stage}")
    Path(spec["result"]).write_text(json.dumps({"seconds": seconds, "records": records, **spec.get("extra", {})}))


def picture_read(dataset, sizes, n):
    """Per picture, in ms: the PNG decoded and resized (what ECGImageDataset does at every sample), a cached
    uint8 array of the resized picture read instead (np.load), and the training augmentation after either."""
    import numpy as np
    from PIL import Image

    from transforms import build_transforms
    from utils.inputs.pictures import load_image

    pngs = sorted((dataset / "train").glob("*.png"))[:n]
    tmp = Path(tempfile.mkdtemp(prefix="picture_cache_"))
    out = {"pictures": len(pngs), "png_kb": round(sum(p.stat().st_size for p in pngs) / len(pngs) / 1024, 1)}
    aug = build_transforms(True)
    try:
        for size in sizes:
            t = time.perf_counter()
            imgs = [load_image(p, size) for p in pngs]
            decode = (time.perf_counter() - t) / len(pngs)
            files = []
            for p, img in zip(pngs, imgs):
                files.append(tmp / f"{p.stem}.{size}.npy")
                np.save(files[-1], np.asarray(img))
            t = time.perf_counter()
            arrays = [Image.fromarray(np.load(f)) for f in files]
            cached = (time.perf_counter() - t) / len(pngs)
            np.random.seed(0)
            t = time.perf_counter()
            for img in arrays:
                aug(img)
            augment = (time.perf_counter() - t) / len(pngs)
            out[str(size)] = {"png_decode_resize_ms": round(decode * 1000, 3), "cached_npy_ms": round(cached * 1000, 3),
                              "augment_ms": round(augment * 1000, 3), "npy_kb": round(size * size / 1024, 1)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def launch(stage, spec, work, nproc=0):
    """Run `stage` in a new process (under paddle.distributed.launch with `nproc` > 0); its result, wall time and
    peak resident memory (ru_maxrss of the process or its largest descendant, from wait4: this child only)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "result": str(work / f"{stage}.result.json")}
    Path(spec["result"]).unlink(missing_ok=True)
    me = [str(Path(__file__).resolve()), "--stage", stage, "--spec", json.dumps(spec)]
    cmd = [sys.executable, *me] if not nproc else [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node",
                                                     str(nproc), "--log_dir", str(work / f"{stage}_launch_logs"), *me]
    t = time.perf_counter()
    with open(work / f"{stage}.log", "w") as logf:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if proc.returncode != 0 or not Path(spec["result"]).is_file():
        tail = (work / f"{stage}.log").read_text()[-3000:]
        raise SystemExit(f"stage {stage} failed (exit {proc.returncode}); log {work / f'{stage}.log'}:\n{tail}")
    res = json.loads(Path(spec["result"]).read_text())
    res.update(wall_seconds=round(wall, 2), peak_rss_mb=round(usage.ru_maxrss / 1024, 1), seconds=round(res["seconds"], 3))
    res["records_per_s"] = round(res["records"] / res["seconds"], 2) if res["seconds"] > 0 else None
    return res


def one_size(n, train_src, test_src, work, a):
    """Every stage on a fresh dataset of n training records; {stage: result}."""
    base = Path(work) / f"n{n}"
    data = build_dataset(n, train_src, test_src, base / "raw", a.workers)
    for stale in (data / "features_cache", data / "signal_cache", base / "dataset", base / "runs"):
        shutil.rmtree(stale, ignore_errors=True)
    runs = base / "runs"
    res = {}

    def stage(name, spec, nproc=0, key=None):
        key = key or name
        if key.split("_")[0] not in a.only and key not in a.only:
            return
        print(f"[{n}] {key} ...", flush=True)
        res[key] = launch(name, spec, runs, nproc)
        r = res[key]
        print(f"[{n}] {key}: {r['seconds']:.1f} s, {r['records']} records, {r['records_per_s']} rec/s, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB (wall {r['wall_seconds']:.1f} s)", flush=True)

    n_test = len(list((data / "val").glob("*.mat")))
    stage("process", {"data": str(data), "out": str(base / "dataset"), "workers": a.workers})
    for kind, cache in (("measurements", data / "features_cache"), ("signals", data / "signal_cache")):
        stage(kind, {"data": str(data), "cache": str(cache), "workers": a.workers})
        stage(kind, {"data": str(data), "cache": str(cache), "workers": a.workers}, key=f"{kind}_second_pass")
    n_val = math.ceil(n / 10)  # train.py's validation fold (NUM_FOLDS 10)
    common = ["--arch", "resnet1d", "--data-dir", str(data), "--batch-size", str(a.batch_size), "--num-workers",
              str(a.loader_workers), "--pretrained", "none", "--warmup-iters", "0", "--log-iters", "20"]
    for nproc, key in ((2, "train_2proc"), (1, "train_1proc")):
        iters = max(1, ((n - n_val) // nproc) // a.batch_size)  # one epoch of each rank's share
        argv = [*common, "--output-dir", str(runs / key), "--iters", str(iters), "--save-interval", str(iters)]
        stage("train", {"argv": argv, "records": iters * a.batch_size * nproc}, nproc=nproc if nproc > 1 else 0, key=key)
    stage("features_fit", {"argv": ["--arch", "features", "--data-dir", str(data), "--output-dir", str(runs / "features"),
                                    "--importance-repeats", "0"], "records": n})
    if "train_2proc" in res:
        stage("predict", {"argv": ["--data-dir", str(data), "--model", str(runs / "train_2proc" / "best_model"), "--out",
                                   str(runs / "answer.csv"), "--num-workers", str(a.loader_workers)], "records": n_test})
    if n == min(a.sizes):  # 1 worker against 2, each on a cold cache of its own (smallest size: the cheapest)
        for kind in SPEEDUP_STAGES:
            for w in (1, 2):
                stage(kind, {"data": str(data), "cache": str(runs / f"{kind}_cache_w{w}"), "workers": w},
                      key=f"{kind}_{w}_worker{'s' if w > 1 else ''}")
        if "process" in a.only:
            print(f"[{n}] picture_read ...", flush=True)
            res["picture_read"] = launch("picture_read", {"dataset": str(base / "dataset"), "sizes": [640, 224], "n": 200},
                                         runs)
    if not a.keep:
        shutil.rmtree(runs, ignore_errors=True)
        shutil.rmtree(base / "dataset", ignore_errors=True)
    return res


# -- summary ------------------------------------------------------------------------------------------------------
def summarise(sizes, results, target):
    lo, hi = str(min(sizes)), str(max(sizes))
    out = {"growth": {}, "parallel_speedup": {}, "second_pass_speedup": {}, "extrapolation": {"records": target}}
    for st in [st for st in STAGES if st in results[lo] and st in results[hi]]:
        a, b = results[lo][st], results[hi][st]
        ratio_n = b["records"] / a["records"] if a["records"] else float("nan")
        exp = math.log(b["seconds"] / a["seconds"]) / math.log(ratio_n) if ratio_n > 1 and a["seconds"] > 0 else None
        mem = b["peak_rss_mb"] / a["peak_rss_mb"]
        out["growth"][st] = {"time_exponent": None if exp is None else round(exp, 3), "memory_ratio": round(mem, 3)}
        # `target` counts training records as N does, and each stage's records scale with N: linear from the largest
        # size (its records per second), and with the measured exponent too; memory with its own exponent
        scale = target / int(hi)
        mem_exp = math.log(mem) / math.log(ratio_n) if ratio_n > 1 else 0.0
        out["extrapolation"][st] = {"seconds": round(b["seconds"] * scale, 1),
                                    "seconds_at_measured_exponent": round(b["seconds"] * scale ** (exp or 1.0), 1),
                                    "peak_rss_mb": round(b["peak_rss_mb"] * scale ** max(0.0, mem_exp), 1)}
    small, big = results[lo], results[hi]
    for st in SPEEDUP_STAGES:
        if f"{st}_2_workers" in small:
            out["parallel_speedup"][st] = round(small[f"{st}_1_worker"]["seconds"] / small[f"{st}_2_workers"]["seconds"], 2)
        if f"{st}_second_pass" in big:
            out["second_pass_speedup"][st] = round(big[st]["seconds"] / big[f"{st}_second_pass"]["seconds"], 1)
    return out


def print_tables(sizes, results, summary):
    w = max(len(s) for s in STAGES) + 2
    print()
    print(f"{'stage':<{w}}" + "".join(f"{f'N={n}: s':>12}{'rec/s':>9}{'MB':>7}" for n in sizes)
          + f"{'time exp':>10}{'mem x':>7}")
    for st in [st for st in STAGES if st in summary["growth"]]:
        row = f"{st:<{w}}"
        for n in sizes:
            r = results[str(n)][st]
            row += f"{r['seconds']:>12.1f}{r['records_per_s'] or 0:>9.0f}{r['peak_rss_mb']:>7.0f}"
        g = summary["growth"][st]
        row += f"{g['time_exponent'] if g['time_exponent'] is not None else '-':>10}{g['memory_ratio']:>7.2f}"
        print(row)
    print(f"\nparallel speedup, 2 workers vs 1 (N={min(sizes)}, cold cache): "
          + ", ".join(f"{k} {v:.2f}x" for k, v in summary["parallel_speedup"].items()))
    print(f"second pass vs first (N={max(sizes)}): " + ", ".join(f"{k} {v:.0f}x" for k, v in summary["second_pass_speedup"].items()))
    ex = summary["extrapolation"]
    print(f"\n{ex['records']:,} training records on this machine (extrapolated from N={max(sizes)}: time linear, or in "
          f"brackets with the measured exponent where it exceeds 1.05; memory with its own exponent):")
    total = 0.0
    for st in [st for st in STAGES if st in ex]:
        e, g = ex[st], summary["growth"][st]["time_exponent"]
        total += e["seconds"] if not st.endswith("second_pass") and st != "train_1proc" else 0.0
        steeper = f" ({e['seconds_at_measured_exponent'] / 60:.1f} min)" if g is not None and g > 1.05 else ""
        print(f"  {st:<{w}}{e['seconds'] / 60:>8.1f} min{steeper:<14}peak RSS {e['peak_rss_mb'] / 1024:>6.2f} GB")
    print(f"  first pass of everything (process, measurements, signals, one 2-process epoch, features fit, predict): "
          f"{total / 3600:.1f} h")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,4000,16000", help="training records per dataset, comma-separated")
    p.add_argument("--json", default=None, help="write the figures here")
    p.add_argument("--src", default=str(ROOT.parent / "shared" / "data" / "ptbxl"),
                   help="development records: a PTB-XL folder or a competition-layout folder (default: the PTB-XL "
                        "subset beside the checkout, else dataset/sample)")
    p.add_argument("--work", default=None, help="where the datasets are built (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the datasets, pictures, caches and runs")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes of the per-record stages")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--loader-workers", type=int, default=1, help="DataLoader workers per training process")
    p.add_argument("--extrapolate", type=int, default=88000, help="records to extrapolate to")
    p.add_argument("--only", default=",".join(("process", "measurements", "signals", "train_2proc", "train_1proc",
                                               "features_fit", "predict")),
                   help="run only these stages (comma-separated; measurements and signals bring their second pass "
                        "and speedup runs, predict needs train_2proc); the JSON then lacks the others")
    p.add_argument("--stage", help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.stage:
        return run_stage(a.stage, json.loads(a.spec))
    a.sizes = sorted({int(s) for s in a.sizes.split(",")})
    a.only = set(a.only.split(","))
    if len(a.sizes) < 2 or a.sizes[0] < 20:
        p.error("--sizes: at least two sizes, each >= 20")
    src = a.src if Path(a.src).is_dir() else str(ROOT / "dataset" / "sample")
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="bench_scale_"))
    t0 = time.time()
    train_src, test_src = source_records(src, work)
    print(f"development records: {len(train_src)} training, {len(test_src)} test, from {src}; work folder {work}")
    results = {}
    for n in a.sizes:
        results[str(n)] = one_size(n, train_src, test_src, work, a)
    summary = summarise(a.sizes, results, a.extrapolate)
    import numpy as np
    import paddle

    figures = {"sizes": {n: {k: v for k, v in r.items() if k != "picture_read"} for n, r in results.items()}, **summary,
               "picture_read": results[str(a.sizes[0])].get("picture_read"),
               "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "paddle": paddle.__version__,
                           "numpy": np.__version__, "batch_size": a.batch_size, "loader_workers": a.loader_workers,
                           "workers": a.workers, "source": src},
               "seconds": round(time.time() - t0, 1)}
    print_tables(a.sizes, results, summary)
    pr = figures["picture_read"] or {}
    for size in ("640", "224"):
        if size in pr:
            r = pr[size]
            print(f"picture read at {size} px: PNG decode + resize {r['png_decode_resize_ms']:.2f} ms, cached uint8 .npy "
                  f"{r['cached_npy_ms']:.2f} ms, then training augmentation {r['augment_ms']:.2f} ms")
    print(f"\nbench time {figures['seconds'] / 60:.1f} min")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures: {a.json}")
    if not a.keep and not a.work:
        shutil.rmtree(work, ignore_errors=True)
    return figures


if __name__ == "__main__":
    main()
