"""The loop that trains every network, and its parts: loaders, LR schedule, optimizer, mixed precision, one
training step and the validation pass. train.py builds them (a Network) and the run (runs.Run); `train` runs
PaddleSeg's loop over them."""
import contextlib
import functools
import time
from dataclasses import dataclass

import numpy as np
import paddle

from ..errors import ConfigError
from ..inputs.draws import derive_seed
from ..inputs.loading import DEFAULT_TIMEOUT, make_loader
from .checkpoint import save_checkpoint
from .mixup import no_mix
from .progress import Progress
from .runs import prune_checkpoints
from .sampling import SeededBatchSampler


def build_loaders(train_ds, val_ds, batch_size, seed, num_workers, world, timeout=DEFAULT_TIMEOUT):
    """(sampler, training loader: seeded shuffled batches, augmented; validation loader: fixed order, plain).
    The loaders (utils/inputs/loading.py) wait at most `timeout` seconds for a batch; close them (or use `with`)
    to stop their workers."""
    drop_last = len(train_ds) >= batch_size * world
    sampler = SeededBatchSampler(train_ds, batch_size, seed, drop_last=drop_last)
    loader = make_loader(train_ds, "training", timeout, batch_sampler=sampler, num_workers=num_workers,
                         persistent_workers=num_workers > 0)
    val_loader = make_loader(val_ds, "validation", timeout, batch_size=batch_size, shuffle=False,
                             num_workers=min(num_workers, 2),
                             persistent_workers=num_workers > 0)  # not restarted at every evaluation
    return sampler, loader, val_loader


def build_scheduler(lr, iters, warmup_iters, end_lr, power):
    """LinearWarmup from 0 to `lr` over `warmup_iters`, then PolynomialDecay to `end_lr` at the last iteration."""
    decay = paddle.optimizer.lr.PolynomialDecay(lr, decay_steps=max(1, iters - warmup_iters), end_lr=end_lr, power=power)
    if warmup_iters <= 0:
        return decay
    return paddle.optimizer.lr.LinearWarmup(decay, warmup_steps=warmup_iters, start_lr=0.0, end_lr=lr)


def build_optimizer(name, scheduler, model, momentum, weight_decay):
    """Momentum with L2 decay (the original) or Adam with the same decay."""
    decay = paddle.regularizer.L2Decay(weight_decay)
    if name == "momentum":
        return paddle.optimizer.Momentum(learning_rate=scheduler, momentum=momentum, parameters=model.parameters(),
                                         weight_decay=decay)
    if name == "adam":
        return paddle.optimizer.Adam(learning_rate=scheduler, parameters=model.parameters(), weight_decay=decay)
    raise ConfigError(f"--optimizer must be auto, momentum or adam, got {name!r}")


def setup_amp(enabled, device, log):
    """(autocast dtype or None, GradScaler or None): bf16 where the GPU has it, else fp16 with loss scaling."""
    if not enabled:
        return None, None
    if not device.startswith("gpu"):
        log.info("AMP requested but running on CPU: ignored")
        return None, None
    bf16 = getattr(paddle.amp, "is_bfloat16_supported", lambda: False)()  # absent in older Paddle 2.x
    dtype = "bfloat16" if bf16 else "float16"
    log.info(f"AMP: {dtype}")
    return dtype, paddle.amp.GradScaler(init_loss_scaling=1024) if dtype == "float16" else None


