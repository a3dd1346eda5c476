"""Convert PTB-XL (its own layout) into the AIWIN competition layout.

    python tools/convert_ptbxl.py --src PTBXL_DIR --dst RAW_DIR [--test-fold 10] [--max-records N]

Writes RAW_DIR/train/<name>.mat, trainreference.csv, trainreference_task2.csv, record_groups.csv (each training
record's patient: train.py's folds never split a patient), val/<name>.mat (the test set, unlabelled) and the truth
beside it: val_reference.csv, val_reference_task2.csv.
Test records are PTB-XL's `strat_fold == --test-fold` (folds separate patients).
"""
import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from utils.artifacts import RECORD_GROUPS  # noqa: E402
from utils.ecg.io import (  # noqa: E402
    CSV_ENCODING,
    LEADS,
    SHAPE,
    write_record,
    write_record_groups,
    write_reference,
    write_reference_task2,
)
from utils.ecg.ptbxl import map_scp_codes, parse_scp_codes  # noqa: E402


def record_name(ecg_id):
    return f"ptbxl_{int(ecg_id):05d}"


def load_database(src):
    """ptbxl_database.csv with tag, classes, competition name and group (the patient) columns added."""
    db_path = Path(src) / "ptbxl_database.csv"
    if not db_path.is_file():
        sys.exit(f"error: {db_path} not found (is --src a PTB-XL folder?)")
    db = pd.read_csv(db_path, encoding=CSV_ENCODING)
    missing = {"ecg_id", "scp_codes", "strat_fold", "filename_hr"} - set(db.columns)
    if missing:
        sys.exit(f"error: {db_path} lacks columns {sorted(missing)}")
    labels = [map_scp_codes(parse_scp_codes(s)) for s in db["scp_codes"]]
    db["tag"] = [t for t, _ in labels]
    db["classes"] = [c for _, c in labels]
    db["name"] = [record_name(i) for i in db["ecg_id"]]
    if "patient_id" not in db.columns:
        print(f"warning: {db_path} has no patient_id column: each record is its own group, so train.py's folds may "
              f"split a patient's records", file=sys.stderr)
        db["patient_id"] = np.nan
    db["group"] = [patient_group(p, n) for p, n in zip(db["patient_id"], db["name"])]
    return db.sort_values("ecg_id").reset_index(drop=True)


def patient_group(patient_id, name):
    """A record's group: its patient (`ptbxl_patient_<patient_id>`), or the record itself when the id is missing."""
    if pd.isna(patient_id) or str(patient_id).strip() == "":
        return name
    try:
        return f"ptbxl_patient_{int(float(patient_id))}"  # the CSV holds it as a float: 11315.0
    except ValueError:
        return f"ptbxl_patient_{str(patient_id).strip()}"


def limit(df, n, seed):
    """At most n rows, chosen at random but keeping the normal/abnormal proportions."""
    if n is None or n >= len(df):
        return df
    rng = np.random.default_rng(seed)
    parts = []
    for tag, group in df.groupby("tag"):
        k = int(round(n * len(group) / len(df)))
        parts.append(group.iloc[np.sort(rng.choice(len(group), size=min(k, len(group)), replace=False))])
    return pd.concat(parts).sort_values("ecg_id")


def remove_stale(dst, wanted, prefix):
    """Delete `<prefix>*.mat` in dst/train and dst/val not in `wanted` ("train/<name>.mat", ...): a converter's
    record left from an earlier run with other options would be an unlabelled extra record."""
    stale = [p for split in ("train", "val") for p in (Path(dst) / split).glob(f"{prefix}*.mat")
             if f"{split}/{p.name}" not in wanted]
    for p in stale:
        p.unlink()
    if stale:
        print(f"removed {len(stale)} records of an earlier conversion from {dst}")


def write_labels(dst, train, test):
    """The four label files and record_groups.csv from DataFrames with columns name, tag, classes, group (of the
    training records; the test records need none); prints the counts."""
    dst = Path(dst)
    write_reference(dst / "trainreference.csv", train)
    write_record_groups(dst / RECORD_GROUPS, dict(zip(train["name"], train["group"])))
    write_reference_task2(dst / "trainreference_task2.csv", dict(zip(train["name"], train["classes"])))
    write_reference(dst / "val_reference.csv", test)
    write_reference_task2(dst / "val_reference_task2.csv", dict(zip(test["name"], test["classes"])))
    for split, df in (("train", train), ("test (val/)", test)):
        print(f"{split}: {len(df)} records, {int((df['tag'] == 0).sum())} normal / {int((df['tag'] == 1).sum())} abnormal")
    shared = train["group"].duplicated(keep=False)
    print(f"groups: {train['group'].nunique()} among {len(train)} training records ({int(shared.sum())} share theirs "
          f"with another) -> {dst / RECORD_GROUPS}")


def convert_one(args):
    src, filename_hr, out_path, compress = args
    rec = wfdb.rdrecord(str(Path(src) / filename_hr))
    if rec.fs != 500 or rec.p_signal.shape != SHAPE[::-1]:
        raise ValueError(f"{filename_hr}: expected 500 Hz, {SHAPE[::-1]}; got {rec.fs} Hz, {rec.p_signal.shape}")
    # Reorder to the competition's lead order by name (PTB-XL uses the same order, but say so explicitly).
    order = [[s.upper() for s in rec.sig_name].index(lead.upper()) for lead in LEADS]
    sig = np.nan_to_num(rec.p_signal[:, order].T.astype(np.float32))
    write_record(out_path, sig, compress=compress)
    return out_path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help="PTB-XL folder (ptbxl_database.csv, records500/)")
    p.add_argument("--dst", required=True, help="output folder in the competition layout")
    p.add_argument("--test-fold", type=int, default=10, help="strat_fold used as the test set (default 10)")
    p.add_argument("--max-records", type=int, default=None, help="at most this many training records")
    p.add_argument("--max-test-records", type=int, default=None, help="at most this many test records")
    p.add_argument("--seed", type=int, default=0, help="seed for --max-records sampling")
    p.add_argument("--no-compress", action="store_true", help="write uncompressed MAT files (3x larger)")
    p.add_argument("--workers", type=int, default=os.cpu_count())
    a = p.parse_args(argv)

    db = load_database(a.src)
    test = limit(db[db["strat_fold"] == a.test_fold], a.max_test_records, a.seed)
    train = limit(db[db["strat_fold"] != a.test_fold], a.max_records, a.seed)
    if not (db["strat_fold"] == a.test_fold).any():
        print(f"warning: no record has strat_fold {a.test_fold} (folds here: {sorted(db['strat_fold'].unique())}); "
              "the test set is empty - pass --test-fold", file=sys.stderr)
    dst = Path(a.dst)
    remove_stale(dst, {f"{split}/{n}.mat" for split, df in (("train", train), ("val", test)) for n in df["name"]}, "ptbxl_")
    jobs = [(a.src, r.filename_hr, dst / split / f"{r.name}.mat", not a.no_compress)
            for split, df in (("train", train), ("val", test)) for r in df.itertuples()]
    with ProcessPoolExecutor(max(1, a.workers)) as ex:
        for _ in tqdm(ex.map(convert_one, jobs, chunksize=8), total=len(jobs), desc="convert", unit="rec"):
            pass

    write_labels(dst, train, test)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
