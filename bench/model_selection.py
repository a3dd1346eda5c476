"""Which checkpoint and which decision threshold generalise to unseen patients: measured on the development
records only (PTB-XL folds 1-7; the test fold is never read).

    python bench/model_selection.py [--src PTBXL_DIR] [--test-fold 8] [--outer 5,6,7] [--task 1|2] [--arch resnet1d|xresnet1d101|...]
                                    [--num-folds 3] [--iters 600] [--work-dir DIR] [--json PATH]

Nested cross-validation. Each --outer PTB-XL fold in turn stands for the test set: the other development folds
train tools/train_kfold.py's --num-folds models (the bench's CPU-sized configuration, a checkpoint at every
evaluation), and every checkpoint predicts every development record. Then, over the pooled outer records (each
scored by models that never saw its patient):

1. **Selecting best_model**: each fold model's checkpoint is chosen on its own validation fold by the lowest
   validation loss, the highest AUC (Task 2: macro AUC) or the highest tuned F1 (macro F1), as train.py's
   --select-metric would (the last checkpoint too, for reference); the k selected checkpoints' mean scores the
   outer records. Reported: AUC and F1 with 95% bootstrap CIs, and each rule minus F1 (the default) paired.
2. **Thresholds for the k-fold mean**: with the default selection, the k-fold mean's F1 on the outer records when
   the threshold is tuned on the pooled out-of-fold predictions (single models; what train_kfold and predict.py
   do), the mean of the k folds' own thresholds, or 0.5; and the threshold the outer records themselves would
   want (not usable: it shows the ceiling). The spread of single-model and k-fold-mean probabilities says why.

A fitted family (--arch features) has one "checkpoint" per fold: only part 2 applies.
--json writes every figure. Probabilities are kept in WORK/outer_<k>/probs.npz, so a second run only re-scores.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.runtime import configure_cpu_threads, load_before_paddle  # noqa: E402

configure_cpu_threads()  # before paddle is imported: the scripts we start inherit the environment
load_before_paddle()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench import common, protocol  # noqa: E402
from utils.artifacts import BEST_DIR, FOLD_DIR, INFO_FILE, MODEL_FILE, VAL_PREDICTIONS, ModelCard, read_json  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402
from utils.training.checkpoint import STATE_FILE  # noqa: E402
from utils.training.runs import checkpoint_dirs  # noqa: E402

RULES = ("f1", "auc", "loss", "last")  # f1 first: train.py's default (--select-metric auto)
LABEL_FILES = ("trainreference.csv", "trainreference_task2.csv", "record_groups.csv")


# -- the nested folds ---------------------------------------------------------------------------------------------
def ptbxl_folds(src):
    """{record name as the converter writes it: PTB-XL strat_fold}."""
    db = pd.read_csv(Path(src) / "ptbxl_database.csv", usecols=["ecg_id", "strat_fold"])
    return {f"ptbxl_{int(e):05d}": int(f) for e, f in zip(db["ecg_id"], db["strat_fold"])}


def outer_dir(raw, folds, outer, dst):
    """A competition-layout folder whose training records are the development records outside PTB-XL fold
    `outer` (label files and groups filtered to them) and whose val/ holds every development record (symlinks),
    so each checkpoint predicts them all in one pass."""
    done = dst / common.COMPLETE
    if done.is_file():
        return dst
    shutil.rmtree(dst, ignore_errors=True)
    (dst / "train").mkdir(parents=True)
    (dst / "val").mkdir()
    dev = sorted(p.stem for p in (raw / "train").glob("*.mat"))
    inner = {n for n in dev if folds[n] != outer}
    for n in dev:
        (dst / "val" / f"{n}.mat").symlink_to((raw / "train" / f"{n}.mat").resolve())
        if n in inner:
            (dst / "train" / f"{n}.mat").symlink_to((raw / "train" / f"{n}.mat").resolve())
    for name in LABEL_FILES:
        lines = (raw / name).read_text(encoding="utf-8").splitlines()
        header = lines[:1] if lines and lines[0].startswith("name,") else []
        keep = [ln for ln in lines[len(header):] if ln.split(",")[0] in inner]
        (dst / name).write_text("\n".join(header + keep) + "\n", encoding="utf-8")
    done.touch()
    return dst


def checkpoints(fold_dir, fitted):
    """[(iteration, weights dir)] of one fold's run, oldest first; a fitted model has only its best_model."""
    if fitted:
        return [(1, fold_dir / BEST_DIR)]
    return [(int(p.name.split("_")[1]), p) for p in checkpoint_dirs(fold_dir)]


