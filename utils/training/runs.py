"""A training run's life: its identity and signature, resume, ownership of its output directory, and the one
start, best model and finish that both training paths share (train.py's loop and models fitted at once).

A run owns the checkpoints and best_model it writes (its run_id is in each); a new run refuses to mix with another
run's, and `--resume auto` continues only a checkpoint whose signature (the settings that shape the trajectory,
the number of ranks and the exact split) equals this run's.
"""
import hashlib
import json
import re
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from ..artifacts import BEST_DIR, FINISHED_FILE, INFO_FILE, VAL_PREDICTIONS, ModelCard, read_json, save_model_dir
from ..atomic import resolve_dir, write_text
from ..errors import ConfigError
from ..scoring.metrics import fmt
from ..scoring import thresholds as tuning
from ..scoring.plots import plot_per_class, plot_training_curves
from .checkpoint import STATE_FILE, load_checkpoint, read_trainer_state, restore_trainer_state

# Settings a resumed run may change: they do not alter which samples it sees, its updates, or its evaluations.
RESUME_MAY_CHANGE = {"DATASET_DIR", "DATA_DIR", "OUTPUT_DIR", "NUM_WORKERS", "PREP_WORKERS", "LOADER_TIMEOUT", "LOG_ITERS",
                     "SAVE_INTERVAL", "MAX_MINUTES", "KEEP_CHECKPOINTS", "RESUME", "OVERWRITE", "USE_VDL", "DEVICE", "IMPORTANCE_REPEATS",
                     "TRUST_PICKLE"}
# Settings added after checkpoints existed, with the value that reproduces what those runs did: a checkpoint whose
# signature lacks one ran with that value, so it still resumes when this run uses it.
ADDED_LATER = {"CROP_SECONDS": 8.0, "TTA_STRIDE_SECONDS": 0.0, "TTA_AGG": "mean", "GAIN_AUGMENT": 0.0, "AMPLITUDES": "absolute",
               "MIXUP": 0.0}


def run_signature(cfg, world, train_df, val_df):
    """What a checkpoint's run must share with this one to be continued by it: the settings that shape the
    trajectory, the number of ranks and the exact split."""
    split = json.dumps([train_df["name"].tolist(), [np.asarray(y).tolist() for y in train_df["y"]], val_df["name"].tolist()])
    return {**{k: v for k, v in cfg.items() if k not in RESUME_MAY_CHANGE}, "WORLD_SIZE": world,
            "SPLIT": hashlib.sha1(split.encode()).hexdigest()[:16]}


def new_state(signature):
    """A new run's state: what a checkpoint saves and a resumed run continues."""
    return {"run_id": time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6], "signature": signature, "iter": 0,
            "best_metric": -1.0, "best_iter": 0, "loss_window": [0.0, 0], "train_seconds": 0.0,
            "history": {"train": [], "eval": []}}


def begin(out, state, overwrite, log):
    """Take `out` for a new run (refusing another run's outputs unless `overwrite`); it is not finished yet."""
    refuse_foreign_outputs(out, state["run_id"], overwrite, log)
    Path(out, FINISHED_FILE).unlink(missing_ok=True)
    return state


def checkpoint_dirs(output_dir, run_id=None):
    """iter_N checkpoint directories under `output_dir`, oldest first (an `iter_N.old` that a swap killed midway left
    alone stands for iter_N: utils/atomic.py); with `run_id`, only that run's."""
    found = {}
    for p in Path(output_dir).glob("iter_*"):
        if p.is_dir() and (m := re.fullmatch(r"(iter_(\d+))(\.old)?", p.name)):
            found[int(m.group(2))] = resolve_dir(p.with_name(m.group(1)))
    return [p for _, p in sorted(found.items()) if run_id is None or read_json(p / STATE_FILE).get("run_id") == run_id]


def prune_checkpoints(output_dir, keep, run_id):
    """Keep this run's last `keep` checkpoints; never touch another run's."""
    for p in checkpoint_dirs(output_dir, run_id)[:-keep] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)
        shutil.rmtree(p.with_name(p.name.removesuffix(".old") + ".old"), ignore_errors=True)


def signature_diff(saved, current):
    """What differs between two runs' signatures ({setting: value}), as 'SETTING: saved -> current' lines."""
    if not saved:
        return ["no run signature (written by an older version of train.py)"]
    saved = {**{k: v for k, v in ADDED_LATER.items() if k in current}, **saved}
    keys = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k, '(unset)')!r} -> {current.get(k, '(unset)')!r}" for k in keys if saved.get(k) != current.get(k)]


def find_resumable(output_dir, signature):
    """The latest checkpoint in `output_dir` whose run signature equals `signature`, and the others with their
    differences: (path or None, [(path, [difference, ...]), ...])."""
    refused = []
    for p in reversed(checkpoint_dirs(output_dir)):
        diff = signature_diff(read_json(p / STATE_FILE).get("signature"), signature)
        if not diff:
            return p, refused
        refused.append((p, diff))
    return None, refused


