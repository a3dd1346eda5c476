"""The file contract between the three scripts, the tools and the benches: every on-disk name they share, and the
model card (model.json) that says what a trained model is, with every older format's fallback in one place.

    DATASET_DIR (process.py)   train/, val/ pictures, render_config.json, process_report.csv, the label files,
                               record_groups.csv
    DATA_DIR                   train/, val/ records, the label files, record_groups.csv, features_cache/
                               (measurements per record), signal_cache/ (preprocessed signals per record)
    OUTPUT_DIR (train.py)      iter_N/ checkpoints, best_model/ (model.json, weights, val_predictions.csv), finished.json
    OUT (tools/train_kfold.py) fold_K/ (each a train.py OUTPUT_DIR), oof_predictions.csv, kfold_summary.json
"""
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .atomic import atomic_dir, atomic_paths, resolve_dir, umask_mode
from .errors import CheckpointError, ECGDataError

# -- names the scripts share ------------------------------------------------------------------------------------
RENDER_CONFIG = "render_config.json"  # DATASET_DIR: how process.py drew the pictures
PROCESS_REPORT = "process_report.csv"  # DATASET_DIR: every record's outcome in process.py
RECORD_GROUPS = "record_groups.csv"  # DATA_DIR, DATASET_DIR: name,group of the training records (a patient's, a
# recording's windows): folds never split a group. Written by the converters, carried by process.py.
FEATURE_CACHE = "features_cache"  # DATA_DIR: per-record measurements, so a second run does not recompute them
SIGNAL_CACHE = "signal_cache"  # DATA_DIR: per-record preprocessed signals (signal family), read memory-mapped
BEST_DIR = "best_model"  # OUTPUT_DIR: the model predict.py reads
FINISHED_FILE = "finished.json"  # OUTPUT_DIR: written when a run completes (tools/train_kfold.py skips such folds)
INFO_FILE = "model.json"  # in a model directory: its ModelCard
MODEL_FILE = "model.pdparams"  # in a model or checkpoint directory: a network's weights
VAL_PREDICTIONS = "val_predictions.csv"  # in best_model: name, truth, p_<class>, on its validation records
IMPORTANCE_FILE = "importance.csv"  # in a features best_model: permutation importance per class on validation
FOLD_DIR = "fold_{}"  # tools/train_kfold.py's OUT: fold K's train.py OUTPUT_DIR (FOLD_DIR.format(K))
OOF_PREDICTIONS = "oof_predictions.csv"  # its OUT: every fold's VAL_PREDICTIONS pooled, one out-of-fold row a record
KFOLD_SUMMARY = "kfold_summary.json"  # its OUT: the pooled figures ("out_of_fold") and the thresholds tuned on them


DATA_INPUTS = ("*.csv", "*.md", "train/*.mat", "val/*.mat")  # DATA_DIR's inputs: what a copy of it needs, no cache


def check_data_dir(path):
    """`path` as a Path, or a one-line error when it does not exist or is no data folder (train/ or val/)."""
    path = Path(path)
    if not path.is_dir():
        raise ECGDataError(path, "not found (the data folder: train/*.mat, val/*.mat and their label files)")
    if not (path / "train").is_dir() and not (path / "val").is_dir():
        raise ECGDataError(path, "has neither train/ nor val/ (expected the competition layout)")
    return path


MIRROR_MARK = ".mirror_of"  # in a folder mirror_data_inputs made: the folder it copies


def mirror_data_inputs(src, dst):
    """Make `dst` hold exactly `src`'s inputs (DATA_INPUTS), file times kept, and return it. Files already there
    and unchanged are left alone and `dst`'s caches kept, so a second run reuses them; an input `src` no longer
    has is removed. Nothing is written in `src`. A non-empty `dst` this function did not make is refused: it may
    be someone's data."""
    import shutil

    src, dst = check_data_dir(src), Path(dst)
    if dst.is_dir() and any(dst.iterdir()) and not (dst / MIRROR_MARK).is_file():
        raise ECGDataError(dst, "exists and is not a copy this pipeline made: refusing to overwrite it (choose another "
                                "output folder, or remove it)")
    dst.mkdir(parents=True, exist_ok=True)
    (dst / MIRROR_MARK).write_text(f"{src.resolve()}\n")
    wanted = {p.relative_to(src) for pattern in DATA_INPUTS for p in src.glob(pattern) if p.is_file()}
    for rel in {p.relative_to(dst) for pattern in DATA_INPUTS for p in dst.glob(pattern)} - wanted:
        (dst / rel).unlink()
    for rel in sorted(wanted):
        s, d = src / rel, dst / rel
        if not d.is_file() or (d.stat().st_size, d.stat().st_mtime_ns) != (s.stat().st_size, s.stat().st_mtime_ns):
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)
    return dst


