"""Digitise pictures of printed 12-lead ECGs (scans, photos, generated pages) back into competition records.

    python tools/digitize.py --images DIR --out OUT_DIR [--workers N]

Every PNG or JPEG in DIR (`*.png`, `*.jpg`, `*.jpeg`, any case; a generated page's `<stem>_mask.png` beside its
`<stem>.json` is not a picture to read) is read by utils/paper/digitize.py. A page read is written as the record
OUT_DIR/<stem>.mat: `ecgdata` (12, 5000) float32 mV at 500 Hz in the standard lead order, each printed stretch at
its true time, NaN where a lead's stretch is not printed or could not be read. Every picture is one row of
OUT_DIR/digitize.csv: name, status (ok | refused | failed), speed (mm/s), gain (mm/mV), px_per_mm, rotation
(degrees), layout, quality (0-1), error (the reason when not ok; a note such as an assumed gain when ok).
`refused`: not an ECG page (a photograph, a blank page, noise), or a layout, speed or gain it does not read or
cannot tell; `failed`: not a readable image. A refused or failed picture gets no MAT (one left by an earlier run
is removed). Pictures are read in parallel, one per core (--workers); the CSV is written atomically at the end.
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
from utils.ecg.io import write_record  # noqa: E402
from utils.errors import ECGDataError  # noqa: E402
from utils.paper import DIGITIZE_COLUMNS  # noqa: E402
from utils.paper.digitize import Digitized, digitize  # noqa: E402
from utils.runtime import run_script  # noqa: E402

PICTURES = (".png", ".jpg", ".jpeg")


def find_pictures(folder):
    """The pictures to read in `folder`, sorted by name: its PNG and JPEG files, except generated pages' masks."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PICTURES)
    return [p for p in files if not (p.stem.endswith("_mask") and (folder / f"{p.stem[:-5]}.json").is_file())]


def digitize_one(job):
    """Read one picture and write its record: its digitize.csv row (a dict of text)."""
    path, out = Path(job[0]), Path(job[1])
    try:
        result = digitize(path)
    except Exception as e:  # noqa: BLE001 - a bug on one picture is that picture's row, never the end of the run
        result = Digitized(status="failed", error=f"digitiser error ({type(e).__name__}: {e})")
    mat = out / f"{path.stem}.mat"
    try:
        if result.status == "ok":
            write_record(mat, result.signal)
        elif mat.exists():
            mat.unlink()
    except OSError as e:
        result = Digitized(status="failed", error=f"cannot write {mat} ({e})")
    row = result.row(path.stem)
    row["error"] = " ".join(row["error"].split())  # one line
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, type=Path, help="folder of pictures (PNG, JPEG)")
    p.add_argument("--out", required=True, type=Path, help="folder for the records and digitize.csv (created)")
    p.add_argument("--workers", type=int, default=0, help="processes (0: every core)")
    a = p.parse_args(argv)
    if not a.images.is_dir():
        raise ECGDataError(a.images, "not a folder")
    pictures = find_pictures(a.images)
    if not pictures:
        raise ECGDataError(a.images, "no PNG or JPEG pictures in this folder")
    a.out.mkdir(parents=True, exist_ok=True)
    seen, jobs, rows = set(), [], []
    for pic in pictures:  # a.png and a.jpg would both be a.mat: the first one (by name) is read
        if pic.stem in seen:
            rows.append(Digitized(status="failed", error=f"another picture is also named {pic.stem}: "
                                                         f"{pic.name} not read").row(pic.stem))
            continue
        seen.add(pic.stem)
        jobs.append((str(pic), str(a.out)))
    workers = max(1, min(a.workers or os.cpu_count() or 1, len(jobs)))
    bar = dict(total=len(jobs), desc="digitize", unit="page")
    if workers == 1:
        rows += [digitize_one(j) for j in tqdm(jobs, **bar)]
    else:
        with ProcessPoolExecutor(workers) as ex:
            rows += list(tqdm(ex.map(digitize_one, jobs), **bar))
    rows.sort(key=lambda r: r["name"])
    write_csv(a.out / "digitize.csv", rows, DIGITIZE_COLUMNS)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "refused", "failed")}
    print(f"read {counts['ok']} of {len(rows)} pictures ({counts['refused']} refused, {counts['failed']} failed; "
          f"{workers} workers) -> {a.out / 'digitize.csv'}")
    for r in rows:
        if r["status"] != "ok":
            print(f"  {r['name']}: {r['status']}: {r['error']}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    run_script(main)
