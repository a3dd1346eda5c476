"""Step 2 of 3: train a model: by default fine-tune an ImageNet-pretrained ResNet50 on the rendered ECG pictures.

    python train.py [--task 1|2] [--arch resnet50] --dataset-dir DATASET_DIR --output-dir OUT_DIR [--iters N] [--batch-size B]
                    [--image-size S] [--pretrained auto|none|PATH] [--num-workers W] [--eval-interval N]
                    [--save-interval N] [--resume auto|DIR] [--seed S]
    python train.py --arch resnet1d --data-dir RAW_DIR --output-dir OUT_DIR [--task 1|2] [--iters N] [--val-fold K]

--arch picks the model family (models/families.py): resnet18/34/50/101 read process.py's pictures (DATASET_DIR);
resnet1d reads the MAT records themselves (DATA_DIR). Every constant below is a flag (IMAGE_SIZE -> --image-size).
Multi-GPU (or 2 CPU processes, gloo):
    python -m paddle.distributed.launch --nproc_per_node 2 train.py ...
"""
from utils.runtime import configure_cpu_threads

configure_cpu_threads()  # before paddle is imported

import contextlib  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import paddle  # noqa: E402
from paddle.io import DataLoader  # noqa: E402

from models.families import get_family  # noqa: E402
from utils.atomic import resolve_dir, write_text  # noqa: E402
from utils.checkpoint import (BEST_DIR, IMPORTANCE_FILE, INFO_FILE, STATE_FILE, VAL_PREDICTIONS, CheckpointError, find_resumable, load_checkpoint,  # noqa: E402
                              prune_checkpoints, read_json, refuse_foreign_outputs, restore_trainer_state,
                              save_checkpoint, save_model_dir, signature_diff)
from utils.config import parse_config, script_constants  # noqa: E402
from utils.data import SeededBatchSampler, derive_seed, multilabel_folds, stratified_folds  # noqa: E402
from utils.errors import ConfigError  # noqa: E402
from utils.metrics import fmt  # noqa: E402
from utils.plots import plot_importance, plot_per_class, plot_training_curves  # noqa: E402
from utils.runtime import get_logger, run_script, select_device  # noqa: E402
from utils.tasks import get_task  # noqa: E402
from utils.timer import Progress  # noqa: E402

# -- configuration: the original design's defaults (full size, meant for a GPU) -----------------------------
TASK = 1  # 1: normal/abnormal (F1) | 2: the 12 diagnoses, several per record (per-class F1)
ARCH = "resnet50"  # pictures: resnet18 | resnet34 | resnet50 | resnet101; raw signal: resnet1d
DATASET_DIR = "dataset"  # pictures (picture models), written by process.py: train/*.png + trainreference.csv
DATA_DIR = "dataset/sample"  # raw records (resnet1d): train/*.mat + trainreference.csv
OUTPUT_DIR = "output"
IMAGE_SIZE = 640
BATCH_SIZE = 32
ITERS = 10000
LR = 0.001  # base learning rate
WARMUP_ITERS = 200  # LinearWarmup from 0 to LR ...
END_LR = 1e-8  # ... then PolynomialDecay to END_LR at the last iteration
POWER = 0.9
OPTIMIZER = "auto"  # auto: momentum for pictures (the original), adam for resnet1d | momentum | adam
MOMENTUM = 0.9
WEIGHT_DECAY = 2e-4
NUM_FOLDS = 10  # stratified folds; one is validation: 90/10 (the original used 1440/160)
VAL_FOLD = 0  # which fold validates (k-fold: run 0..NUM_FOLDS-1)
PRETRAINED = "auto"  # auto (ImageNet via Paddle's download/cache) | none | path/to/weights.pdparams
NUM_WORKERS = 4  # DataLoader worker processes
SEED = 2021  # fixes the split, initial weights, sample order and every augmentation draw
LOG_ITERS = 10
EVAL_INTERVAL = 0  # iterations between evaluations; 0 = once per epoch
SAVE_INTERVAL = 1000  # iterations between checkpoints (and always at the last one)
KEEP_CHECKPOINTS = 3  # this run's latest checkpoints kept; other runs' are never touched
RESUME = ""  # auto (this run's latest compatible checkpoint in OUTPUT_DIR) | output/iter_N
OVERWRITE = False  # a new run may delete another run's checkpoints and best_model in OUTPUT_DIR
USE_VDL = False  # VisualDL scalars in OUTPUT_DIR/vdl (view: visualdl --logdir OUTPUT_DIR/vdl)
DEVICE = "auto"  # auto | cpu | gpu | gpu:N
AMP = False  # GPU only: automatic mixed precision (bf16 where supported, else fp16)
SELECT_METRIC = "auto"  # best_model chosen by: auto = f1 (task 1) / macro_f1 (task 2); or auc / macro_auc (threshold-free)
POS_WEIGHT = "sqrt"  # task 2: weight of each class's positives in the loss: none | sqrt | balanced (negatives/positives)
MAX_POS_WEIGHT = 10.0  # task 2: cap on that weight
IMPORTANCE_REPEATS = 5  # features: shuffles per measurement for the permutation-importance figure; 0 skips it
# ------------------------------------------------------------------------------------------------------------

