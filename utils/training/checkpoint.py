"""Training checkpoints (iter_N/: weights, optimizer, run state, random generators), written atomically as a whole
directory, and loaded into any process (optimizer state keyed by structured names)."""
import json
import pickle
import random
import re
from pathlib import Path

import numpy as np
import paddle

from ..artifacts import MODEL_FILE, load_weights, unwrap
from ..atomic import atomic_dir, resolve_dir
from ..errors import CheckpointError

OPT_FILE, STATE_FILE = "model.pdopt", "state.json"
TRAINER_FILE = "trainer.pkl"  # random generators' states and the fp16 loss scaler: what exact resume needs besides weights


def _rename_optimizer_state(opt_state, model, to_structured):
    """Optimizer state is keyed by parameters' unique names (`conv2d_106.w_0_velocity_0`), which depend on how
    many layers the process created before; store it by structured names (`conv1.weight`) so any process can load it."""
    pairs = [(p.name, s) for s, p in unwrap(model).named_parameters()]
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


_COUNTER = re.compile(r"_\d+$")  # unique-name counter ending accumulator names: `_velocity_0` here, `_velocity_1` there


def _create_accumulators(model, optimizer):
    """Paddle creates optimizer accumulators at the first step, and 2.6's state_dict() leaves out state loaded before
    it: one step on zero gradients creates them under this process's names. Call before loading the weights, as
    weight decay moves them."""
    params = [p for p in unwrap(model).parameters() if not p.stop_gradient]
    if params:
        paddle.add_n([(p * 0).sum() for p in params]).backward()
        optimizer.step()
        optimizer.clear_grad()


def _to_live_names(saved, model, optimizer):
    """Saved optimizer state -> keyed by this process's accumulator names, matched up to the unique-name counter."""
    live = {_COUNTER.sub("", k): k for k in optimizer.state_dict()}
    return {live.get(_COUNTER.sub("", k), k): v for k, v in _rename_optimizer_state(saved, model, False).items()}


def save_checkpoint(path, model, optimizer, state, scaler=None):
    """`path/` with model, optimizer (its state holds the LR scheduler's), `state.json` (run, iteration, best,
    history) and the trainer state (random generators, loss scaler)."""
    with atomic_dir(path) as tmp:
        paddle.save(unwrap(model).state_dict(), str(tmp / MODEL_FILE))
        paddle.save(_rename_optimizer_state(optimizer.state_dict(), model, True), str(tmp / OPT_FILE))
        with open(tmp / TRAINER_FILE, "wb") as f:
            pickle.dump(_trainer_state(scaler), f, protocol=4)
        (tmp / STATE_FILE).write_text(json.dumps(state, default=str) + "\n")


def _trainer_state(scaler):
    rng = {"random": random.getstate(), "numpy": np.random.get_state(), "paddle": paddle.get_rng_state()}
    if paddle.is_compiled_with_cuda():
        rng["cuda"] = paddle.get_cuda_rng_state()
    return {"rng": rng, "scaler": scaler.state_dict() if scaler is not None else None}


def restore_trainer_state(path, scaler=None):
    """Put back the random generators and the loss scaler as they were when checkpoint `path` was saved.
    Pickle, like Paddle's own .pdparams: load only checkpoints this project wrote."""
    with open(Path(path) / TRAINER_FILE, "rb") as f:
        saved = pickle.load(f)
    rng = saved["rng"]
    random.setstate(rng["random"])
    np.random.set_state(rng["numpy"])
    paddle.set_rng_state(rng["paddle"])
    if "cuda" in rng and paddle.is_compiled_with_cuda():
        paddle.set_cuda_rng_state(rng["cuda"])
    if scaler is not None and saved["scaler"]:
        scaler.load_state_dict(saved["scaler"])


def load_checkpoint(path, model, optimizer):
    """Restore model and optimizer (with LR scheduler) from a checkpoint dir; return its state dict."""
    path = resolve_dir(path)
    for f in (MODEL_FILE, OPT_FILE, STATE_FILE):
        if not (path / f).is_file():
            raise CheckpointError(f"{path}: not a training checkpoint (no {f})")
    _create_accumulators(model, optimizer)
    load_weights(model, path / MODEL_FILE, "checkpoint")
    opt_state = _to_live_names(paddle.load(str(path / OPT_FILE)), model, optimizer)
    missing = [k for k in optimizer.state_dict() if k not in opt_state]
    if missing:
        raise CheckpointError(f"{path}: optimizer state has no {missing[0]} (written for another optimizer or model?)")
    optimizer.set_state_dict(opt_state)
    return json.loads((path / STATE_FILE).read_text())
