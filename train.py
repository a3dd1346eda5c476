"""Step 2 of 3: fine-tune an ImageNet-pretrained ResNet50 on the rendered ECG pictures.

    python train.py --dataset-dir DATASET_DIR --output-dir OUT_DIR [--iters N] [--batch-size B] [--image-size S]
                    [--pretrained auto|none|PATH] [--num-workers W] [--eval-interval N] [--save-interval N]
                    [--resume auto|DIR] [--seed S]

Every constant below is a flag (IMAGE_SIZE -> --image-size). Multi-GPU (or 2 CPU processes, gloo):
    python -m paddle.distributed.launch --nproc_per_node 2 train.py ...
"""
from utils.runtime import configure_cpu_threads

configure_cpu_threads()  # before paddle is imported

import contextlib  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402
from paddle.io import DataLoader, DistributedBatchSampler  # noqa: E402

from models import build_model  # noqa: E402
from transforms import build_transforms  # noqa: E402
from utils.checkpoint import checkpoint_dirs, load_checkpoint, prune_checkpoints, save_checkpoint, save_model_dir  # noqa: E402
from utils.config import parse_config, script_constants  # noqa: E402
from utils.data import ECGImageDataset, read_render_config, stratified_folds  # noqa: E402
from utils.ecg_io import TAG_NAMES, read_reference  # noqa: E402
from utils.metrics import best_threshold, binary_report  # noqa: E402
from utils.plots import plot_training_curves  # noqa: E402
from utils.render import LAYOUTS  # noqa: E402
from utils.runtime import get_logger, run_script, select_device  # noqa: E402
from utils.timer import TimeAverager, calculate_eta  # noqa: E402

# -- configuration: the original design's defaults (full size, meant for a GPU) -----------------------------
DATASET_DIR = "dataset"  # written by process.py: train/*.png + trainreference.csv
OUTPUT_DIR = "output"
IMAGE_SIZE = 640
BATCH_SIZE = 32
ITERS = 10000
LR = 0.001  # base learning rate
WARMUP_ITERS = 200  # LinearWarmup from 0 to LR ...
END_LR = 1e-8  # ... then PolynomialDecay to END_LR at the last iteration
POWER = 0.9
MOMENTUM = 0.9
WEIGHT_DECAY = 2e-4
NUM_FOLDS = 10  # stratified folds; one is validation: 90/10 (the original used 1440/160)
VAL_FOLD = 0  # which fold validates (k-fold: run 0..NUM_FOLDS-1)
PRETRAINED = "auto"  # auto (ImageNet via Paddle's download/cache) | none | path/to/weights.pdparams
NUM_WORKERS = 4  # DataLoader worker processes
SEED = 2021
LOG_ITERS = 10
EVAL_INTERVAL = 0  # iterations between evaluations; 0 = once per epoch
SAVE_INTERVAL = 1000  # iterations between checkpoints (and always at the last one)
KEEP_CHECKPOINTS = 3
RESUME = ""  # auto (latest checkpoint in OUTPUT_DIR) | output/iter_N
DEVICE = "auto"  # auto | cpu | gpu | gpu:N
AMP = False  # GPU only: automatic mixed precision (bf16 where supported, else fp16)
# ------------------------------------------------------------------------------------------------------------


def build_scheduler(cfg):
    decay = paddle.optimizer.lr.PolynomialDecay(cfg["LR"], decay_steps=max(1, cfg["ITERS"] - cfg["WARMUP_ITERS"]),
                                                end_lr=cfg["END_LR"], power=cfg["POWER"])
    if cfg["WARMUP_ITERS"] <= 0:
        return decay
    return paddle.optimizer.lr.LinearWarmup(decay, warmup_steps=cfg["WARMUP_ITERS"], start_lr=0.0, end_lr=cfg["LR"])


def load_split(cfg):
    """Labels, checked against the pictures, and the seeded stratified train/validation split."""
    dataset_dir = Path(cfg["DATASET_DIR"])
    refs = read_reference(dataset_dir / "trainreference.csv", data_dir=dataset_dir / "train", ext=".png")
    if len(refs) == 0:
        raise SystemExit(f"error: {dataset_dir / 'trainreference.csv'}: the training set is empty")
    if not 0 <= cfg["VAL_FOLD"] < cfg["NUM_FOLDS"] or cfg["NUM_FOLDS"] < 2:
        raise SystemExit(f"error: need NUM_FOLDS >= 2 and 0 <= VAL_FOLD < NUM_FOLDS (got {cfg['NUM_FOLDS']}, {cfg['VAL_FOLD']})")
    folds = stratified_folds(refs["tag"], cfg["NUM_FOLDS"], cfg["SEED"])
    train, val = refs[folds != cfg["VAL_FOLD"]], refs[folds == cfg["VAL_FOLD"]]
    if len(train) == 0 or len(val) == 0:
        raise SystemExit(f"error: {len(refs)} labelled records are too few for {cfg['NUM_FOLDS']} folds")
    return refs, train, val


