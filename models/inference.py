"""Static inference models: export with paddle.jit.save, run with Paddle Inference (oneDNN on CPU, GPU and
optionally TensorRT where Paddle has CUDA)."""
import json
import os
from pathlib import Path

import numpy as np
import paddle
from tqdm import tqdm

from utils.artifacts import INFO_FILE
from utils.atomic import write_text
from utils.errors import CheckpointError
from utils.inputs.loading import DEFAULT_TIMEOUT, make_loader
from utils.inputs.signals import windowed
from utils.runtime import worker_count
from utils.scoring.metrics import fmt

from .families import Sources, family_of

EXPORT_PREFIX = "inference"  # DIR/inference.json (or .pdmodel) + DIR/inference.pdiparams; model.json is ours


def is_exported(model_dir):
    return (Path(model_dir) / f"{EXPORT_PREFIX}.pdiparams").is_file()


def export_model(model, out_dir, shape, card):
    """Save `model` as a static inference model in `out_dir`, with our model.json beside it. `shape`: the input
    spec ([None, 3, S, S] for a picture model, [None, 12, L] for a signal model; an int S means the former)."""
    from paddle.static import InputSpec

    if isinstance(shape, int):
        shape = [None, 3, shape, shape]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    paddle.jit.save(model, str(out_dir / EXPORT_PREFIX), input_spec=[InputSpec(shape, "float32", "x")])
    write_text(out_dir / INFO_FILE, json.dumps({**card.to_json(), "exported": True}, indent=2, default=str) + "\n")
    return out_dir


def gpu_id(device):
    """"gpu:N" -> N, "gpu" -> 0, anything else (cpu) -> None."""
    if not device.startswith("gpu"):
        return None
    return int(device.partition(":")[2] or 0)


def configure_device(config, device, tensorrt=False, threads=None):
    """Run `config` on `device`'s GPU (optionally via TensorRT) or on the CPU with oneDNN; return a description."""
    from paddle import inference

    gpu = gpu_id(device)
    if gpu is None:
        config.disable_gpu()
        config.enable_mkldnn()
        config.set_cpu_math_library_num_threads(threads or int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
        return "cpu (oneDNN)"
    config.enable_use_gpu(512, gpu)  # 512 MB initial memory pool on GPU `gpu`
    if tensorrt:
        config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=64, min_subgraph_size=3,
                                      precision_mode=inference.PrecisionType.Float32, use_static=False, use_calib_mode=False)
    return f"gpu:{gpu}" + (" + TensorRT" if tensorrt else "")


class InferencePredictor:
    """Paddle Inference predictor of an exported model: `predictor(batch NCHW float32) -> logits`.

    `device`: "cpu", "gpu" or "gpu:N", as utils.runtime.select_device returns; None = the GPU if there is one.
    `use_gpu` is the deprecated former switch (True = "gpu", False = "cpu")."""

    def __init__(self, model_dir, device=None, tensorrt=False, threads=None, use_gpu=None):
        from paddle import inference

        model_dir = Path(model_dir)
        prog = next((model_dir / f"{EXPORT_PREFIX}{ext}" for ext in (".json", ".pdmodel")
                     if (model_dir / f"{EXPORT_PREFIX}{ext}").is_file()), None)
        if prog is None:
            raise CheckpointError(f"{model_dir}: no exported program ({EXPORT_PREFIX}.json or .pdmodel)")
        config = inference.Config(str(prog), str(model_dir / f"{EXPORT_PREFIX}.pdiparams"))
        config.disable_glog_info()
        if device is None:
            if use_gpu is None:
                use_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
            device = "gpu" if use_gpu else "cpu"
        self.device = configure_device(config, device, tensorrt, threads)
        self.predictor = inference.create_predictor(config)
        self.input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def __call__(self, batch):
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        self.input.reshape(batch.shape)
        self.input.copy_from_cpu(batch)
        self.predictor.run()
        return self.output.copy_to_cpu()


# -- predicting: what predict.py (and the benches that re-predict as it does) run for one model -------------------
def load_predictor(model_dir, card, task, device, log, tensorrt=False):
    """A function batch -> logits (an exported model via Paddle Inference, else the family's own loader) and the
    dygraph model (None for an exported or a non-network model). Either runs the records as validation did: the
    whole record, or the card's test-time windows (an exported signal network takes one window)."""
    if is_exported(model_dir):
        pred = InferencePredictor(model_dir, device, tensorrt=tensorrt)
        log.info(f"model: exported {model_dir} ({card.arch}) via Paddle Inference on {pred.device}")
        return windowed(pred, card.input, task), None
    run, model = family_of(card).load_runner(model_dir, card, task)
    log.info(f"model: {model_dir} ({card.arch}, task {card.task}, iter {card.iter}, validation {card.selected_by} "
             f"{fmt(card.best_metric)}) on {device}")
    return run, model


def predict_probs(run, task, dataset, batch_size, num_workers, desc="predict", timeout=DEFAULT_TIMEOUT):
    """The task's probabilities of every item of `dataset`, in order, from the batch -> logits function `run`."""
    probs = []
    with make_loader(dataset, desc, timeout, batch_size=batch_size, shuffle=False, num_workers=num_workers) as loader:
        for batch in tqdm(loader, desc=desc, unit="batch"):
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            probs.append(task.probs(run(x.numpy())))
    return np.concatenate(probs) if probs else np.zeros(0)


def predict_member(model_dir, card, task, cfg, names, device, log):
    """{name: probability} of one model over the test records it can read, {name: why not} for the others, and
    the dygraph model (None for an exported one). `cfg`: predict.py's settings (DATA_DIR, DATASET_DIR, PREP_WORKERS,
    TENSORRT, BATCH_SIZE, NUM_WORKERS, LOADER_TIMEOUT)."""
    src = Sources(Path(cfg["DATA_DIR"]), Path(cfg["DATASET_DIR"]), worker_count(cfg["PREP_WORKERS"]))
    dataset, have, missing = family_of(card).test_inputs(card, src, names, model_dir, log)
    run, model = load_predictor(model_dir, card, task, device, log, cfg["TENSORRT"])
    probs = predict_probs(run, task, dataset, cfg["BATCH_SIZE"], cfg["NUM_WORKERS"], f"predict {card.arch}",
                          cfg["LOADER_TIMEOUT"])
    return dict(zip(have, probs)), missing, model