FINISHED_FILE = "finished.json"  # written when a run completes (tools/train_kfold.py skips such folds)

# Settings a resumed run may change: they do not alter which samples it sees, its updates, or its evaluations.
RESUME_MAY_CHANGE = {"DATASET_DIR", "DATA_DIR", "OUTPUT_DIR", "NUM_WORKERS", "LOG_ITERS", "SAVE_INTERVAL", "KEEP_CHECKPOINTS",
                     "RESUME", "OVERWRITE", "USE_VDL", "DEVICE", "IMPORTANCE_REPEATS"}


def build_scheduler(cfg):
    decay = paddle.optimizer.lr.PolynomialDecay(cfg["LR"], decay_steps=max(1, cfg["ITERS"] - cfg["WARMUP_ITERS"]),
                                                end_lr=cfg["END_LR"], power=cfg["POWER"])
    if cfg["WARMUP_ITERS"] <= 0:
        return decay
    return paddle.optimizer.lr.LinearWarmup(decay, warmup_steps=cfg["WARMUP_ITERS"], start_lr=0.0, end_lr=cfg["LR"])


def load_split(cfg, task, family=None, log=None):
    """Labels (DataFrame name, y), checked against the family's inputs, and the seeded stratified train/validation
    split: stratified by tag for Task 1, multi-label stratified for Task 2 (every class spread over the folds)."""
    family = family or get_family(cfg.get("ARCH", "resnet50"))
    refs = family.labels(cfg, task, log or logging.getLogger("ecg"))
    if len(refs) == 0:
        raise SystemExit(f"error: {task.label_file}: the training set is empty")
    if not 0 <= cfg["VAL_FOLD"] < cfg["NUM_FOLDS"] or cfg["NUM_FOLDS"] < 2:
        raise SystemExit(f"error: need NUM_FOLDS >= 2 and 0 <= VAL_FOLD < NUM_FOLDS (got {cfg['NUM_FOLDS']}, {cfg['VAL_FOLD']})")
    y = task.label_array(refs["y"])
    split = stratified_folds if y.ndim == 1 else multilabel_folds
    folds = split(y, cfg["NUM_FOLDS"], cfg["SEED"])
    train, val = refs[folds != cfg["VAL_FOLD"]], refs[folds == cfg["VAL_FOLD"]]
    if len(train) == 0 or len(val) == 0:
        raise SystemExit(f"error: {len(refs)} labelled records are too few for {cfg['NUM_FOLDS']} folds")
    return refs, train, val


def build_loaders(cfg, task, train_df, val_df, world, family=None, log=None):
    """Training loader (seeded shuffled batches, augmented), validation loader (fixed order, plain) and the
    model's input description for model.json."""
    family = family or get_family(cfg.get("ARCH", "resnet50"))
    train_ds, val_ds, inp = family.datasets(cfg, task, train_df, val_df, log or logging.getLogger("ecg"))
    drop_last = len(train_ds) >= cfg["BATCH_SIZE"] * world
    sampler = SeededBatchSampler(train_ds, cfg["BATCH_SIZE"], cfg["SEED"], drop_last=drop_last)
    workers = cfg["NUM_WORKERS"]
    loader = DataLoader(train_ds, batch_sampler=sampler, num_workers=workers, return_list=True, persistent_workers=workers > 0)
    val_loader = DataLoader(val_ds, batch_size=cfg["BATCH_SIZE"], shuffle=False, num_workers=min(workers, 2), return_list=True)
    return sampler, loader, val_loader, inp