def train_step(model, objective, inputs, optimizer, amp_dtype, scaler):
    """One update on a batch; its loss (`objective`: logits -> loss, a mix's of utils/training/mixup.py) as a
    float."""
    cast = paddle.amp.auto_cast(level="O1", dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    with cast:
        loss = objective(model(inputs))
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
def validate(model, loader, task, loss_fn, windows=None):
    """Validation loss (`loss_fn`'s, averaged over the records), probabilities per record (Task 1: P(abnormal);
    Task 2: one per class), and labels.
    `windows` (utils/inputs/signals.py SlidingWindows, or None: the whole record): the records run as predict.py
    runs them, their windows' probabilities aggregated; the loss is then that of the aggregated logits."""
    model.eval()
    forward = model if windows is None else functools.partial(_windowed, model, windows, task)
    losses, probs, labels = [], [], []
    for inputs, y in loader:
        logits = forward(inputs)
        losses.append(float(loss_fn(logits, y, reduction="sum")))
        probs.append(task.probs(logits.numpy()))
        labels.append(y.numpy())
    model.train()
    labels, probs = np.concatenate(labels), np.concatenate(probs)
    return sum(losses) / len(labels), probs, labels


def _windowed(model, windows, task, inputs):
    """Logits (a tensor) of the records `inputs` aggregated over their windows (numpy, as predict.py does)."""
    return paddle.to_tensor(windows.logits(lambda x: model(paddle.to_tensor(x)).numpy(), inputs.numpy(), task))


@dataclass
class Network:
    """What the loop trains, as train.py built it: the network (wrapped in paddle.DataParallel with several ranks),
    its optimizer and LR schedule, the loss (utils/training/losses.py), the training loaders (the sampler sets each
    epoch's order), the validation loader and the test-time windows validation runs the records through (None:
    the whole record), mixed precision (autocast dtype and GradScaler, or None) and how each training batch is
    mixed before the step (utils/training/mixup.py)."""

    model: object
    optimizer: object
    scheduler: object
    loss: object
    sampler: object
    loader: object
    val_loader: object
    windows: object = None
    amp_dtype: str = None
    scaler: object = None
    mix: object = no_mix


def train(net, run, cfg, world=1, rank=0, vdl=None):
    """Train `net` from the run's state (new, or a checkpoint's) to ITERS iterations with PaddleSeg's loop and log
    lines: the [TRAIN] line every LOG_ITERS, an evaluation every EVAL_INTERVAL (0: once per epoch) and at the last
    iteration (rank 0; `run.evaluate` keeps best_model), a checkpoint every SAVE_INTERVAL and at the last (keeping
    KEEP_CHECKPOINTS), a stop after an evaluation past MAX_MINUTES of training. `cfg`: the run's settings
    (train.py's constants); `vdl`: a VDLWriter or None. Resumable exactly from any checkpoint. Returns the state."""
    model, optimizer, sampler, state, out, log = net.model, net.optimizer, net.sampler, run.state, run.out, run.log
    iters, it, stop = cfg["ITERS"], state["iter"], False
    per_epoch = max(1, len(sampler))
    eval_interval = cfg["EVAL_INTERVAL"] or per_epoch
    progress = Progress(log, state, iters, vdl)
    model.train()
    while it < iters and not stop:
        epoch, skip = divmod(it, per_epoch)
        sampler.set_epoch(epoch, skip)  # a mid-epoch resume starts at the batch the killed run would have drawn next
        batch_start = time.perf_counter()
        for inputs, labels in net.loader:
            reader_seconds = time.perf_counter() - batch_start
            it += 1
            lr = optimizer.get_lr()
            # Paddle's random draws in the step (dropout) come from a seed fixed by (run seed, iteration, rank): a
            # resumed run redraws them exactly on any Paddle (2.6 cannot restore a pickled generator state).
            seed = derive_seed(cfg["SEED"], it, rank)
            paddle.seed(seed)
            inputs, objective = net.mix(inputs, labels, net.loss, seed)
            loss = train_step(model, objective, inputs, optimizer, net.amp_dtype, net.scaler)
            net.scheduler.step()
            step_seconds = time.perf_counter() - batch_start
            progress.step(loss, step_seconds, reader_seconds, len(labels))
            state["train_seconds"] += step_seconds  # in the checkpoint: a resumed run's clock continues
            if it % cfg["LOG_ITERS"] == 0 or it == iters:
                progress.report(it, epoch, lr)

            if rank == 0 and (it % eval_interval == 0 or it == iters):
                val_loss, probs, val_labels = validate(model, net.val_loader, run.task, net.loss, net.windows)
                rec = run.evaluate(it, val_labels, probs, loss=val_loss, model=model)
                if vdl:
                    vdl.eval(rec)
            if cfg["MAX_MINUTES"] > 0 and it % eval_interval == 0:
                stop = over_budget(state, cfg["MAX_MINUTES"], world, it, log)
            state["iter"] = it
            if rank == 0 and (it % cfg["SAVE_INTERVAL"] == 0 or it == iters or stop):
                save_checkpoint(out / f"iter_{it}", model, optimizer, state, net.scaler)
                prune_checkpoints(out, cfg["KEEP_CHECKPOINTS"], state["run_id"])
            if it >= iters or stop:
                break
            batch_start = time.perf_counter()
    return state


def over_budget(state, max_minutes, world, it, log):
    """Has the run trained --max-minutes? Asked only after an evaluation, so the run ends on an evaluated model.
    With several ranks, rank 0's clock decides for all: every rank stops at the same iteration."""
    stop = state["train_seconds"] >= 60 * max_minutes
    if world > 1:
        flag = paddle.to_tensor([int(stop)])
        paddle.distributed.broadcast(flag, src=0)
        stop = bool(flag.item())
    if stop:
        state["stopped"] = {"iter": it, "reason": f"--max-minutes {max_minutes:g}", "train_seconds": state["train_seconds"]}
        log.info(f"--max-minutes {max_minutes:g}: {state['train_seconds']:.1f} s of training at iter {it}: stopping "
                 f"(a checkpoint is saved here; continue with --resume auto and a larger --max-minutes)")
    return stop
