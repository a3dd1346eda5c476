"""Model families: everything that differs between a picture model, a signal model and a measurements model, in one
place. train.py and predict.py ask `get_family(arch)` (or `family_of(card)`) and never branch on the architecture.

- picture (`resnet18/34/50/101`): reads process.py's pictures (DATASET_DIR), ImageNet-style input (3, S, S).
- signal (`resnet1d`, `xresnet1d18/34/50/101`, `inception1d`): reads the MAT records themselves (DATA_DIR),
  preprocessed as utils/inputs/signals.py says.
- features (`features`): ECG measurements of the MAT records (utils/ecg/), gradient-boosted trees (models/gbm.py);
  fitted at once, no iterations.

Families hold no data: `labels` returns what it read (a Labelled), which the other methods take back. Each family
reads its own settings from train.py's (`options(cfg)`: PictureOptions, SignalOptions, FeaturesOptions), so no
caller passes one family's settings to another. The model card's `arch` and `input` (picture size and render
settings, signal preprocessing, measurement version) let predict.py feed each model what it was trained on.
"""
import functools
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import paddle

from transforms.picture_augment import build_transforms
from transforms.signal_augment import build_signal_transforms
from utils.artifacts import FEATURE_CACHE, MODEL_FILE, PROCESS_REPORT, SIGNAL_CACHE, load_weights
from utils.ecg.io import list_records
from utils.errors import CheckpointError, ConfigError, ECGDataError
from utils.inputs.pictures import (
    PAPER_LAYOUT,
    ECGImageDataset,
    check_render_settings,
    read_failures,
    read_render_config,
)
from utils.inputs.render import LAYOUTS
from utils.inputs.signals import (
    SCALE_RECORDS,
    ECGSignalDataset,
    check_windows,
    default_preprocess,
    fit_scale,
    prepare_signals,
    read_signal,
    windowed,
)

from .inception1d import inception1d
from .resnet import PICTURE_ARCHS, build_model, load_pretrained
from .resnet1d import resnet1d
from .xresnet1d import DEPTHS as XRESNET1D_DEPTHS
from .xresnet1d import xresnet1d

log = logging.getLogger("ecg")


@dataclass(frozen=True)
class Sources:
    """Where the families find their inputs: the raw records (DATA_DIR/train, /val) and process.py's pictures
    (DATASET_DIR/train, /val); and how many processes read, preprocess or measure records not yet cached."""

    data_dir: Path
    dataset_dir: Path
    workers: int = 1


@dataclass(frozen=True)
class PictureOptions:
    """The picture family's settings (train.py's picture flags)."""

    image_size: int = 640  # the network's input: pictures are resized to image_size x image_size


@dataclass(frozen=True)
class SignalOptions:
    """The signal family's settings (train.py's signal flags), checked when made: a bad one is a one-line
    ConfigError naming its flag."""

    crop_seconds: float = 8.0  # random training crops
    tta_stride_seconds: float = 0.0  # 0: validate and predict on the whole record; > 0: on windows this far apart
    tta_agg: str = "mean"  # with windows: how a record's probability is made from its windows' (AGGREGATIONS)

    def __post_init__(self):
        check_windows(self.crop_seconds, self.tta_stride_seconds, self.tta_agg)


@dataclass(frozen=True)
class FeaturesOptions:
    """The features family's settings (train.py's features flags), checked when made; `trees` is no flag: the
    benches fit the member with other LightGBM settings through it."""

    gain_augment: float = 0.0  # also train on every record as if recorded at gains 1 - G and 1 + G; 0 = off
    amplitudes: str = "absolute"  # the AmplitudeView (utils/ecg/gain.py) the trees read amplitudes through
    trees: dict = None  # settings of the learner that replace its defaults (models/gbm.TREES); None: the defaults

    def __post_init__(self):
        from utils.ecg.gain import gains_for

        gains_for(self.gain_augment)


@dataclass
class Labelled:
    """The labelled training records a family can read: `refs` (DataFrame name, y) from `label_file`; for a
    family that reads every record up front, `inputs` {name: prepared input}; `listed`, every record of the label
    file (those the family cannot read too: the folds are made over them, so they are the same for every family)."""

    label_file: Path
    refs: pd.DataFrame
    inputs: dict = None
    listed: pd.DataFrame = None

    def __post_init__(self):
        if self.listed is None:
            self.listed = self.refs


