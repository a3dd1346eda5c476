"""The machine-learning member: gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier) on the ECG
measurements of utils/ecg_features.py, one classifier per output (Task 1: abnormal; Task 2: each class).

Rare classes get balanced class weights. Early stopping holds out part of the TRAINING records only, never the
validation fold, whose predictions tune the thresholds and the fusion. scikit-learn models can only be saved
with pickle: `model.pkl` in the model directory. Unpickling can run any code a file names, so `load` admits only
what a GBMModel is made of (scikit-learn classes, numpy arrays and generators) and refuses anything else.
"""
import pickle
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from utils.checkpoint import CheckpointError

MODEL_PKL = "model.pkl"
MIN_FOR_EARLY_STOP = 20  # positives (and negatives) a class needs for its early-stopping hold-out


class GBMModel:
    def __init__(self, n_outputs, seed=0, max_iter=400, learning_rate=0.05):
        self.n_outputs, self.seed = n_outputs, seed
        self.params = dict(max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=15, min_samples_leaf=10,
                           l2_regularization=1.0, early_stopping=True, validation_fraction=0.15, n_iter_no_change=30,
                           class_weight="balanced", random_state=seed)
        self.models = []

    def fit(self, X, Y):
        """Y: (N,) 0/1 for Task 1, (N, C) 0/1 for Task 2. A class with no positive (or no negative) in the
        training records gets a constant instead of a classifier."""
        Y = np.asarray(Y).reshape(len(X), -1)
        self.models = []
        for k in range(Y.shape[1]):
            y = Y[:, k].astype(int)
            if y.min() == y.max():
                self.models.append(float(y[0]))
                continue
            # early stopping holds out a stratified share of the training records: too few positives for that, fixed size
            early = np.bincount(y).min() >= MIN_FOR_EARLY_STOP
            self.models.append(HistGradientBoostingClassifier(**{**self.params, "early_stopping": early}).fit(X, y))
        return self

    def predict_proba(self, X):
        """(N, C) probability of each output being positive."""
        X = np.asarray(X, dtype=np.float32)
        cols = [np.full(len(X), m) if isinstance(m, float) else m.predict_proba(X)[:, 1] for m in self.models]
        return np.stack(cols, axis=1)

    def save(self, directory):
        with open(Path(directory) / MODEL_PKL, "wb") as f:
            pickle.dump(self, f)

    @staticmethod
    def load(directory):
        path = Path(directory) / MODEL_PKL
        if not path.is_file():
            raise CheckpointError(f"{path}: not found (a features model directory holds model.pkl)")
        try:
            with open(path, "rb") as f:
                model = _ModelUnpickler(f).load()
        except pickle.UnpicklingError as e:
            raise CheckpointError(f"{path}: not a features model written by train.py ({e}); refusing to load it") from None
        if not isinstance(model, GBMModel):
            raise CheckpointError(f"{path}: holds a {type(model).__name__}, not a features model")
        return model


# numpy's own names in a pickled array or random generator; every other numpy name (memmap opens files) is refused
NUMPY_NAMES = {"dtype", "ndarray", "_reconstruct", "scalar", "PCG64", "MT19937", "SeedSequence", "Generator",
               "RandomState", "__bit_generator_ctor", "__generator_ctor", "__randomstate_ctor",
               "__pyx_unpickle_SeedSequence"}


class _ModelUnpickler(pickle.Unpickler):
    """Unpickles a GBMModel and nothing else: scikit-learn classes (building one runs no code of the file's
    choosing), numpy's array and generator names, and this module's GBMModel."""

    def find_class(self, module, name):
        top = module.split(".")[0]
        if (module, name) == (__name__, "GBMModel") or (top == "numpy" and name in NUMPY_NAMES):
            return super().find_class(module, name)
        if top == "sklearn":
            obj = super().find_class(module, name)
            if isinstance(obj, type):
                return obj
        raise pickle.UnpicklingError(f"it refers to {module}.{name}")


def as_logits(p, task_outputs):
    """Probabilities -> the logits the task's `probs` turns back into them (so predict.py treats every model
    alike): Task 1 (2 softmax outputs) [log(1-p), log(p)]; Task 2 the log-odds."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    if task_outputs == 2 and p.shape[1] == 1:
        return np.hstack([np.log(1 - p), np.log(p)]).astype(np.float32)
    return np.log(p / (1 - p)).astype(np.float32)
