"""The picture input: process.py's PNGs as a paddle.io dataset, the render settings they were drawn with, and the
check that a model reads pictures drawn as its training pictures were."""
import json
from pathlib import Path

import numpy as np
import paddle
import pandas as pd
from PIL import Image

from ..artifacts import PROCESS_REPORT, RENDER_CONFIG
from ..ecg.io import CSV_ENCODING
from ..errors import ECGDataError
from .draws import seed_sample
from .render import RENDER_DEFAULTS


def load_image(path, size):
    """Rendered PNG -> gray PIL image of size x size (area-averaged when shrunk, so thin lines survive)."""
    try:
        img = Image.open(path).convert("L")
    except OSError as e:  # PIL: unreadable or truncated PNG
        raise ECGDataError(path, f"cannot read the picture ({e}); re-run process.py --force") from e
    if img.size != (size, size):
        img = img.resize((size, size), Image.BOX if img.size[0] > size else Image.BILINEAR)
    return img


class ECGImageDataset(paddle.io.Dataset):
    """(image, label) pairs from `image_dir/<name>.png`; labels may be None for the test set."""

    def __init__(self, image_dir, names, labels=None, image_size=640, transform=None):
        self.image_dir, self.names = Path(image_dir), list(names)
        self.labels = None if labels is None else np.asarray(labels)  # Task 1: int tags; Task 2: float 0/1 rows
        self.image_size, self.transform = image_size, transform
        missing = [n for n in self.names if not (self.image_dir / f"{n}.png").is_file()]
        if missing:
            raise ECGDataError(self.image_dir, f"{len(missing)} listed record(s) have no picture in "
                               f"{self.image_dir} (first: {missing[0]}.png); run process.py first")

    def __len__(self):
        return len(self.names)

    def __getitem__(self, key):
        i = seed_sample(key)
        img = load_image(self.image_dir / f"{self.names[i]}.png", self.image_size)
        x = self.transform(img) if self.transform else np.asarray(img)
        return (x, self.labels[i]) if self.labels is not None else x


def read_render_config(dataset_dir, required=False):
    """The render settings process.py wrote (layout decides the band count for augmentation); without the file
    the default layout, or with `required` an error. A corrupt file is an error naming it."""
    path = Path(dataset_dir) / RENDER_CONFIG
    if not path.is_file():
        if required:
            raise ECGDataError(path, "missing: cannot tell how these pictures were drawn; run process.py")
        return {"layout": "12x1"}
    try:
        cfg = json.loads(path.read_text())
    except ValueError as e:
        raise ECGDataError(path, f"not valid JSON ({e}); run process.py again") from None
    if not isinstance(cfg, dict):
        raise ECGDataError(path, "not a render settings object; run process.py again")
    return cfg


# render_config.json's layout of pictures that are whole paper pages (printed ECGs scanned or photographed, fitted
# into the square: bench/paper_pictures.py), not process.py's renders: a model trained on either refuses the other.
PAPER_LAYOUT = "paper"

# Render settings whose change alters what a picture shows (band placement, mV per pixel, stroke, the curve beyond
# the band, the high-pass): a model trained on one cannot read the other. Only the size may differ: pictures are
# resized to the model's input anyway.
FATAL_RENDER_KEYS = ("layout", "mv_range", "line_width", "scale", "amplitude", "highpass")


def check_render_settings(inp, dataset_dir, model_dir, log):
    """Refuse pictures drawn with other settings than the model's training pictures (`inp`: its card's input)."""
    trained = inp.get("render_config") or {}
    if "size" not in trained:  # a model from before render settings were recorded
        log.warning(f"{model_dir}: model.json records no render settings; cannot check the pictures against them")
        return
    path = Path(dataset_dir) / RENDER_CONFIG
    drawn = read_render_config(dataset_dir, required=True)
    trained, drawn = {**RENDER_DEFAULTS, **trained}, {**RENDER_DEFAULTS, **drawn}
    diff = [f"{k}: model {trained.get(k)!r}, pictures {drawn.get(k)!r}" for k in FATAL_RENDER_KEYS if trained.get(k) != drawn.get(k)]
    if diff:
        paper = PAPER_LAYOUT in (trained.get("layout"), drawn.get("layout"))
        raise ECGDataError(path, f"pictures drawn with other settings than {model_dir}'s training pictures ({'; '.join(diff)}); "
                                 + ("paper pages and process.py's renders are not interchangeable" if paper else
                                    "re-run process.py with the model's settings"))
    if trained.get("size") != drawn.get("size"):
        log.warning(f"pictures are {drawn.get('size')} px, the model's training pictures {trained.get('size')} px: "
                    f"both are resized to {inp['image_size']} px, but thin lines survive resizing differently")


def read_failures(dataset_dir, split="val"):
    """name -> reason for the records of `split` (val: the test records) process.py reported as failed."""
    path = Path(dataset_dir) / PROCESS_REPORT
    if not path.is_file():
        return {}
    rep = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=CSV_ENCODING)
    bad = rep[(rep["split"] == split) & (rep["status"] == "failed")]
    return {n: f"could not be read or rendered: {d}" for n, d in zip(bad["name"], bad["detail"])}