def build_optimizer(cfg, family, scheduler, model):
    """Momentum with L2 decay (the original) or Adam with the same decay; `auto` is the family's choice."""
    name = family.optimizer if cfg["OPTIMIZER"] == "auto" else cfg["OPTIMIZER"]
    decay = paddle.regularizer.L2Decay(cfg["WEIGHT_DECAY"])
    if name == "momentum":
        return paddle.optimizer.Momentum(learning_rate=scheduler, momentum=cfg["MOMENTUM"], parameters=model.parameters(),
                                         weight_decay=decay)
    if name == "adam":
        return paddle.optimizer.Adam(learning_rate=scheduler, parameters=model.parameters(), weight_decay=decay)
    raise ConfigError(f"--optimizer must be auto, momentum or adam, got {name!r}")


def run_signature(cfg, world, train_df, val_df):
    """What a checkpoint's run must share with this one to be continued by it: the settings that shape the
    trajectory, the number of ranks and the exact split."""
    split = json.dumps([train_df["name"].tolist(), [np.asarray(y).tolist() for y in train_df["y"]], val_df["name"].tolist()])
    return {**{k: v for k, v in cfg.items() if k not in RESUME_MAY_CHANGE}, "WORLD_SIZE": world,
            "SPLIT": hashlib.sha1(split.encode()).hexdigest()[:16]}


def find_checkpoint(cfg, out, signature, log):
    """The checkpoint to continue (--resume DIR, or this run's latest with --resume auto), or None."""
    if cfg["RESUME"] == "auto":
        ckpt, refused = find_resumable(out, signature)
        if ckpt is None and refused:
            path, diff = refused[0]
            raise ConfigError(f"{path}: --resume auto found no checkpoint of a run with these settings; the latest "
                              f"differs in {'; '.join(diff)}. Use the same settings, --resume DIR, or another --output-dir")
        if ckpt is None:
            log.info(f"resume auto: no checkpoint in {out}, starting a new run")
        return ckpt
    if not cfg["RESUME"]:
        return None
    ckpt = resolve_dir(cfg["RESUME"])
    if not (ckpt / STATE_FILE).is_file():
        raise CheckpointError(f"{ckpt}: not a training checkpoint (no {STATE_FILE})")
    diff = signature_diff(read_json(ckpt / STATE_FILE).get("signature"), signature)
    if diff:
        raise ConfigError(f"{ckpt}: written by a run with other settings, cannot continue it: {'; '.join(diff)}")
    return ckpt


def start_or_resume(cfg, out, signature, model, optimizer, scaler, log):
    """A new run's state, or the state of the run a checkpoint continues (weights, optimizer, RNGs restored)."""
    ckpt = find_checkpoint(cfg, out, signature, log)
    if ckpt is None:
        state = {"run_id": time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6], "signature": signature, "iter": 0,
                 "best_metric": -1.0, "best_iter": 0, "loss_window": [0.0, 0], "history": {"train": [], "eval": []}}
        refuse_foreign_outputs(out, state["run_id"], cfg["OVERWRITE"], log)
        return state
    state = load_checkpoint(ckpt, model, optimizer)
    restore_trainer_state(ckpt, scaler)
    keep_newer_best(out, state, log)
    log.info(f"resumed run {state['run_id']} from {ckpt} at iter {state['iter']} (lr {optimizer.get_lr():.6g}, "
             f"best {state['best_metric']:.4f})")
    return state


def keep_newer_best(out, state, log):
    """best_model is written at every improvement, so after a kill it can be newer than the checkpoint: keep its
    score as the one to beat, so a worse model never replaces it. A missing one is rewritten at the next evaluation."""
    best = read_json(resolve_dir(out / BEST_DIR) / INFO_FILE)
    if best.get("run_id") != state["run_id"]:
        if state["best_iter"]:
            log.warning(f"{out / BEST_DIR} is missing or another run's: the next evaluation writes it anew")
        state["best_metric"], state["best_iter"] = -1.0, 0
    elif best.get("best_metric", -1.0) > state["best_metric"]:
        state["best_metric"], state["best_iter"] = best["best_metric"], best["iter"]
        log.info(f"{out / BEST_DIR} (iter {best['iter']}, after this checkpoint) stays the best so far")


