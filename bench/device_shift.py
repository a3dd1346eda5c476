"""Device shift: how much each trained model loses when the test records come from another recorder's filters,
gain, sampling rate or noise.

    python bench/device_shift.py --work-dir FUSION_WORK_DIR [--task 1|2] [--perturbations all|NAME,...] [--out DIR]
                                 [--per-class] [--json PATH]
    python bench/device_shift.py --raw RAW_DIR --models NAME=DIR[,DIR...] [NAME=DIR...] [--task 1|2] ...

The models: a finished bench/fusion_accuracy.py run (--work-dir: each member's WORK/output/<arch>/fold_*/best_model,
its converted records in WORK/raw), or --models, one member per NAME=DIR,DIR... (its folds, fused) with --raw the
converted set whose val/ records are the test records (its val_reference*.csv the truth).

Each perturbation (PERTURBATIONS) writes a copy of the test records (OUT/<name>/val/*.mat, same names, the truth
files beside them) changed as another device would record them: a 0.05 or 0.5 Hz high-pass (the two common
diagnostic / monitoring settings), a 40, 100 or 150 Hz low-pass, the gain x0.8 or x1.2, a 250 Hz recording
(resampled back to 500 Hz), 50 Hz mains hum (0.05 mV) and white noise (0.02 mV SD). Filters are zero-phase
Butterworth (scipy.signal.sosfiltfilt), applied to the raw mV; the random ones are seeded (--seed).
predict.py then scores, on the clean records and on each copy, every member (its folds fused) and the fusion of
all members (the mean and --weights auto, thresholds and stacking from the out-of-fold predictions, as
bench/fusion_accuracy.py). Prints one line per perturbation: each row's AUC (Task 2: macro AUC) and its change
against the clean records, a paired difference (the same records resampled for both: bench/protocol.py) with its
95% CI; --per-class (Task 2) adds each class's AUC on the clean records and its change, per perturbation (a macro
figure can move when one small class does); --json writes every figure.
"""
import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.runtime import configure_cpu_threads  # noqa: E402

configure_cpu_threads()  # before paddle is imported: the scripts we start inherit the environment

import numpy as np  # noqa: E402
from scipy import signal  # noqa: E402

from bench import common, protocol  # noqa: E402
from utils.artifacts import BEST_DIR, ModelCard  # noqa: E402
from utils.ecg.io import FS, read_record, write_record  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402

HUM_MV, NOISE_MV = 0.05, 0.02


def butter(x, cutoff, kind, order=4):
    """Zero-phase Butterworth filter of each lead (the last axis), at the records' 500 Hz."""
    return signal.sosfiltfilt(signal.butter(order, cutoff, btype=kind, fs=FS, output="sos"), x, axis=-1)


def resampled_250(x):
    """A 250 Hz recording of the same signal, resampled back to 500 Hz (polyphase, its anti-aliasing filters)."""
    return signal.resample_poly(signal.resample_poly(x, 1, 2, axis=-1), 2, 1, axis=-1)[..., :x.shape[-1]]


def hum(x, rng, mv=HUM_MV, hz=50.0):
    """50 Hz mains hum of `mv` amplitude, one random phase per record (the same on every lead: one power line)."""
    t = np.arange(x.shape[-1]) / FS
    return x + mv * np.sin(2 * np.pi * hz * t + rng.uniform(0, 2 * np.pi))


# name -> (what it does, function of (record (12, 5000) mV, generator)); order = the printed order
PERTURBATIONS = {
    "highpass_0.05": ("high-pass 0.05 Hz (diagnostic setting)", lambda x, rng: butter(x, 0.05, "highpass", 2)),
    "highpass_0.5": ("high-pass 0.5 Hz (monitoring setting)", lambda x, rng: butter(x, 0.5, "highpass", 2)),
    "lowpass_40": ("low-pass 40 Hz", lambda x, rng: butter(x, 40, "lowpass")),
    "lowpass_100": ("low-pass 100 Hz", lambda x, rng: butter(x, 100, "lowpass")),
    "lowpass_150": ("low-pass 150 Hz", lambda x, rng: butter(x, 150, "lowpass")),
    "gain_0.8": ("amplitude x0.8", lambda x, rng: 0.8 * x),
    "gain_1.2": ("amplitude x1.2", lambda x, rng: 1.2 * x),
    "resample_250": ("recorded at 250 Hz, resampled to 500 Hz", lambda x, rng: resampled_250(x)),
    "hum_50": (f"50 Hz mains hum, {HUM_MV} mV", hum),
    "noise": (f"white noise, {NOISE_MV} mV SD", lambda x, rng: x + rng.normal(0, NOISE_MV, x.shape)),
}


