"""Diagnosis straight from the picture (issue 35, item 6): the picture family trained on generated paper pages
(printed ECGs, scanned or photographed), against digitise-then-diagnose, on the same held-out pages.

    python bench/paper_pictures.py --records DIR --model-t1 DIR [DIR ...] [--model-t2 DIR [DIR ...]]
        [--conditions clean,scan,photo] [--max-records N] [--max-train-records M] [--arch resnet18]
        [--image-size 320] [--iters 700] [--batch-size 16] [--num-folds 10] [--seed 2021] [--paper-workers W]
        [--px-per-mm P] [--work-dir DIR] --json FILE [--figure PNG]

--records is a converted competition folder (tools/convert_ptbxl.py --test-fold 8): its train/ records (folds
1-7, with trainreference.csv and record_groups.csv) train the picture model, its val/ records (fold 8, truth
beside them: bench/common.truth_of) are the test records. --max-records: the first N test records by name (0: all);
--max-train-records: a group-aware, class-stratified subset of about M training records (bench/common.select_pools,
the learning curve's pools; 0: all). --model-t1 / --model-t2: trained signal or features model directories of
each task (several fused as predict.py fuses them): the digitise-then-diagnose route and the ceiling.

A condition is PRESET[:LEVEL] as in bench/digitize_accuracy.py (clean; scan or photo at level 1-3, or without a
level each page's level drawn from 1-3). For each condition, one page per record (tools/make_paper.py --n 1, a
random printer style, --px-per-mm fixes the resolution for quick runs): the training records' pages with seed
--seed + 1, the test records' pages with --seed (a test page is generated once and read by both routes). The
stages (child processes, timed; in --work-dir a page or digitise stage whose flags, records and code are
unchanged since an earlier run is kept, as is a training run on the same pages and flags):

- the picture dataset WORK/pictures: every page fitted into a white square of --image-size pixels (its aspect
  kept, area-averaged, gray PNG: `page_picture`), train/<condition>__<record>.png for the training pages (the
  label files and record_groups.csv renamed alike: a record's pages of every condition share its group, so they
  are never split between train.py's training and validation folds), val/<condition>__<record>.png for the test
  pages, and render_config.json with layout "paper" (utils/inputs/pictures.PAPER_LAYOUT), the conditions, seed and
  size: a model trained on these pages refuses process.py's renders, and a process.py model these pages;
- route "picture": train.py --arch ARCH (the picture family, the benches' CPU-sized configuration
  bench/common.train_flags at --image-size, --iters, --batch-size, --pretrained none; one of --num-folds folds of
  the training records validates and picks the best model) on every training page of every condition, one model
  per task; predict.py reads the test pages' pictures (WORK/picture_predict/val links
  each <condition>__<record> to its original record, for the names only);
- route "digitised": tools/digitize.py --workers 1 on the same test pages, then predict.py with the given models on
  every digitised record (a page not read: a MAT without `ecgdata`, answered with predict.py's fallback, counted);
- "original": the same models on the original records (the ceiling), in the same predict.py run.

Per condition and task: ROC AUC (Task 2 macro AUC) of each route with its 95% bootstrap CI over the test records,
the paired bootstrap difference picture - digitised and picture - original (bench/protocol.py), the pages read,
the fallback answers per route. --json writes every figure (atomically), --figure the AUCs with their CIs per
route and condition.
"""
import argparse
import hashlib
import json
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
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench import common, protocol  # noqa: E402
from utils.artifacts import BEST_DIR, RECORD_GROUPS, RENDER_CONFIG, ModelCard  # noqa: E402
from utils.atomic import atomic_path, write_text  # noqa: E402
from utils.ecg.io import (  # noqa: E402
    CSV_ENCODING,
    list_records,
    read_record_groups,
    read_reference,
    read_reference_task2,
    write_record_groups,
    write_reference,
    write_reference_task2,
)
from utils.inputs.pictures import PAPER_LAYOUT  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402

