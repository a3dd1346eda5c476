"""Model families: everything that differs between a picture model and a signal model, in one place. train.py
and predict.py ask `get_family(arch)` (or `family_of(model.json)`) and never branch on the architecture.

- picture (`resnet18/34/50/101`): reads process.py's pictures (DATASET_DIR), ImageNet-style input (3, S, S).
- signal (`resnet1d`): reads the MAT records themselves (DATA_DIR), preprocessed as `utils.signal` says, (12, L).

model.json records `arch` and `input` (the picture size and render settings, or the signal preprocessing), so
predict.py feeds each model what it was trained on.
"""
import json
import logging
from pathlib import Path

import numpy as np

from transforms import build_transforms
from transforms.signal_augment import build_signal_transforms
from utils.data import ECGImageDataset, read_render_config
from utils.ecg_io import ECGDataError, list_records
from utils.errors import ConfigError
from utils.render import LAYOUTS
from utils.signal import SCALE_RECORDS, ECGSignalDataset, default_preprocess, fit_scale, load_signals

from .resnet import PICTURE_ARCHS, build_model, load_pretrained
from .resnet1d import resnet1d

log = logging.getLogger("ecg")
# Render settings whose change alters what a picture shows (band placement, mV per pixel, stroke): a model
# trained on one cannot read the other. Only the size may differ: pictures are resized to the model's input anyway.
FATAL_RENDER_KEYS = ("layout", "mv_range", "line_width", "scale")
RENDER_DEFAULTS = {"scale": "fixed"}  # settings added later: what pictures drawn before them used


class PictureFamily:
    """Pictures rendered by process.py (DATASET_DIR/train, DATASET_DIR/val), ResNets from paddle.vision."""

    name, optimizer = "picture", "momentum"  # the original design: Momentum fine-tuning of an ImageNet backbone

    def labels(self, cfg, task, log):
        """The labelled training records: process.py's label file, every row with its picture."""
        d = Path(cfg["DATASET_DIR"])
        return task.read_labels(d / task.label_file, data_dir=d / "train", ext=".png")

    def datasets(self, cfg, task, train_df, val_df, log):
        """(augmented training dataset, plain validation dataset, model.json `input`)."""
        render = read_render_config(cfg["DATASET_DIR"])
        img_dir = Path(cfg["DATASET_DIR"]) / "train"
        size = cfg["IMAGE_SIZE"]
        train_ds = ECGImageDataset(img_dir, train_df["name"], task.label_array(train_df["y"]), size,
                                   build_transforms(True, LAYOUTS[render.get("layout", "12x1")][0]))
        val_ds = ECGImageDataset(img_dir, val_df["name"], task.label_array(val_df["y"]), size, build_transforms(False))
        return train_ds, val_ds, {"kind": "picture", "image_size": size, "render_config": render}

    def build(self, arch, num_outputs, pretrained):
        return build_model(num_outputs, pretrained, arch)

    def input_spec(self, inp):
        return [None, 3, inp["image_size"], inp["image_size"]]

    def test_inputs(self, info, cfg, names, model_dir, log):
        """(dataset over the test records that have a picture, their names, {name: why not} for the others)."""
        dataset_dir = Path(cfg["DATASET_DIR"])
        img_dir = dataset_dir / "val"
        have = [n for n in names if (img_dir / f"{n}.png").is_file()]
        if not have:
            raise ECGDataError(img_dir, f"no pictures for the {len(names)} test records of {model_dir} (a picture "
                                        f"model); run process.py first")
        check_render_settings(info, dataset_dir, model_dir, log)
        failed = read_failures(dataset_dir)
        missing = {n: failed.get(n, "no picture (not rendered)") for n in names if n not in set(have)}
        return ECGImageDataset(img_dir, have, None, info["image_size"], build_transforms(False)), have, missing