def foreign_outputs(output_dir, run_id):
    """Checkpoints and best_model in `output_dir` that another run wrote."""
    out = Path(output_dir)
    found = [p for p in checkpoint_dirs(out) if read_json(p / STATE_FILE).get("run_id") != run_id]
    best = resolve_dir(out / BEST_DIR)
    if best.is_dir() and read_json(best / INFO_FILE).get("run_id") != run_id:
        found.append(best)
    return found


def refuse_foreign_outputs(output_dir, run_id, overwrite, log):
    """A new run must not mix with another run's checkpoints: stop, or with `overwrite` delete them."""
    found = foreign_outputs(output_dir, run_id)
    if not found:
        return
    names = ", ".join(p.name for p in found)
    if not overwrite:
        last = read_json(found[0] / STATE_FILE) if found[0].name != BEST_DIR else {}
        other = f" (run {last['run_id']}, at iteration {last.get('iter')})" if last.get("run_id") else ""
        raise ConfigError(f"{output_dir}: holds another run's {names}{other}. Continue that run with --resume auto, "
                          f"train into another --output-dir, or pass --overwrite to delete them")
    for p in found:
        shutil.rmtree(p)
    log.info(f"--overwrite: deleted another run's {names} in {output_dir}")


def find_checkpoint(resume, out, signature, log):
    """The checkpoint to continue (`resume` a directory, or this run's latest with "auto"), or None."""
    if resume == "auto":
        ckpt, refused = find_resumable(out, signature)
        if ckpt is None and refused:
            path, diff = refused[0]
            raise ConfigError(f"{path}: --resume auto found no checkpoint of a run with these settings; the latest "
                              f"differs in {'; '.join(diff)}. Use the same settings, --resume DIR, or another --output-dir")
        if ckpt is None:
            log.info(f"resume auto: no checkpoint in {out}, starting a new run")
        return ckpt
    if not resume:
        return None
    ckpt = resolve_dir(resume)
    if not (ckpt / STATE_FILE).is_file():
        raise ConfigError(f"{ckpt}: --resume: not a training checkpoint (no {STATE_FILE})")
    diff = signature_diff(read_json(ckpt / STATE_FILE).get("signature"), signature)
    if diff:
        raise ConfigError(f"{ckpt}: written by a run with other settings, cannot continue it: {'; '.join(diff)}")
    return ckpt


def begin_or_resume(resume, overwrite, out, signature, model, optimizer, scaler, log, trust_pickle=False):
    """A new run's state, or the state of the run a checkpoint continues (weights, optimizer, RNGs restored).
    `trust_pickle`: also continue an earlier version's checkpoint, whose trainer state is a pickle."""
    ckpt = find_checkpoint(resume, out, signature, log)
    if ckpt is None:
        return begin(out, new_state(signature), overwrite, log)
    trainer = read_trainer_state(ckpt, trust_pickle)  # first: refuse a pickled one before reading anything else
    state = load_checkpoint(ckpt, model, optimizer)
    restore_trainer_state(ckpt, scaler, saved=trainer)
    keep_newer_best(out, state, log)
    state.setdefault("train_seconds", 0.0)  # a checkpoint of an earlier version: its clock starts here
    state.pop("stopped", None)  # a run stopped by --max-minutes goes on
    Path(out, FINISHED_FILE).unlink(missing_ok=True)  # written again when this run ends
    log.info(f"resumed run {state['run_id']} from {ckpt} at iter {state['iter']} (lr {optimizer.get_lr():.6g}, "
             f"best {state['best_metric']:.4f})")
    return state


def keep_newer_best(out, state, log):
    """best_model is written at every improvement, so after a kill it can be newer than the checkpoint: keep its
    score as the one to beat, so a worse model never replaces it. A missing one is rewritten at the next evaluation."""
    best = read_json(resolve_dir(Path(out) / BEST_DIR) / INFO_FILE)
    if best.get("run_id") != state["run_id"]:
        if state["best_iter"]:
            log.warning(f"{Path(out) / BEST_DIR} is missing or another run's: the next evaluation writes it anew")
        state["best_metric"], state["best_iter"] = -1.0, 0
    elif best.get("best_metric", -1.0) > state["best_metric"]:
        state["best_metric"], state["best_iter"] = best["best_metric"], best["iter"]
        log.info(f"{Path(out) / BEST_DIR} (iter {best['iter']}, after this checkpoint) stays the best so far")


