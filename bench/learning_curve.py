"""Learning curve: how the AUC grows with the number of training records, per model family, and where a fitted
power law says it would be with all of PTB-XL (17,000 records) or PhysioNet/CinC 2021 (88,000).

    python bench/learning_curve.py --task 1|2 --members features,resnet1d[,...] --sizes 250,500,1000,all
                                   --json FILE [--figure PNG] [--src PTBXL_DIR] [--test-fold 8] [--num-folds 3]
                                   [--picture-sizes 1000,all] [--seed 2021] [--max-records N]
                                   [--max-test-records M] [--work-dir DIR]

The PTB-XL subset is converted once (tools/convert_ptbxl.py, --test-fold held out as the test records). For each
--sizes entry ("all": every development record) the training pool is a nested, group-aware (a patient's records
all in or all out, record_groups.csv), class-stratified subset of the development records (`select_pools`:
Task 1 by tag, Task 2 by each patient's rarest class), written as its own data folder (symlinks to the converted
records, its own label files, the measurement and signal caches shared by every pool). Each --members family
(a train.py --arch; the benches' CPU-sized settings, bench/common.py, best_model chosen by the AUC) trains
--num-folds folds within each pool (tools/train_kfold.py), which gives
  - the out-of-fold AUC (Task 1 ROC AUC, Task 2 macro AUC) on the pool's records, with its 95% bootstrap CI, and
  - the test AUC of the pool's k models fused (predict.py, mean) on the test fold, with its 95% CI.
Picture members (~10x the cost of a signal member) train only at --picture-sizes (default: the two largest).

Per member, error = 1 - AUC = a * n^(-c) is fitted to the out-of-fold points (least squares in log-log), with the
size that would reach AUC 0.95 and 0.97 and the AUC extrapolated to 17,000 and 88,000 records; its 95% interval
refits the curve on bootstrap draws of the points (the out-of-fold records resampled at each size). Read it with
the plain statement printed and stored beside it (`trust`): a few points extrapolated 10-50x, sampling noise only,
and fixed training settings (the iterations: a larger pool is also seen for fewer epochs).

Prints a `=== stage` line per stage, then a table (member x size: out-of-fold and test AUC with CIs, train
minutes: the folds' sum by train.py's clock, also for folds an earlier run trained) and the fit lines; --json writes
every figure (written atomically), --figure the curve (AUC against records, log x). Development records choose;
the test fold only reports (bench/protocol.py).
"""
import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.runtime import configure_cpu_threads  # noqa: E402

configure_cpu_threads()  # before paddle is imported (LightGBM first): the scripts we start inherit the environment

import numpy as np  # noqa: E402

from bench import common, protocol  # noqa: E402
from bench.common import development_records, select_pools  # noqa: E402,F401 (development_records: the tests')
from utils.artifacts import (  # noqa: E402
    FEATURE_CACHE,
    PROCESS_REPORT,
    RECORD_GROUPS,
    RENDER_CONFIG,
    SIGNAL_CACHE,
)
from utils.atomic import write_text  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402
from utils.scoring.thresholds import MIN_RECORDS, enough  # noqa: E402

TARGETS = (0.95, 0.97)  # the AUCs whose record counts the fit reports
EXTRAPOLATE = (17000, 88000)  # all of PTB-XL; PhysioNet/CinC Challenge 2021
MIN_ERROR = 1e-6  # 1 - AUC of a perfect point, so its logarithm is defined
LABEL_FILES = tuple(get_task(n).label_file for n in (1, 2))  # a pool serves both tasks: every label file
TEST_FILES = tuple(get_task(n).truth_file for n in (1, 2))


# -- the pools: nested, group-aware, stratified subsets of the development records -------------------------------------
def pool_id(names):
    """A pool's folder name: its size and a digest of its records, so a re-run into the same --work-dir reuses
    finished folds only for the very same records."""
    return f"n{len(names)}_{hashlib.sha1(' '.join(sorted(names)).encode()).hexdigest()[:8]}"


def link(target, path):
    """`path` a symlink to `target`, replacing what a run before left there."""
    if path.is_symlink() or path.exists():
        path.unlink()
    path.symlink_to(target)


