"""What the benches share (a bench imports this module and bench/protocol.py, never another bench):

- the stages: a script run in a child process, timed (`stage`), PTB-XL converted once (`convert_ptbxl`), predict.py
  on fused models (`predict`);
- the CPU-sized training configuration per family (`BENCH_DEFAULTS`, `train_flags`) and the recommended fusion
  (`BEST`, `--members best`);
- the files: a task's test truth in a converted folder (`truth_of`), a tools/train_kfold.py run's folds, models
  and out-of-fold figures;
- `out_of_fold`: every development record predicted, in this process, by the fold that did not train on it;
- paper pages: the page conditions (`Condition`), the generator's and digitiser's stages kept between runs
  (`kept_stage`, `code_hash`), a page not read as a record predict.py answers with its fallback (`write_not_read`).

Importing it loads no Paddle (the benches call configure_cpu_threads first); what needs Paddle is imported inside
the function that uses it.
"""
import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from utils.artifacts import BEST_DIR, FOLD_DIR, KFOLD_SUMMARY, OOF_PREDICTIONS
from utils.runtime import run_stage

ROOT = Path(__file__).resolve().parents[1]

# -- the stages --------------------------------------------------------------------------------------------------------


def stage(name, args, times=None, cpu=None):
    """A script in a child process (the repository its working folder); its wall seconds in `times` and, given
    `cpu`, its CPU seconds (user + system). A failed script raises subprocess.CalledProcessError."""
    code, seconds, cpu_seconds = run_stage(name, args, ROOT)
    if code:
        raise subprocess.CalledProcessError(code, [str(a) for a in args])
    if times is not None:
        times[name] = seconds
    if cpu is not None:
        cpu[name] = cpu_seconds


COMPLETE = ".complete"  # in a converted folder: the converter finished there (convert_ptbxl(once=True))


def convert_ptbxl(src, raw, test_fold, times=None, cpu=None, limits=(), once=False):
    """tools/convert_ptbxl.py --src SRC --dst RAW --test-fold K (and `limits`, e.g. --max-records N) as the stage
    "convert" -> `raw`. Run again into the same folder, the converter rewrites nothing that is unchanged; with
    `once`, a folder it finished before (its COMPLETE mark) is taken as it is, without running it."""
    raw = Path(raw)
    if once and (raw / COMPLETE).is_file():
        return raw
    stage("convert", ["tools/convert_ptbxl.py", "--src", src, "--dst", raw, "--test-fold", test_fold, *limits], times,
          cpu)
    if once:
        (raw / COMPLETE).touch()
    return raw


def predict(name, models, task, raw, ds, out, times, truth, *extra):
    """predict.py on `raw`'s test records with `models` fused (flags `extra` too) -> its report, with "report_path"."""
    report = out / f"predict_{name}.json"
    stage(f"predict {name}", ["predict.py", "--task", task, "--data-dir", raw, "--dataset-dir", ds, "--model",
                              *models, "--out", out / f"answer_{name}.csv", "--truth", truth, "--report", report,
                              *extra], times)
    return {**json.loads(report.read_text()), "report_path": str(report)}


# -- the training configuration ----------------------------------------------------------------------------------------
IMAGE_SIZE = 160  # the picture members' size in the benches
BENCH_DEFAULTS = {  # CPU-sized configurations per family: (batch, iterations, LR, warmup, L2 decay); features ignore them
    "picture": {"batch_size": 16, "iters": 700, "lr": 0.01, "warmup_iters": 50, "weight_decay": 2e-4},
    # weight decay 1e-3 chosen out of fold on 2,010 records (docs/results.md, regularisation; 2e-4 before)
    "signal": {"batch_size": 32, "iters": 600, "lr": 0.001, "warmup_iters": 30, "weight_decay": 1e-3},
    "features": {"batch_size": 32, "iters": 1, "lr": 0.001, "warmup_iters": 0, "weight_decay": 2e-4},
}
# The recommended configuration, defined once: --members best expands to it, README and the checks that run it name
# it. Since 2026-12-07 the measurements member alone, its 3 folds averaged: on the 2,010 PTB-XL records no fusion
# with resnet1d beat it out of fold with a paired CI above 0 on either task (docs/results.md, fusion). The fusion
# it replaced stays a named recipe (--members fusion), to be measured again when the signal member improves.
BEST = {"members": ["features"], "weights": "mean"}
FUSION = {"members": ["resnet1d", "features"], "weights": "auto"}
RECIPES = {"best": BEST, "fusion": FUSION}