def perturbed_copy(raw, dst, name, seed=0):
    """dst/val/*.mat: raw's test records changed by PERTURBATIONS[name], same names; raw's label files beside them.
    A copy already written (dst/done) is kept."""
    done = dst / "done"
    if done.is_file():
        return dst
    fn = PERTURBATIONS[name][1]
    (dst / "val").mkdir(parents=True, exist_ok=True)
    for f in sorted(Path(raw).glob("*.csv")):
        shutil.copy2(f, dst / f.name)
    for i, path in enumerate(sorted((Path(raw) / "val").glob("*.mat"))):
        rng = np.random.default_rng([seed, i])  # each record its own draws, the same on every run
        write_record(dst / "val" / path.name, fn(read_record(path).astype(np.float64), rng))
    done.write_text(name + "\n")
    return dst


# -- the models ---------------------------------------------------------------------------------------------------------
def members_of(a):
    """({member: [model dir, ...]}, converted raw dir) from --work-dir or --models/--raw."""
    if a.models:
        groups = dict(m.split("=", 1) for m in a.models)
        return {k: [Path(d).resolve() for d in v.split(",")] for k, v in groups.items()}, Path(a.raw).resolve()
    out = Path(a.work_dir).resolve() / "output"
    members = {d.name: [f / BEST_DIR for f in common.finished_folds(d)] for d in sorted(out.iterdir()) if d.is_dir()}
    return {k: v for k, v in members.items() if v}, Path(a.work_dir).resolve() / "raw"


def is_picture_model(model_dir):
    return common.is_picture(ModelCard.read(model_dir).arch)


def predict_rows(a, members, raw, truth, out, times):
    """{row: predict report path} of every member and the fusions on the test records of `raw` (bench/common.py's
    predict, as bench/fusion_accuracy.py's: OUT/predict_<i>.json, OUT/answer_<i>.csv); a report already in `out` is
    kept."""
    every = [m for d in members.values() for m in d]
    ds = out / "dataset"
    if any(is_picture_model(m) for m in every) and not (ds / "val").is_dir():
        common.stage(f"process {raw.name}", ["process.py", "--data-dir", raw, "--out-dir", ds, "--size",
                                             common.IMAGE_SIZE], times)
    rows = {**{name: (dirs, []) for name, dirs in members.items()}, "fusion (mean)": (every, [])}
    if len(members) > 1:
        rows["fusion (weights auto)"] = (every, ["--weights", "auto"])
    reports = {}
    for i, (name, (dirs, extra)) in enumerate(rows.items()):
        reports[name] = out / f"predict_{i}.json"
        if not reports[name].is_file():
            took = {}
            common.predict(str(i), dirs, a.task, raw, ds, out, took, truth, *extra)
            times[f"predict {out.name} {name}"] = took[f"predict {i}"]
    return reports


def shifts(task, truth, clean, perturbed, key, per_class=False):
    """{row: {perturbation: {"figure": test figure, "change": paired difference perturbed - clean}}} (and "clean");
    per_class (Task 2): each perturbation also {"per_class": {class name: paired difference of its AUC}}."""
    metrics = protocol.auc_metrics(task) if per_class else (key,)
    out = {}
    for row, clean_report in clean.items():
        reports = {"clean": clean_report, **{p: r[row] for p, r in perturbed.items()}}
        cmp = protocol.compare(task, truth, reports, [(p, "clean") for p in perturbed], metrics=metrics)
        out[row] = {"clean": {"figure": cmp["figures"]["clean"][key]}}
        for p in perturbed:
            d = cmp["differences"][p]["clean"]
            out[row][p] = {"figure": cmp["figures"][p][key], "change": d[key]}
            if len(metrics) > 1:
                out[row][p]["per_class"] = {protocol.metric_label(task, m): d[m] for m in metrics[1:]}
    return out


