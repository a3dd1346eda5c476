"""Rendered-picture datasets for paddle.io and the seeded stratified train/validation split."""
import json
from pathlib import Path

import numpy as np
import paddle
from PIL import Image

from .ecg_io import ECGDataError


def load_image(path, size):
    """Rendered PNG -> gray PIL image of size x size (area-averaged when shrunk, so thin lines survive)."""
    img = Image.open(path).convert("L")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BOX if img.size[0] > size else Image.BILINEAR)
    return img


class ECGImageDataset(paddle.io.Dataset):
    """(image, label) pairs from `image_dir/<name>.png`; labels may be None for the test set."""

    def __init__(self, image_dir, names, labels=None, image_size=640, transform=None):
        self.image_dir, self.names = Path(image_dir), list(names)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.image_size, self.transform = image_size, transform
        missing = [n for n in self.names if not (self.image_dir / f"{n}.png").is_file()]
        if missing:
            raise ECGDataError(self.image_dir, f"{len(missing)} listed record(s) have no picture in "
                               f"{self.image_dir} (first: {missing[0]}.png); run process.py first")

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        img = load_image(self.image_dir / f"{self.names[i]}.png", self.image_size)
        x = self.transform(img) if self.transform else np.asarray(img)
        return (x, self.labels[i]) if self.labels is not None else x


def stratified_folds(labels, n_folds, seed):
    """Fold number (0..n_folds-1) per sample: each class spread evenly over the folds, shuffled by `seed`."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), dtype=int)
    offset = 0
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        folds[idx] = (np.arange(len(idx)) + offset) % n_folds
        offset += len(idx)  # keep the folds' sizes balanced across classes
    return folds


def read_render_config(dataset_dir):
    """The render settings process.py wrote (layout decides the band count for augmentation)."""
    path = Path(dataset_dir) / "render_config.json"
    return json.loads(path.read_text()) if path.exists() else {"layout": "12x1"}
