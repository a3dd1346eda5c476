"""Saving and loading models and training checkpoints, each written atomically as a whole directory."""
import json
import pickle
import random
import re
import shutil
from pathlib import Path

import numpy as np
import paddle

from .atomic import atomic_dir, resolve_dir
from .errors import ConfigError, PipelineError

MODEL_FILE, OPT_FILE, STATE_FILE, INFO_FILE = "model.pdparams", "model.pdopt", "state.json", "model.json"
IMPORTANCE_FILE = "importance.csv"  # features models: permutation importance per class on validation
VAL_PREDICTIONS = "val_predictions.csv"  # in best_model: name, truth, probability per output, on its validation records
TRAINER_FILE = "trainer.pkl"  # random generators' states and the fp16 loss scaler: what exact resume needs besides weights
BEST_DIR = "best_model"
HEAD_WEIGHT = "fc.weight"


class CheckpointError(PipelineError, RuntimeError):
    """A model or checkpoint directory is missing, incomplete, or made for another model."""


def _unwrap(model):
    return model._layers if isinstance(model, paddle.DataParallel) else model


def save_model_dir(path, model, info, tables=None, write=None):
    """`path/model.pdparams` + `path/model.json` (iteration, metrics, threshold, classes, input, config), and
    `tables` ({file name: DataFrame}) as CSV files, all swapped in together. A model that is not a Paddle
    network is saved by `write(directory)` instead."""
    with atomic_dir(path) as tmp:
        if model is not None:
            paddle.save(_unwrap(model).state_dict(), str(tmp / MODEL_FILE))
        if write is not None:
            write(tmp)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")
        for name, df in (tables or {}).items():
            df.to_csv(tmp / name, index=False, float_format="%.6g")


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


_COUNTER = re.compile(r"_\d+$")  # unique-name counter ending accumulator names: `_velocity_0` here, `_velocity_1` there


def _create_accumulators(model, optimizer):
    """Paddle creates optimizer accumulators at the first step, and 2.6's state_dict() leaves out state loaded before
    it: one step on zero gradients creates them under this process's names. Call before loading the weights, as
    weight decay moves them."""
    params = [p for p in _unwrap(model).parameters() if not p.stop_gradient]
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
        paddle.save(_unwrap(model).state_dict(), str(tmp / MODEL_FILE))
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


def checkpoint_dirs(output_dir, run_id=None):
    """iter_N checkpoint directories under `output_dir`, oldest first; with `run_id`, only that run's."""
    found = [(int(m.group(1)), p) for p in Path(output_dir).glob("iter_*")
             if p.is_dir() and (m := re.fullmatch(r"iter_(\d+)", p.name))]
    return [p for _, p in sorted(found) if run_id is None or read_json(p / STATE_FILE).get("run_id") == run_id]


def prune_checkpoints(output_dir, keep, run_id):
    """Keep this run's last `keep` checkpoints; never touch another run's."""
    for p in checkpoint_dirs(output_dir, run_id)[:-keep] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)


def read_json(path):
    """A JSON file as a dict; {} when it is missing or unreadable (a checkpoint of an older version, say)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def signature_diff(saved, current):
    """What differs between two runs' signatures ({setting: value}), as 'SETTING: saved -> current' lines."""
    if not saved:
        return ["no run signature (written by an older version of train.py)"]
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
    _create_accumulators(model, optimizer)
    load_weights(model, path / MODEL_FILE, "checkpoint")
    opt_state = _to_live_names(paddle.load(str(path / OPT_FILE)), model, optimizer)
    missing = [k for k in optimizer.state_dict() if k not in opt_state]
    if missing:
        raise CheckpointError(f"{path}: optimizer state has no {missing[0]} (written for another optimizer or model?)")
    optimizer.set_state_dict(opt_state)
    return json.loads((path / STATE_FILE).read_text())


def read_model_info(model_dir):
    """model.json of a saved model directory (best_model or an export)."""
    model_dir = resolve_dir(model_dir)
    info = model_dir / INFO_FILE
    if not info.is_file():
        raise CheckpointError(f"{model_dir}: no {INFO_FILE} (is this a model directory written by train.py?)")
    return json.loads(info.read_text())
