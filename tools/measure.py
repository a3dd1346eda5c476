"""Measure ECG records as an electrocardiograph prints them: heart rate, global intervals and axes, one row per
record.

    python tools/measure.py --records DIR --out FILE.csv [--workers N]

Every `*.mat` in DIR (the competition layout: `ecgdata`, 12 x 5000 in mV at 500 Hz) is measured by
utils/ecg/measurements.global_measurements, the same code the features model and the printout use. FILE.csv has
the columns name, hr (bpm), p_dur, pr, qrs_dur, qt, qtc (Bazett), qtc_fridericia (ms), p_axis, qrs_axis, t_axis
(degrees) and error: a value is empty where it is undefined (no P wave in atrial fibrillation, no T end found,
no QRS duration, P duration or PR on a paced record: pacemaker spikes that keep time with its beats), and a
record that cannot be read (or measured) is a row with only its name and the problem in `error`.
Records are measured in parallel, one per core (--workers, default every core).
"""
import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per worker process: the workers use every core

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from utils.atomic import write_csv  # noqa: E402
from utils.ecg.io import read_record  # noqa: E402
from utils.ecg.measurements import GLOBAL, global_measurements  # noqa: E402
from utils.errors import ECGDataError  # noqa: E402

COLUMNS = ("name",) + GLOBAL + ("error",)
DECIMALS = {"hr": 1}  # the others are whole ms or degrees, as an electrocardiograph prints them


def measure_one(path):
    """{column: text} of one MAT record: its measurements, or its problem in `error`."""
    path = Path(path)
    row = {c: "" for c in COLUMNS}
    row["name"] = path.stem
    try:
        values = global_measurements(read_record(path))
    except ECGDataError as e:
        row["error"] = e.problem
        return row
    except Exception as e:  # noqa: BLE001 - one record's failure is a reported row, never the end of the run
        row["error"] = f"measurement failed ({type(e).__name__}: {e})"
        return row
    for name, v in values.items():
        if np.isfinite(v):
            row[name] = f"{v:.{DECIMALS.get(name, 0)}f}"
    return row


def write_rows(out, rows):
    """The CSV, written atomically (a reader never sees half a file)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(out, rows, COLUMNS)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", required=True, help="folder of MAT records (ecgdata, 12 x 5000 mV)")
    p.add_argument("--out", required=True, help="CSV to write, one row per record")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="processes (default: every core)")
    a = p.parse_args(argv)

    folder = Path(a.records)
    if not folder.is_dir():
        p.error(f"--records {folder}: not a folder")
    paths = sorted(folder.glob("*.mat"))
    if not paths:
        p.error(f"--records {folder}: no *.mat records there")
    workers = max(1, min(a.workers, len(paths)))
    bar = dict(total=len(paths), desc="measure", unit="rec")
    if workers == 1:
        rows = [measure_one(x) for x in tqdm(paths, **bar)]
    else:
        with ProcessPoolExecutor(workers) as ex:
            rows = list(tqdm(ex.map(measure_one, paths, chunksize=max(1, min(16, len(paths) // (4 * workers)))), **bar))
    write_rows(a.out, rows)
    bad = [r for r in rows if r["error"]]
    print(f"measured {len(rows) - len(bad)} of {len(rows)} records ({workers} workers) -> {a.out}")
    for r in bad:
        print(f"  {r['name']}: {r['error']}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
