"""Competition data I/O: MAT records, the Task 1 / Task 2 label files and the record groups (record_groups.csv).

Every problem with an input file raises `ECGDataError`, whose message starts with the file's path. Label files
are read as UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8" writes one).
"""
import csv
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io

from ..atomic import atomic_path
from ..errors import ECGDataError

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
FS = 500  # Hz
N_SAMPLES = 5000  # 10 s
SHAPE = (len(LEADS), N_SAMPLES)

# Task 2 classes; files hold 1-based indices into this tuple.
CLASS_NAMES = (
    "normal", "sinus bradycardia", "sinus tachycardia", "sinus arrhythmia", "atrial fibrillation",
    "PVC", "PAC", "first-degree AV block", "complete RBBB", "T-wave change", "ST change", "other",
)
# Task 1: tag 0 / 1.
TAG_NAMES = ("normal", "abnormal")


def read_record(path, gaps="fill"):
    """Read one competition record: MAT file with `ecgdata` (12, 5000) in mV -> float32 (12, 5000). NaN marks
    samples not recorded (a record digitised from paper): filled by utils/ecg/gaps.py's policy (gaps="fill"),
    or kept (gaps="keep", to draw what was read)."""
    path = Path(path)
    if not path.is_file():
        raise ECGDataError(path, "record file not found")
    with open(path, "rb") as f:
        header = f.read(128)
    if len(header) < 128:
        raise ECGDataError(path, f"not a MAT file (only {len(header)} bytes)")
    if header.startswith(b"MATLAB 7.3"):
        raise ECGDataError(path, "MAT v7.3 (HDF5) files are not supported; re-save with save(..., '-v7')")
    if not header.startswith(b"MATLAB"):
        raise ECGDataError(path, "not a MAT file (no 'MATLAB 5.0 MAT-file' header)")
    try:
        mat = scipy.io.loadmat(path, variable_names=["ecgdata"])
    except Exception as e:  # scipy raises ValueError, EOFError, zlib.error, ... on damaged files
        raise ECGDataError(path, f"truncated or corrupt MAT file ({type(e).__name__}: {e})") from e
    if "ecgdata" not in mat:
        found = [n for n, *_ in scipy.io.whosmat(path)]
        raise ECGDataError(path, f"no variable 'ecgdata' in MAT file (found: {', '.join(found) or 'nothing'})")
    data = mat["ecgdata"]
    if not np.issubdtype(data.dtype, np.number):
        raise ECGDataError(path, f"'ecgdata' is not numeric (dtype {data.dtype})")
    if data.shape != SHAPE:
        raise ECGDataError(path, f"'ecgdata' has shape {data.shape}, expected {SHAPE} (12 leads x 10 s at 500 Hz)")
    data = data.astype(np.float32)
    if np.isinf(data).any():
        bad = np.argwhere(np.isinf(data))[0]
        raise ECGDataError(path, f"'ecgdata' holds infinite values (first at lead {LEADS[bad[0]]}, sample {bad[1]})")
    if np.isnan(data).all():
        raise ECGDataError(path, "'ecgdata' holds no sample at all (every value NaN)")
    if gaps == "fill" and np.isnan(data).any():
        from .gaps import fill_gaps  # here: gaps.py reads this module's constants

        data = fill_gaps(data)
    return data


def write_record(path, ecgdata, compress=True):
    """Write a record as the competition does (MAT v5, variable `ecgdata`, mV), atomically; True if written. A file
    already holding exactly this `ecgdata` is left as it is (False): a converter run again changes no file time, so
    the caches keyed by it stay valid, also those of a training reading the folder at that moment."""
    ecgdata = np.asarray(ecgdata, dtype=np.float32)
    if ecgdata.shape != SHAPE:
        raise ValueError(f"{path}: ecgdata shape {ecgdata.shape}, expected {SHAPE}")
    if _holds(path, ecgdata):
        return False
    with atomic_path(path) as tmp:
        scipy.io.savemat(tmp, {"ecgdata": ecgdata}, do_compression=compress)
    return True


def _holds(path, ecgdata):
    """Whether the MAT file `path` exists and its `ecgdata` equals `ecgdata` (same type, same values; its
    compression is not compared). A file that cannot be read is not a match: it is written again."""
    if not Path(path).is_file():
        return False
    try:
        old = scipy.io.loadmat(path, variable_names=["ecgdata"], appendmat=False).get("ecgdata")
    except Exception:  # noqa: BLE001 - scipy raises many types for a damaged file; any of them means "rewrite it"
        return False
    return old is not None and old.dtype == ecgdata.dtype and np.array_equal(old, ecgdata, equal_nan=True)


CSV_ENCODING = "utf-8-sig"  # UTF-8, a leading BOM dropped (else it sticks to the first name)


def _not_utf8(csv_path, e):
    return ECGDataError(csv_path, f"not UTF-8 text ({e}); save it as CSV UTF-8")


def _check_files(csv_path, names, data_dir, ext):
    if data_dir is None:
        return
    data_dir = Path(data_dir)
    for row, name in enumerate(names, start=2):
        if not (data_dir / f"{name}{ext}").is_file():
            raise ECGDataError(csv_path, f"row {row}: record '{name}' has no file {data_dir / (name + ext)}")