def family(arch):
    from models.families import ARCHS

    return ARCHS[arch]


def is_picture(arch):
    return family(arch) == "picture"


def train_flags(arch, task, raw, ds):
    """train.py flags of the benches' CPU-sized configuration of `arch` (BENCH_DEFAULTS of its family)."""
    d = BENCH_DEFAULTS[family(arch)]
    return ["--task", task, "--arch", arch, "--data-dir", raw, "--dataset-dir", ds, "--image-size", IMAGE_SIZE,
            "--batch-size", d["batch_size"], "--iters", d["iters"], "--lr", d["lr"], "--warmup-iters", d["warmup_iters"],
            "--weight-decay", d["weight_decay"], "--eval-interval", 100, "--save-interval", 100, "--pretrained", "none", "--num-workers", 2, "--log-iters", 50]


def members_of(parser, text):
    """(member archs, recipe name or None) of --members: a recipe's name (RECIPES) or comma-separated archs; an
    unknown arch is a one-line usage error, before anything trains."""
    from models.families import ARCHS

    if text in RECIPES:
        return list(RECIPES[text]["members"]), text
    members = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in members if m not in ARCHS]
    if unknown or not members:
        parser.error(f"--members {text}: unknown member {', '.join(unknown) or '(none)'}; give {', '.join(RECIPES)} "
                     f"or --arch names: {', '.join(ARCHS)}")
    return members, None


def recipe_row(recipe):
    """The fusion table's row that is the recipe's model."""
    return "fusion (weights auto)" if RECIPES[recipe]["weights"] == "auto" else "fusion (mean)"


# -- the files ---------------------------------------------------------------------------------------------------------
def truth_of(raw, task_number):
    """The test truth of Task `task_number` in the converted folder `raw` (Task.truth_file)."""
    from utils.scoring.tasks import get_task

    return Path(raw) / get_task(task_number).truth_file


def fold_models(kfold, folds):
    """The best models of folds `folds` (numbers) of the k-fold run in `kfold`."""
    return [Path(kfold) / FOLD_DIR.format(k) / BEST_DIR for k in folds]


def finished_folds(kfold):
    """The fold folders of the k-fold run in `kfold` that have a best model, in name order."""
    return sorted(p for p in Path(kfold).glob(FOLD_DIR.format("*")) if (p / BEST_DIR).is_dir())


def training_minutes(fold, card=None):
    """A fold's training minutes: finished.json's train_seconds (train.py's clock, evaluations not counted), for a
    run of an earlier version the budget's stop record, for a fitted family its best model's card's fit_seconds;
    None if none says. The same whether the fold trained in this run or an earlier one (train_kfold skips it)."""
    from utils.artifacts import FINISHED_FILE, ModelCard, read_json

    done = read_json(Path(fold) / FINISHED_FILE) if (Path(fold) / FINISHED_FILE).is_file() else {}
    secs = done.get("train_seconds", (done.get("stopped") or {}).get("train_seconds"))
    if secs is None:
        card = card or ModelCard.read(Path(fold) / BEST_DIR)
        secs = card.extra.get("fit_seconds")
    return None if secs is None else secs / 60


def kfold_minutes(kfold):
    """The training minutes of a k-fold run's folds, summed; None if a fold does not say."""
    minutes = [training_minutes(f) for f in finished_folds(kfold)]
    return None if not minutes or None in minutes else sum(minutes)


def kfold_summary(kfold):
    """The k-fold run's summary (KFOLD_SUMMARY) as a dict; None when it has none (not finished)."""
    path = Path(kfold) / KFOLD_SUMMARY
    return json.loads(path.read_text()) if path.is_file() else None


def oof_answers(task, kfold):
    """(names, answers, probabilities) of the k-fold run's pooled out-of-fold predictions, decided with the
    thresholds tuned on them."""
    names, _, probs = task.read_prediction_table(Path(kfold) / OOF_PREDICTIONS)
    return names, task.decide(probs, kfold_summary(kfold)["thresholds"]), list(probs)


def oof_figures(task, raw, kfold):
    """The pooled out-of-fold figures with their CIs (the development records' truth in `raw`):
    protocol.test_figures."""
    from bench import protocol

    return protocol.test_figures(task, Path(raw) / task.label_file, *oof_answers(task, kfold))