class Family(ABC):
    """What every family provides to train.py and predict.py."""

    name: str  # picture | signal | features
    iterative: bool  # trained by train.py's loop (networks), or fitted at once

    @abstractmethod
    def options(self, cfg):
        """This family's options (a frozen dataclass) from train.py's settings {CONSTANT: value}, checked (a bad
        value is a ConfigError naming its flag); the other families' settings are not read."""

    @abstractmethod
    def labels(self, task, src, log):
        """Labelled: the training records of `src` listed in the task's label file that this family can read
        (unreadable ones left out with a warning), and every record the file lists."""

    @abstractmethod
    def test_inputs(self, card, src, names, model_dir, log):
        """(dataset, have, missing) for the test records `names`: `dataset` a paddle.io.Dataset whose item i is
        the input (no label) of record `have[i]`, what the runner of `load_runner` reads in batches; `have` the
        names it covers, in the order of `names`; `missing` {name: why not} for the others."""

    @abstractmethod
    def load_runner(self, model_dir, card, task):
        """(a function batch -> logits, the dygraph network or None) of a saved model directory."""

    def read_records(self, task, src):
        """(label file, the task's labels of the training records in `src.data_dir/train`, MAT files)."""
        path = Path(src.data_dir) / task.label_file
        return path, task.read_labels(path, data_dir=Path(src.data_dir) / "train", ext=".mat")


class NetworkFamily(Family):
    """Paddle networks: trained by train.py's loop, saved as weights."""

    iterative = True
    optimizer: str  # the optimizer of OPTIMIZER auto

    @abstractmethod
    def datasets(self, task, labelled, train_df, val_df, src, options, log):
        """(augmented training dataset, plain validation dataset, the card's `input`), made as `options` (this
        family's, from `options(cfg)`) say."""

    @abstractmethod
    def build(self, arch, num_outputs, pretrained):
        """A new network (`pretrained`: auto, none or a weights file)."""

    @abstractmethod
    def input_spec(self, inp):
        """The network's input shape, [None, ...], from its card's `input` (train.py's log, predict.py --export)."""

    def load_runner(self, model_dir, card, task):
        """The network runs as validation ran it: on the whole record, or on the card's test-time windows."""
        model = self.build(card.arch, card.num_classes, "none")
        load_weights(model, Path(model_dir) / MODEL_FILE, "model")
        model.eval()

        @paddle.no_grad()
        def run(batch):
            return model(paddle.to_tensor(batch)).numpy()
        return windowed(run, card.input, task), model


class FittedFamily(Family):
    """Models fitted at once on every training record (no iterations, no checkpoints)."""

    iterative = False

    @abstractmethod
    def fit(self, task, labelled, train_df, val_df, seed, options, log):
        """(fitted model with .save(directory), validation probabilities as task.probs gives them, card `input`),
        fitted as `options` (this family's, from `options(cfg)` or made by a bench) say."""

    @abstractmethod
    def importance(self, model, task, labelled, val_df, labels, repeats):
        """DataFrame class, feature, importance, std: what the model's validation score rests on."""


IMPORTANCE_COLUMNS = ["class", "feature", "importance", "std", "measure"]  # importance.csv (FeaturesFamily.importance)