def setup_amp(cfg, device, log):
    """(autocast dtype or None, GradScaler or None): bf16 where the GPU has it, else fp16 with loss scaling."""
    if not cfg["AMP"]:
        return None, None
    if not device.startswith("gpu"):
        log.info("AMP requested but running on CPU: ignored")
        return None, None
    bf16 = getattr(paddle.amp, "is_bfloat16_supported", lambda: False)()  # absent in older Paddle 2.x
    dtype = "bfloat16" if bf16 else "float16"
    log.info(f"AMP: {dtype}")
    return dtype, paddle.amp.GradScaler(init_loss_scaling=1024) if dtype == "float16" else None


def train_step(model, task, images, labels, optimizer, amp_dtype, scaler):
    cast = paddle.amp.auto_cast(level="O1", dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    with cast:
        loss = task.loss(model(images), labels)
    if scaler:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    optimizer.clear_grad()
    return float(loss)  # also waits for the device, so batch_cost is honest


@paddle.no_grad()
def evaluate(model, loader, task):
    """Validation loss, probabilities per record (Task 1: P(abnormal); Task 2: one per class), and labels."""
    model.eval()
    losses, probs, labels = [], [], []
    for images, y in loader:
        logits = model(images)
        losses.append(float(task.loss(logits, y, reduction="sum")))
        probs.append(task.probs(logits.numpy()))
        labels.append(y.numpy())
    model.train()
    labels, probs = np.concatenate(labels), np.concatenate(probs)
    return sum(losses) / len(labels), probs, labels


def main(argv=None):
    cfg = parse_config(script_constants(globals()), argv, description=__doc__.split("\n")[0], source_file=__file__)
    world, rank = paddle.distributed.get_world_size(), paddle.distributed.get_rank()
    out = Path(cfg["OUTPUT_DIR"])
    log = get_logger(out / "train.log" if rank == 0 else None, quiet=rank != 0)
    device = select_device(cfg["DEVICE"], log)
    if world > 1:
        paddle.distributed.init_parallel_env()
    random.seed(cfg["SEED"])
    np.random.seed(cfg["SEED"] + rank)
    paddle.seed(cfg["SEED"])  # same initial weights on every rank

    task, family = get_task(cfg["TASK"]), get_family(cfg["ARCH"])
    select = select_metric(cfg, task)
    refs, train_df, val_df = load_split(cfg, task, family, log)
    task.setup(train_df["y"], cfg)
    if not family.iterative:  # fitted at once (features + gradient boosting): no loop, no checkpoints
        return fit_at_once(cfg, task, family, select, refs, train_df, val_df, out, log)
    sampler, loader, val_loader, inp = build_loaders(cfg, task, train_df, val_df, world, family, log)
    log.info(f"data (task {task.number}): {len(refs)} labelled records -> train {len(train_df)} "
             f"({task.describe(train_df['y'])}), validation {len(val_df)} ({task.describe(val_df['y'])}), "
             f"fold {cfg['VAL_FOLD']} of {cfg['NUM_FOLDS']}; {len(sampler)} iterations per epoch")

    model = family.build(cfg["ARCH"], task.num_outputs, cfg["PRETRAINED"])
    scheduler = build_scheduler(cfg)
    optimizer = build_optimizer(cfg, family, scheduler, model)
    amp_dtype, scaler = setup_amp(cfg, device, log)
    state = start_or_resume(cfg, out, run_signature(cfg, world, train_df, val_df), model, optimizer, scaler, log)
    if world > 1:
        model = paddle.DataParallel(model)
    vdl = None
    if cfg["USE_VDL"] and rank == 0:
        from utils.vdl import VDLWriter

        vdl = VDLWriter(out / "vdl", state["history"])
    fallback = task.most_frequent(refs["y"])  # the answer for a test record that cannot be read

    iters, it = cfg["ITERS"], state["iter"]
    per_epoch = max(1, len(sampler))
    eval_interval = cfg["EVAL_INTERVAL"] or per_epoch
    progress = Progress(log, state, iters, vdl)
    if rank == 0 and it < iters:
        (out / FINISHED_FILE).unlink(missing_ok=True)  # an earlier run's; this one is not finished
    model.train()
    log.info(f"run {state['run_id']}: {cfg['ARCH']} ({family.name}), {iters} iterations, batch {cfg['BATCH_SIZE']} x {world} "
             f"process(es), input {family.input_spec(inp)[1:]}, device {device}, pretrained {cfg['PRETRAINED']}")
    while it < iters:
        epoch, skip = divmod(it, per_epoch)
        sampler.set_epoch(epoch, skip)  # a mid-epoch resume starts at the batch the killed run would have drawn next
        batch_start = time.perf_counter()
        for images, labels in loader:
            reader_seconds = time.perf_counter() - batch_start
            it += 1
            lr = optimizer.get_lr()
            # Paddle's random draws in the step (dropout) come from a seed fixed by (run seed, iteration, rank): a
            # resumed run redraws them exactly on any Paddle (2.6 cannot restore a pickled generator state).
            paddle.seed(derive_seed(cfg["SEED"], it, rank))
            loss = train_step(model, task, images, labels, optimizer, amp_dtype, scaler)
            scheduler.step()
            progress.step(loss, time.perf_counter() - batch_start, reader_seconds, len(labels))
            if it % cfg["LOG_ITERS"] == 0 or it == iters:
                progress.report(it, epoch, lr)

            if rank == 0 and (it % eval_interval == 0 or it == iters):
                rec = evaluate_and_keep_best(model, val_loader, task, select, state, it, cfg, (fallback, inp, val_df), out, log)
                if vdl:
                    vdl.eval(rec)
            state["iter"] = it
            if rank == 0 and (it % cfg["SAVE_INTERVAL"] == 0 or it == iters):
                save_checkpoint(out / f"iter_{it}", model, optimizer, state, scaler)
                prune_checkpoints(out, cfg["KEEP_CHECKPOINTS"], state["run_id"])
            if it >= iters:
                break
            batch_start = time.perf_counter()

    if rank == 0:
        if vdl:
            vdl.close()
        plot_training_curves(state["history"], out / "training_curves.png", select)
        best = read_json(out / BEST_DIR / INFO_FILE)
        if "per_class" in best.get("metrics", {}):
            plot_per_class(best["metrics"]["per_class"], out / "per_class.png", f"validation, best model (iter {best['iter']})")
        write_text(out / FINISHED_FILE, json.dumps({"run_id": state["run_id"], "iter": state["iter"], "best_iter": state["best_iter"],
                                                   "best_metric": state["best_metric"], "selected_by": select}, indent=2) + "\n")
        log.info(f"done: best validation {select} {state['best_metric']:.4f} at iter {state['best_iter']} -> {out / BEST_DIR}; "
                 f"curves: {out / 'training_curves.png'}" + (f"; VisualDL: visualdl --logdir {out / 'vdl'}" if vdl else ""))
    return state


def fit_at_once(cfg, task, family, select, refs, train_df, val_df, out, log):
    """Fit a non-iterative model (features + gradient boosting), evaluate it on the validation fold and save it
    as best_model, with the same model.json, val_predictions.csv and report as the networks."""
    state = {"run_id": time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6], "iter": 0, "best_iter": 0,
             "history": {"train": [], "eval": []}}
    signature = run_signature(cfg, 1, train_df, val_df)
    refuse_foreign_outputs(out, state["run_id"], cfg["OVERWRITE"] or refit_allowed(cfg, out, signature, log), log)
    (out / FINISHED_FILE).unlink(missing_ok=True)
    t0 = time.time()
    log.info(f"run {state['run_id']}: {cfg['ARCH']} ({family.name}), fitted at once: --iters, --lr, --batch-size and the "
             f"other loop settings do not apply")
    model, probs, inp = family.fit(cfg, task, train_df, val_df, log)
    labels = task.label_array(val_df["y"])
    metrics, rec, lines, thresholds = task.evaluate(labels, probs)
    for line in lines:
        log.info(line.replace("{loss}, ", ""))
    value = rec[select] if rec[select] is not None else -1.0
    state.update(best_metric=value, iter=1, best_iter=1)
    state["history"]["eval"].append({"iter": 1, **rec})
    info = {"run_id": state["run_id"], "task": task.number, "iter": 1, "best_metric": value, "selected_by": select,
            "metrics": metrics, "thresholds": thresholds, "class_names": list(task.class_names),
            "num_classes": task.num_outputs, "arch": cfg["ARCH"], "input": inp, "fallback_answer": task.most_frequent(refs["y"]),
            "fit_seconds": round(time.time() - t0, 1), "config": cfg, "signature": signature}
    tables = {VAL_PREDICTIONS: task.prediction_table(val_df["name"], labels, probs)}
    if cfg["IMPORTANCE_REPEATS"] > 0:
        tables[IMPORTANCE_FILE] = family.importance(model, task, val_df, labels, repeats=cfg["IMPORTANCE_REPEATS"])
    save_model_dir(out / BEST_DIR, None, info, tables=tables, write=model.save)
    if IMPORTANCE_FILE in tables:
        plot_importance(tables[IMPORTANCE_FILE], out / BEST_DIR / "importance.png",
                        f"{cfg['ARCH']}: permutation importance on validation")
    write_text(out / FINISHED_FILE, json.dumps({"run_id": state["run_id"], "best_metric": value, "selected_by": select}) + "\n")
    log.info(f"done in {time.time() - t0:.0f} s: validation {select} {fmt(value)} -> {out / BEST_DIR}"
             + (" (importance.png: the measurements that matter most per class)" if IMPORTANCE_FILE in tables else ""))
    return state