def write_pool(raw, names, pools, cache, dataset=None):
    """The pool's own data folder under `pools`: its label files and record_groups.csv, train/*.mat (its records) and
    val/*.mat (every test record) as symlinks into `raw`, and features_cache/signal_cache linked to the shared
    `cache` (the caches are keyed by the record's file name, size and mtime, which a symlink leaves as they are, and
    written atomically). With `dataset` (process.py's pictures of `raw`), also the pool's picture folder:
    DIR/dataset."""
    raw, d = Path(raw), Path(pools) / pool_id(names)
    for split, wanted in (("train", names), ("val", [p.stem for p in (raw / "val").glob("*.mat")])):
        folder = d / split
        if folder.is_dir():  # rebuilt each run: nothing of an earlier selection stays
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for n in wanted:
            (folder / f"{n}.mat").symlink_to(raw / split / f"{n}.mat")
    write_pool_labels(raw, d, set(names))
    for c in (FEATURE_CACHE, SIGNAL_CACHE):
        (Path(cache) / c).mkdir(parents=True, exist_ok=True)
        link(Path(cache) / c, d / c)
    if dataset is not None:
        write_picture_pool(Path(dataset), d)
    return d


def write_pool_labels(raw, d, keep):
    """Both tasks' label files and record_groups.csv of `raw` kept to the records `keep`; the test truth whole."""
    from utils.ecg import io as ecg_io

    ref = ecg_io.read_reference(raw / LABEL_FILES[0])
    ecg_io.write_reference(d / LABEL_FILES[0], ref[ref["name"].isin(keep)])
    task2 = ecg_io.read_reference_task2(raw / LABEL_FILES[1])
    ecg_io.write_reference_task2(d / LABEL_FILES[1], {n: c for n, c in task2.items() if n in keep})
    groups = ecg_io.read_record_groups(raw / RECORD_GROUPS)
    ecg_io.write_record_groups(d / RECORD_GROUPS, {n: g for n, g in groups.items() if n in keep})
    for f in TEST_FILES:
        shutil.copy2(raw / f, d / f)


def write_picture_pool(dataset, d):
    """DIR/dataset: the pool's label files and groups beside links to the pictures (train.py reads the label file
    of the picture folder; pictures of records not listed are never read)."""
    ds = d / "dataset"
    ds.mkdir(exist_ok=True)
    for name in ("train", "val", RENDER_CONFIG, PROCESS_REPORT):
        if (dataset / name).exists():
            link(dataset / name, ds / name)
    for name in (*LABEL_FILES, *TEST_FILES, RECORD_GROUPS):
        shutil.copy2(d / name, ds / name)


# -- the fit: error = a * n^(-c) ---------------------------------------------------------------------------------------
def fit_power_law(sizes, aucs):
    """{"a", "c"} of 1 - AUC = a * n^(-c) fitted to the points (least squares on log(1 - AUC) against log n); None
    with fewer than two defined points at different sizes."""
    pts = [(n, v) for n, v in zip(sizes, aucs) if v is not None and not math.isnan(v)]
    if len({n for n, _ in pts}) < 2:
        return None
    x = np.log([n for n, _ in pts])
    y = np.log(np.clip([1 - v for _, v in pts], MIN_ERROR, None))
    slope, intercept = np.polyfit(x, y, 1)
    return {"a": float(np.exp(intercept)), "c": float(-slope)}


def size_for(fit, target):
    """Records at which the fitted curve reaches AUC `target`; None when it never does (c <= 0: the error does not
    fall with more records) or the count is beyond any number."""
    if fit is None or fit["c"] <= 0:
        return None
    log_n = math.log(fit["a"] / (1 - target)) / fit["c"]  # in logs: a nearly flat curve's count overflows a float
    return int(math.ceil(math.exp(log_n))) if log_n < math.log(1e15) else None


def extrapolate(fit, n):
    """The fitted AUC at n records (None without a fit), within [0, 1]: a bootstrap refit whose error grows with n
    (c < 0) would otherwise leave the range an AUC has."""
    return None if fit is None else float(np.clip(1 - fit["a"] * n ** (-fit["c"]), 0.0, 1.0))


