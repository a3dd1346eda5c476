"""Convert PhysioNet/CinC Challenge 2020/2021 records (WFDB .hea + MATLAB v4 .mat) into the AIWIN layout.

    python tools/convert_cinc.py --src CINC_DIR --dst RAW_DIR [--test-fraction F | --test-sources S,...]
                                 [--max-records N] [--windows] [--keep-implausible] [--seed 0]

Finds every `<record>.hea` under --src (recursively, following symlinked folders, each folder searched once; a
record's source is its top folder under --src, e.g. cpsc_2018), reads it with wfdb (gain and baseline applied,
then converted to mV), puts the leads in the competition's order by name, resamples to 500 Hz
(scipy.signal.resample_poly) and writes 10 s records named `cinc_<source>_<record>`: RAW_DIR/train/<name>.mat,
trainreference.csv, trainreference_task2.csv, val/<name>.mat and the test truth val_reference.csv,
val_reference_task2.csv. Labels come from the `#Dx:` SNOMED-CT codes (utils/ecg/cinc.py). A test record is its first
10 s; a shorter record has each lead's median removed and is zero-padded at the end. --windows: a training record
gives every whole 10 s window (`<name>_w<k>`); the split is made by record first, so no record has windows on both
sides. RAW_DIR/record_groups.csv gives each training record its recording as its group (train.py's folds never
split a group): a recording's windows share it. No source's header carries a patient id (the CinC headers hold
#Age, #Sex, #Dx, #Rx, #Hx, #Sx only), so each recording is its own group. A bad record (no #Dx codes, missing or
corrupt .mat, a lead missing, an unreadable sampling rate or unit, an implausible amplitude, i.e. a wrong header
gain, unless --keep-implausible) is skipped and named in RAW_DIR/convert_report.csv.
"""
import argparse
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.convert_ptbxl import remove_stale, write_labels  # noqa: E402
from utils.atomic import atomic_path  # noqa: E402
from utils.ecg.cinc import (
    first_10s,
    map_dx,
    missing_leads,
    parse_dx,
    parse_fs,
    reorder_leads,
    resample_to_fs,
    to_millivolts,
    windows_10s,
)
from utils.ecg.io import FS, write_record  # noqa: E402

PREFIX = "cinc_"
# A 12-lead ECG whose typical lead spans less or more than this (mV, peak to peak) has a suspicious header gain.
PLAUSIBLE_MV = (0.05, 30.0)
REPORT_COLUMNS = ["source", "record", "name", "split", "status", "reason", "records_written", "fs", "seconds", "tag",
                  "classes", "detail"]


def safe(text):
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text)


def walk_files(root, suffix):
    """Every file whose name ends in `suffix` under root, sorted, following symlinked folders (a common way to lay
    out downloads). A folder reached a second time (a symlink cycle, or two links to one folder) is searched once,
    with a warning; a folder that cannot be listed, or a symlink to nothing, is named in a warning."""
    root = Path(root)

    def folder_id(path):
        st = os.stat(path)
        return st.st_dev, st.st_ino

    def cannot_list(e):
        print(f"warning: {e.filename}: cannot be searched ({e.strerror})", file=sys.stderr)

    seen = {folder_id(root): root}
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=True, onerror=cannot_list):
        keep = []
        for name in sorted(subfolders):
            path = Path(folder) / name
            try:
                key = folder_id(path)
            except OSError as e:
                cannot_list(e)
                continue
            if key in seen:
                print(f"warning: {path}: the same folder as {seen[key]}, searched once", file=sys.stderr)
                continue
            seen[key] = path
            keep.append(name)
        subfolders[:] = keep
        for name in files:
            path = Path(folder) / name
            if name.endswith(suffix):
                found.append(path)  # a broken one is the record's reported skip
            elif path.is_symlink() and not path.exists():  # a linked folder whose target is gone, or moved
                print(f"warning: {path}: a symlink to {os.readlink(path)}, which does not exist; not searched",
                      file=sys.stderr)
    return sorted(found)


def find_records(src):
    """Every record under src (symlinked folders followed): DataFrame[path (without .hea), source, record, name],
    sorted by name."""
    src = Path(src)
    rows = []
    for hea in walk_files(src, ".hea"):
        rel = hea.relative_to(src)
        source = rel.parts[0] if len(rel.parts) > 1 else src.resolve().name
        rows.append((str(hea.with_suffix("")), source, str(rel.with_suffix("")), f"{PREFIX}{safe(source)}_{safe(hea.stem)}"))
    return pd.DataFrame(rows, columns=["path", "source", "record", "name"]).sort_values("name", ignore_index=True)


