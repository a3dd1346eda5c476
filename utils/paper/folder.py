"""A folder of pictures of printed ECGs read back into records (tools/digitize.py, predict.py --images), and the
records drawn as process.py draws them, for picture models.

    rows = digitize_folder(images, out, workers=0)   # OUT/<stem>.mat + OUT/digitize.csv; one row per picture
    render_records(records_dir, out_dir, settings)    # OUT_DIR/val/<name>.png + render_config.json
"""
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from ..artifacts import RENDER_CONFIG
from ..atomic import atomic_path, write_csv, write_text
from ..ecg.io import list_records, read_record, write_record
from ..errors import ECGDataError
from ..inputs.render import RENDER_DEFAULTS, render_image
from . import DIGITIZE_COLUMNS
from .digitize import Digitized, digitize

PICTURES = (".png", ".jpg", ".jpeg")
DIGITIZE_CSV = "digitize.csv"


def find_pictures(folder):
    """The pictures to read in `folder`, sorted by name: its PNG and JPEG files, except generated pages' masks."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ECGDataError(folder, "not a folder (expected pictures of printed ECGs: PNG, JPEG)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PICTURES)
    files = [p for p in files if not (p.stem.endswith("_mask") and (folder / f"{p.stem[:-5]}.json").is_file())]
    if not files:
        raise ECGDataError(folder, "no PNG or JPEG pictures in this folder")
    return files


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


def digitize_folder(images, out, workers=0, progress=True):
    """Digitise every picture in `images` (find_pictures) into `out`: OUT/<stem>.mat for each page read, and
    OUT/digitize.csv (DIGITIZE_COLUMNS, written atomically), one row per picture, sorted by name; returns the rows.
    Pictures are read in parallel, one per process (0: every core)."""
    pictures, out = find_pictures(images), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seen, jobs, rows = set(), [], []
    for pic in pictures:  # a.png and a.jpg would both be a.mat: the first one (by name) is read
        if pic.stem in seen:
            rows.append(Digitized(status="failed", error=f"another picture is also named {pic.stem}: "
                                                         f"{pic.name} not read").row(pic.stem))
            continue
        seen.add(pic.stem)
        jobs.append((str(pic), str(out)))
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    bar = dict(total=len(jobs), desc="digitize", unit="page", disable=not progress, file=sys.stderr)
    if workers == 1:
        rows += [digitize_one(j) for j in tqdm(jobs, **bar)]
    else:
        with ProcessPoolExecutor(workers) as ex:
            rows += list(tqdm(ex.map(digitize_one, jobs), **bar))
    rows.sort(key=lambda r: r["name"])
    write_csv(out / DIGITIZE_CSV, rows, DIGITIZE_COLUMNS)
    return rows


def render_records(records_dir, out_dir, settings):
    """Draw every record of `records_dir` as process.py would with `settings` (a picture model's render_config):
    OUT_DIR/val/<name>.png and OUT_DIR/render_config.json; returns {name: problem} of the records not drawn."""
    s = {**RENDER_DEFAULTS, **settings}
    out = Path(out_dir) / "val"
    out.mkdir(parents=True, exist_ok=True)
    bad = {}
    for name in tqdm(list_records(records_dir), desc="render", unit="rec", file=sys.stderr):
        try:
            sig = read_record(Path(records_dir) / f"{name}.mat")
        except ECGDataError as e:
            bad[name] = e.problem
            continue
        img = render_image(sig, s["size"], s["line_width"], s["layout"], s["mv_range"], s["scale"], s["amplitude"],
                           s["highpass"])
        with atomic_path(out / f"{name}.png") as tmp:
            img.save(tmp, format="PNG", compress_level=1)
    write_text(Path(out_dir) / RENDER_CONFIG, json.dumps(settings, indent=2) + "\n")
    return bad