CONDITIONS = "clean,scan,photo"
ARCH = "resnet18"
IMAGE_SIZE = 320  # a landscape A4 page at about 1.1 px/mm: the QRS of 10 mm/mV about 10 px tall
ORIGINAL, SEP = "original", "__"  # <condition>__<record>: a page's picture and its predict.py entry
ROUTES = ("picture", "digitised", "original")
FIT = "letterbox: the page scaled to fit the square (aspect kept, area-averaged), centred on white, gray"
HOW_TO_READ = (
    "picture: the picture family trained on the training records' pages of every condition, reading the test "
    "pages themselves; digitised: the given signal / features models on the records tools/digitize.py read from the "
    "same pages (a page not read: predict.py's fallback answer, counted in `fallback`); original: the same models on "
    "the original records, the ceiling. diff_picture_minus_digitised and diff_picture_minus_original: on the same "
    "test records, the paired bootstrap's 95% CI (a CI that includes 0: no measurable difference). "
    + protocol.HOW_TO_READ)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", required=True, type=Path,
                   help="converted folder: train/ the training records, val/ the test records, truth beside")
    p.add_argument("--model-t1", nargs="+", required=True, type=Path, help="Task 1 signal / features models (fused)")
    p.add_argument("--model-t2", nargs="+", default=None, type=Path,
                   help="Task 2 signal / features models (fused); also trains a Task 2 picture model")
    p.add_argument("--conditions", default=CONDITIONS, help=f"comma-separated PRESET[:LEVEL] (default {CONDITIONS})")
    p.add_argument("--max-records", type=int, default=0, help="the first N test records by name (0: all)")
    p.add_argument("--max-train-records", type=int, default=0,
                   help="a group-aware, class-stratified subset of about M training records (0: all)")
    p.add_argument("--arch", default=ARCH, help=f"the picture model (default {ARCH})")
    p.add_argument("--image-size", type=int, default=IMAGE_SIZE, help="the pictures' and the model's size in pixels")
    p.add_argument("--iters", type=int, default=common.BENCH_DEFAULTS["picture"]["iters"], help="train.py --iters")
    p.add_argument("--batch-size", type=int, default=common.BENCH_DEFAULTS["picture"]["batch_size"],
                   help="train.py --batch-size")
    p.add_argument("--num-folds", type=int, default=10,
                   help="train.py --num-folds: one fold of the training records validates (a record's pages together)")
    p.add_argument("--train-workers", type=int, default=2, help="train.py --num-workers")
    p.add_argument("--seed", type=int, default=2021,
                   help="tools/make_paper.py --seed of the test pages (the training pages: seed + 1)")
    p.add_argument("--paper-workers", type=int, default=0, help="tools/make_paper.py --workers (0: every core)")
    p.add_argument("--px-per-mm", type=float, default=0.0,
                   help="tools/make_paper.py --px-per-mm: every page at this resolution (0: random 3-12 px/mm)")
    p.add_argument("--work-dir", type=Path, default=None, help="pages, pictures, models, predictions (default: temp)")
    p.add_argument("--json", required=True, type=Path)
    p.add_argument("--figure", type=Path, default=None)
    a = p.parse_args(argv)
    a.conditions = common.parse_conditions(p, a.conditions, CONDITIONS)
    if a.max_records < 0 or a.max_train_records < 0:
        p.error("--max-records and --max-train-records: 0 (all) or more")
    if a.image_size < 16 or a.iters < 1 or a.batch_size < 1:
        p.error("--image-size at least 16, --iters and --batch-size at least 1")
    if a.arch not in _archs() or not common.is_picture(a.arch):
        p.error(f"--arch {a.arch}: not a picture model ({', '.join(sorted(x for x in _archs() if common.is_picture(x)))})")
    for flag, task, dirs in (("--model-t1", 1, a.model_t1), ("--model-t2", 2, a.model_t2 or [])):
        for d in dirs:
            if not d.is_dir():
                p.error(f"{flag} {d}: not a directory")
            if is_picture_model(d):
                p.error(f"{flag} {d}: a picture model; the digitised route predicts signal and features models")
        if dirs and not common.truth_of(a.records, task).is_file():
            p.error(f"{flag}: no Task {task} truth {common.truth_of(a.records, task)}")
    if not (a.records / get_task(1).label_file).is_file():
        p.error(f"--records {a.records}: no {get_task(1).label_file} (the training records' labels)")
    return a