def fit_summary(sizes, aucs, draws):
    """The member's fit: {"fit": {"a", "c", "size_for"}, "extrapolated": {N: {"value", "ci95"}}}. `draws` (B, sizes)
    holds bootstrap draws of the out-of-fold AUCs (NaN where not run or undefined); each row is refitted and the
    95% interval is the 2.5th-97.5th percentile of its extrapolations."""
    fit = fit_power_law(sizes, aucs)
    run = [i for i, v in enumerate(aucs) if v is not None]  # the sizes the member trained at
    refits = [fit_power_law([sizes[i] for i in run], [row[i] for i in run])
              for row in draws if not np.isnan(row[run]).any()]
    out = {"fit": None if fit is None else {**fit, "size_for": {f"{t:g}": size_for(fit, t) for t in TARGETS}},
           "extrapolated": {}}
    for n in EXTRAPOLATE:
        vals = np.array([extrapolate(f, n) for f in refits if f is not None], dtype=np.float64)
        ci = [float(v) for v in np.percentile(vals, [2.5, 97.5])] if fit is not None and len(vals) else None
        out["extrapolated"][str(n)] = {"value": extrapolate(fit, n), "ci95": ci}
    return out


def crossing(fa, fb):
    """The record count where fitted curves `fa` and `fb` meet (a n^-c equal), and which leads beyond it:
    {"records", "then_ahead": "a"|"b"}; None when they never meet at a positive size (one is ahead everywhere) or a
    fit is missing. Only a meeting point far outside the measured sizes is an extrapolation's extrapolation."""
    if fa is None or fb is None or fa["c"] == fb["c"]:
        return None
    n = (fa["a"] / fb["a"]) ** (1.0 / (fa["c"] - fb["c"]))
    if not np.isfinite(n) or n <= 0:
        return None
    return {"records": int(round(n)), "then_ahead": "a" if fa["c"] > fb["c"] else "b"}


def crossings(members):
    """{"<a> x <b>": {"records", "then_ahead": member}} for every pair of fitted members whose curves meet."""
    names = [m for m, r in members.items() if r["fit"] is not None]
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            c = crossing(members[a]["fit"], members[b]["fit"])
            if c is not None:
                out[f"{a} x {b}"] = {"records": c["records"], "then_ahead": a if c["then_ahead"] == "a" else b}
    return out


def trust(sizes):
    """The plain statement of how far the extrapolation can be trusted."""
    largest = max(sizes)
    return (f"The curve rests on {len(sizes)} points ({min(sizes)} to {largest} records); 17,000 records is "
            f"{17000 / largest:.0f}x and 88,000 is {88000 / largest:.0f}x the largest, so both are extrapolations far "
            f"beyond the data, and a power law fitted to a few points can bend the wrong way out there. It assumes "
            f"more of the same kind of records (PTB-XL's hospital, devices and labelling; CinC 2021 mixes sources and "
            f"label sets) and the same training settings (fixed iterations: a larger pool is seen for fewer epochs). "
            f"The interval reflects only the sampling noise of the points (out-of-fold records resampled at each "
            f"size), not whether a power law is the right shape (model misspecification): read the extrapolated AUC "
            f"as a direction, not a forecast.")


# -- one member at one size --------------------------------------------------------------------------------------------
def oof_draws(task, pool, kfold):
    """(B,) bootstrap draws of the out-of-fold AUC: the very resamples (protocol's seed) whose percentiles are the
    reported CI, so the refitted curves and the points' CIs agree."""
    s = protocol.align(task, pool / task.label_file, *common.oof_answers(task, kfold))
    return protocol._resampled(task, [s], protocol.SEED, protocol.N_RESAMPLES)[0][protocol.auc_metric(task)]


def member_flags(arch, a, pool, ds):
    """train.py flags: the benches' CPU-sized configuration (bench/common.py), best_model chosen by the AUC
    this bench measures, the bench's seed, and no permutation-importance figure (features: minutes, unused here);
    the later flags win."""
    return [*common.train_flags(arch, a.task, pool, ds), "--select-metric", protocol.auc_metric(get_task(a.task)),
            "--seed", a.seed, "--importance-repeats", 0]


