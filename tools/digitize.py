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
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per worker process: the workers use every core

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from utils.paper.folder import DIGITIZE_CSV, digitize_folder  # noqa: E402
from utils.runtime import run_script  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, type=Path, help="folder of pictures (PNG, JPEG)")
    p.add_argument("--out", required=True, type=Path, help="folder for the records and digitize.csv (created)")
    p.add_argument("--workers", type=int, default=0, help="processes (0: every core)")
    a = p.parse_args(argv)
    rows = digitize_folder(a.images, a.out, a.workers)
    workers = max(1, min(a.workers or os.cpu_count() or 1, len(rows)))
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "refused", "failed")}
    print(f"read {counts['ok']} of {len(rows)} pictures ({counts['refused']} refused, {counts['failed']} failed; "
          f"{workers} workers) -> {a.out / DIGITIZE_CSV}")
    for r in rows:
        if r["status"] != "ok":
            print(f"  {r['name']}: {r['status']}: {r['error']}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    run_script(main)