class SignalFamily:
    """The MAT records themselves (DATA_DIR/train, DATA_DIR/val), a 1D ResNet."""

    name, optimizer = "signal", "adam"  # trained from scratch: Adam needs no LR search per dataset

    def __init__(self):
        self._cache = {}  # name -> unscaled preprocessed signal, read once for the split and the datasets

    def labels(self, cfg, task, log):
        """The labelled training records whose MAT file reads; unreadable ones are left out with a warning
        (process.py does the same for pictures, so both families split the same records)."""
        d = Path(cfg["DATA_DIR"])
        refs = task.read_labels(d / task.label_file, data_dir=d / "train", ext=".mat")
        self.prep = default_preprocess()
        signals, bad = load_signals([d / "train" / f"{n}.mat" for n in refs["name"]], self.prep, "read training records")
        for path, problem in bad.items():
            log.warning(f"{path}: {problem} -> left out of training")
        self._cache = {n: s for n, s in zip(refs["name"], signals) if s is not None}
        return refs[refs["name"].isin(self._cache)].reset_index(drop=True)

    def datasets(self, cfg, task, train_df, val_df, log):
        prep = dict(self.prep)
        prep["scale"] = fit_scale([self._cache[n] for n in train_df["name"][:SCALE_RECORDS]])
        log.info(f"signal input: high-pass {prep['highpass_hz']} Hz, {prep['fs']} Hz, x{prep['scale']:.3f} (one scale "
                 f"for all records, fitted on training records), training crops of {prep['crop']} samples")

        def ds(df, train):
            sigs = [self._cache[n] * np.float32(prep["scale"]) for n in df["name"]]
            return ECGSignalDataset(sigs, task.label_array(df["y"]), build_signal_transforms(train, prep))
        return ds(train_df, True), ds(val_df, False), prep

    def build(self, arch, num_outputs, pretrained):
        model = resnet1d(num_outputs)
        if pretrained == "auto":
            log.info("pretrained auto: there are no ImageNet weights for a signal model; training from scratch")
        elif pretrained and pretrained != "none":
            load_pretrained(model, pretrained)  # e.g. a resnet1d trained on another collection
        return model

    def input_spec(self, inp):
        return [None, 12, inp["length"]]

    def test_inputs(self, info, cfg, names, model_dir, log):
        val_dir = Path(cfg["DATA_DIR"]) / "val"
        signals, bad = load_signals([val_dir / f"{n}.mat" for n in names], input_of(info), "read test records")
        have = [n for n, s in zip(names, signals) if s is not None]
        missing = {Path(p).stem: f"could not be read: {why}" for p, why in bad.items()}
        return ECGSignalDataset([s for s in signals if s is not None]), have, missing


FAMILIES = {"picture": PictureFamily, "signal": SignalFamily}
ARCHS = {**{a: "picture" for a in PICTURE_ARCHS}, "resnet1d": "signal"}


def get_family(arch):
    if arch not in ARCHS:
        raise ConfigError(f"--arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    return FAMILIES[ARCHS[arch]]()


def arch_of(info):
    """A model.json's architecture (models from before --arch existed are ResNet50s)."""
    return info.get("arch", "resnet50")


def family_of(info):
    return get_family(arch_of(info))


def input_of(info):
    """A model.json's input description (models from before --arch kept the picture's at the top level)."""
    return info.get("input") or {"kind": "picture", "image_size": info["image_size"], "render_config": info.get("render_config")}


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
    trained, drawn = {**RENDER_DEFAULTS, **trained}, {**RENDER_DEFAULTS, **drawn}
    diff = [f"{k}: model {trained.get(k)!r}, pictures {drawn.get(k)!r}" for k in FATAL_RENDER_KEYS if trained.get(k) != drawn.get(k)]
    if diff:
        raise ECGDataError(path, f"pictures drawn with other settings than {model_dir}'s training pictures ({'; '.join(diff)}); "
                                 f"re-run process.py with the model's settings")
    if trained.get("size") != drawn.get("size"):
        log.warning(f"pictures are {drawn.get('size')} px, the model's training pictures {trained.get('size')} px: "
                    f"both are resized to {info['image_size']} px, but thin lines survive resizing differently")


def read_failures(dataset_dir):
    """name -> reason for the test records process.py reported as failed."""
    import pandas as pd

    path = Path(dataset_dir) / "process_report.csv"
    if not path.is_file():
        return {}
    rep = pd.read_csv(path, dtype=str, keep_default_na=False)
    bad = rep[(rep["split"] == "val") & (rep["status"] == "failed")]
    return {n: f"could not be read or rendered: {d}" for n, d in zip(bad["name"], bad["detail"])}


def list_test_records(data_dir):
    """Names of the test records: every MAT file in DATA_DIR/val."""
    names = list_records(Path(data_dir) / "val")
    if not names:
        raise ECGDataError(Path(data_dir) / "val", "no test records (*.mat)")
    return names
