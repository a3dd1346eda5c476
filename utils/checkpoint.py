"""Saving and loading models and training checkpoints, each written atomically as a whole directory."""
import json
import re
import shutil
from pathlib import Path

import paddle

from .atomic import atomic_dir, resolve_dir

MODEL_FILE, OPT_FILE, STATE_FILE, INFO_FILE = "model.pdparams", "model.pdopt", "state.json", "model.json"
HEAD_WEIGHT = "fc.weight"


class CheckpointError(RuntimeError):
    """A model or checkpoint directory is missing, incomplete, or made for another model."""


def _unwrap(model):
    return model._layers if isinstance(model, paddle.DataParallel) else model


def save_model_dir(path, model, info):
    """`path/model.pdparams` + `path/model.json` (iteration, metrics, threshold, classes, image size, config)."""
    with atomic_dir(path) as tmp:
        paddle.save(_unwrap(model).state_dict(), str(tmp / MODEL_FILE))
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")


def _rename_optimizer_state(opt_state, model, to_structured):
    """Optimizer state is keyed by parameters' unique names (`conv2d_106.w_0_velocity_0`), which depend on how
    many layers the process created before; store it by structured names (`conv1.weight`) so any process can load it."""
    pairs = [(p.name, s) for s, p in _unwrap(model).named_parameters()]
    if not to_structured:
        pairs = [(s, n) for n, s in pairs]
    pairs.sort(key=lambda p: -len(p[0]))  # longest prefix first: conv2d_1.w_0 must not match conv2d_10.w_0_...
    out = {}
    for key, value in opt_state.items():
        new = key
        for old, repl in pairs:
            if key.startswith(old + "_"):
                new = repl + key[len(old):]
                break
        out[new] = value
    return out


def save_checkpoint(path, model, optimizer, state):
    """`path/` with model, optimizer (its state holds the LR scheduler's) and `state.json` (iteration, best, history)."""
    with atomic_dir(path) as tmp:
        paddle.save(_unwrap(model).state_dict(), str(tmp / MODEL_FILE))
        paddle.save(_rename_optimizer_state(optimizer.state_dict(), model, True), str(tmp / OPT_FILE))
        (tmp / STATE_FILE).write_text(json.dumps(state, default=str) + "\n")


def checkpoint_dirs(output_dir):
    """iter_N checkpoint directories under `output_dir`, oldest first."""
    found = [(int(m.group(1)), p) for p in Path(output_dir).glob("iter_*")
             if p.is_dir() and (m := re.fullmatch(r"iter_(\d+)", p.name))]
    return [p for _, p in sorted(found)]


def prune_checkpoints(output_dir, keep):
    for p in checkpoint_dirs(output_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)


def load_weights(model, path, what="model"):
    """Load `path` (a .pdparams file) into `model`, refusing weights made for another head size."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} weights not found")
    state = paddle.load(str(path))
    own = _unwrap(model).state_dict()
    if HEAD_WEIGHT in state and list(state[HEAD_WEIGHT].shape) != list(own[HEAD_WEIGHT].shape):
        raise CheckpointError(f"{path}: {what} was trained for {state[HEAD_WEIGHT].shape[-1]} classes, "
                              f"this model has {own[HEAD_WEIGHT].shape[-1]}")
    missing = [k for k in own if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a weights file for this model (missing {missing[0]} and {len(missing) - 1} more)")
    _unwrap(model).set_state_dict(state)


def load_checkpoint(path, model, optimizer):
    """Restore model and optimizer (with LR scheduler) from a checkpoint dir; return its state dict."""
    path = resolve_dir(path)
    for f in (MODEL_FILE, OPT_FILE, STATE_FILE):
        if not (path / f).is_file():
            raise CheckpointError(f"{path}: not a training checkpoint (no {f})")
    load_weights(model, path / MODEL_FILE, "checkpoint")
    optimizer.set_state_dict(_rename_optimizer_state(paddle.load(str(path / OPT_FILE)), model, False))
    return json.loads((path / STATE_FILE).read_text())


def read_model_info(model_dir):
    """model.json of a saved model directory (best_model or an export)."""
    model_dir = resolve_dir(model_dir)
    info = model_dir / INFO_FILE
    if not info.is_file():
        raise CheckpointError(f"{model_dir}: no {INFO_FILE} (is this a model directory written by train.py?)")
    return json.loads(info.read_text())