def read_reference(csv_path, data_dir=None, ext=".mat"):
    """Read Task 1 labels (`name,tag`, tag 0 normal / 1 abnormal) -> DataFrame[name, tag] in file order.

    With `data_dir`, every listed record must have `data_dir/<name><ext>`.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ECGDataError(csv_path, "label file not found")
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False, encoding=CSV_ENCODING)
    except UnicodeDecodeError as e:
        raise _not_utf8(csv_path, e) from None
    except Exception as e:
        raise ECGDataError(csv_path, f"cannot parse as CSV ({e})") from e
    if [c.strip() for c in df.columns] != ["name", "tag"]:
        raise ECGDataError(csv_path, f"header must be 'name,tag', found {','.join(df.columns)}")
    df.columns = ["name", "tag"]
    df["name"] = df["name"].str.strip().str.removesuffix(".mat")
    df["tag"] = df["tag"].str.strip()
    for i, (name, tag) in enumerate(zip(df["name"], df["tag"]), start=2):
        if name == "":
            raise ECGDataError(csv_path, f"row {i}: empty name")
        if tag not in ("0", "1"):
            raise ECGDataError(csv_path, f"row {i} ('{name}'): tag must be 0 or 1, found '{tag}'")
    dup = df["name"][df["name"].duplicated()]
    if len(dup):
        raise ECGDataError(csv_path, f"duplicate name '{dup.iloc[0]}' (rows {', '.join(str(i + 2) for i in df.index[df['name'] == dup.iloc[0]])})")
    df["tag"] = df["tag"].astype(np.int64)
    _check_files(csv_path, df["name"], data_dir, ext)
    return df.reset_index(drop=True)


def write_reference(path, df):
    """Write Task 1 labels (`name,tag`) atomically."""
    with atomic_path(path) as tmp:
        df[["name", "tag"]].to_csv(tmp, index=False)


def _csv_rows(csv_path, what):
    """The rows of a UTF-8 CSV file (a byte-order mark dropped); a missing, non-UTF-8 or unparsable file is an
    ECGDataError naming it."""
    if not csv_path.is_file():
        raise ECGDataError(csv_path, f"{what} not found")
    try:
        with open(csv_path, newline="", encoding=CSV_ENCODING) as f:
            return list(csv.reader(f))
    except UnicodeDecodeError as e:
        raise _not_utf8(csv_path, e) from None
    except csv.Error as e:
        raise ECGDataError(csv_path, f"cannot parse as CSV ({e})") from None


def read_reference_task2(csv_path, data_dir=None, ext=".mat"):
    """Read Task 2 labels: header-less rows `name,i1,i2,...` of 1-based class indices -> {name: [indices]}."""
    csv_path = Path(csv_path)
    rows = _csv_rows(csv_path, "label file")
    labels = {}
    for row_no, row in enumerate(rows, start=1):
        row = [c.strip() for c in row if c.strip() != ""]
        if not row:
            continue
        name, idx = row[0].removesuffix(".mat"), row[1:]
        if not idx:
            raise ECGDataError(csv_path, f"row {row_no} ('{name}'): no class index")
        try:
            classes = [int(i) for i in idx]
        except ValueError:
            raise ECGDataError(csv_path, f"row {row_no} ('{name}'): class indices must be integers, found {idx}") from None
        bad = [c for c in classes if not 1 <= c <= len(CLASS_NAMES)]
        if bad:
            raise ECGDataError(csv_path, f"row {row_no} ('{name}'): class index {bad[0]} outside 1..{len(CLASS_NAMES)}")
        if name in labels:
            raise ECGDataError(csv_path, f"row {row_no}: duplicate name '{name}'")
        labels[name] = sorted(set(classes))
    _check_files(csv_path, list(labels), data_dir, ext)
    return labels


def write_reference_task2(path, labels):
    """Write Task 2 rows `name,i1,i2,...` (no header) atomically; `labels` maps name -> indices."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        for name, classes in labels.items():
            w.writerow([name, *sorted(classes)])


def read_record_groups(csv_path):
    """Read record_groups.csv (`name,group`) -> {name: group}. Records of one group (a patient's records, a
    recording's windows) must never be split between training and validation folds."""
    csv_path = Path(csv_path)
    rows = _csv_rows(csv_path, "groups file")
    if not rows or [c.strip() for c in rows[0]] != ["name", "group"]:
        raise ECGDataError(csv_path, f"header must be 'name,group', found {','.join(rows[0]) if rows else 'an empty file'}")
    names, groups, seen = [], [], {}
    for row_no, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != 2:
            raise ECGDataError(csv_path, f"row {row_no}: {len(row)} fields, expected 2 (name,group)")
        name, group = row[0].strip().removesuffix(".mat"), row[1].strip()
        if name == "" or group == "":
            raise ECGDataError(csv_path, f"row {row_no}: empty {'name' if name == '' else 'group'}")
        if name in seen:
            raise ECGDataError(csv_path, f"row {row_no}: duplicate name '{name}' (also row {seen[name]})")
        seen[name] = row_no
        names.append(name)
        groups.append(group)
    return dict(zip(names, groups))


def write_record_groups(path, groups):
    """Write record_groups.csv (`name,group`; `groups` maps name -> group) atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["name", "group"])
        w.writerows((name, group) for name, group in groups.items())


def list_records(data_dir):
    """Names (without `.mat`) of the MAT files in `data_dir`, sorted."""
    return sorted(p.stem for p in Path(data_dir).glob("*.mat"))
