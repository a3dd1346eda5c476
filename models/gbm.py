"""The machine-learning member: gradient-boosted trees (LightGBM) on the ECG measurements of utils/ecg/measurements.py,
one classifier per output (Task 1: abnormal; Task 2: each class).

Rare classes get balanced class weights. Early stopping holds out part of the TRAINING records only, never the
validation fold, whose predictions tune the thresholds and the fusion, and scores that hold-out with the same
class weights the trees are trained with (unweighted, the majority class would decide when to stop). Saved as
LightGBM's own text model, one file per output (`gbm_<k>.txt`) and `gbm.json` saying which output is which: no
pickle, so loading runs no code. The trees read the measurements through an AmplitudeView (utils/ecg/gain.py,
train.py --amplitudes), recorded in gbm.json: the model takes measurements as measured, whatever view it reads.
LightGBM over scikit-learn's HistGradientBoostingClassifier: on the PTB-XL bench it scored a Task 1 ROC AUC within
noise (0.937 vs 0.945), a higher Task 2 macro AUC (0.942 vs 0.932), in about half the time (docs/results.md).
"""
import hashlib
import inspect
import json
import os
from pathlib import Path

import lightgbm as lgb
import numpy as np
from sklearn.model_selection import train_test_split

from utils.atomic import write_text
from utils.ecg.gain import AMPLITUDES, AmplitudeView
from utils.errors import CheckpointError

INDEX_FILE = "gbm.json"
MIN_FOR_EARLY_STOP = 20  # positives (and negatives) a class needs for its early-stopping hold-out
EARLY_STOP_FRACTION, EARLY_STOP_ROUNDS = 0.15, 30
# Small trees, each on half the measurements (many are near copies): chosen out of fold on both tasks over 15 leaves
# on every measurement (the default before 2026-12-03) and three other settings (docs/results.md, "Tree settings")
TREES = dict(num_leaves=7, min_child_samples=20, reg_lambda=1.0, colsample_bytree=0.5, subsample=1.0, subsample_freq=0)


