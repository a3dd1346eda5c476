"""Step 3 of 3: predict every test record with the best model and write answer.csv (+ answer.zip to submit).

    python predict.py --data-dir RAW_DIR --dataset-dir DATASET_DIR --model OUT_DIR/best_model --out ANSWER_CSV
                      [--truth FILE] [--export DIR]

The test records are the MAT files in RAW_DIR/val/: each gets exactly one row, sorted by name. A record whose
picture is missing (process.py could not read or render it) gets the training set's majority class, with a
warning and a line in the report. --model may also be a directory written by --export (Paddle Inference).
"""
from utils.runtime import configure_cpu_threads

configure_cpu_threads()  # before paddle is imported

import json  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import paddle  # noqa: E402
from paddle.io import DataLoader  # noqa: E402
from scipy.special import softmax  # noqa: E402
from tqdm import tqdm  # noqa: E402

from models import build_model  # noqa: E402
from models.inference import InferencePredictor, export_model, is_exported  # noqa: E402
from transforms import build_transforms  # noqa: E402
from utils.atomic import atomic_path, resolve_dir, write_text  # noqa: E402
from utils.checkpoint import CheckpointError, MODEL_FILE, load_weights, read_model_info  # noqa: E402
from utils.config import parse_config, script_constants  # noqa: E402
from utils.data import ECGImageDataset  # noqa: E402
from utils.ecg_io import TAG_NAMES, ECGDataError, list_records, read_reference  # noqa: E402
from utils.metrics import binary_report, fmt  # noqa: E402
from utils.runtime import get_logger, run_script, select_device  # noqa: E402

# -- configuration (every constant is also a flag: MODEL -> --model) -----------------------------------------
DATA_DIR = "dataset/sample"  # raw competition layout: the test records are DATA_DIR/val/*.mat
DATASET_DIR = "dataset"  # pictures from process.py: DATASET_DIR/val/<name>.png
MODEL = "output/best_model"  # from train.py, or a directory written by --export
OUT = "answer.csv"  # answer.zip is written beside it
BATCH_SIZE = 16
NUM_WORKERS = 2
TRUTH = ""  # optional labels (name,tag) of the test records: prints and saves accuracy, F1, AUC
REPORT = ""  # default: predict_report.json beside the model directory (output/predict_report.json)
EXPORT = ""  # also save a static inference model (paddle.jit.save) to this directory
DEVICE = "auto"
TENSORRT = False  # exported models on GPU: use TensorRT
# ------------------------------------------------------------------------------------------------------------


def load_predictor(model_dir, info, device, log, tensorrt=False):
    """A function batch -> logits, from an exported model (Paddle Inference) or a train.py model (dygraph)."""
    if is_exported(model_dir):
        pred = InferencePredictor(model_dir, device, tensorrt=tensorrt)
        log.info(f"model: exported {model_dir} via Paddle Inference on {pred.device}")
        return pred, None
    model = build_model(info["num_classes"], "none")
    load_weights(model, Path(model_dir) / MODEL_FILE, "model")
    model.eval()
    log.info(f"model: {model_dir} (iter {info.get('iter')}, validation F1 {info.get('metrics', {}).get('at_threshold', {}).get('f1', float('nan')):.4f}) in dygraph on {device}")

    @paddle.no_grad()
    def run(batch):
        return model(paddle.to_tensor(batch)).numpy()
    return run, model


def predict_probs(run, dataset, batch_size, num_workers):
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, return_list=True)
    probs = []
    for batch in tqdm(loader, desc="predict", unit="batch"):
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        probs.append(softmax(run(x.numpy()), axis=1)[:, 1])
    return np.concatenate(probs) if probs else np.zeros(0)


