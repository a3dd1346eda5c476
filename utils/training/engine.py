"""The parts of train.py's loop that are the same for every network: loaders, LR schedule, optimizer, mixed
precision, one training step and the validation pass."""
import contextlib
import functools

import numpy as np
import paddle

from ..errors import ConfigError
from ..inputs.loading import DEFAULT_TIMEOUT, make_loader
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


def train_step(model, task, inputs, labels, optimizer, amp_dtype, scaler):
    cast = paddle.amp.auto_cast(level="O1", dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    with cast:
        loss = task.loss(model(inputs), labels)
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
def validate(model, loader, task, windows=None):
    """Validation loss, probabilities per record (Task 1: P(abnormal); Task 2: one per class), and labels.
    `windows` (utils/inputs/signals.py SlidingWindows, or None: the whole record): the records run as predict.py
    runs them, their windows' probabilities aggregated; the loss is then that of the aggregated logits."""
    model.eval()
    forward = model if windows is None else functools.partial(_windowed, model, windows, task)
    losses, probs, labels = [], [], []
    for inputs, y in loader:
        logits = forward(inputs)
        losses.append(float(task.loss(logits, y, reduction="sum")))
        probs.append(task.probs(logits.numpy()))
        labels.append(y.numpy())
    model.train()
    labels, probs = np.concatenate(labels), np.concatenate(probs)
    return sum(losses) / len(labels), probs, labels


def _windowed(model, windows, task, inputs):
    """Logits (a tensor) of the records `inputs` aggregated over their windows (numpy, as predict.py does)."""
    return paddle.to_tensor(windows.logits(lambda x: model(paddle.to_tensor(x)).numpy(), inputs.numpy(), task))