class PictureFamily(NetworkFamily):
    """Pictures rendered by process.py, ResNets from paddle.vision."""

    name, optimizer = "picture", "momentum"  # the original design: Momentum fine-tuning of an ImageNet backbone

    def options(self, cfg):
        return PictureOptions(cfg["IMAGE_SIZE"])

    def labels(self, task, src, log):
        """process.py carries the label file whole: a record it reported failed (no picture) is left out here with
        a warning; a picture missing otherwise is an error (the pictures are incomplete: run process.py)."""
        path, img_dir = Path(src.dataset_dir) / task.label_file, Path(src.dataset_dir) / "train"
        listed = task.read_labels(path)
        have = np.array([(img_dir / f"{n}.png").is_file() for n in listed["name"]], dtype=bool)
        failed = read_failures(src.dataset_dir, split="train") if not have.all() else {}
        for row, name in zip(np.flatnonzero(~have), listed["name"][~have]):
            if name not in failed:
                raise ECGDataError(path, f"row {row + 2}: record '{name}' has no file {img_dir / name}.png (and "
                                         f"{Path(src.dataset_dir) / PROCESS_REPORT} does not say it failed): run "
                                         f"process.py again")
            log.warning(f"{img_dir / name}.png: {failed[name]} -> left out of training")
        return Labelled(path, listed[have].reset_index(drop=True), listed=listed)

    def datasets(self, task, labelled, train_df, val_df, src, options, log):
        render, image_size = read_render_config(src.dataset_dir), options.image_size
        layout = render.get("layout", "12x1")
        bands = (None, None) if layout == PAPER_LAYOUT else LAYOUTS[layout]  # paper pages: no bands to keep apart
        img_dir = Path(src.dataset_dir) / "train"
        train_ds = ECGImageDataset(img_dir, train_df["name"], task.label_array(train_df["y"]), image_size,
                                   build_transforms(True, *bands))
        val_ds = ECGImageDataset(img_dir, val_df["name"], task.label_array(val_df["y"]), image_size, build_transforms(False))
        return train_ds, val_ds, {"kind": "picture", "image_size": image_size, "render_config": render}

    def build(self, arch, num_outputs, pretrained):
        return build_model(num_outputs, pretrained, arch)

    def input_spec(self, inp):
        return [None, 3, inp["image_size"], inp["image_size"]]

    def test_inputs(self, card, src, names, model_dir, log):
        img_dir = Path(src.dataset_dir) / "val"
        have = [n for n in names if (img_dir / f"{n}.png").is_file()]
        if not have:
            raise ECGDataError(img_dir, f"no pictures for the {len(names)} test records of {model_dir} (a picture "
                                        f"model); run process.py first")
        check_render_settings(card.input, src.dataset_dir, model_dir, log)
        failed = read_failures(src.dataset_dir)
        missing = {n: failed.get(n, "no picture (not rendered)") for n in names if n not in set(have)}
        return ECGImageDataset(img_dir, have, None, card.input["image_size"], build_transforms(False)), have, missing


class SignalFamily(NetworkFamily):
    """The MAT records themselves, a 1D network (SIGNAL_ARCHS). Each record is preprocessed once into
    DATA_DIR/signal_cache and read from there, memory-mapped, one item at a time."""

    name, optimizer = "signal", "adam"  # trained from scratch: Adam needs no LR search per dataset

    def options(self, cfg):
        return SignalOptions(cfg["CROP_SECONDS"], cfg["TTA_STRIDE_SECONDS"], cfg["TTA_AGG"])

    def labels(self, task, src, log):
        path, refs = self.read_records(task, src)
        d = Path(src.data_dir) / "train"
        items, bad = prepare_signals([d / f"{n}.mat" for n in refs["name"]], default_preprocess(),
                                     Path(src.data_dir) / SIGNAL_CACHE, src.workers, "read training records")
        for record, problem in bad.items():  # not `path`: that is the label file's
            log.warning(f"{record}: {problem} -> left out of training")
        inputs = {n: s for n, s in zip(refs["name"], items) if s is not None}
        return Labelled(path, refs[refs["name"].isin(inputs)].reset_index(drop=True), inputs, listed=refs)

    def datasets(self, task, labelled, train_df, val_df, src, options, log):
        prep = default_preprocess(crop_seconds=options.crop_seconds, tta_stride_seconds=options.tta_stride_seconds,
                                  tta_agg=options.tta_agg)
        prep["scale"] = fit_scale([read_signal(labelled.inputs[n]) for n in train_df["name"][:SCALE_RECORDS]])
        w = prep.get("windows")
        log.info(f"signal input: high-pass {prep['highpass_hz']} Hz, {prep['fs']} Hz, x{prep['scale']:.3f} (one scale "
                 f"for all records, fitted on training records), training crops of {prep['crop']} samples; validation "
                 + (f"on windows of {w['length']} samples every {w['stride']}, {w['agg']} of their probabilities" if w
                    else "on the whole record"))

        def ds(df, train):  # the scale applies as each item is read
            return ECGSignalDataset([labelled.inputs[n] for n in df["name"]], task.label_array(df["y"]),
                                    build_signal_transforms(train, prep), scale=prep["scale"])
        return ds(train_df, True), ds(val_df, False), prep

    def build(self, arch, num_outputs, pretrained):
        model = SIGNAL_ARCHS[arch](num_outputs)
        if pretrained == "auto":
            log.info("pretrained auto: there are no ImageNet weights for a signal model; training from scratch")
        elif pretrained and pretrained != "none":
            load_pretrained(model, pretrained)  # e.g. the same arch trained on another collection
        return model

    def input_spec(self, inp):
        """The network's input: the whole record, or one test-time window (the exported runner windows in numpy)."""
        return [None, 12, inp["windows"]["length"] if inp.get("windows") else inp["length"]]

    def test_inputs(self, card, src, names, model_dir, log):
        val_dir = Path(src.data_dir) / "val"
        items, bad = prepare_signals([val_dir / f"{n}.mat" for n in names], card.input, Path(src.data_dir) / SIGNAL_CACHE,
                                     src.workers, "read test records")
        have = [n for n, s in zip(names, items) if s is not None]
        missing = {Path(p).stem: f"could not be read: {why}" for p, why in bad.items()}
        return ECGSignalDataset([s for s in items if s is not None], scale=card.input["scale"]), have, missing