def predict_all(model_dir, card, task, data_dir, names):
    """Probabilities (n, num_probs) of one model on `data_dir`/val records `names`, with predict.py's own code."""
    from models.inference import predict_member
    from utils.runtime import get_logger

    cfg = {"DATA_DIR": str(data_dir), "DATASET_DIR": str(data_dir), "PREP_WORKERS": 0, "BATCH_SIZE": 64,
           "NUM_WORKERS": 2, "LOADER_TIMEOUT": 300.0, "TENSORRT": False}
    probs, missing, _ = predict_member(model_dir, card, task, cfg, names, "cpu", get_logger())
    if missing:
        raise SystemExit(f"{model_dir}: could not read {len(missing)} development records ({next(iter(missing))})")
    return np.stack([np.atleast_1d(probs[n]) for n in names]).astype(np.float64)


def fold_probs(fold_dir, task, data_dir, names, fitted, tmp):
    """(iterations, validation losses, probabilities (c, n, num_probs) of every checkpoint on every record)."""
    card = ModelCard.read(fold_dir / BEST_DIR)
    ckpts = checkpoints(fold_dir, fitted)
    losses = {}
    if not fitted:
        for rec in read_json(ckpts[-1][1] / STATE_FILE)["history"]["eval"]:
            losses[int(rec["iter"])] = rec.get("loss")
    out = []
    for it, path in ckpts:
        model_dir = path
        if not fitted:  # a checkpoint's weights under best_model's card
            model_dir = Path(tmp) / f"{fold_dir.name}_iter_{it}"
            model_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(fold_dir / BEST_DIR / INFO_FILE, model_dir / INFO_FILE)
            shutil.copy(path / MODEL_FILE, model_dir / MODEL_FILE)
        out.append(predict_all(model_dir, card, task, data_dir, names))
    return np.array([it for it, _ in ckpts]), np.array([losses.get(it, np.nan) for it, _ in ckpts]), np.stack(out)


def train_outer(a, raw, folds, outer, work):
    """Train the k fold models of one outer fold and predict every development record with every checkpoint."""
    d = work / f"outer_{outer}"
    cache = d / "probs.npz"
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        return {k: z[k] for k in z.files}
    data = outer_dir(raw, folds, outer, d / "raw")
    flags = common.train_flags(a.arch, a.task, data, data) + ["--keep-checkpoints", 1000, "--seed", a.seed]
    if a.iters:
        flags += ["--iters", a.iters]
    t = time.time()
    common.stage(f"train outer fold {outer}", ["tools/train_kfold.py", "--num-folds", a.num_folds, "--output-dir",
                                               d / "kfold", "--", *flags])
    train_s = time.time() - t
    names = sorted(p.stem for p in (data / "val").glob("*.mat"))
    task, fitted = get_task(a.task), a.arch == "features"
    res = {"names": np.array(names), "train_seconds": np.array(train_s)}
    with tempfile.TemporaryDirectory(dir=d) as tmp:
        for k in range(a.num_folds):
            fold = d / "kfold" / FOLD_DIR.format(k)
            val = pd.read_csv(fold / BEST_DIR / VAL_PREDICTIONS, dtype={"name": str})["name"]
            its, losses, probs = fold_probs(fold, task, data, names, fitted, tmp)
            res.update({f"iters_{k}": its, f"loss_{k}": losses, f"probs_{k}": probs,
                        f"val_{k}": np.isin(names, val.to_numpy())})
    np.savez(cache, **res)
    return res


# -- the analysis -------------------------------------------------------------------------------------------------
def labels(task, raw, names):
    file = raw / task.label_file
    ref = task.read_labels(file).set_index("name")["y"]
    return task.label_array(ref.loc[list(names)]), file


