"""Merge converted collections into one data folder, so train.py learns from several hospitals at once.

    python tools/merge_data.py --src RAW_PTBXL --src RAW_CINC [--src ...] --dst RAW_DIR [--copy]

Each --src is a folder in the competition layout (tools/convert_ptbxl.py, tools/convert_cinc.py, the AIWIN data):
train/*.mat, val/*.mat, trainreference.csv, trainreference_task2.csv, val_reference*.csv, record_groups.csv. The
merged folder lists every record of every source in each label file that a source has, and in record_groups.csv
(so train.py's folds still never split a patient), and holds the MAT files as symbolic links to the sources
(--copy: copies). Every label file is read and checked as train.py reads it before anything is written; a record
name in two sources is a one-line error naming both (the converters prefix names by collection, ptbxl_ and
cinc_<source>_, so they do not collide). The label files are written atomically; an existing --dst is refused.
"""
import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from utils.ecg.io import read_record_groups, read_reference, read_reference_task2  # noqa: E402
from utils.ecg.io import write_record_groups, write_reference, write_reference_task2  # noqa: E402
from utils.errors import ConfigError, ECGDataError  # noqa: E402
from utils.runtime import run_script  # noqa: E402

SPLITS = {"train": ("trainreference.csv", "trainreference_task2.csv"), "val": ("val_reference.csv", "val_reference_task2.csv")}
GROUPS = "record_groups.csv"


def read_source(src):
    """{file name: its records} of one source: Task 1 {name: tag}, Task 2 {name: classes}, groups {name: group}."""
    files = {}
    for split, (t1, t2) in SPLITS.items():
        if (src / t1).is_file():
            files[t1] = dict(zip(*read_reference(src / t1, data_dir=src / split)[["name", "tag"]].to_numpy().T))
        if (src / t2).is_file():
            files[t2] = read_reference_task2(src / t2, data_dir=src / split)
    if (src / GROUPS).is_file():
        files[GROUPS] = read_record_groups(src / GROUPS)
    if not any(f in files for f, _ in SPLITS.values()):
        raise ECGDataError(src, "no trainreference.csv or val_reference.csv: not a converted data folder")
    return files


def merged(sources):
    """{file name: merged records} and {record: (split, source)}; a name in two sources is an ECGDataError."""
    out, where = {}, {}
    for src, files in sources.items():
        for split, (t1, _) in SPLITS.items():
            for name in files.get(t1, {}):
                if name in where:
                    raise ECGDataError(src / t1, f"record {name} is also in {where[name][1]}: rename one collection")
                where[name] = (split, src)
        for fname, records in files.items():
            out.setdefault(fname, {}).update(records)
    return out, where


def place(where, dst, copy):
    for name, (split, src) in where.items():
        target, link = (src / split / f"{name}.mat").resolve(), dst / split / f"{name}.mat"
        if copy:
            shutil.copy2(target, link)
        else:
            link.symlink_to(target)


def write(out, dst):
    import pandas as pd

    for fname, records in out.items():
        if fname == GROUPS:
            write_record_groups(dst / fname, records)
        elif fname in (t1 for t1, _ in SPLITS.values()):
            write_reference(dst / fname, pd.DataFrame({"name": list(records), "tag": [int(t) for t in records.values()]}))
        else:
            write_reference_task2(dst / fname, records)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", action="append", required=True, help="a converted data folder (repeat for each)")
    p.add_argument("--dst", required=True)
    p.add_argument("--copy", action="store_true", help="copy the MAT files instead of linking them")
    a = p.parse_args(argv)
    srcs, dst = [Path(s).resolve() for s in a.src], Path(a.dst)
    if len(set(srcs)) < 2:
        raise ConfigError("--src: give at least two different data folders to merge")
    if dst.exists():
        raise ConfigError(f"--dst {dst}: exists; merge into a new folder")
    out, where = merged({s: read_source(s) for s in srcs})
    for split in SPLITS:
        (dst / split).mkdir(parents=True)
    place(where, dst, a.copy)
    write(out, dst)
    counts = {split: sum(1 for s, _ in where.values() if s == split) for split in SPLITS}
    print(f"merged {len(srcs)} folders -> {dst}: {counts['train']} training and {counts['val']} test records "
          f"({'copied' if a.copy else 'linked'}); files: {', '.join(sorted(out))}")
    return counts


if __name__ == "__main__":
    run_script(main)
