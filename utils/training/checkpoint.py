"""Training checkpoints (iter_N/: weights, optimizer, run state, random generators), written atomically as a whole
directory, and loaded into any process (optimizer state keyed by structured names).

What loading one trusts: model.pdparams and model.pdopt are read by paddle.load, which unpickles them (as every
Paddle checkpoint is); state.json and trainer.json are plain data. Checkpoints of earlier versions kept the random
generators in trainer.pkl, a pickle: refused unless `trust_pickle` (train.py --trust-pickle)."""
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
TRAINER_FILE = "trainer.json"  # random generators' states and the fp16 loss scaler: what exact resume needs besides weights
PICKLED_TRAINER_FILE = "trainer.pkl"  # the same in checkpoints of earlier versions, as a pickle


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
    history) and `trainer.json` (random generators, loss scaler)."""
    with atomic_dir(path) as tmp:
        paddle.save(unwrap(model).state_dict(), str(tmp / MODEL_FILE))
        paddle.save(_rename_optimizer_state(optimizer.state_dict(), model, True), str(tmp / OPT_FILE))
        (tmp / TRAINER_FILE).write_text(json.dumps(_plain(_trainer_state(scaler))) + "\n")
        (tmp / STATE_FILE).write_text(json.dumps(state, default=str) + "\n")


def _trainer_state(scaler):
    """Python's and numpy's generators (plain tuples and arrays) and the fp16 loss scaler's state (a dict of small
    arrays and numbers). Not Paddle's generator: train.py seeds it from (seed, iteration, rank) before every step,
    the only place it is drawn from after the model is built (validation runs in eval mode; sample order and
    augmentations draw from their own seeds), so a resumed run redraws the same without it. (Nor could it be kept:
    Paddle 2.6's generator state holds only its seed and offset, not the CPU engine's state.)"""
    return {"random": random.getstate(), "numpy": np.random.get_state(),
            "scaler": scaler.state_dict() if scaler is not None else None}


def _plain(x):
    """Tuples, arrays and numpy numbers as JSON values; an array as {"ndarray": values, "dtype": name}."""
    if isinstance(x, np.ndarray):
        return {"ndarray": x.tolist(), "dtype": str(x.dtype)}
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _unplain(x):
    if isinstance(x, dict):
        if set(x) == {"ndarray", "dtype"}:
            return np.array(x["ndarray"], dtype=x["dtype"])
        return {k: _unplain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_unplain(v) for v in x]
    return x


class _SkipPaddle:
    """Stands for the Paddle generator states in a trusted trainer.pkl: not needed (_trainer_state), and one
    pickled by another Paddle version cannot be rebuilt."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


class _TrustedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        return _SkipPaddle if module.split(".")[0] == "paddle" else super().find_class(module, name)


def read_trainer_state(path, trust_pickle=False):
    """Checkpoint `path`'s trainer state (random generators, loss scaler) as `_trainer_state` makes it. An earlier
    version's trainer.pkl is unpickled only with `trust_pickle`: unpickling runs whatever code the file names."""
    path = Path(path)
    if (path / TRAINER_FILE).is_file():
        try:
            saved = _unplain(json.loads((path / TRAINER_FILE).read_text()))
            return {"random": (saved["random"][0], tuple(saved["random"][1]), saved["random"][2]),
                    "numpy": tuple(saved["numpy"]), "scaler": saved["scaler"]}
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise CheckpointError(f"{path / TRAINER_FILE}: not a trainer state ({e}); resume from another "
                                  f"checkpoint") from None
    if not (path / PICKLED_TRAINER_FILE).is_file():
        raise CheckpointError(f"{path}: not a training checkpoint (no {TRAINER_FILE})")
    if not trust_pickle:
        raise CheckpointError(f"{path / PICKLED_TRAINER_FILE}: a checkpoint of an earlier version, its random "
                              f"generators pickled (loading a pickle runs any code it names). If you wrote it, "
                              f"resume with --trust-pickle (its next checkpoints are plain JSON); else train "
                              f"anew without --resume")
    with open(path / PICKLED_TRAINER_FILE, "rb") as f:
        saved = _TrustedUnpickler(f).load()
    return {"random": saved["rng"]["random"], "numpy": saved["rng"]["numpy"], "scaler": saved["scaler"]}


def restore_trainer_state(path, scaler=None, trust_pickle=False, saved=None):
    """Put back the random generators and the loss scaler as they were when checkpoint `path` was saved
    (`saved`: what read_trainer_state returned, if already read)."""
    saved = saved or read_trainer_state(path, trust_pickle)
    random.setstate(saved["random"])
    np.random.set_state(saved["numpy"])
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