def select(task, rule, its, losses, probs, y_val, val):
    """The checkpoint index a rule picks on the fold's own validation records (earliest among equals, as train.py)."""
    if rule == "last":
        return len(its) - 1
    if rule == "loss":
        return int(np.nanargmin(losses)) if not np.isnan(losses).all() else len(its) - 1
    key = task.select_metrics[0 if rule == "f1" else 1]
    scores = [task.evaluate(y_val, p[val]).record[key] for p in probs]
    return int(np.argmax([-1.0 if s is None else s for s in scores]))


def logit_sd(probs):
    """The standard deviation of the probabilities' logits (clipped away from 0 and 1)."""
    from scipy.special import logit

    return np.std(logit(np.clip(np.asarray(probs), 1e-6, 1 - 1e-6)))


def squeeze(task, p):
    return p if task.several else p[:, 0]


def outer_predictions(task, res, rule, y):
    """For one outer fold: (k-fold mean probs on its outer records, pooled out-of-fold probs and their labels,
    the k folds' own thresholds, the k single models' probs on the outer records)."""
    folds = range(sum(key.startswith("val_") for key in res))
    outer = ~np.any([res[f"val_{k}"] for k in folds], axis=0)
    chosen, oof_p, oof_y, ths = [], [], [], []
    for k in folds:
        val = res[f"val_{k}"]
        probs = np.array([squeeze(task, p) for p in res[f"probs_{k}"]])
        c = select(task, rule, res[f"iters_{k}"], res[f"loss_{k}"], probs, y[val], val)
        chosen.append(probs[c])
        oof_p.append(probs[c][val])
        oof_y.append(y[val])
        ths.append(task.thresholds(y[val], probs[c][val]))
    mean = np.mean([p[outer] for p in chosen], axis=0)
    return outer, mean, np.concatenate(oof_p), np.concatenate(oof_y), ths, [p[outer] for p in chosen]


def analyse(a, task, raw, results):
    """Every figure of parts 1 and 2, pooled over the outer folds."""
    per_rule = {}
    rules = ("f1",) if a.arch == "features" else RULES
    for rule in rules:
        names, probs, extra = [], [], {"pooled_oof": [], "mean_of_folds": [], "half": [], "oracle": []}
        spread_single, spread_mean = [], []
        for res in results:
            y, truth = labels(task, raw, res["names"])
            outer, mean, oof_p, oof_y, ths, singles = outer_predictions(task, res, rule, y)
            th_pooled = task.thresholds(oof_y, oof_p)
            th_mean = np.mean(ths, axis=0) if task.several else float(np.mean(ths))
            th = {"pooled_oof": th_pooled, "mean_of_folds": th_mean,
                  "half": np.full(task.num_outputs, 0.5) if task.several else 0.5,
                  "oracle": task.thresholds(y[outer], mean)}
            names += list(res["names"][outer])
            probs += list(mean)
            for key, t in th.items():
                extra[key] += list(task.decide(mean, t))
            spread_single.append(logit_sd(singles))
            spread_mean.append(logit_sd(mean))
        per_rule[rule] = {"names": names, "probs": probs, "answers": extra, "truth": truth,
                          "logit_sd_single": float(np.mean(spread_single)), "logit_sd_mean": float(np.mean(spread_mean))}
    return per_rule


def figures(task, per_rule):
    """{"selection": {rule: figures}, "selection_vs_f1": {rule: paired}, "thresholds": {rule: figures},
    "thresholds_vs_pooled": {rule: paired}} with CIs (bench/protocol.py)."""
    out = {"selection": {}, "selection_vs_f1": {}, "thresholds": {}, "thresholds_vs_pooled": {}}
    base = per_rule[RULES[0]] if RULES[0] in per_rule else next(iter(per_rule.values()))
    truth, names = base["truth"], base["names"]
    for rule, r in per_rule.items():
        assert r["names"] == names
        ans = r["answers"]["pooled_oof"]
        out["selection"][rule] = protocol.test_figures(task, truth, names, ans, r["probs"])
        if rule != RULES[0] and RULES[0] in per_rule:
            out["selection_vs_f1"][rule] = protocol.paired_differences(
                task, truth, names, (ans, r["probs"]), (base["answers"]["pooled_oof"], base["probs"]))
    for key, ans in base["answers"].items():
        out["thresholds"][key] = protocol.test_figures(task, truth, names, ans, base["probs"])
        if key != "pooled_oof":
            out["thresholds_vs_pooled"][key] = protocol.paired_differences(
                task, truth, names, (ans, base["probs"]), (base["answers"]["pooled_oof"], base["probs"]))
    out["spread"] = {"logit_sd_single_model": base["logit_sd_single"], "logit_sd_kfold_mean": base["logit_sd_mean"]}
    out["n_records"] = len(names)
    return out