def choose_test(records, test_fraction, test_sources, seed):
    """Boolean Series: True for test records. Whole sources (folder names), or a seeded random fraction."""
    if test_sources:
        return records["source"].isin(test_sources)
    k = int(round(test_fraction * len(records)))
    chosen = np.random.default_rng(seed).permutation(len(records))[:k]
    return pd.Series(np.isin(np.arange(len(records)), chosen), index=records.index)


class Skip(Exception):
    """The record cannot be converted: `reason` (a short kind, counted in the summary) and the message (detail)."""

    def __init__(self, reason, detail):
        self.reason = reason
        super().__init__(detail)


def read_signal(path):
    """(12, n) in mV at 500 Hz, labels and facts of one record. Raises Skip with the reason."""
    hea = Path(f"{path}.hea")
    try:
        text = hea.read_text(errors="replace")
    except OSError as e:  # e.g. a symlinked header whose target is gone
        raise Skip("header unreadable", f"header cannot be read ({type(e).__name__}: {e})") from None
    try:
        fs = parse_fs(text)
    except ValueError as e:
        raise Skip("sampling rate unreadable", str(e)) from None
    try:
        header = wfdb.rdheader(path)
    except Exception as e:  # wfdb raises many types on a malformed header
        raise Skip("header unreadable", f"header cannot be read ({type(e).__name__}: {e})") from None
    codes = parse_dx(header.comments or [])
    if not codes:
        raise Skip("no #Dx codes", "no #Dx codes (unlabelled)")
    tag, classes = map_dx(codes)
    lacking = missing_leads(header.sig_name or [])
    if lacking:
        raise Skip("lead missing", f"lead(s) missing: {', '.join(lacking)} (has {', '.join(header.sig_name or [])})")
    for name in sorted(set(header.file_name or [])):
        if not (hea.parent / name).is_file():
            raise Skip("signal file missing", f"signal file {name} missing")
    try:
        rec = wfdb.rdrecord(path)
    except Exception as e:
        raise Skip("signal file corrupt", f"truncated or corrupt signal file {', '.join(sorted(set(header.file_name)))} "
                   f"({type(e).__name__}: {e})") from None
    if rec.p_signal is None or rec.p_signal.shape[0] != header.sig_len:
        n = 0 if rec.p_signal is None else rec.p_signal.shape[0]
        raise Skip("signal file corrupt", f"signal file holds {n} samples, header says {header.sig_len}")
    try:
        mv = to_millivolts(rec.p_signal, rec.units)
    except ValueError as e:
        raise Skip("unit unknown", str(e)) from None
    x = np.nan_to_num(reorder_leads(mv, rec.sig_name))
    return resample_to_fs(x, fs).astype(np.float32), fs, tag, classes


