"""What a run samples: seeded shuffled batches (every augmentation draw fixed by the run's seed, exact on resume)
and the seeded stratified folds of the labelled records, which never split a group (record_groups.csv: a
patient's records, a recording's windows)."""
import logging
from pathlib import Path

import numpy as np
import paddle
from sklearn.model_selection import KFold, StratifiedGroupKFold

from ..artifacts import RECORD_GROUPS
from ..ecg.io import read_record_groups
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


def stratified_folds(labels, n_folds, seed, groups=None):
    """Fold number (0..n_folds-1) per sample, the samples of a group (default: each sample its own) in one fold:
    scikit-learn's StratifiedGroupKFold, shuffled by `seed` (a class with fewer members than folds only warns;
    some folds then lack it). When every class is too small for the folds, or the greedy assignment leaves a fold
    empty, seeded folds of the groups without stratification."""
    labels = np.asarray(labels)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    if np.unique(labels, return_counts=True)[1].max() < n_folds:  # StratifiedGroupKFold refuses: too few of every class
        return group_folds(groups, n_folds, seed)
    folds = _fold_numbers(StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed), labels, groups)
    return folds if _every_fold_used(folds, n_folds) else group_folds(groups, n_folds, seed)


def multilabel_folds(y, n_folds, seed, groups=None):
    """Fold number per sample for 0/1 label rows `y` (N, C), the samples of a group in one fold: iterative
    stratification (MultilabelStratifiedKFold) of the groups, each labelled with the OR of its samples' labels, so
    every class with at least `n_folds` groups has some in every fold."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    y = np.asarray(y)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    ids, member = np.unique(groups, return_inverse=True)
    group_y = np.zeros((len(ids), y.shape[1]), dtype=y.dtype)
    np.maximum.at(group_y, member, y)  # a group has a class if any of its samples has it
    folds = _fold_numbers(MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed), group_y)[member]
    return folds if _every_fold_used(folds, n_folds) else group_folds(groups, n_folds, seed)


def group_folds(groups, n_folds, seed):
    """Fold number per sample: seeded shuffled folds of the groups (KFold over them), without stratification."""
    ids, member = np.unique(np.asarray(groups), return_inverse=True)
    return _fold_numbers(KFold(n_splits=n_folds, shuffle=True, random_state=seed), np.zeros(len(ids)))[member]


def _every_fold_used(folds, n_folds):
    return len(np.unique(folds)) == n_folds


def _fold_numbers(splitter, y, groups=None):
    """A scikit-learn style splitter's validation folds as one fold number per sample."""
    folds = np.empty(len(y), dtype=int)
    for k, (_, val) in enumerate(splitter.split(np.zeros(len(y)), y, groups)):
        folds[val] = k
    return folds


def record_groups(label_path, names, log=None):
    """Group number per name, from record_groups.csv beside the label file: records listed with one group share
    it; a record not listed, or every record when there is no such file, is its own group (the log says so)."""
    log = log or logging.getLogger("ecg")
    path = Path(label_path).parent / RECORD_GROUPS
    names = list(names)
    if not path.is_file():
        log.info(f"no {path}: every record is its own group (folds may split a patient's records)")
        return np.arange(len(names))
    groups = read_record_groups(path)
    missing = [n for n in names if n not in groups]
    if missing:
        log.warning(f"{path}: {len(missing)} of the {len(names)} labelled records are not listed (first: {missing[0]}): "
                    f"each of them is its own group")
    keys = [f"group {groups[n]}" if n in groups else f"record {n}" for n in names]
    ids, member, counts = np.unique(keys, return_inverse=True, return_counts=True)
    log.info(f"groups ({path}): {len(ids)} among {len(names)} labelled records, {int((counts[member] > 1).sum())} "
             f"records share theirs with another; a group is never split between folds")
    return member


def split_records(refs, task, num_folds, val_fold, seed, label_path, listed=None, log=None):
    """(train, validation) rows of `refs` (DataFrame name, y: the labelled records a model can read): fold `val_fold`
    of `num_folds` seeded folds, stratified by tag for Task 1, multi-label stratified for Task 2 (every class spread
    over the folds), a group of records (record_groups.csv) never split between folds.

    The folds are made over `listed` (every record of the label file, default `refs`), then the records not in
    `refs` are left out: a record's fold depends on the label file, the groups, `seed` and `num_folds` only, never on
    which other records a model family could read, so every family gets the same folds."""
    if num_folds < 2 or not 0 <= val_fold < num_folds:
        raise ConfigError(f"--num-folds {num_folds} --val-fold {val_fold}: need NUM_FOLDS >= 2 and 0 <= VAL_FOLD < NUM_FOLDS")
    listed = refs if listed is None else listed
    groups = record_groups(label_path, listed["name"], log)
    n_groups = len(np.unique(groups))
    if n_groups < num_folds:
        of = f" in {n_groups} groups ({RECORD_GROUPS})" if n_groups < len(listed) else ""
        raise ECGDataError(label_path, f"{len(listed)} labelled records{of} are too few for {num_folds} folds (--num-folds)")
    y = task.label_array(listed["y"])
    folds = (stratified_folds if y.ndim == 1 else multilabel_folds)(y, num_folds, seed, groups)
    fold_of = dict(zip(listed["name"], folds))
    unknown = [n for n in refs["name"] if n not in fold_of]
    if unknown:
        raise ValueError(f"{unknown[0]} is not among the labelled records of {label_path}")
    folds = refs["name"].map(fold_of).to_numpy()
    train_df, val_df = refs[folds != val_fold], refs[folds == val_fold]
    for what, df in (("validation", val_df), ("training", train_df)):
        if len(df) == 0:
            raise ECGDataError(label_path, f"fold {val_fold} of {num_folds} leaves no {what} record that can be read "
                                           f"({len(refs)} of the {len(listed)} labelled records can); use fewer folds "
                                           f"(--num-folds) or another --val-fold")
    return train_df, val_df
