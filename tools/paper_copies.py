"""Paper-aware training data: every training record, and copies of it as a printed page shows it.

    python tools/paper_copies.py --data-dir DATA_DIR --out OUT_DIR [--copies 1] [--seed 0]

A page prints 2.5 s of most leads (3 x 4 layouts) and a record read back from paper holds NaN elsewhere, which the
record reader fills (utils/ecg/gaps.py). A model trained on whole records only has never seen such a record; one
trained on this folder has. Each copy `<name>_paper<k>.mat` is the record with NaN outside the printed stretches
of a layout drawn from the usual mix (utils/paper/layouts.LAYOUT_MIX, 10 s rows). OUT_DIR (new, or empty) is a data
folder to train any model on (train.py --data-dir OUT_DIR): train/ holds a link to every record of DATA_DIR/train and the
copies; trainreference.csv (and trainreference_task2.csv when DATA_DIR has it) labels each copy as its record;
record_groups.csv puts each copy in its record's group (DATA_DIR's groups, else the record's own), so a record and
its copies never cross folds; DATA_DIR's val/ and its reference files are linked. A record that cannot be read is
skipped with a one-line warning and left out of OUT_DIR. Measured: docs/results.md#paper-aware-training.
"""
import argparse
import os
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from utils.ecg.io import (  # noqa: E402
    list_records,
    read_record,
    read_record_groups,
    read_reference,
    read_reference_task2,
    write_record,
    write_record_groups,
    write_reference,
    write_reference_task2,
)
from utils.errors import ConfigError, ECGDataError  # noqa: E402
from utils.paper.layouts import LAYOUT_MIX, as_printed  # noqa: E402
from utils.runtime import run_script  # noqa: E402

LINKED = ("val", "val_reference.csv", "val_reference_task2.csv")


def copy_name(name, k):
    return f"{name}_paper{k}"


def layouts(seed, name, n):
    """`n` layouts drawn from LAYOUT_MIX for record `name`: the same for the same seed and name, whatever else is
    copied (and copy k the same whatever n is)."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    p = np.array(list(LAYOUT_MIX.values()), np.float64)
    return [list(LAYOUT_MIX)[rng.choice(len(p), p=p / p.sum())] for _ in range(n)]


def write_copies(src, out, names, copies, seed):
    """Link every record of `names` into out/train and write its copies; {name: [copy names]} of those read."""
    (out / "train").mkdir(parents=True, exist_ok=True)
    made = {}
    for name in tqdm(names, desc="paper copies", unit="rec", mininterval=1.0):
        path = src / "train" / f"{name}.mat"
        try:
            x = read_record(path, gaps="keep")
        except ECGDataError as e:
            print(f"warning: {e}: skipped", file=sys.stderr)
            continue
        os.symlink(path.resolve(), out / "train" / f"{name}.mat")
        made[name] = []
        for k, layout in enumerate(layouts(seed, name, copies)):
            write_record(out / "train" / f"{copy_name(name, k)}.mat", as_printed(x, layout))
            made[name].append(copy_name(name, k))
    return made


def write_labels(src, out, tags, made, copies):
    """The Task 1 labels `tags` (DATA_DIR's, read) and DATA_DIR's Task 2 labels of every record read, then its
    `copies` copies under the record's labels."""
    df = tags[tags["name"].isin(made)]
    write_reference(out / "trainreference.csv",
                    pd.concat([df, *(df.assign(name=[made[n][k] for n in df["name"]]) for k in range(copies))]))
    if (src / "trainreference_task2.csv").is_file():
        labels = {n: c for n, c in read_reference_task2(src / "trainreference_task2.csv").items() if n in made}
        write_reference_task2(out / "trainreference_task2.csv",
                              {**labels, **{c: labels[n] for n in labels for c in made[n]}})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, required=True, help="a data folder (train/, trainreference.csv, ...)")
    p.add_argument("--out", type=Path, required=True, help="the new data folder")
    p.add_argument("--copies", type=int, default=1, help="copies of each record, each in its own drawn layout")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.copies < 1:
        p.error("--copies must be at least 1")
    src, out = a.data_dir.resolve(), a.out.resolve()
    if not (src / "train").is_dir():
        raise ConfigError(f"--data-dir {a.data_dir}: no train/ folder")
    if not (src / "trainreference.csv").is_file():
        raise ConfigError(f"--data-dir {a.data_dir}: no trainreference.csv (the copies take their records' labels)")
    if out == src:
        raise ConfigError(f"--out {a.out}: the same folder as --data-dir")
    if out.exists() and any(out.iterdir()):  # never mixed with an earlier run's links and copies
        raise ConfigError(f"--out {a.out}: exists and is not empty; give a new folder")
    names = list_records(src / "train")
    taken = set(names) & {copy_name(n, k) for n in names for k in range(a.copies)}
    if taken:
        raise ConfigError(f"--data-dir {a.data_dir}: record {sorted(taken)[0]} has a copy's name (copies of copies?)")
    tags = read_reference(src / "trainreference.csv")  # a bad label or groups file fails before anything is written
    groups = read_record_groups(src / "record_groups.csv") if (src / "record_groups.csv").is_file() else {}
    made = write_copies(src, out, names, a.copies, a.seed)
    write_labels(src, out, tags, made, a.copies)
    write_record_groups(out / "record_groups.csv", {c: groups.get(n, n) for n, cs in made.items() for c in [n, *cs]})
    for item in LINKED:
        if (src / item).exists():
            os.symlink(src / item, out / item)
    n = sum(map(len, made.values()))
    print(f"{len(made)} records and {n} paper copies in {out} ({len(names) - len(made)} skipped); "
          f"train on it: python train.py --data-dir {out} ...")


if __name__ == "__main__":
    run_script(main)