def refit_allowed(cfg, out, signature, log):
    """--resume on a model fitted at once: there is nothing to continue, so it is fitted again, replacing an
    earlier best_model of the same settings and split (a k-fold fold killed before it wrote finished.json)."""
    best = resolve_dir(out / BEST_DIR) / INFO_FILE  # after a kill mid-swap only best_model.old may be there
    if not cfg["RESUME"] or not best.is_file():
        return False
    diff = signature_diff(read_json(best).get("signature"), signature)
    if diff:
        raise ConfigError(f"{best.parent}: --resume {cfg['RESUME']}: this model was fitted with other settings "
                          f"({'; '.join(diff)}). Use the same settings, another --output-dir, or --overwrite")
    log.info(f"--resume {cfg['RESUME']}: a features model has no checkpoints; fitting it again over {best.parent}")
    return True


def select_metric(cfg, task):
    """The validation metric that chooses best_model."""
    name = task.select_metrics[0] if cfg["SELECT_METRIC"] == "auto" else cfg["SELECT_METRIC"]
    if name not in task.select_metrics:
        raise ConfigError(f"--select-metric {name}: task {task.number} offers {', '.join(('auto',) + task.select_metrics)}")
    return name


def evaluate_and_keep_best(model, val_loader, task, select, state, it, cfg, context, out, log):
    """Evaluate; when the selected metric improves, save best_model with its model.json and the validation
    predictions it was chosen on (val_predictions.csv: the out-of-fold predictions fusion tunes on)."""
    fallback, inp, val_df = context
    loss, probs, labels = evaluate(model, val_loader, task)
    metrics, rec, lines, thresholds = task.evaluate(labels, probs)
    for line in lines:
        log.info(line.replace("{loss}", f"loss: {loss:.4f}"))
    rec = {"iter": it, "loss": loss, **rec}
    state["history"]["eval"].append(rec)
    value = rec[select] if rec[select] is not None else -1.0  # an undefined AUC (one-class fold) never wins
    if value > state["best_metric"]:
        state["best_metric"], state["best_iter"] = value, it
        save_model_dir(out / BEST_DIR, model, {
            "run_id": state["run_id"], "task": task.number, "iter": it, "best_metric": value, "selected_by": select,
            "metrics": {"val_loss": loss, **metrics}, "thresholds": thresholds,
            "class_names": list(task.class_names), "num_classes": task.num_outputs, "arch": cfg["ARCH"], "input": inp,
            "image_size": inp.get("image_size"), "render_config": inp.get("render_config"),
            "fallback_answer": fallback, "config": cfg,
        }, tables={VAL_PREDICTIONS: task.prediction_table(val_df["name"], labels, probs)})
    log.info(f"[EVAL] The model with the best validation {select} ({state['best_metric']:.4f}) was saved at iter {state['best_iter']}.")
    return rec


if __name__ == "__main__":
    run_script(main)