class Rows(paddle.io.Dataset):
    """A dataset of prepared inputs held in memory (a features model's measurements of the test records)."""

    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


class FeaturesFamily(FittedFamily):
    """ECG measurements of the MAT records (cached beside the data, DATA_DIR/features_cache), gradient boosting."""

    name = "features"

    def options(self, cfg):
        return FeaturesOptions(cfg["GAIN_AUGMENT"], cfg["AMPLITUDES"])

    def labels(self, task, src, log):
        from utils.ecg.cache import features_for_records

        path, refs = self.read_records(task, src)
        d = Path(src.data_dir) / "train"
        X, bad = features_for_records([d / f"{n}.mat" for n in refs["name"]], cache_dir=Path(src.data_dir) / FEATURE_CACHE,
                                      workers=src.workers)
        for record, problem in bad.items():  # not `path`: that is the label file's
            log.warning(f"{record}: {problem} -> left out of training")
        keep = ~refs["name"].map(lambda n: str(d / f"{n}.mat") in bad).to_numpy()
        return Labelled(path, refs[keep].reset_index(drop=True), dict(zip(refs["name"][keep], X[keep])), listed=refs)

    def fit(self, task, labelled, train_df, val_df, seed, options, log):
        from models.gbm import GBMModel
        from utils.ecg.gain import gains_for, with_gains
        from utils.ecg.measurements import FEATURE_NAMES, FEATURES_VERSION

        gain_augment, amplitudes = options.gain_augment, options.amplitudes
        gains = gains_for(gain_augment)
        if gains:
            log.info(f"gain augmentation: every training record also as recorded at x{gains[0]:g} and x{gains[1]:g} "
                     f"(its amplitude measurements scaled)")
        if gains and amplitudes == "relative":
            log.warning("--gain-augment with --amplitudes relative: the copies' ratios are the record's own, so they only "
                        "slow the fit")
        if amplitudes != "absolute":
            log.info(f"amplitudes {amplitudes}: every amplitude measurement {'also ' if amplitudes == 'both' else ''}"
                     f"as a ratio to the record's median QRS amplitude")
        X = np.stack([labelled.inputs[n] for n in train_df["name"]])
        model = GBMModel(task.num_probs, seed=seed, augment=(lambda x: with_gains(x, gains)) if gains else None,
                         amplitudes=amplitudes, trees=options.trees)
        model.fit(X, task.label_array(train_df["y"]))
        val = [labelled.inputs[n] for n in val_df["name"]]  # none for a bench that scores the model itself
        p = model.predict_proba(np.stack(val)) if val else np.empty((0, task.num_probs), dtype=np.float32)
        p = p[:, 0] if task.num_probs == 1 else p  # as task.probs gives them: Task 1 one column, P(abnormal)
        return model, p, {"kind": "features", "version": FEATURES_VERSION, "n_features": len(FEATURE_NAMES),
                          "gain_augment": gain_augment, "amplitudes": amplitudes, "trees": model.trees}

    def importance(self, model, task, labelled, val_df, labels, repeats, top=10):
        """Permutation importance on the validation fold, per class: the mean drop in ROC AUC when the
        measurement is shuffled, and its std; the `top` measurements of each class. A fold too small to measure
        a drop on (utils/scoring/thresholds.py) gets the trees' own split gain instead, which rests on the
        training records; the `measure` column says which."""
        from sklearn.inspection import permutation_importance

        from utils.scoring.thresholds import enough

        if not enough(len(val_df)):
            return self._gain_importance(model, task, top)
        X = model.view(np.stack([labelled.inputs[n] for n in val_df["name"]]))  # as the trees read them
        Y = np.asarray(labels).reshape(len(X), -1)
        rows = []
        for k, (cls, est) in enumerate(zip(task.prob_names, model.models)):
            if isinstance(est, float) or Y[:, k].min() == Y[:, k].max():
                continue  # a constant, or a class the fold lacks: AUC undefined
            r = permutation_importance(est, X, Y[:, k].astype(int), scoring="roc_auc", n_repeats=repeats, random_state=0)
            for i in np.argsort(-r.importances_mean)[:top]:
                rows.append({"class": cls, "feature": model.view.names[i], "importance": r.importances_mean[i],
                             "std": r.importances_std[i], "measure": "auc_drop"})
        return pd.DataFrame(rows, columns=IMPORTANCE_COLUMNS)

    @staticmethod
    def _gain_importance(model, task, top):
        """Per class, each measurement's share of the trees' total split gain (no spread: one fit)."""
        rows = []
        for cls, est in zip(task.prob_names, model.models):
            gain = None if isinstance(est, float) else est.booster_.feature_importance("gain")
            if gain is None or gain.sum() <= 0:
                continue  # a constant, or trees that never split
            for i in [i for i in np.argsort(-gain)[:top] if gain[i] > 0]:  # a measurement never split on says nothing
                rows.append({"class": cls, "feature": model.view.names[i], "importance": gain[i] / gain.sum(), "std": 0.0,
                             "measure": "gain_share"})
        return pd.DataFrame(rows, columns=IMPORTANCE_COLUMNS)

    def load_runner(self, model_dir, card, task):
        from models.gbm import GBMModel

        model = GBMModel.load(model_dir, n_outputs=task.num_probs)
        if model.view.mode != card.input.get("amplitudes", "absolute"):
            raise CheckpointError(f"{model_dir}: gbm.json reads amplitudes {model.view.mode}, model.json says "
                                  f"{card.input.get('amplitudes', 'absolute')}: the files come from different runs")
        return (lambda batch: task.logits(model.predict_proba(batch))), None

    def test_inputs(self, card, src, names, model_dir, log):
        from utils.ecg.cache import features_for_records
        from utils.ecg.measurements import FEATURE_NAMES, FEATURES_VERSION

        inp = card.input
        if inp.get("version") != FEATURES_VERSION or inp.get("n_features") != len(FEATURE_NAMES):
            raise ECGDataError(model_dir, f"trained on {inp.get('n_features')} measurements of features version "
                                          f"{inp.get('version')}; this code measures {len(FEATURE_NAMES)} of version "
                                          f"{FEATURES_VERSION}: retrain it")
        d = Path(src.data_dir)
        X, bad = features_for_records([d / "val" / f"{n}.mat" for n in names], cache_dir=d / FEATURE_CACHE, workers=src.workers)
        bad_names = {Path(p).stem: f"could not be read: {why}" for p, why in bad.items()}
        have = [n for n in names if n not in bad_names]
        return Rows([x for n, x in zip(names, X) if n not in bad_names]), have, bad_names


SIGNAL_ARCHS = {"resnet1d": resnet1d,  # the networks of the signal family: arch -> (num_outputs -> new network)
                **{a: functools.partial(xresnet1d, a) for a in XRESNET1D_DEPTHS}, "inception1d": inception1d}
FAMILIES = {"picture": PictureFamily(), "signal": SignalFamily(), "features": FeaturesFamily()}  # stateless: one each
ARCHS = {**{a: "picture" for a in PICTURE_ARCHS}, **{a: "signal" for a in SIGNAL_ARCHS}, "features": "features"}


def get_family(arch):
    if arch not in ARCHS:
        raise ConfigError(f"--arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    return FAMILIES[ARCHS[arch]]


def family_of(card):
    return get_family(card.arch)


def list_test_records(data_dir):
    """Names of the test records: every MAT file in DATA_DIR/val."""
    names = list_records(Path(data_dir) / "val")
    if not names:
        raise ECGDataError(Path(data_dir) / "val", "no test records (*.mat)")
    return names