# -- out of fold, in this process --------------------------------------------------------------------------------------
def out_of_fold(task, dev, num_folds, seed, fit_predict):
    """Every development record predicted by the fold that did not train on it, the folds train.py's (`seed`,
    group-aware, utils/training/sampling.split_records) over `dev` (a family's Labelled).
    fit_predict(fold, train rows, validation names) -> {key: one prediction per validation name}; returns {key:
    the predictions stacked in `dev.refs`' order}."""
    import numpy as np

    from utils.training.sampling import split_records

    names = dev.refs["name"].tolist()
    oof = {}
    for fold in range(num_folds):
        tr, va = split_records(dev.refs, task, num_folds, fold, seed, dev.label_file, listed=dev.listed)
        rows = np.flatnonzero(dev.refs["name"].isin(va["name"]).to_numpy())
        for key, preds in fit_predict(fold, tr, [names[i] for i in rows]).items():
            got = oof.setdefault(key, [None] * len(names))
            for i, p in zip(rows, preds):
                got[i] = p
    return {key: np.stack(v) for key, v in oof.items()}


# -- paper pages (tools/make_paper.py, tools/digitize.py): what the paper benches share --------------------------------
NOT_READ = "not_read"  # the one variable of a digitised record whose page was not read (no `ecgdata`)
# the code each stage's output depends on (its kept output is reused only while this code is unchanged)
GENERATOR_CODE = ("utils/paper/__init__.py", "utils/paper/generate.py", "utils/paper/distort.py",
                  "utils/paper/layouts.py", "utils/inputs/printout.py", "tools/make_paper.py")
DIGITIZER_CODE = ("utils/paper", "tools/digitize.py")


@dataclass(frozen=True)
class Condition:
    """A page condition: tools/make_paper.py's --preset and --level."""
    name: str  # "clean", "scan:2"
    preset: str
    level: int  # 0: each page's level drawn from 1-3

    @property
    def key(self):
        """Its folder and version name: "scan_2"."""
        return self.name.replace(":", "_")


def parse_conditions(parser, text, example):
    """[Condition] of comma-separated PRESET[:LEVEL] (clean without a level; scan or photo at 1-3, or drawn from 1-3
    per page without one); a bad one is `parser`'s usage error."""
    from utils.paper.distort import PRESETS

    out = []
    for item in [t.strip() for t in text.split(",") if t.strip()]:
        preset, _, level = item.partition(":")
        if preset not in PRESETS or (level and level not in ("1", "2", "3")) or (preset == "clean" and level):
            parser.error(f"--conditions: {item!r} is not clean, or scan / photo with an optional level :1, :2 or :3")
        out.append(Condition(item, preset, int(level or 0)))
    if not out or len({c.name for c in out}) < len(out):
        parser.error(f"--conditions {text!r}: give distinct conditions, e.g. {example}")
    return out


def write_truths(src, dst, names):
    """Both tasks' truth files of `src` (those it has) kept to `names`, in `dst`."""
    from utils.ecg.io import read_reference, read_reference_task2, write_reference, write_reference_task2

    keep = set(names)
    for n in (1, 2):
        path = truth_of(src, n)
        if not path.is_file():
            continue
        if n == 1:
            ref = read_reference(path)
            write_reference(truth_of(dst, n), ref[ref["name"].isin(keep)])
        else:
            write_reference_task2(truth_of(dst, n), {k: v for k, v in read_reference_task2(path).items() if k in keep})