def seed_worker(worker_id):
    info = paddle.io.get_worker_info()
    np.random.seed((info.seed if info else 0) % 2**32)  # distinct augmentation streams per worker


@paddle.no_grad()
def evaluate(model, loader):
    """Validation loss, P(abnormal) per record, and labels."""
    model.eval()
    losses, probs, labels = [], [], []
    for images, y in loader:
        logits = model(images)
        losses.append(float(F.cross_entropy(logits, y, reduction="sum")))
        probs.append(F.softmax(logits, axis=1)[:, 1].numpy())
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

    refs, train_df, val_df = load_split(cfg)
    n_rows = LAYOUTS[read_render_config(cfg["DATASET_DIR"]).get("layout", "12x1")][0]
    img_dir = Path(cfg["DATASET_DIR"]) / "train"
    train_ds = ECGImageDataset(img_dir, train_df["name"], train_df["tag"], cfg["IMAGE_SIZE"], build_transforms(True, n_rows))
    val_ds = ECGImageDataset(img_dir, val_df["name"], val_df["tag"], cfg["IMAGE_SIZE"], build_transforms(False))
    drop_last = len(train_ds) >= cfg["BATCH_SIZE"] * world
    sampler = DistributedBatchSampler(train_ds, batch_size=cfg["BATCH_SIZE"], shuffle=True, drop_last=drop_last)
    workers = cfg["NUM_WORKERS"]
    loader = DataLoader(train_ds, batch_sampler=sampler, num_workers=workers, return_list=True,
                        persistent_workers=workers > 0, worker_init_fn=seed_worker if workers > 0 else None)
    val_loader = DataLoader(val_ds, batch_size=cfg["BATCH_SIZE"], shuffle=False, num_workers=min(workers, 2), return_list=True)
    log.info(f"data: {len(refs)} labelled records -> train {len(train_ds)} "
             f"({int(train_df['tag'].sum())} abnormal), validation {len(val_ds)} ({int(val_df['tag'].sum())} abnormal), "
             f"fold {cfg['VAL_FOLD']} of {cfg['NUM_FOLDS']}; {len(sampler)} iterations per epoch")

    model = build_model(len(TAG_NAMES), cfg["PRETRAINED"])
    scheduler = build_scheduler(cfg)
    optimizer = paddle.optimizer.Momentum(learning_rate=scheduler, momentum=cfg["MOMENTUM"], parameters=model.parameters(),
                                          weight_decay=paddle.regularizer.L2Decay(cfg["WEIGHT_DECAY"]))

    state = {"iter": 0, "best_f1": -1.0, "best_iter": 0, "history": {"train": [], "eval": []}}
    resume = cfg["RESUME"]
    if resume == "auto":
        found = checkpoint_dirs(out)
        resume = str(found[-1]) if found else ""
        if not found:
            log.info(f"resume auto: no checkpoint in {out}, starting from scratch")
    if resume:
        state = load_checkpoint(resume, model, optimizer)
        log.info(f"resumed from {resume} at iter {state['iter']} (lr {optimizer.get_lr():.6g}, best F1 {state['best_f1']:.4f})")
    if world > 1:
        model = paddle.DataParallel(model)

    amp_dtype = None
    if cfg["AMP"]:
        if device.startswith("gpu"):
            bf16 = getattr(paddle.amp, "is_bfloat16_supported", lambda: False)()  # absent in older Paddle 2.x
            amp_dtype = "bfloat16" if bf16 else "float16"
            log.info(f"AMP: {amp_dtype}")
        else:
            log.info("AMP requested but running on CPU: ignored")
    scaler = paddle.amp.GradScaler(init_loss_scaling=1024) if amp_dtype == "float16" else None
    majority = int(refs["tag"].mode().iloc[0])

    iters, it = cfg["ITERS"], state["iter"]
    per_epoch = max(1, len(sampler))
    eval_interval = cfg["EVAL_INTERVAL"] or per_epoch
    batch_cost, reader_cost = TimeAverager(), TimeAverager()
    loss_sum, loss_n = 0.0, 0
    model.train()
    log.info(f"training {iters} iterations, batch {cfg['BATCH_SIZE']} x {world} process(es), image {cfg['IMAGE_SIZE']} px, "
             f"device {device}, pretrained {cfg['PRETRAINED']}")
    while it < iters:
        epoch = it // per_epoch
        sampler.set_epoch(epoch)
        batch_start = time.perf_counter()
        for images, labels in loader:
            if it >= iters:
                break
            reader_cost.record(time.perf_counter() - batch_start)
            it += 1
            cast = paddle.amp.auto_cast(level="O1", dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
            with cast:
                loss = F.cross_entropy(model(images), labels)
            if scaler:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            optimizer.clear_grad()
            lr = optimizer.get_lr()
            scheduler.step()
            loss_sum += float(loss)  # also waits for the device, so batch_cost is honest
            loss_n += 1
            batch_cost.record(time.perf_counter() - batch_start, num_samples=len(labels))

            if it % cfg["LOG_ITERS"] == 0 or it == iters:
                avg_batch = batch_cost.get_average()
                log.info(f"[TRAIN] epoch: {epoch + 1}, iter: {it}/{iters}, loss: {loss_sum / loss_n:.4f}, lr: {lr:.6f}, "
                         f"batch_cost: {avg_batch:.4f}, reader_cost: {reader_cost.get_average():.5f}, "
                         f"ips: {batch_cost.get_ips_average():.4f} samples/sec | ETA {calculate_eta(iters - it, avg_batch)}")
                state["history"]["train"].append({"iter": it, "loss": loss_sum / loss_n, "lr": lr,
                                                  "batch_cost": avg_batch, "reader_cost": reader_cost.get_average()})
                loss_sum, loss_n = 0.0, 0
                batch_cost.reset()
                reader_cost.reset()

            if rank == 0 and (it % eval_interval == 0 or it == iters):
                evaluate_and_keep_best(model, val_loader, state, it, cfg, majority, out, log)
            state["iter"] = it
            if rank == 0 and (it % cfg["SAVE_INTERVAL"] == 0 or it == iters):
                save_checkpoint(out / f"iter_{it}", model, optimizer, state)
                prune_checkpoints(out, cfg["KEEP_CHECKPOINTS"])
            batch_start = time.perf_counter()

    if rank == 0:
        plot_training_curves(state["history"], out / "training_curves.png")
        log.info(f"done: best validation F1 {state['best_f1']:.4f} at iter {state['best_iter']} -> {out / 'best_model'}; "
                 f"curves: {out / 'training_curves.png'}")
    return state


def evaluate_and_keep_best(model, val_loader, state, it, cfg, majority, out, log):
    loss, probs, labels = evaluate(model, val_loader)
    threshold = best_threshold(labels, probs)
    at_half, tuned = binary_report(labels, probs, 0.5), binary_report(labels, probs, threshold)
    log.info(f"[EVAL] #Images: {len(labels)}, loss: {loss:.4f}, acc: {at_half['accuracy']:.4f}, "
             f"F1: {at_half['f1']:.4f} (threshold 0.5), F1: {tuned['f1']:.4f} (threshold {threshold:.3f}), AUC: {at_half['auc']:.4f}")
    log.info(f"[EVAL] confusion (rows: true normal/abnormal, columns: predicted): {at_half['confusion']}")
    state["history"]["eval"].append({"iter": it, "loss": loss, "f1": tuned["f1"], "f1_at_0.5": at_half["f1"],
                                     "auc": at_half["auc"], "accuracy": at_half["accuracy"], "threshold": threshold})
    if tuned["f1"] > state["best_f1"]:
        state["best_f1"], state["best_iter"] = tuned["f1"], it
        save_model_dir(out / "best_model", model, {
            "iter": it, "metrics": {"val_loss": loss, "at_0.5": at_half, "at_threshold": tuned},
            "threshold": threshold, "class_names": list(TAG_NAMES), "num_classes": len(TAG_NAMES),
            "image_size": cfg["IMAGE_SIZE"], "majority_class": majority,
            "render_config": read_render_config(cfg["DATASET_DIR"]), "config": cfg,
        })
    log.info(f"[EVAL] The model with the best validation F1 ({state['best_f1']:.4f}) was saved at iter {state['best_iter']}.")


if __name__ == "__main__":
    run_script(main)
