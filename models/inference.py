"""Static inference models: export with paddle.jit.save, run with Paddle Inference (oneDNN on CPU, GPU and
optionally TensorRT where Paddle has CUDA)."""
import json
import os
from pathlib import Path

import numpy as np
import paddle

from utils.atomic import write_text
from utils.checkpoint import INFO_FILE

EXPORT_PREFIX = "inference"  # DIR/inference.json (or .pdmodel) + DIR/inference.pdiparams; model.json is ours


def is_exported(model_dir):
    return (Path(model_dir) / f"{EXPORT_PREFIX}.pdiparams").is_file()


def export_model(model, out_dir, image_size, info):
    """Save `model` as a static inference model in `out_dir`, with our model.json beside it."""
    from paddle.static import InputSpec

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    paddle.jit.save(model, str(out_dir / EXPORT_PREFIX), input_spec=[InputSpec([None, 3, image_size, image_size], "float32", "image")])
    write_text(out_dir / INFO_FILE, json.dumps({**info, "exported": True}, indent=2, default=str) + "\n")
    return out_dir


class InferencePredictor:
    """Paddle Inference predictor of an exported model: `predictor(batch NCHW float32) -> logits`."""

    def __init__(self, model_dir, use_gpu=None, tensorrt=False, threads=None):
        from paddle import inference

        model_dir = Path(model_dir)
        prog = next((model_dir / f"{EXPORT_PREFIX}{ext}" for ext in (".json", ".pdmodel")
                     if (model_dir / f"{EXPORT_PREFIX}{ext}").is_file()), None)
        if prog is None:
            raise FileNotFoundError(f"{model_dir}: no exported program ({EXPORT_PREFIX}.json or .pdmodel)")
        config = inference.Config(str(prog), str(model_dir / f"{EXPORT_PREFIX}.pdiparams"))
        config.disable_glog_info()
        if use_gpu is None:
            use_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
        if use_gpu:
            config.enable_use_gpu(512, 0)
            if tensorrt:
                config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=64, min_subgraph_size=3,
                                              precision_mode=inference.PrecisionType.Float32, use_static=False, use_calib_mode=False)
        else:
            config.disable_gpu()
            config.enable_mkldnn()
            config.set_cpu_math_library_num_threads(threads or int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
        self.predictor = inference.create_predictor(config)
        self.input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])
        self.device = "gpu" + (" + TensorRT" if tensorrt else "") if use_gpu else "cpu (oneDNN)"

    def __call__(self, batch):
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        self.input.reshape(batch.shape)
        self.input.copy_from_cpu(batch)
        self.predictor.run()
        return self.output.copy_to_cpu()