def per_class_lines(result):
    """For each perturbation, a line per class: each row's clean AUC and its paired change."""
    rows, lines = list(result), []
    for p in [p for p in next(iter(result.values())) if p != "clean"]:
        lines.append(f"per class, {p} - clean: AUC on the clean records, then its change [95% CI]")
        lines.append(f"  {'class':<22} " + " ".join(f"{r[:34]:>34}" for r in rows))
        for cls in result[rows[0]][p]["per_class"]:
            cells = []
            for r in rows:
                d = result[r][p]["per_class"][cls]
                cells.append("n/a" if d["diff"] is None else
                             f"{d['b']:.3f} {d['diff']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]")
            lines.append(f"  {cls[:22]:<22} " + " ".join(f"{c:>34}" for c in cells))
    return lines


def table_lines(result, key):
    rows = list(result)
    lines = [f"{'perturbation':<15} " + " ".join(f"{r[:36]:>36}" for r in rows)]
    for p in next(iter(result.values())):
        cells = []
        for r in rows:
            c = result[r][p]
            d = c.get("change")
            change = f" {d['diff']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" if d and d["diff"] is not None else ""
            cells.append(f"{protocol.fmt_ci(c['figure'], 4, 2) if p == 'clean' else format(c['figure']['value'] or float('nan'), '.4f') + change}")
        lines.append(f"{p:<15} " + " ".join(f"{c:>36}" for c in cells))
    return lines


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work-dir", default=None, help="a finished bench/fusion_accuracy.py run")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME=DIR[,DIR...]")
    p.add_argument("--raw", default=None, help="with --models: the converted set (val/ records, val_reference*.csv)")
    p.add_argument("--task", type=int, default=1, choices=(1, 2))
    p.add_argument("--perturbations", default="all", help=f"all or comma-separated: {', '.join(PERTURBATIONS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-class", action="store_true", help="Task 2: also each class's AUC change, per perturbation")
    p.add_argument("--out", default=None, help="where the perturbed copies and predictions go (default: a temp dir)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if bool(a.work_dir) == bool(a.models) or (a.models and not a.raw):
        p.error("give --work-dir, or --models with --raw")
    if a.per_class and a.task != 2:
        p.error("--per-class: Task 1 has one class (its AUC is the table); use it with --task 2")
    a.perturbations = list(PERTURBATIONS) if a.perturbations == "all" else a.perturbations.split(",")
    unknown = [n for n in a.perturbations if n not in PERTURBATIONS]
    if unknown:
        p.error(f"--perturbations: unknown {', '.join(unknown)} (known: {', '.join(PERTURBATIONS)})")
    return a


def main(argv=None):
    a = parse(argv)
    task = get_task(a.task)
    key = task.auc_metric
    members, raw = members_of(a)
    out = Path(a.out or tempfile.mkdtemp(prefix="device_shift_")).resolve()
    truth = common.truth_of(raw, a.task)
    times, t0 = {}, time.time()
    clean = predict_rows(a, members, raw, truth, out / "clean", times)
    perturbed = {}
    for name in a.perturbations:
        t = time.time()
        copy = perturbed_copy(raw, out / name / "raw", name, a.seed)
        times[f"write {name}"] = time.time() - t
        perturbed[name] = predict_rows(a, members, copy, copy / truth.name, out / name, times)
    result = shifts(task, truth, clean, perturbed, key, a.per_class)

    n = len(list((raw / "val").glob("*.mat")))
    print(f"\n=== device shift, Task {a.task}: {n} test records of {raw}; members {', '.join(members)}")
    print("\n".join(table_lines(result, key)))
    print(f"each cell: {key} on the perturbed records, then its change against the clean records (perturbed - clean) "
          f"with the paired bootstrap's 95% CI (a CI that includes 0: no measurable loss); clean: {key} [95% CI]")
    for name in a.perturbations:
        print(f"  {name:<15} {PERTURBATIONS[name][0]}")
    if a.per_class:
        print("\n".join(per_class_lines(result)))
    print(protocol.HOW_TO_READ)
    print(f"wall time: {(time.time() - t0) / 60:.1f} min")
    if a.json:
        Path(a.json).write_text(json.dumps({"task": a.task, "metric": key, "raw": str(raw), "out": str(out),
                                            "members": {k: [str(d) for d in v] for k, v in members.items()},
                                            "perturbations": {k: PERTURBATIONS[k][0] for k in a.perturbations},
                                            "seed": a.seed, "result": result,
                                            "reports": {"clean": clean, **perturbed},
                                            "bootstrap": protocol.bootstrap_info(), "seconds": times},
                                           indent=2, default=str) + "\n")
        print(f"figures: {a.json}")
    return result


if __name__ == "__main__":
    main()