def copy_records(src_dir, dst_dir, names):
    """dst_dir/<name>.mat for `names` (copies keeping their times: a cache keyed by them stays valid); every other
    MAT there removed."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    for p in dst_dir.glob("*.mat"):
        if p.stem not in names:
            p.unlink()
    for n in names:
        src, dst = Path(src_dir) / f"{n}.mat", dst_dir / f"{n}.mat"
        st = src.stat()
        if not (dst.is_file() and dst.stat().st_size == st.st_size and dst.stat().st_mtime_ns == st.st_mtime_ns):
            shutil.copy2(src, dst)


def code_hash(parts):
    """A digest of the code in `parts` (files, or folders: their *.py), relative to the repository."""
    h = hashlib.sha1()
    for part in parts:
        path = ROOT / part
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(str(f.relative_to(ROOT)).encode() + b"\n" + f.read_bytes())
    return h.hexdigest()


def kept_stage(name, args, out, key, times, cpu):
    """stage(name, args) writing the folder `out`, unless an earlier run wrote it with the same `key` (its mark
    OUT.done.json): then its recorded times are reused. A stage that runs starts from an empty `out`."""
    from utils.atomic import write_text

    mark = out.with_name(out.name + ".done.json")
    if mark.is_file():
        saved = json.loads(mark.read_text())
        if saved.get("key") == key:
            print(f"\n=== {name}: kept from an earlier run ({mark})", flush=True)
            times[name], cpu[name] = saved["seconds"], saved["cpu_seconds"]
            return
        mark.unlink()
    shutil.rmtree(out, ignore_errors=True)
    stage(name, args, times, cpu)  # the module's stage, looked up when called (a test may replace it)
    cpu.setdefault(name, None)  # a stage run in this process (a test's) has no CPU time of its own
    write_text(mark, json.dumps({"key": key, "seconds": times[name], "cpu_seconds": cpu[name]}, indent=1) + "\n")


def write_not_read(path, why):
    """A MAT record without `ecgdata` (its one variable says why): predict.py cannot read it and gives its
    fallback answer, as for any record it cannot read."""
    import numpy as np
    import scipy.io

    from utils.atomic import atomic_path

    with atomic_path(path) as tmp:
        scipy.io.savemat(tmp, {NOT_READ: np.array([why])}, appendmat=False)


# -- group-aware, class-stratified subsets of the development records (bench/learning_curve.py's pools) -------------
def development_records(raw, task):
    """{group: [names]} of the development records of converted folder `raw` and {group: stratum}: Task 1 the
    group's tag (abnormal when any of its records is), Task 2 the rarest class (over the development records) that
    any of its records has."""
    from utils.artifacts import RECORD_GROUPS
    from utils.ecg.io import read_record_groups

    raw = Path(raw)
    groups = read_record_groups(raw / RECORD_GROUPS)
    truth = task.read_truth(raw / task.label_file)
    classes = {n: list(t) if task.several else [int(t)] for n, t in truth.items()}
    members = {}
    for name in classes:  # a record without a group is its own (train.py's folds say the same)
        members.setdefault(groups.get(name, name), []).append(name)
    return members, strata_of(members, classes, task)


def strata_of(members, classes, task):
    """{group: stratum} of the groups ({group: [names]}) given each record's classes ({name: [class]})."""
    have = {g: {c for n in ns for c in classes[n]} for g, ns in members.items()}
    if not task.several:  # a group is abnormal if any of its records is
        return {g: max(cs) for g, cs in have.items()}
    count = {}
    for cs in classes.values():
        for c in cs:
            count[c] = count.get(c, 0) + 1
    # the rarest class decides: a rare class must be spread over the sizes, a common one follows anyway
    return {g: min(cs, key=lambda c: (count[c], c)) for g, cs in have.items()}


def interleaved_groups(members, strata, seed):
    """Every group once, in an order whose every prefix holds each stratum's records in proportion: the groups of a
    stratum are shuffled (seeded), each placed at the middle of its share of its stratum's records, and the strata
    merged by that place (seeded ties)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    keyed = []
    for s in sorted(set(strata.values())):
        gs = sorted(g for g in members if strata[g] == s)  # sorted first: the order depends on the seed only
        gs = [gs[i] for i in rng.permutation(len(gs))]
        sizes = np.array([len(members[g]) for g in gs], dtype=np.float64)
        place = (np.cumsum(sizes) - sizes / 2) / sizes.sum()
        keyed += zip(place, rng.random(len(gs)), gs)
    return [g for _, _, g in sorted(keyed)]


def select_pools(raw, task, sizes, seed):
    """[names of each pool] for `sizes` (record counts, increasing): each pool the shortest prefix of the one
    interleaved group order with at least that many records, so the pools are nested and never split a group. A
    size above the development records is a ValueError."""
    import numpy as np

    members, strata = development_records(raw, task)
    total = sum(map(len, members.values()))
    too_big = [n for n in sizes if n > total]
    if too_big:
        raise ValueError(f"size {too_big[0]} is more than the {total} development records")
    order = interleaved_groups(members, strata, seed)
    filled = np.cumsum([len(members[g]) for g in order])
    ends = [int(np.searchsorted(filled, n)) + 1 for n in sizes]  # the first prefix with >= n records
    return [[name for g in order[:k] for name in members[g]] for k in ends]