def refit_allowed(resume, out, signature, log):
    """--resume on a model fitted at once: there is nothing to continue, so it is fitted again, replacing an
    earlier best_model of the same settings and split (a k-fold fold killed before it wrote finished.json)."""
    best = resolve_dir(Path(out) / BEST_DIR) / INFO_FILE  # after a kill mid-swap only best_model.old may be there
    if not resume or not best.is_file():
        return False
    diff = signature_diff(read_json(best).get("signature"), signature)
    if diff:
        raise ConfigError(f"{best.parent}: --resume {resume}: this model was fitted with other settings "
                          f"({'; '.join(diff)}). Use the same settings, another --output-dir, or --overwrite")
    log.info(f"--resume {resume}: a model fitted at once has no checkpoints; fitting it again over {best.parent}")
    return True


class Run:
    """One training run into OUTPUT_DIR, whichever path trains it (train.py's loop or a model fitted at once): its
    state (what a checkpoint saves), the card its best_model gets, its evaluations and its finish."""

    def __init__(self, out, state, card, task, select, val_names, log):
        self.out, self.state, self.card, self.task, self.select = Path(out), state, card, task, select
        self.val_names, self.log = list(val_names), log

    def evaluate(self, it, labels, probs, loss=None, model=None, write=None, tables=None):
        """Score the validation predictions; when the selected metric improves, save best_model: the card, the
        network's weights (`model`) or what `write(directory)` writes, `tables`, and the predictions it was chosen
        on (val_predictions.csv: the out-of-fold predictions fusion tunes on). Returns the history record."""
        result = self.task.evaluate(labels, probs)
        for line in result.lines(loss):
            self.log.info(line)
        rec = {"iter": it, **({"loss": loss} if loss is not None else {}), **result.record,
               "train_seconds": round(self.state["train_seconds"], 3)}  # training so far (not evaluations, checkpoints)
        self.state["history"]["eval"].append(rec)
        value = rec[self.select] if rec[self.select] is not None else -1.0  # an undefined AUC never wins
        if value > self.state["best_metric"] or self.few:  # few: the latest model, not one lucky evaluation
            self.state["best_metric"], self.state["best_iter"] = value, it
            card = self.card
            card.run_id, card.iter, card.best_metric, card.selected_by = self.state["run_id"], it, value, self.select
            card.signature, card.thresholds = self.state["signature"], result.thresholds
            card.tuned_on = self.tuned_on()
            card.metrics = {**({"val_loss": loss} if loss is not None else {}), **result.metrics}
            tables = {VAL_PREDICTIONS: self.task.prediction_table(self.val_names, labels, probs), **(tables or {})}
            save_model_dir(self.out / BEST_DIR, card, model, tables, write)
        if self.few:
            self.log.info(f"[EVAL] The latest model was saved at iter {it} (too few validation records to choose a "
                          f"best one).")
        else:
            self.log.info(f"[EVAL] The model with the best validation {self.select} ({self.state['best_metric']:.4f}) "
                          f"was saved at iter {self.state['best_iter']}.")
        return rec

    @property
    def few(self):
        """Too few validation records to choose a model or tune thresholds on: a smoke check."""
        return not tuning.enough(len(self.val_names))

    def tuned_on(self):
        """model.json's `tuned_on`: which records chose the model and tuned its thresholds."""
        cfg = self.card.config or {}
        where = f"validation fold {cfg['VAL_FOLD']} of {cfg['NUM_FOLDS']}" if "VAL_FOLD" in cfg else "validation"
        return tuning.tuned_on(where, len(self.val_names))

    def finish(self, note=""):
        """Its figures and finished.json (tools/train_kfold.py skips finished folds)."""
        out, state, figures = self.out, self.state, []
        n = len(self.val_names)
        smoke = tuning.smoke_banner(n)
        if state["history"]["train"]:
            plot_training_curves(state["history"], out / "training_curves.png", self.select, n_records=n, smoke=smoke)
            figures.append(f"curves: {out / 'training_curves.png'}")
        best = ModelCard.read(out / BEST_DIR)
        if "per_class" in best.metrics:
            which = "latest model" if self.few else "best model"
            plot_per_class(best.metrics["per_class"], out / "per_class.png",
                           f"validation ({n} records), {which} (iter {best.iter})", smoke=smoke)
            figures.append(f"per class: {out / 'per_class.png'}")
        write_text(out / FINISHED_FILE, json.dumps({"run_id": state["run_id"], "iter": state["iter"],
                                                    "best_iter": state["best_iter"], "best_metric": state["best_metric"],
                                                    "selected_by": self.select,
                                                    "train_seconds": round(state["train_seconds"], 1),
                                                    **({"stopped": state["stopped"]} if "stopped" in state else {})},
                                                   indent=2) + "\n")
        chosen = (f"the latest model, iter {state['best_iter']} ({tuning.smoke_note(n)})" if self.few
                  else f"best validation {self.select} {fmt(state['best_metric'])} at iter {state['best_iter']}")
        self.log.info(f"done: {chosen} -> {out / BEST_DIR}" + "".join(f"; {f}" for f in figures) + note)
