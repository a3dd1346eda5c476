"""Model families: everything that differs between a picture model and a signal model, in one place. train.py
and predict.py ask `get_family(arch)` (or `family_of(model.json)`) and never branch on the architecture.

- picture (`resnet18/34/50/101`): reads process.py's pictures (DATASET_DIR), ImageNet-style input (3, S, S).
- signal (`resnet1d`): reads the MAT records themselves (DATA_DIR), preprocessed as `utils.signal` says, (12, L).
- features (`features`): ECG measurements of the MAT records (utils/ecg_features.py), gradient-boosted trees
  (models/gbm.py, LightGBM); fitted at once, no iterations (`iterative = False`).

model.json records `arch` and `input` (the picture size and render settings, or the signal preprocessing), so
predict.py feeds each model what it was trained on.
"""
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


class NetworkFamily:
    """What the Paddle networks share: trained by train.py's loop, loaded as dygraph models."""

    iterative = True

    def load_runner(self, model_dir, arch, info):
        """(batch -> logits, the dygraph model) of a train.py model directory."""
        import paddle

        from utils.checkpoint import MODEL_FILE, load_weights

        model = self.build(arch, info["num_classes"], "none")
        load_weights(model, Path(model_dir) / MODEL_FILE, "model")
        model.eval()

        @paddle.no_grad()
        def run(batch):
            return model(paddle.to_tensor(batch)).numpy()
        return run, model


class PictureFamily(NetworkFamily):
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


class SignalFamily(NetworkFamily):
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


class FeaturesFamily:
    """ECG measurements of the MAT records (cached beside the data, DATA_DIR/features_cache), gradient boosting."""

    name, optimizer, iterative = "features", None, False

    def labels(self, cfg, task, log):
        from utils.ecg_features import features_for_records

        d = Path(cfg["DATA_DIR"])
        refs = task.read_labels(d / task.label_file, data_dir=d / "train", ext=".mat")
        X, bad = features_for_records([d / "train" / f"{n}.mat" for n in refs["name"]], cache_dir=d / FEATURE_CACHE)
        for path, problem in bad.items():
            log.warning(f"{path}: {problem} -> left out of training")
        keep = ~refs["name"].map(lambda n: str(d / "train" / f"{n}.mat") in bad).to_numpy()
        self._features = dict(zip(refs["name"][keep], X[keep]))
        return refs[keep].reset_index(drop=True)

    def fit(self, cfg, task, train_df, val_df, log):
        """(fitted model, validation probabilities as task.probs gives them, model.json `input`)."""
        from models.gbm import GBMModel
        from utils.ecg_features import FEATURE_NAMES, FEATURES_VERSION

        X = np.stack([self._features[n] for n in train_df["name"]])
        Y = task.label_array(train_df["y"])
        model = GBMModel(task.num_outputs if task.num_outputs > 2 else 1, seed=cfg["SEED"]).fit(X, Y)
        p = model.predict_proba(np.stack([self._features[n] for n in val_df["name"]]))
        return model, (p[:, 0] if p.shape[1] == 1 else p), {
            "kind": "features", "version": FEATURES_VERSION, "n_features": len(FEATURE_NAMES)}

    def importance(self, model, task, val_df, labels, top=10, repeats=5):
        """Permutation importance on the validation fold, per class: DataFrame class, feature, importance (the
        mean drop in ROC AUC when the measurement is shuffled), std; the `top` measurements of each class."""
        import pandas as pd
        from sklearn.inspection import permutation_importance

        from utils.ecg_features import FEATURE_NAMES

        X = np.stack([self._features[n] for n in val_df["name"]])
        Y = np.asarray(labels).reshape(len(X), -1)
        names = task.class_names[1:] if task.num_outputs == 2 else task.class_names  # Task 1: the abnormal output
        rows = []
        for k, (cls, est) in enumerate(zip(names, model.models)):
            if isinstance(est, float) or Y[:, k].min() == Y[:, k].max():
                continue  # a constant, or a class the fold lacks: AUC undefined
            r = permutation_importance(est, X, Y[:, k].astype(int), scoring="roc_auc", n_repeats=repeats, random_state=0)
            for i in np.argsort(-r.importances_mean)[:top]:
                rows.append({"class": cls, "feature": FEATURE_NAMES[i], "importance": r.importances_mean[i],
                             "std": r.importances_std[i]})
        return pd.DataFrame(rows, columns=["class", "feature", "importance", "std"])

    def input_spec(self, inp):
        return [None, inp["n_features"]]

    def load_runner(self, model_dir, arch, info):
        from models.gbm import GBMModel, as_logits

        model = GBMModel.load(model_dir, n_outputs=1 if info["num_classes"] == 2 else info["num_classes"])
        return (lambda batch: as_logits(model.predict_proba(batch), info["num_classes"])), None

    def test_inputs(self, info, cfg, names, model_dir, log):
        from utils.ecg_features import FEATURE_NAMES, FEATURES_VERSION, features_for_records

        inp = input_of(info)
        if inp.get("version") != FEATURES_VERSION or inp.get("n_features") != len(FEATURE_NAMES):
            raise ECGDataError(model_dir, f"trained on {inp.get('n_features')} measurements of features version "
                                          f"{inp.get('version')}; this code measures {len(FEATURE_NAMES)} of version "
                                          f"{FEATURES_VERSION}: retrain it")
        d = Path(cfg["DATA_DIR"])
        X, bad = features_for_records([d / "val" / f"{n}.mat" for n in names], cache_dir=d / FEATURE_CACHE)
        bad_names = {Path(p).stem: f"could not be read: {why}" for p, why in bad.items()}
        have = [n for n in names if n not in bad_names]
        return [x for n, x in zip(names, X) if n not in bad_names], have, bad_names


FEATURE_CACHE = "features_cache"  # per-record measurements, beside the data: a second run does not recompute
FAMILIES = {"picture": PictureFamily, "signal": SignalFamily, "features": FeaturesFamily}
ARCHS = {**{a: "picture" for a in PICTURE_ARCHS}, "resnet1d": "signal", "features": "features"}


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
    drawn = read_render_config(dataset_dir, required=True)
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