def write_answer(answer, out):
    """answer.csv (header name,tag) and answer.zip holding it, both atomically."""
    out = Path(out)
    with atomic_path(out) as tmp:
        answer[["name", "tag"]].to_csv(tmp, index=False)
    zip_path = out.with_suffix(".zip")
    with atomic_path(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(out, arcname=out.name)
    return zip_path


def main(argv=None):
    cfg = parse_config(script_constants(globals()), argv, description=__doc__.split("\n")[0], source_file=__file__)
    log = get_logger()
    t0 = time.time()
    device = select_device(cfg["DEVICE"], log)
    data_dir, dataset_dir = Path(cfg["DATA_DIR"]), Path(cfg["DATASET_DIR"])
    model_dir = resolve_dir(cfg["MODEL"])
    if not model_dir.is_dir():
        raise CheckpointError(f"{model_dir}: model directory not found (train.py writes output/best_model)")
    info = read_model_info(model_dir)
    if info.get("num_classes") != len(TAG_NAMES):
        raise CheckpointError(f"{model_dir}: model has {info.get('num_classes')} classes; Task 1 needs {len(TAG_NAMES)}")
    names = list_records(data_dir / "val")
    if not names:
        raise ECGDataError(data_dir / "val", "no test records (*.mat)")

    img_dir = dataset_dir / "val"
    have = [n for n in names if (img_dir / f"{n}.png").is_file()]
    if not have:
        raise ECGDataError(img_dir, f"no pictures for the {len(names)} test records; run process.py first")
    check_render_settings(info, dataset_dir, model_dir, log)
    failed = read_failures(dataset_dir)
    rendered = set(have)
    fallback = {n: failed.get(n, "no picture (not rendered)") for n in names if n not in rendered}

    run, model = load_predictor(model_dir, info, device, log, cfg["TENSORRT"])
    if cfg["EXPORT"]:
        if model is None:
            raise SystemExit("error: --export needs a train.py model directory, not an exported one")
        export_model(model, cfg["EXPORT"], info["image_size"], info)
        log.info(f"exported static inference model to {cfg['EXPORT']}")

    dataset = ECGImageDataset(img_dir, have, None, info["image_size"], build_transforms(False))
    probs = dict(zip(have, predict_probs(run, dataset, cfg["BATCH_SIZE"], cfg["NUM_WORKERS"])))
    threshold = float(info.get("threshold", 0.5))
    majority = int(info.get("majority_class", 1))
    answer = pd.DataFrame({"name": names})  # one row per test record, by construction
    answer["prob"] = [probs.get(n, np.nan) for n in names]
    answer["tag"] = [int(probs[n] >= threshold) if n in probs else majority for n in names]
    assert answer["name"].is_unique and len(answer) == len(names)
    for n, why in fallback.items():
        log.warning(f"{n}: {why} -> answered with the training majority class {majority}")
    zip_path = write_answer(answer, cfg["OUT"])

    report = {"model": str(model_dir), "threshold": threshold, "n_records": len(names), "n_predicted": len(have),
              "fallback": [{"name": n, "reason": r, "tag": majority} for n, r in fallback.items()],
              "answer": str(cfg["OUT"]), "zip": str(zip_path), "seconds": round(time.time() - t0, 2)}
    if cfg["TRUTH"]:
        truth = read_reference(cfg["TRUTH"])
        merged = truth.merge(answer, on="name", suffixes=("_true", ""))
        if len(merged) < len(truth):
            log.warning(f"{len(truth) - len(merged)} records of {cfg['TRUTH']} are not among the test records")
        # AUC needs a score for every record: fallback rows score as their (majority) answer.
        score = merged["prob"].fillna(merged["tag"].astype(float))
        m = binary_report(merged["tag_true"], score, threshold)
        report["metrics"] = m
        log.info(f"test: {m['n']} records, accuracy {m['accuracy']:.4f}, F1 {m['f1']:.4f} (abnormal positive, "
                 f"threshold {threshold:.3f}), ROC AUC {fmt(m['auc'])}")
        log.info(f"test confusion (rows: true normal/abnormal, columns: predicted): {m['confusion']}")
    report_path = Path(cfg["REPORT"]) if cfg["REPORT"] else model_dir.parent / "predict_report.json"
    write_text(report_path, json.dumps(report, indent=2) + "\n")
    log.info(f"wrote {cfg['OUT']} ({len(answer)} rows, {int(answer['tag'].sum())} abnormal) and {zip_path}; report {report_path}")
    return report


# Render settings whose change alters what a picture shows (band placement, mV per pixel, stroke): a model
# trained on one cannot read the other. Only SIZE may differ: pictures are resized to the model's input anyway.
FATAL_RENDER_KEYS = ("layout", "mv_range", "line_width")


def check_render_settings(info, dataset_dir, model_dir, log):
    """Refuse pictures drawn with other settings than the model's training pictures."""
    trained = info.get("render_config") or {}
    if "size" not in trained:  # a model from before render settings were recorded
        log.warning(f"{model_dir}: model.json records no render settings; cannot check the pictures against them")
        return
    path = Path(dataset_dir) / "render_config.json"
    if not path.is_file():
        raise ECGDataError(path, "missing: cannot tell how these pictures were drawn; run process.py")
    drawn = json.loads(path.read_text())
    diff = [f"{k}: model {trained.get(k)!r}, pictures {drawn.get(k)!r}" for k in FATAL_RENDER_KEYS if trained.get(k) != drawn.get(k)]
    if diff:
        raise ECGDataError(path, f"pictures drawn with other settings than {model_dir}'s training pictures ({'; '.join(diff)}); "
                                 f"re-run process.py with the model's settings")
    if trained.get("size") != drawn.get("size"):
        log.warning(f"pictures are {drawn.get('size')} px, the model's training pictures {trained.get('size')} px: "
                    f"both are resized to {info['image_size']} px, but thin lines survive resizing differently")


def read_failures(dataset_dir):
    """name -> reason for the test records process.py reported as failed."""
    path = Path(dataset_dir) / "process_report.csv"
    if not path.is_file():
        return {}
    rep = pd.read_csv(path, dtype=str, keep_default_na=False)
    bad = rep[(rep["split"] == "val") & (rep["status"] == "failed")]
    return {n: f"could not be read or rendered: {d}" for n, d in zip(bad["name"], bad["detail"])}


if __name__ == "__main__":
    run_script(main)
