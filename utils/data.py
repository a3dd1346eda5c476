"""Rendered-picture datasets for paddle.io, the seeded sampler that makes augmentation reproducible, and the
seeded stratified train/validation split."""
import json
import random
from pathlib import Path

import numpy as np
import paddle
from PIL import Image
from sklearn.model_selection import KFold, StratifiedKFold

from .ecg_io import ECGDataError


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


def seed_sample(key):
    """`key` is an index, or (index, draw seed) from SeededBatchSampler: then seed the RNGs the augmentations use
    (numpy's and Python's: ColorJitter draws from `random`) so this sample's draws depend on nothing else."""
    if not isinstance(key, (tuple, list)):
        return key
    index, draw = key
    np.random.seed(draw)
    random.seed(int(draw))
    return index


def derive_seed(*parts):
    """A 32-bit seed from integers (seed, epoch, index): distinct parts give unrelated streams."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


class SeededBatchSampler(paddle.io.BatchSampler):
    """Shuffled batches of (index, draw seed) keys, the draw seed a function of (run seed, epoch, index).

    Each sample's augmentation is then fixed by the run's seed alone, whichever DataLoader worker draws it
    (Paddle seeds every worker alike), and a run resumed mid-epoch (`set_epoch(epoch, skip=k)` starts at batch k
    without loading the k batches before it) sees the same samples, in the same order, with the same draws as
    an uninterrupted run. Wraps DistributedBatchSampler, so each rank gets its own share.
    """

    def __init__(self, dataset, batch_size, seed, drop_last=True):
        self.inner = paddle.io.DistributedBatchSampler(dataset, batch_size=batch_size, shuffle=True, drop_last=drop_last)
        self.batch_size, self.seed, self.epoch, self.skip = batch_size, seed, 0, 0

    def set_epoch(self, epoch, skip=0):
        self.epoch, self.skip = epoch, skip

    def __iter__(self):
        self.inner.set_epoch(derive_seed(self.seed, self.epoch))  # the order depends on the seed too, not only the epoch
        for b, batch in enumerate(self.inner):
            if b >= self.skip:
                yield [(i, derive_seed(self.seed, self.epoch, i)) for i in batch]

    def __len__(self):
        return len(self.inner)


def stratified_folds(labels, n_folds, seed):
    """Fold number (0..n_folds-1) per sample: scikit-learn's StratifiedKFold, shuffled by `seed` (a class with
    fewer members than folds only warns; some folds then lack it)."""
    labels = np.asarray(labels)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    if np.unique(labels, return_counts=True)[1].max() < n_folds:  # StratifiedKFold refuses: too few of every class
        splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return _fold_numbers(splitter, labels)


def multilabel_folds(y, n_folds, seed):
    """Fold number per sample for 0/1 label rows `y` (N, C): iterative stratification (MultilabelStratifiedKFold),
    so every class with at least `n_folds` positives has some in every fold."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    return _fold_numbers(MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed), np.asarray(y))


def _fold_numbers(splitter, y):
    """A scikit-learn style splitter's validation folds as one fold number per sample."""
    folds = np.empty(len(y), dtype=int)
    for k, (_, val) in enumerate(splitter.split(np.zeros(len(y)), y)):
        folds[val] = k
    return folds


def read_render_config(dataset_dir, required=False):
    """The render settings process.py wrote (layout decides the band count for augmentation); without the file
    the default layout, or with `required` an error. A corrupt file is an error naming it."""
    path = Path(dataset_dir) / "render_config.json"
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