def convert_one(job):
    """Convert one record; returns (report row, [(split, name, tag, classes, group) written])."""
    path, source, record, name, split, windows, dst, compress, keep_implausible = job
    row = dict(source=source, record=record, name=name, split=split, status="skipped", reason="", records_written=0, fs=None,
               seconds=None, tag=None, classes=None, detail="")
    try:
        x, fs, tag, classes = read_signal(path)
    except Skip as e:
        row.update(reason=e.reason, detail=str(e))
        return row, []
    row.update(fs=fs, seconds=round(x.shape[1] / FS, 2), tag=tag, classes=" ".join(map(str, classes)), status="converted")
    parts = windows_10s(x) if windows and split == "train" else []
    if len(parts) > 1:
        out = [(f"{name}_w{k}", w) for k, w in enumerate(parts)]
        notes = [f"{len(parts)} windows of 10 s"]
    else:
        sig, pad = first_10s(x)
        out = [(name, sig)]
        notes = []
        if pad:
            row["status"] = "padded"
            notes.append(f"{x.shape[1] / FS:.2f} s long: each lead's median removed, zero-padded {pad:.2f} s at the end")
        elif x.shape[1] > sig.shape[1]:
            notes.append(f"first 10 s of {x.shape[1] / FS:.1f} s")
    ptp = float(np.median(np.ptp(out[0][1], axis=1)))
    if not PLAUSIBLE_MV[0] <= ptp <= PLAUSIBLE_MV[1]:
        problem = f"implausible amplitude (median lead peak-to-peak {ptp:.4g} mV): check the header's gain"
        if not keep_implausible:  # a flat line (or a clipped one) would train as a real ECG
            row.update(status="skipped", reason="implausible amplitude",
                       detail="; ".join([f"{problem} (--keep-implausible writes it)", *notes]))
            return row, []
        notes.append(problem)
    for out_name, sig in out:
        write_record(Path(dst) / split / f"{out_name}.mat", sig, compress=compress)
    row.update(records_written=len(out), detail="; ".join(notes))
    return row, [(split, n, tag, classes, name) for n, _ in out]  # group: the recording (no patient ids)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help="folder holding CinC records (.hea + .mat), searched recursively")
    p.add_argument("--dst", required=True, help="output folder in the competition layout")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--test-fraction", type=float, default=0.2,
                       help="fraction of records (seeded random choice) for the test set (default 0.2)")
    split.add_argument("--test-sources", default=None,
                       help="comma-separated source folders (top folders under --src, e.g. cpsc_2018,georgia) "
                            "whose records form the test set")
    p.add_argument("--max-records", type=int, default=None, help="at most this many records in all (seeded choice)")
    p.add_argument("--windows", action="store_true",
                   help="a long training record gives every whole 10 s window as a record <name>_w<k>")
    p.add_argument("--keep-implausible", action="store_true",
                   help="write records whose amplitude is implausible (typical lead peak-to-peak under "
                        f"{PLAUSIBLE_MV[0]} or over {PLAUSIBLE_MV[1]} mV: a wrong header gain) as the header says, "
                        "flagged in the report; by default they are skipped")
    p.add_argument("--seed", type=int, default=0, help="seed for --test-fraction and --max-records")
    p.add_argument("--no-compress", action="store_true", help="write uncompressed MAT files (3x larger)")
    p.add_argument("--workers", type=int, default=os.cpu_count())
    a = p.parse_args(argv)
    if not 0 <= a.test_fraction < 1:
        p.error(f"--test-fraction must be in [0, 1), got {a.test_fraction}")

    src, dst = Path(a.src), Path(a.dst)
    if not src.is_dir():
        sys.exit(f"error: {src}: not a folder")
    records = find_records(src)
    if records.empty:
        sys.exit(f"error: {src}: no .hea record headers found")
    if a.max_records is not None and a.max_records < len(records):
        keep = np.sort(np.random.default_rng(a.seed).choice(len(records), size=a.max_records, replace=False))
        records = records.iloc[keep].reset_index(drop=True)
    test_sources = [s.strip() for s in a.test_sources.split(",") if s.strip()] if a.test_sources else None
    if test_sources:
        unknown = sorted(set(test_sources) - set(records["source"]))
        if unknown:
            print(f"warning: no record from source(s) {', '.join(unknown)} (sources here: "
                  f"{', '.join(sorted(records['source'].unique()))})", file=sys.stderr)
    is_test = choose_test(records, a.test_fraction, test_sources, a.seed)

    dup = records["name"].duplicated()  # the same record name twice in one source (in two subfolders)
    report = [dict(source=r.source, record=r.record, name=r.name, split="val" if t else "train", status="skipped",
                   reason="duplicate name", records_written=0, detail=f"another record of {r.source} is also {r.name}")
              for r, t in zip(records[dup].itertuples(), is_test[dup])]
    jobs = [(r.path, r.source, r.record, r.name, "val" if t else "train", a.windows, dst, not a.no_compress,
             a.keep_implausible)
            for r, t in zip(records[~dup].itertuples(), is_test[~dup])]
    written = []
    with ProcessPoolExecutor(max(1, a.workers)) as ex:
        for row, out in tqdm(ex.map(convert_one, jobs, chunksize=4), total=len(jobs), desc="convert", unit="rec"):
            report.append(row)
            written += out
            if row["status"] == "skipped":
                tqdm.write(f"skipped {row['record']}: {row['detail']}")

    remove_stale(dst, {f"{s}/{n}.mat" for s, n, *_ in written}, PREFIX)
    labels = pd.DataFrame(written, columns=["split", "name", "tag", "classes", "group"])
    write_labels(dst, labels[labels["split"] == "train"], labels[labels["split"] == "val"])
    rep = pd.DataFrame(report, columns=REPORT_COLUMNS).astype({"tag": "Int64"}).sort_values("record", ignore_index=True)
    with atomic_path(dst / "convert_report.csv") as tmp:
        rep.to_csv(tmp, index=False)
    counts = rep["status"].value_counts()
    skipped = rep[rep["status"] == "skipped"]
    reasons = skipped["reason"].value_counts()
    n_train = rep[(rep["split"] == "train") & (rep["status"] != "skipped")]
    print(f"converted {len(rep) - len(skipped)} of {len(rep)} records (train {len(n_train)} -> "
          f"{int((labels['split'] == 'train').sum())} records, test {int((labels['split'] == 'val').sum())}), "
          f"padded {counts.get('padded', 0)}, skipped {len(skipped)}"
          + (f" ({', '.join(f'{r}: {n}' for r, n in reasons.items())})" if len(skipped) else "")
          + f"; every record's outcome: {dst / 'convert_report.csv'}")
    if not (labels["split"] == "val").any():
        print("warning: the test set (val/) is empty", file=sys.stderr)
    return rep


if __name__ == "__main__":
    main()