def read_json(path):
    """A JSON file as a dict; {} when it is missing or unreadable (a checkpoint of an older version, say)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class ModelCard:
    """model.json: what a trained model answers (task, classes, thresholds), what it reads (arch, input) and how
    it was chosen (run, iteration, metric). Written by train.py, read by predict.py, fusion, k-fold and benches."""

    task: int
    arch: str
    num_classes: int
    input: dict  # the family's input description: picture size and render settings, signal preprocessing, ...
    thresholds: object  # Task 1: one number; Task 2: one per class
    fallback_answer: object  # the answer of a record no model can read: the training set's most frequent
    class_names: list = field(default_factory=list)
    selected_by: str = "f1"
    best_metric: float = None
    tuned_on: str = None  # the records that chose this model and tuned its thresholds, e.g. "validation fold 3 of 10, 185 records"
    iter: int = None
    metrics: dict = field(default_factory=dict)
    run_id: str = None
    signature: dict = None  # the run's settings and split (train.py's resume and refit checks)
    config: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # anything else a family records (fit_seconds, ...)

    @property
    def display_name(self):
        """How tables name this model: its architecture and validation fold, e.g. "features (fold 0)"."""
        fold = (self.config or {}).get("VAL_FOLD")
        return self.arch if fold is None else f"{self.arch} (fold {fold})"

    def to_json(self):
        d = asdict(self)
        return {**{k: v for k, v in d.items() if k != "extra"}, **d["extra"]}

    @classmethod
    def from_json(cls, d):
        """A model.json of any version. Older formats: no task (Task 1), no arch (ResNet50), the picture's
        image_size and render_config at the top level instead of `input`, `threshold` for thresholds and
        `majority_class` for the fallback answer."""
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        inp = d.get("input") or {"kind": "picture", "image_size": d.get("image_size"), "render_config": d.get("render_config")}
        return cls(task=d.get("task", 1), arch=d.get("arch", "resnet50"), num_classes=d.get("num_classes", 2), input=inp,
                   thresholds=d.get("thresholds", d.get("threshold", 0.5)),
                   fallback_answer=d.get("fallback_answer", d.get("majority_class", 1)),
                   **{k: d[k] for k in known - {"task", "arch", "num_classes", "input", "thresholds", "fallback_answer"} if k in d},
                   extra={k: v for k, v in d.items() if k not in known | {"threshold", "majority_class", "image_size", "render_config"}})

    @classmethod
    def read(cls, model_dir):
        """The card of a saved model directory (best_model or an export)."""
        model_dir = resolve_dir(model_dir)
        path = model_dir / INFO_FILE
        if not path.is_file():
            raise CheckpointError(f"{model_dir}: no {INFO_FILE} (is this a model directory written by train.py?)")
        try:
            data = json.loads(path.read_text())
        except ValueError as e:
            raise CheckpointError(f"{path}: not valid JSON ({e}); copy the model directory again or retrain") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{path}: not a model card (a JSON object); retrain this model")
        return cls.from_json(data)

    def write(self, directory):
        (Path(directory) / INFO_FILE).write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")


def unwrap(model):
    import paddle

    return model._layers if isinstance(model, paddle.DataParallel) else model


def save_model_dir(path, card, model=None, tables=None, write=None):
    """A model directory, swapped in as a whole: `card` (model.json), a Paddle network's weights (model.pdparams)
    or, for another kind of model, whatever `write(directory)` writes, and `tables` ({file name: DataFrame})."""
    with atomic_dir(path) as tmp:
        if model is not None:
            import paddle

            paddle.save(unwrap(model).state_dict(), str(tmp / MODEL_FILE))
        if write is not None:
            write(tmp)
        card.write(tmp)
        for name, df in (tables or {}).items():
            df.to_csv(tmp / name, index=False, float_format="%.6g")


HEAD_WEIGHT = "fc.weight"


def load_weights(model, path, what="model"):
    """Load `path` (a .pdparams file) into `model`, refusing weights made for another head size or model."""
    import paddle

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} weights not found")
    state = paddle.load(str(path))
    own = unwrap(model).state_dict()
    if HEAD_WEIGHT in state and list(state[HEAD_WEIGHT].shape) != list(own[HEAD_WEIGHT].shape):
        raise CheckpointError(f"{path}: {what} was trained for {state[HEAD_WEIGHT].shape[-1]} classes, "
                              f"this model has {own[HEAD_WEIGHT].shape[-1]}")
    missing = [k for k in own if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a weights file for this model (missing {missing[0]} and {len(missing) - 1} more)")
    unwrap(model).set_state_dict(state)


# -- answer files ---------------------------------------------------------------------------------------------
def write_answer_files(files):
    """Answer CSVs ({report key: (path, write_rows)}, each written by `write_rows(file)`) and each one's zip
    (answer.csv -> answer.zip), so that no zip ever disagrees with the answers beside it: everything is written to
    temporaries first; then the old zips are removed, the CSVs renamed into place, and the zips last. A kill leaves
    the old files (perhaps without some of their zips), or the new CSVs with none, some or all of their zips: a zip
    that is there holds the CSV beside it, of the same run as every other answer there. Returns {key: zip path}
    (the report's keys: `zip`, and Task 2's `task1_zip`)."""
    csvs = [Path(path) for path, _ in files.values()]
    zips = [p.with_suffix(".zip") for p in csvs]
    with atomic_paths(csvs + zips, remove_first=zips) as tmps:
        for (_, write_rows), tmp in zip(files.values(), tmps):
            with open(tmp, "w", newline="") as f:
                write_rows(f)
        for csv_path, tmp, zip_tmp in zip(csvs, tmps, tmps[len(csvs):]):
            info = zipfile.ZipInfo.from_file(tmp, arcname=csv_path.name)
            info.external_attr = (0o100000 | umask_mode(0o666)) << 16  # the CSV's mode once in place, not the temporary's
            info.compress_type = zipfile.ZIP_DEFLATED
            with zipfile.ZipFile(zip_tmp, "w") as z:
                z.writestr(info, Path(tmp).read_bytes())
    return {key: str(z) for key, z in zip(files, zips)}


def task1_path(out):
    """Where a Task 2 model writes its Task 1 answer: answer.csv -> answer_task1.csv."""
    out = Path(out)
    return out.with_name(f"{out.stem}_task1{out.suffix}")
