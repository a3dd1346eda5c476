"""What a run samples: seeded shuffled batches (every augmentation draw fixed by the run's seed, exact on resume)
and the seeded stratified folds of the labelled records."""
import numpy as np
import paddle
from sklearn.model_selection import KFold, StratifiedKFold

from ..errors import ConfigError, ECGDataError
from ..inputs.draws import derive_seed


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


def split_records(refs, task, num_folds, val_fold, seed, label_path):
    """(train, validation) rows of `refs` (DataFrame name, y): fold `val_fold` of `num_folds` seeded folds,
    stratified by tag for Task 1, multi-label stratified for Task 2 (every class spread over the folds)."""
    if num_folds < 2 or not 0 <= val_fold < num_folds:
        raise ConfigError(f"--num-folds {num_folds} --val-fold {val_fold}: need NUM_FOLDS >= 2 and 0 <= VAL_FOLD < NUM_FOLDS")
    if len(refs) < num_folds:
        raise ECGDataError(label_path, f"{len(refs)} labelled records that can be read are too few for {num_folds} "
                                       f"folds (--num-folds)")
    y = task.label_array(refs["y"])
    folds = (stratified_folds if y.ndim == 1 else multilabel_folds)(y, num_folds, seed)
    return refs[folds != val_fold], refs[folds == val_fold]