def run_member(a, arch, pool, out, times):
    """Train `arch`'s folds in the pool and fuse them on the test records: {"oof", "test" figures, "draws",
    "minutes", "n_test"}."""
    task, metric = get_task(a.task), protocol.auc_metric(get_task(a.task))
    ds = pool / "dataset" if common.is_picture(arch) else pool
    flags = member_flags(arch, a, pool, ds)
    name = f"{arch} {pool.name}"
    common.stage(f"train {name}", ["tools/train_kfold.py", "--num-folds", a.num_folds, "--output-dir", out, "--",
                                   *flags], times)
    truth, report = pool / task.truth_file, out / "predict_report.json"
    models = common.fold_models(out, range(a.num_folds))
    common.stage(f"predict {name}", ["predict.py", "--task", a.task, "--data-dir", pool, "--dataset-dir", ds,
                                     "--model", *models, "--out", out / "answer.csv", "--truth", truth, "--report",
                                     report], times)
    test = protocol.report_figures(task, truth, report, per_class=False)[metric]
    return {"oof": common.oof_figures(task, pool, out)[metric], "test": test, "draws": oof_draws(task, pool, out),
            "minutes": common.kfold_minutes(out), "n_test": json.loads(report.read_text())["metrics"]["n"]}


def member_result(sizes, runs):
    """A member's JSON entry from its runs ({size index: run_member}), lists aligned with `sizes` (None: not run)."""
    at = [runs.get(i) for i in range(len(sizes))]
    aucs = [r["oof"]["value"] if r else None for r in at]
    draws = np.stack([r["draws"] if r else np.full(protocol.N_RESAMPLES, np.nan) for r in at], axis=1)
    return {"oof_auc": aucs, "oof_ci95": [r["oof"]["ci95"] if r else None for r in at],
            "test_auc": [r["test"]["value"] if r else None for r in at],
            "test_ci95": [r["test"]["ci95"] if r else None for r in at],
            "train_minutes": [r["minutes"] if r else None for r in at], **fit_summary(sizes, aucs, draws)}


# -- output ------------------------------------------------------------------------------------------------------------
def table_lines(sizes, members, metric):
    def cell(v, ci):
        return protocol.fmt_ci({"value": v, "ci95": ci}) if v is not None else "-"

    lines = [f"{'member':<12} {'records':>8} {'out-of-fold ' + metric + ' [95% CI]':>32} "
             f"{'test ' + metric + ' [95% CI]':>28} {'train min':>10}"]
    for m, r in members.items():
        for i, n in enumerate(sizes):
            mins = f"{r['train_minutes'][i]:.1f}" if r["train_minutes"][i] is not None else "-"
            lines.append(f"{m:<12} {n:>8} {cell(r['oof_auc'][i], r['oof_ci95'][i]):>32} "
                         f"{cell(r['test_auc'][i], r['test_ci95'][i]):>28} {mins:>10}")
    return lines


def fit_lines(members):
    lines = []
    for m, r in members.items():
        f = r["fit"]
        if f is None:
            lines.append(f"{m}: no fit (fewer than two out-of-fold points)")
            continue
        reach = ", ".join(f"AUC {t} at {format(n, ',') if n else 'never'}" for t, n in f["size_for"].items())
        ext = ", ".join(f"at {int(n):,}: {protocol.fmt_ci(e)}" for n, e in r["extrapolated"].items())
        falls = "" if f["c"] > 0 else " (the error does not fall with more records: nothing to extrapolate)"
        lines.append(f"{m}: 1 - AUC = {f['a']:.3g} * n^{-f['c']:.3f}{falls}; {reach}; {ext}")
    return lines