def print_figures(task, figs, a):
    keys = task.select_metrics  # the F1 and the AUC
    f1, auc = keys
    n = figs["n_records"]
    print(f"\n=== model selection, Task {task.number}, {a.arch}: {n} development records scored as outer folds "
          f"{a.outer} by {a.num_folds}-fold models that never saw them (k-fold mean, thresholds tuned on the pooled "
          f"out-of-fold predictions)")
    if len(figs["selection"]) > 1:
        print(f"{'best_model chosen by':<24} {f1:>22} {auc:>22}")
        for rule, fg in figs["selection"].items():
            print(f"{rule:<24} {protocol.fmt_ci(fg[f1]):>22} {protocol.fmt_ci(fg[auc]):>22}")
        print("paired, each rule minus f1 (the default):")
        for rule, d in figs["selection_vs_f1"].items():
            print(f"  {rule:<10} " + "  ".join(f"{m} {protocol.fmt_diff(d[m])}" for m in (f1, auc)))
    print(f"\nthresholds of the k-fold mean (selection by {RULES[0] if len(figs['selection']) > 1 else 'fit'}): {f1}")
    for key, fg in figs["thresholds"].items():
        note = "  (tuned on the outer records themselves: the ceiling, not usable)" if key == "oracle" else ""
        print(f"  {key:<16} {protocol.fmt_ci(fg[f1]):>22}{note}")
    print("paired, each minus pooled_oof (the default):")
    for key, d in figs["thresholds_vs_pooled"].items():
        print(f"  {key:<16} {f1} {protocol.fmt_diff(d[f1])}")
    s = figs["spread"]
    print(f"spread of the outer records' logits: single model SD {s['logit_sd_single_model']:.2f}, "
          f"k-fold mean SD {s['logit_sd_kfold_mean']:.2f}")
    print(protocol.HOW_TO_READ)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default=str(ROOT.parent / "shared" / "data" / "ptbxl"))
    p.add_argument("--test-fold", type=int, default=8, help="the test fold: never read")
    p.add_argument("--outer", default="5,6,7", help="PTB-XL development folds that stand for the test set in turn")
    p.add_argument("--task", type=int, default=1, choices=(1, 2))
    p.add_argument("--arch", default="resnet1d")
    p.add_argument("--num-folds", type=int, default=3)
    p.add_argument("--iters", type=int, default=0, help="training iterations (default: the bench configuration's)")
    p.add_argument("--seed", type=int, default=2021)
    p.add_argument("--work-dir", default=None)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    outers = [int(x) for x in a.outer.split(",")]
    if a.test_fold in outers:
        p.error(f"--outer {a.outer}: the test fold {a.test_fold} is never read")
    work = Path(a.work_dir or tempfile.mkdtemp(prefix="model_selection_")).resolve()
    raw = work / "raw"
    t0 = time.time()
    common.convert_ptbxl(a.src, raw, a.test_fold, once=True)
    folds = ptbxl_folds(a.src)
    results = [train_outer(a, raw, folds, o, work) for o in outers]
    task = get_task(a.task)
    figs = figures(task, analyse(a, task, raw, results))
    print_figures(task, figs, a)
    train_min = sum(float(r["train_seconds"]) for r in results) / 60
    print(f"training {train_min:.1f} min; total {(time.time() - t0) / 60:.1f} min")
    if a.json:
        Path(a.json).write_text(json.dumps({"task": a.task, "arch": a.arch, "outer": outers, "num_folds": a.num_folds,
                                            "iters": a.iters, "seed": a.seed, **figs, "train_minutes": train_min,
                                            "bootstrap": protocol.bootstrap_info(), "cpus": os.cpu_count()},
                                           indent=2, default=float) + "\n")
        print(f"figures: {a.json}")


if __name__ == "__main__":
    main()