def _archs():
    from models.families import ARCHS

    return ARCHS


def is_picture_model(model_dir):
    try:
        return common.is_picture(ModelCard.read(model_dir).arch)
    except Exception:  # noqa: BLE001 - an exported model or no card: predict.py says what is wrong with it
        return False


# -- pages to pictures -------------------------------------------------------------------------------------------------
def page_picture(src, dst, size):
    """The page `src` (PNG or JPEG) fitted into a white size x size gray square, its aspect kept (the longer side
    fills it; shrunk area-averaged as utils/inputs/pictures.load_image shrinks), centred; written atomically as PNG
    to `dst`. Returns the box (left, top, width, height) the page fills."""
    with Image.open(src) as img:
        page = img.convert("L")
    w, h = page.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = page.resize((nw, nh), Image.BOX if scale < 1 else Image.BILINEAR)
    canvas = Image.new("L", (size, size), 255)
    box = ((size - nw) // 2, (size - nh) // 2, nw, nh)
    canvas.paste(small, box[:2])
    with atomic_path(dst) as tmp:
        canvas.save(tmp, format="PNG", compress_level=1)
    return box


def paper_config(a):
    """render_config.json of the pages' pictures: layout PAPER_LAYOUT (refused by a process.py model, and a model
    trained on them refuses process.py's renders: utils/inputs/pictures.check_render_settings), how they were made."""
    return {"layout": PAPER_LAYOUT, "size": a.image_size, "fit": FIT,
            "pages": {"generator": "tools/make_paper.py", "conditions": [c.name for c in a.conditions],
                      "seed_test": a.seed, "seed_train": a.seed + 1, "px_per_mm": a.px_per_mm or "random 3-12"}}


def convert_pages(pages, names, out_dir, key, size, desc):
    """out_dir/<key>__<record>.png for each of `names` with a page in `pages` (its index.csv), unless a picture newer
    than its page is there; {record: picture path} of those that have one."""
    index = pd.read_csv(pages / "index.csv", dtype=str, keep_default_na=False, encoding=CSV_ENCODING)
    image = dict(zip(index["record"], index["image"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    done = {}
    for n in tqdm([n for n in names if n in image], desc=desc, unit="page"):
        src, dst = pages / image[n], out_dir / f"{key}{SEP}{n}.png"
        if not (dst.is_file() and dst.stat().st_mtime_ns >= src.stat().st_mtime_ns):
            page_picture(src, dst, size)
        done[n] = dst
    return done


# -- records, pages, the picture dataset -------------------------------------------------------------------------------
def test_records(records, limit):
    names = list_records(Path(records) / "val")
    if not names:
        raise SystemExit(f"{records}/val: no test records (*.mat)")
    return names[:limit] if limit else names


def training_records(records, limit, seed):
    """The training records (train/ with a label), all or about `limit` of them (common.select_pools, Task 1)."""
    have = set(list_records(Path(records) / "train"))
    labelled = [n for n in read_reference(Path(records) / get_task(1).label_file)["name"] if n in have]
    if not limit or limit >= len(labelled):
        return sorted(labelled)
    if not (Path(records) / RECORD_GROUPS).is_file():
        raise SystemExit(f"--max-train-records: {records} has no {RECORD_GROUPS} to keep a patient's records together")
    return sorted(set(common.select_pools(records, get_task(1), [limit], seed)[0]) & have)


def link_folder(folder, targets):
    """folder/<name>.mat -> target for {name: target}, every other file there removed."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, target in targets.items():
        (folder / f"{name}.mat").symlink_to(Path(target).resolve())


def make_pages(a, cond, records_dir, names, out, seed, times, cpu, what):
    make = ["tools/make_paper.py", "--records", records_dir, "--out", out, "--n", 1, "--preset", cond.preset,
            "--level", cond.level, "--seed", seed, "--workers", a.paper_workers, "--px-per-mm", a.px_per_mm]
    key = {"records": hashlib.sha1("\n".join(names).encode()).hexdigest(), "code": common.code_hash(common.GENERATOR_CODE),
           "make_paper": [str(x) for x in make]}
    common.kept_stage(f"make_paper {what} {cond.name}", make, out, key, times, cpu)
    return key


def write_dataset(a, ds, raw, train_names, train_pictures, test_pictures):
    """WORK/pictures: the label files and record_groups.csv of the training pages (their names <key>__<record>),
    render_config.json; the pictures themselves are written by convert_pages. Pictures of pages no longer
    generated are removed."""
    keep = {p.name for pics in (*train_pictures.values(), *test_pictures.values()) for p in pics.values()}
    for split in ("train", "val"):
        for p in (ds / split).glob("*.png"):
            if p.name not in keep:
                p.unlink()
    page_of = {}  # training page name -> its record
    for key, pics in train_pictures.items():
        page_of.update({f"{key}{SEP}{n}": n for n in pics})
    ref = read_reference(raw / get_task(1).label_file).set_index("name")["tag"]
    write_reference(ds / get_task(1).label_file, pd.DataFrame({"name": list(page_of),
                                                               "tag": [int(ref[n]) for n in page_of.values()]}))
    t2 = raw / get_task(2).label_file
    if t2.is_file():
        labels = read_reference_task2(t2)
        write_reference_task2(ds / get_task(2).label_file, {p: labels[n] for p, n in page_of.items() if n in labels})
    else:
        (ds / get_task(2).label_file).unlink(missing_ok=True)
    groups = read_record_groups(raw / RECORD_GROUPS) if (raw / RECORD_GROUPS).is_file() else {}
    write_record_groups(ds / RECORD_GROUPS, {p: groups.get(n, n) for p, n in page_of.items()})
    write_text(ds / RENDER_CONFIG, json.dumps(paper_config(a), indent=2) + "\n")
    return page_of


def train_picture(a, task_number, records, ds, out, page_of, times, cpu):
    """The picture model of Task `task_number` trained on the training pages -> its best model's folder."""
    every = max(1, min(100, a.iters))
    args = ["train.py", *common.train_flags(a.arch, task_number, records, ds), "--image-size", a.image_size,
            "--iters", a.iters, "--batch-size", a.batch_size, "--eval-interval", every, "--save-interval", every,
            "--warmup-iters", min(common.BENCH_DEFAULTS["picture"]["warmup_iters"], a.iters // 2),
            "--num-workers", a.train_workers, "--num-folds", a.num_folds, "--seed", a.seed, "--output-dir", out]
    pictures = hashlib.sha1()
    for p in sorted(page_of):
        f = ds / "train" / f"{p}.png"
        pictures.update(f"{p} {f.stat().st_size} {f.stat().st_mtime_ns}\n".encode())
    key = {"train": [str(x) for x in args], "pictures": pictures.hexdigest()}
    common.kept_stage(f"train picture task {task_number}", args, out, key, times, cpu)
    return out / BEST_DIR


def predict_run(name, models, task_number, data, ds, times):
    """predict.py on every test entry of `data`: ({entry: (answer, probability)}, {entry: fallback reason}, report)."""
    task = get_task(task_number)
    report = data / f"predict_{name}_t{task_number}.json"
    common.stage(f"predict {name} task {task_number}", [
        "predict.py", "--task", task_number, "--data-dir", data, "--dataset-dir", ds, "--model", *models,
        "--out", data / f"answer_{name}_t{task_number}.csv", "--report", report], times)
    entries, answers, probs = protocol.read_predictions(task, report)
    fallback = {f["name"]: f["reason"] for f in json.loads(report.read_text())["fallback"]}
    return dict(zip(entries, zip(answers, probs))), fallback, str(report)


# -- the figures -------------------------------------------------------------------------------------------------------
def task_block(task_number, truth, names, entries, predicted, fallback):
    """One condition's figures of one task: each route's AUC with its CI and fallback count, the paired
    differences picture - digitised and picture - original. `entries[route]` = {record: entry},
    `predicted[route]` / `fallback[route]` the route's predict.py run."""
    task = get_task(task_number)
    metric = protocol.auc_metric(task)
    sets = {r: ([predicted[r][entries[r][n]][0] for n in names], [predicted[r][entries[r][n]][1] for n in names])
            for r in ROUTES}
    out = {"metric": metric, "n": len(names)}
    for r in ROUTES:
        fig = protocol.test_figures(task, truth, names, *sets[r])[metric]
        out[r] = {"auc": fig["value"], "ci": fig["ci95"], "fallback": sum(entries[r][n] in fallback[r] for n in names)}
    for other in ("digitised", "original"):
        d = protocol.paired_differences(task, truth, names, sets["picture"], sets[other], (metric,))[metric]
        out[f"diff_picture_minus_{other}"] = {"diff": d["diff"], "ci": d["ci95"],
                                              "p_picture_not_better": d["p_a_not_better"]}
    return out


def fmt(v, ci=None, sign=False):
    if v is None:
        return "n/a"
    s = f"{v:+.3f}" if sign else f"{v:.3f}"
    return s + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if sign and ci else f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def table_lines(conds, tasks):
    lines = []
    for t in tasks:
        lines += ["", f"{'Task ' + t[-1]:<10} {'n':>4} {'read':>4} {'picture [95% CI]':<22} {'digitised [95% CI]':<22} "
                      f"{'original [95% CI]':<22} {'picture - digitised [95% CI]':<29} picture - original [95% CI]"]
        for c, r in conds.items():
            b = r if t == "task1" else r[t]
            lines.append(f"{c:<10} {b['n']:>4} {r['read']:>4} {fmt(b['picture']['auc'], b['picture']['ci']):<22} "
                         f"{fmt(b['digitised']['auc'], b['digitised']['ci']):<22} "
                         f"{fmt(b['original']['auc'], b['original']['ci']):<22} "
                         f"{fmt(b['diff_picture_minus_digitised']['diff'], b['diff_picture_minus_digitised']['ci'], True):<29} "
                         f"{fmt(b['diff_picture_minus_original']['diff'], b['diff_picture_minus_original']['ci'], True)}")
    return lines


def plot(result, path):
    """Each task's AUC per condition, the three routes with their 95% CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = result["conditions"]
    names = list(conds)
    tasks = result["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=((3.5 + 1.2 * len(names)) * len(tasks), 4.6), squeeze=False)
    x = np.arange(len(names))
    labels = {"picture": f"picture model on the pages ({result['picture_model']['arch']}, "
                         f"{result['picture_model']['image_size']} px)",
              "digitised": "digitised, then diagnosed (a page not read: fallback)",
              "original": "original records (the ceiling)"}
    for ax, t in zip(axes[0], tasks):
        for j, (route, color) in enumerate((("picture", "C3"), ("digitised", "C0"), ("original", "0.35"))):
            blocks = [conds[c] if t == "task1" else conds[c][t] for c in names]
            vals = np.array([np.nan if b[route]["auc"] is None else b[route]["auc"] for b in blocks])
            ci = np.array([b[route]["ci"] or [np.nan, np.nan] for b in blocks], np.float64)
            ax.errorbar(x + (j - 1) * 0.2, vals, yerr=np.abs(ci.T - vals), fmt="o", ms=4, capsize=2, color=color,
                        label=labels[route])
        ax.set_xticks(x, [f"{c}\n{conds[c]['read']}/{conds[c]['n']} read" for c in names], fontsize="small")
        ax.set_ylabel("ROC AUC" if t == "task1" else "macro ROC AUC")
        ax.set_title(f"Task {t[-1]} (95% CI)", fontsize="medium")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize="x-small", loc="lower left")
    fig.suptitle(f"Diagnosis from the picture vs digitised: {result['n_records']} test records' pages, picture model "
                 f"trained on {result['n_train_pages']} pages of {result['n_train_records']} records",
                 fontsize="medium")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


# -- the run -----------------------------------------------------------------------------------------------------------
def main(argv=None):
    a = parse(argv)
    t0 = time.time()
    work = (a.work_dir or Path(tempfile.mkdtemp(prefix="paper_pictures_"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    names = test_records(a.records, a.max_records)
    train_names = training_records(a.records, a.max_train_records, a.seed)
    raw = work / "raw"  # the test records (copies), their truth
    common.copy_records(Path(a.records) / "val", raw / "val", names)
    common.write_truths(a.records, raw, names)
    train_recs = work / "train_records"  # the training records, as links (tools/make_paper.py reads a flat folder)
    link_folder(train_recs, {n: Path(a.records) / "train" / f"{n}.mat" for n in train_names})

    times, cpu, dig_rows = {}, {}, {}
    ds = work / "pictures"
    train_pictures, test_pictures = {}, {}
    for cond in a.conditions:
        base = work / cond.key
        key = make_pages(a, cond, raw, names, base / "pages", a.seed, times, cpu, "test")
        read = ["tools/digitize.py", "--images", base / "pages", "--out", base / "digitised", "--workers", 1]
        common.kept_stage(f"digitize {cond.name}", read, base / "digitised",
                          {**key, "digitizer_code": common.code_hash(common.DIGITIZER_CODE),
                           "digitize": [str(x) for x in read]}, times, cpu)
        make_pages(a, cond, train_recs, train_names, base / "train_pages", a.seed + 1, times, cpu, "train")
        t = time.time()
        test_pictures[cond.key] = convert_pages(base / "pages", names, ds / "val", cond.key, a.image_size,
                                                f"pictures test {cond.name}")
        train_pictures[cond.key] = convert_pages(base / "train_pages", train_names, ds / "train", cond.key,
                                                 a.image_size, f"pictures train {cond.name}")
        times[f"pictures {cond.name}"] = time.time() - t
        index = pd.read_csv(base / "pages" / "index.csv", dtype=str, keep_default_na=False, encoding=CSV_ENCODING)
        status = pd.read_csv(base / "digitised" / "digitize.csv", dtype=str, keep_default_na=False,
                             encoding=CSV_ENCODING)
        status = dict(zip(status["name"], zip(status["status"], status["error"])))
        dig_rows[cond] = {r: (stem, *status.get(stem, ("failed", "no row in digitize.csv")))
                          for stem, r in zip(index["stem"], index["record"])}
    page_of = write_dataset(a, ds, Path(a.records), train_names, train_pictures, test_pictures)

    # every test entry: the pictures' (names only: the picture model reads WORK/pictures/val) and the records'
    pic_data, sig_data = work / "picture_predict", work / "signal_predict"
    entry = {c: {n: f"{c.key}{SEP}{n}" for n in names} for c in a.conditions}
    link_folder(pic_data / "val", {e: raw / "val" / f"{n}.mat" for c in a.conditions for n, e in entry[c].items()})
    sig_val = sig_data / "val"
    link_folder(sig_val, {f"{ORIGINAL}{SEP}{n}": raw / "val" / f"{n}.mat" for n in names})
    for cond in a.conditions:
        for n, e in entry[cond].items():
            stem, st, err = dig_rows[cond].get(n, (None, "no page", "tools/make_paper.py skipped the record"))
            if st == "ok":
                shutil.copyfile(work / cond.key / "digitised" / f"{stem}.mat", sig_val / f"{e}.mat")
            else:
                common.write_not_read(sig_val / f"{e}.mat", f"page {st}: {err}")

    models = {"task1": [str(d.resolve()) for d in a.model_t1]}
    if a.model_t2:
        models["task2"] = [str(d.resolve()) for d in a.model_t2]
    picture_models, predictions, reports = {}, {}, {}
    for t, given in models.items():
        k = int(t[-1])
        best = train_picture(a, k, Path(a.records), ds, work / f"picture_t{k}", page_of, times, cpu)
        picture_models[t] = str(best)
        pic = predict_run("picture", [best], k, pic_data, ds, times)
        sig = predict_run("records", given, k, sig_data, sig_data / "dataset", times)
        predictions[t] = {"picture": pic, "digitised": sig, "original": sig}
        reports[t] = {"picture": pic[2], "records": sig[2]}

    conds, warnings_ = {}, []
    for cond in a.conditions:
        read = sum(st == "ok" for _, st, _ in dig_rows[cond].values())
        pages = len(dig_rows[cond])
        entries = {"picture": entry[cond], "digitised": entry[cond],
                   "original": {n: f"{ORIGINAL}{SEP}{n}" for n in names}}
        c = {"preset": cond.preset, "level": cond.level, "pages": pages, "read": read,
             "pictures": len(test_pictures[cond.key])}
        for t, p in predictions.items():
            k = int(t[-1])
            block = task_block(k, common.truth_of(raw, k), names, entries,
                               {r: p[r][0] for r in ROUTES}, {r: p[r][1] for r in ROUTES})
            if t == "task1":
                c.update(block)
            else:
                c[t] = block
        conds[cond.name] = c
    for t, p in predictions.items():
        orig = [e for e in p["original"][1] if e.startswith(ORIGINAL + SEP)]
        if orig:
            warnings_.append(f"{t}: predict.py could not read {len(orig)} original record(s)")
        missing = list(p["picture"][1])
        if missing:
            warnings_.append(f"{t}: the picture model answered {len(missing)} page(s) with the fallback (no picture: "
                             f"e.g. {missing[0]}: {p['picture'][1][missing[0]]})")

    print(f"\n=== diagnosis from the picture: {len(names)} test records of {a.records}, picture model {a.arch} at "
          f"{a.image_size} px trained on {len(page_of)} pages of {len(train_names)} records, seed {a.seed}, "
          f"{os.cpu_count()} cores")
    print("\n".join(table_lines(conds, list(models))))
    for w in warnings_:
        print(f"warning: {w}")
    print(HOW_TO_READ)
    seconds = {**times, "total": time.time() - t0}
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    result = {"conditions": conds, "tasks": list(models), "n_records": len(names), "record_names": names,
              "n_train_records": len(train_names), "n_train_pages": len(page_of),
              "records": str(Path(a.records).resolve()), "models": models, "picture_models": picture_models,
              "picture_model": {"arch": a.arch, "image_size": a.image_size, "iters": a.iters,
                                "batch_size": a.batch_size, "pretrained": "none",
                                "train_flags": common.BENCH_DEFAULTS["picture"]},
              "render_config": paper_config(a), "seed": a.seed, "paper_workers": a.paper_workers,
              "px_per_mm": a.px_per_mm or "random 3-12", "cores": os.cpu_count(), "work_dir": str(work),
              "dataset_dir": str(ds), "predict_reports": reports, "warnings": warnings_,
              "protocol": {"statement": protocol.PROTOCOL, "bootstrap": protocol.bootstrap_info(),
                           "test_records": "the first --max-records of --records' val/ by name, never trained on",
                           "train_records": "--records' train/ (all, or common.select_pools' subset)"},
              "how_to_read": HOW_TO_READ, "seconds": seconds}
    write_text(a.json, json.dumps(result, indent=2, allow_nan=False) + "\n")
    print(f"figures: {a.json}")
    if a.figure:
        plot(result, a.figure)
        print(f"figure: {a.figure}")
    return result


if __name__ == "__main__":
    main()