def plot(sizes, members, metric, path, title):
    """AUC against records (log x): per member the out-of-fold points with CI bars, the test points hollow, the fit
    dashed to the largest extrapolation; the targets as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for k, (m, r) in enumerate(members.items()):
        plot_member(ax, f"C{k}", m, r, sizes)
    for t in TARGETS:
        ax.axhline(t, color="grey", lw=0.8, ls=":")
        ax.annotate(f"{t:g}", (min(sizes), t), xytext=(2, 2), textcoords="offset points", fontsize="small",
                    color="grey")
    for n in EXTRAPOLATE:  # where the extrapolations are read
        ax.axvline(n, color="grey", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set(xlabel="training records (log scale; dotted: 17,000 all of PTB-XL, 88,000 CinC 2021)", ylabel=metric)
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", fontsize="small")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_member(ax, color, m, r, sizes):
    pts = [(n, v, ci or [v, v]) for n, v, ci in zip(sizes, r["oof_auc"], r["oof_ci95"]) if v is not None]
    if not pts:
        return
    err = np.array([[v - ci[0], ci[1] - v] for _, v, ci in pts]).T
    ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=err, fmt="o", color=color, capsize=3,
                label=f"{m} out-of-fold")
    test = [(n, v) for n, v in zip(sizes, r["test_auc"]) if v is not None]
    ax.scatter([n for n, _ in test], [v for _, v in test], facecolors="none", edgecolors=color, marker="s", s=40,
               label=f"{m} test")
    if r["fit"] is not None:
        xs = np.geomspace(pts[0][0], max(EXTRAPOLATE), 100)  # from the member's own first point
        ax.plot(xs, [extrapolate(r["fit"], x) for x in xs], "--", color=color, lw=1,
                label=f"{m} fit 1 - {r['fit']['a']:.3g} n^{-r['fit']['c']:.2f}")


# -- the command -------------------------------------------------------------------------------------------------------
def development_count(src, test_fold, max_records):
    """The development records the conversion will give (PTB-XL folds other than the test fold, at most
    --max-records), read from the database before anything runs; None when --src has no database."""
    import pandas as pd

    db = Path(src) / "ptbxl_database.csv"
    if not db.is_file():
        return None
    n = int((pd.read_csv(db, usecols=["strat_fold"])["strat_fold"] != test_fold).sum())
    return n if max_records is None else min(n, max_records)


def requested_sizes(text, total):
    """The --sizes text as record counts ("all": `total`); a ValueError says what is wrong."""
    parts = [s.strip() for s in text.split(",") if s.strip()]
    if not parts:
        raise ValueError("no size given")
    bad = [s for s in parts if s != "all" and not (s.isdigit() and int(s) > 0)]
    if bad:
        raise ValueError(f"{bad[0]!r} is neither a positive number of records nor 'all'")
    sizes = [total if s == "all" else int(s) for s in parts]
    if any(b <= x for x, b in zip(sizes, sizes[1:])):
        raise ValueError("sizes must increase ('all' last)")
    if sizes[-1] > total:
        raise ValueError(f"{sizes[-1]} is more than the {total} development records")
    return sizes


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", type=int, default=1, choices=(1, 2))
    p.add_argument("--members", default="features,resnet1d", help="comma-separated --arch of each member family")
    p.add_argument("--sizes", default="250,500,1000,all", help="training records per pool, increasing; all: every one")
    p.add_argument("--picture-sizes", default=None,
                   help="the --sizes picture members train at, comma-separated (default: the two largest)")
    p.add_argument("--src", default=str(ROOT.parent / "shared" / "data" / "ptbxl"))
    p.add_argument("--test-fold", type=int, default=8)
    p.add_argument("--num-folds", type=int, default=3)
    p.add_argument("--seed", type=int, default=2021, help="the pools' order and train.py's --seed")
    p.add_argument("--max-records", type=int, default=None,
                   help="convert at most this many development records (tests)")
    p.add_argument("--max-test-records", type=int, default=None, help="convert at most this many test records (tests)")
    p.add_argument("--work-dir", default=None, help="default: a new temporary directory")
    p.add_argument("--json", default=None)
    p.add_argument("--figure", default=None)
    a = p.parse_args(argv)
    a.members, _ = common.members_of(p, a.members)
    if a.num_folds < 2:
        p.error("--num-folds must be at least 2")
    total = development_count(a.src, a.test_fold, a.max_records)
    if total is None:
        p.error(f"--src {a.src}: no ptbxl_database.csv (is it a PTB-XL folder?)")
    try:
        a.size_list = requested_sizes(a.sizes, total)
        pics = requested_sizes(a.picture_sizes, total) if a.picture_sizes else a.size_list[-2:]
    except ValueError as e:
        p.error(f"--sizes {a.sizes}{f' / --picture-sizes {a.picture_sizes}' if a.picture_sizes else ''}: {e}")
    if set(pics) - set(a.size_list):
        p.error(f"--picture-sizes {a.picture_sizes}: each must be one of --sizes {a.sizes}")
    a.picture_at = {a.size_list.index(n) for n in pics}
    a.src = str(Path(a.src).resolve())  # the stages run in the repository
    return a


def prepare(a, work, times):
    """Convert (and render, for picture members) once; the pools' data folders: [pool folder per size]."""
    raw = work / "raw"
    limits = [*(["--max-records", a.max_records] if a.max_records else []),
              *(["--max-test-records", a.max_test_records] if a.max_test_records else [])]
    common.convert_ptbxl(a.src, raw, a.test_fold, times, limits=limits)
    dataset = None
    if any(common.is_picture(m) for m in a.members):
        dataset = work / "dataset"
        common.stage("process", ["process.py", "--data-dir", raw, "--out-dir", dataset, "--size", common.IMAGE_SIZE],
                     times)
    print("\n=== pools", flush=True)
    task = get_task(a.task)
    try:  # again on what was converted: --max-records' class-proportional sampling may keep a record fewer
        a.size_list = requested_sizes(a.sizes, len(task.read_labels(raw / task.label_file)))
    except ValueError as e:
        sys.exit(f"error: --sizes {a.sizes}: {e} (as converted in {raw})")
    pools = [write_pool(raw, names, work / "pools", work / "cache", dataset)
             for names in select_pools(raw, task, a.size_list, a.seed)]
    for d in pools:
        n = sum(1 for _ in (d / 'train').glob('*.mat'))
        print(f"{d.name}: {n} records -> {d}")
        if not enough(n // a.num_folds):  # train.py then tunes nothing (utils/scoring/thresholds.py)
            print(f"warning: {d.name}: about {n // a.num_folds} validation records a fold (< {MIN_RECORDS}): each fold "
                  f"keeps its latest model and thresholds 0.5 instead of choosing by the AUC")
    return pools


def report(a, sizes, members, metric, n_test, statement):
    """The printed table, the fit lines and how to read them."""
    print(f"\n=== learning curve, Task {a.task}: {a.num_folds}-fold within each pool of the development records, "
          f"test fold {a.test_fold} ({n_test} test records), CPU {os.cpu_count()} cores")
    print("\n".join(table_lines(sizes, members, metric)))
    print(f"out-of-fold: each pool's records predicted by the fold that validated them, pooled, 95% bootstrap CI; "
          f"test: the pool's {a.num_folds} models fused (mean) on the {n_test} test records")
    print("fit (out-of-fold points, error = 1 - AUC = a * n^-c, 95% interval from refits on bootstrap draws):")
    print("\n".join(fit_lines(members)))
    for pair, c in crossings(members).items():
        print(f"{pair}: the fitted curves meet at about {c['records']:,} records, {c['then_ahead']} ahead beyond "
              f"(an extrapolation)")
    print(f"trust: {statement}")
    print(protocol.HOW_TO_READ)
    print(protocol.PROTOCOL)


def main(argv=None):
    a = parse(argv)
    t0 = time.time()
    task = get_task(a.task)
    metric = protocol.auc_metric(task)
    work = Path(a.work_dir or tempfile.mkdtemp(prefix="learning_curve_")).resolve()
    times = {}
    pools = prepare(a, work, times)
    sizes = [sum(1 for _ in (d / "train").glob("*.mat")) for d in pools]
    members, n_test = {}, None
    for arch in a.members:
        runs = {i: run_member(a, arch, d, work / "output" / arch / d.name, times) for i, d in enumerate(pools)
                if not common.is_picture(arch) or i in a.picture_at}
        n_test = next(iter(runs.values()))["n_test"]
        members[arch] = member_result(sizes, runs)

    statement = trust(sizes)
    report(a, sizes, members, metric, n_test, statement)
    seconds = {**times, "total": time.time() - t0}
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    title = (f"Task {a.task} learning curve: {protocol.metric_label(task, metric)} against training records, "
             f"{n_test} test records (fold {a.test_fold})")
    if a.figure:
        plot(sizes, members, protocol.metric_label(task, metric), a.figure, title)
        print(f"figure: {a.figure}")
    result = {"task": a.task, "metric": metric, "sizes": sizes, "requested_sizes": a.size_list, "members": members,
              "crossings": crossings(members),
              "n_test": n_test, "trust": statement, "src": a.src, "test_fold": a.test_fold, "num_folds": a.num_folds,
              "seed": a.seed, "pools": [d.name for d in pools],
              "configs": {m: member_flags(m, a, "POOL", "DATASET") for m in a.members},
              "protocol": protocol.PROTOCOL, "bootstrap": protocol.bootstrap_info(), "seconds": seconds}
    if a.json:
        write_text(a.json, json.dumps(result, indent=2, default=str) + "\n")
        print(f"figures: {a.json}")
    return result


if __name__ == "__main__":
    main()