class GBMModel:
    def __init__(self, n_outputs, seed=0, n_estimators=400, learning_rate=0.05, augment=None, amplitudes="absolute",
                 trees=None):
        # augment: X -> more rows of the same records, len(X) x k (the records first): what the trees also train on
        # trees: LightGBM settings that replace TREES' (bench/features_robustness.py --trees measures some)
        self.n_outputs, self.seed, self.augment, self.view = n_outputs, seed, augment, AmplitudeView(amplitudes)
        self.trees = checked_trees(trees)
        # deterministic + row-wise histograms: the same fit on every run, whatever the thread timing
        self.params = dict(n_estimators=n_estimators, learning_rate=learning_rate, **self.trees, class_weight="balanced",
                           random_state=seed, deterministic=True, force_row_wise=True, verbose=-1, n_jobs=_threads())
        self.models = []  # per output: an LGBMClassifier (fitted here), a Booster (loaded) or a constant

    def fit(self, X, Y):
        """Y: (N,) 0/1 for Task 1, (N, C) 0/1 for Task 2. A class with no positive (or no negative) in the
        training records gets a constant instead of a classifier."""
        X = np.asarray(X, dtype=np.float32)
        Y = np.asarray(Y).reshape(len(X), -1)
        self.models = []
        for k in range(Y.shape[1]):
            y = Y[:, k].astype(int)
            if y.min() == y.max():
                self.models.append(float(y[0]))
                continue
            self.models.append(self._fit_one(X, y))
        return self

    def _fit_one(self, X, y):
        """Early stopping on a stratified hold-out of the training records, its loss weighted by the training
        class weights; a class with too few positives for that trains all its trees on every record."""
        if np.bincount(y).min() < MIN_FOR_EARLY_STOP:
            return self._classifier(len(y)).fit(*self._augmented(X, y))
        X_fit, X_stop, y_fit, y_stop = train_test_split(X, y, test_size=EARLY_STOP_FRACTION, stratify=y,
                                                        random_state=self.seed)
        clf = self._classifier(len(y_fit))
        X_fit, y_fit = self._augmented(X_fit, y_fit)  # after the split: a record's copies never reach the hold-out
        X_stop = self.view(X_stop)
        stop = {"eval_X": X_stop, "eval_y": y_stop} if _NEW_EVAL_API else {"eval_set": [(X_stop, y_stop)]}
        return clf.fit(X_fit, y_fit, **stop, eval_sample_weight=[balanced_weights(y_fit)[y_stop]],
                       callbacks=[lgb.early_stopping(EARLY_STOP_ROUNDS, verbose=False)])

    def _classifier(self, n_records):
        """A classifier for `n_records` training records. Leaves hold at most a quarter of them, so that fewer than
        4 x min_child_samples records (e.g. 30 at the default 20) still split instead of fitting a constant."""
        leaf = min(self.params["min_child_samples"], max(1, n_records // 4))
        return lgb.LGBMClassifier(**{**self.params, "min_child_samples": leaf})

    def _augmented(self, X, y):
        """The rows the trees train on, as they read them: the copies made on the measurements, then viewed."""
        if self.augment is None:
            return self.view(X), y
        Xa = np.asarray(self.augment(X), dtype=np.float32)
        return self.view(Xa), np.tile(y, len(Xa) // len(X))

    def predict_proba(self, X):
        """(N, C) probability of each output being positive, from measurements as measured."""
        X = self.view(X)
        cols = [np.full(len(X), m) if isinstance(m, float)
                else m.predict_proba(X)[:, 1] if isinstance(m, lgb.LGBMClassifier) else m.predict(X)
                for m in self.models]
        return np.stack(cols, axis=1)

    def save(self, directory):
        """gbm.json (an entry per output: a model file with its SHA-256, or a constant) and gbm_<k>.txt, each
        written atomically."""
        directory = Path(directory)
        index = []
        for k, m in enumerate(self.models):
            if isinstance(m, float):
                index.append({"constant": m})
                continue
            name, text = f"gbm_{k}.txt", m.booster_.model_to_string()  # the early-stopped best iteration
            write_text(directory / name, text)
            index.append({"file": name, "sha256": hashlib.sha256(text.encode()).hexdigest()})
        write_text(directory / INDEX_FILE, json.dumps({"n_outputs": self.n_outputs, "amplitudes": self.view.mode,
                                                       "outputs": index}, indent=2) + "\n")

    @classmethod
    def load(cls, directory, n_outputs=None):
        """The model saved in `directory`; `n_outputs` (1 for Task 1, the classes for Task 2) is checked."""
        directory = Path(directory)
        path = directory / INDEX_FILE
        if not path.is_file():
            raise CheckpointError(f"{path}: not found (a features model directory holds {INDEX_FILE} and gbm_<k>.txt)")
        entries, amplitudes = _read_index(path, n_outputs)
        model = cls(len(entries), amplitudes=amplitudes)
        for k, e in enumerate(entries):
            model.models.append(float(e["constant"]) if "constant" in e else _read_booster(directory / f"gbm_{k}.txt", e))
        return model


def checked_trees(trees):
    """TREES with `trees` in place of its values; an unknown setting, or row subsampling LightGBM would silently skip
    (subsample < 1 with subsample_freq 0), is an error."""
    unknown = set(trees or {}) - set(TREES)
    if unknown:
        raise ValueError(f"trees: unknown LightGBM setting(s) {sorted(unknown)}; known: {sorted(TREES)}")
    out = {**TREES, **(trees or {})}
    if out["subsample"] < 1 and out["subsample_freq"] < 1:
        raise ValueError(f"trees: subsample {out['subsample']} needs subsample_freq >= 1 (LightGBM ignores it at 0)")
    return out


def _threads():
    """The process's thread budget (OMP_NUM_THREADS: this rank's cores from configure_cpu_threads, or what the user
    set): LightGBM's scikit-learn API would take every physical core whatever it says, and its threads then spin
    against Paddle's and other ranks' (5x slower on 2 busy cores). None, LightGBM's default, when it is unset."""
    n = os.environ.get("OMP_NUM_THREADS", "")
    return int(n) if n.isdigit() and int(n) > 0 else None


def balanced_weights(y):
    """Per class (0, 1), the weight class_weight="balanced" gives its training records: n / (2 x its count)."""
    return len(y) / (2.0 * np.bincount(y, minlength=2))


def _read_index(path, n_outputs):
    """gbm.json's entries, each {"constant": number} or {"file": "gbm_<k>.txt", "sha256": ...}, one per output,
    and the AmplitudeView the trees read ("absolute" in a file written before views existed)."""
    try:
        index = json.loads(path.read_text())
        entries, amplitudes = index["outputs"], index.get("amplitudes", "absolute")
        ok = amplitudes in AMPLITUDES and isinstance(entries, list) and all(
            isinstance(e, dict) and (isinstance(e.get("constant"), (int, float))
                                     or (e.get("file") == f"gbm_{k}.txt" and isinstance(e.get("sha256"), str)))
            for k, e in enumerate(entries))
    except (ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise CheckpointError(f"{path}: not a features model index (expected outputs: [{{\"file\": \"gbm_0.txt\", "
                              f"\"sha256\": ...}} or {{\"constant\": p}}, ...] and amplitudes: one of "
                              f"{', '.join(AMPLITUDES)}); retrain this model")
    if n_outputs is not None and len(entries) != n_outputs:
        raise CheckpointError(f"{path}: {len(entries)} outputs, its model.json's task needs {n_outputs}")
    return entries, amplitudes


def _read_booster(file, entry):
    """A LightGBM text model, checked against the SHA-256 saved with it first: LightGBM's parser can crash the
    whole process (not raise) on a file cut short, e.g. by a partial copy."""
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file}: cannot be read ({e})") from None
    if hashlib.sha256(text.encode()).hexdigest() != entry["sha256"]:
        raise CheckpointError(f"{file}: damaged or changed since train.py wrote it (its SHA-256 differs from "
                              f"{INDEX_FILE}'s); copy the model directory again or retrain")
    try:
        return lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as err:
        raise CheckpointError(f"{file}: not a LightGBM model ({str(err).splitlines()[0]})") from None


_NEW_EVAL_API = "eval_X" in inspect.signature(lgb.LGBMClassifier.fit).parameters  # LightGBM 4.7 renamed eval_set
