"""Generate paper ECGs with their ground truth: N pages per record, each in a random printer style (utils/paper/
generate.py) and scanned or photographed (utils/paper/distort.py).

    python tools/make_paper.py --records DIR --out OUT_DIR [--n N] [--preset clean|scan|photo|mixed] [--level 0|1|2|3]
                               [--layout mixed|3x4+1|3x4+3|3x4|6x2|12x1] [--seed S] [--workers W]
                               [--px-per-mm P] [--speed 0|25|50] [--gain 0|5|10|20]

DIR is a folder of MAT records, or a competition folder (train/, val/): its val/ records are used. Each page
`<record>_p<k>` is written as the contract in utils/paper/__init__.py says: `<stem>.png` (or `.jpg` when the
page was JPEG-compressed, at that quality), `<stem>.json` (the truth), `<stem>.mat` (the source record) and
`<stem>_mask.png` (trace ink), each file atomically; then OUT_DIR/index.csv (stem, record, layout, speed, gain,
px_per_mm, preset, level, distortions, image). Page k of a record is the same for the same --seed and flags,
whatever else is generated. A record that cannot be read is skipped with a one-line error (also in
OUT_DIR/skipped.csv); the run goes on.
"""
import argparse
import json
import os
import sys
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from utils.atomic import atomic_path, atomic_paths  # noqa: E402
from utils.ecg.io import list_records, read_record  # noqa: E402
from utils.errors import ConfigError, ECGDataError  # noqa: E402
from utils.paper.distort import PRESETS, jpeg_quality, preset_levels  # noqa: E402
from utils.paper.generate import make_page, random_style  # noqa: E402
from utils.paper.layouts import LAYOUTS  # noqa: E402
from utils.runtime import run_script  # noqa: E402

INDEX_COLUMNS = ("stem", "record", "layout", "speed", "gain", "px_per_mm", "preset", "level", "distortions", "image")
MIXED = (("clean", 0.2), ("scan", 0.4), ("photo", 0.4))


def page_plan(record, k, seed, preset, level, fixed):
    """(style, preset, level, {kind: level}, drawing seed) of page k of `record`: from its own generator, seeded by
    (seed, the record's name, k)."""
    rng = np.random.default_rng([int(seed), zlib.crc32(record.encode()), int(k)])
    style = random_style(rng, **fixed)
    if preset == "mixed":
        names, p = zip(*MIXED)
        preset = names[int(rng.choice(len(names), p=p))]
    level = int(rng.integers(1, 4)) if not level else int(level)
    kinds = preset_levels(preset, rng, level) if preset != "clean" else {}
    return style, preset, (0 if preset == "clean" else level), kinds, int(rng.integers(2 ** 31 - 1))


def write_page(out, stem, image, truth, mask, sig):
    """The contract's four files, each atomic; a picture of the other type left by an earlier run is removed."""
    jpeg = "jpeg" in truth["distortions"]
    ext, other = (".jpg", ".png") if jpeg else (".png", ".jpg")
    paths = [out / f"{stem}.mat", out / f"{stem}_mask.png", out / f"{stem}.json", out / f"{stem}{ext}"]
    with atomic_paths(paths, remove_first=[out / f"{stem}{other}"]) as (t_mat, t_mask, t_json, t_img):
        scipy.io.savemat(t_mat, {"ecgdata": np.asarray(sig, np.float32)}, do_compression=True, appendmat=False)
        Image.fromarray(mask).save(t_mask, format="PNG", compress_level=6)
        t_json.write_text(json.dumps(truth, indent=1))
        if jpeg:
            image.save(t_img, format="JPEG", quality=jpeg_quality(truth["distortions"]["jpeg"]))
        else:
            image.save(t_img, format="PNG", compress_level=3)
    return paths[-1].name


def make_record(job):
    """All pages of one record: ([index row], error line or '')."""
    path, out, n, seed, preset, level, fixed = job
    record = Path(path).stem
    try:
        sig = read_record(path)
        rows = []
        for k in range(n):
            style, name, lvl, kinds, page_seed = page_plan(record, k, seed, preset, level, fixed)
            image, truth, mask = make_page(sig, style, page_seed, kinds, record, jpeg_roundtrip=False)
            truth["preset"], truth["level"] = name, lvl
            stem = f"{record}_p{k}"
            file = write_page(Path(out), stem, image, truth, mask, sig)
            rows.append(dict(stem=stem, record=record, layout=style.layout, speed=style.speed, gain=style.gain,
                             px_per_mm=style.px_per_mm, preset=name, level=lvl,
                             distortions=";".join(f"{a}={b:g}" for a, b in truth["distortions"].items()), image=file))
        return rows, ""
    except ECGDataError as e:
        return [], str(e)
    except Exception as e:  # noqa: BLE001 - one bad record must not end a long run: report it and go on
        return [], f"{path}: {type(e).__name__}: {e}"


def run_jobs(jobs, workers):
    """make_record's results, in the order they finish."""
    if workers == 1 or len(jobs) == 1:
        yield from map(make_record, jobs)
        return
    with ProcessPoolExecutor(min(workers, len(jobs))) as ex:
        for f in as_completed([ex.submit(make_record, job) for job in jobs]):
            yield f.result()


def find_records(records):
    folder = records / "val" if (records / "val").is_dir() else records
    if not folder.is_dir():
        raise ECGDataError(records, "not a folder of MAT records")
    names = list_records(folder)
    if not names:
        raise ECGDataError(folder, "no .mat records in this folder")
    return [folder / f"{n}.mat" for n in names]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", required=True, type=Path,
                   help="a folder of MAT records, or a competition folder (its val/)")
    p.add_argument("--out", required=True, type=Path, help="the pages' folder (created)")
    p.add_argument("--n", type=int, default=1, help="pages per record")
    p.add_argument("--preset", default="mixed", choices=(*PRESETS, "mixed"),
                   help="distortions: clean, scan, photo, or mixed (20 %% clean, 40 %% scan, 40 %% photo)")
    p.add_argument("--level", type=int, default=0, choices=(0, 1, 2, 3), help="the preset's strength; 0: random 1-3")
    p.add_argument("--layout", default="mixed", choices=(*LAYOUTS, "mixed"),
                   help="the page layout; mixed: a realistic mix")
    p.add_argument("--seed", type=int, default=0, help="with the record's name and the page number, seeds each page")
    p.add_argument("--workers", type=int, default=0, help="processes (0: every core)")
    p.add_argument("--px-per-mm", type=float, default=0.0, help="drawing resolution; 0: random 3-12 px/mm (75-300 dpi)")
    p.add_argument("--speed", type=float, default=0.0, choices=(0.0, 25.0, 50.0), help="paper speed mm/s; 0: random")
    p.add_argument("--gain", type=float, default=0.0, choices=(0.0, 5.0, 10.0, 20.0), help="mm/mV; 0: random")
    a = p.parse_args(argv)
    if a.n < 1:
        raise ConfigError("--n must be at least 1")
    if a.px_per_mm and not 2.0 <= a.px_per_mm <= 24.0:
        raise ConfigError(f"--px-per-mm {a.px_per_mm:g}: 2 to 24 (51 to 610 dpi), or 0 for random")
    paths = find_records(a.records)
    fixed = {k: v for k, v in (("layout", None if a.layout == "mixed" else a.layout),
                               ("px_per_mm", a.px_per_mm or None), ("speed", a.speed or None),
                               ("gain", a.gain or None)) if v is not None}
    a.out.mkdir(parents=True, exist_ok=True)
    jobs = [(str(path), str(a.out), a.n, a.seed, a.preset, a.level, fixed) for path in paths]
    workers = a.workers or os.cpu_count() or 1
    rows, errors = [], []
    with tqdm(total=len(jobs) * a.n, desc="pages", unit="page") as bar:
        for got, error in run_jobs(jobs, workers):
            rows += got
            if error:
                errors.append(error)
                tqdm.write(f"skipped {error}")
            bar.update(a.n)
    index = pd.DataFrame(rows, columns=list(INDEX_COLUMNS)).sort_values("stem", ignore_index=True)
    with atomic_path(a.out / "index.csv") as tmp:
        index.to_csv(tmp, index=False)
    skipped = a.out / "skipped.csv"
    if errors:
        with atomic_path(skipped) as tmp:
            pd.DataFrame({"error": sorted(errors)}).to_csv(tmp, index=False)
    elif skipped.exists():
        skipped.unlink()
    print(f"wrote {len(index)} pages of {len(jobs) - len(errors)} records to {a.out}"
          + (f"; skipped {len(errors)} record(s) (listed in {skipped})" if errors else "")
          + f"; index: {a.out / 'index.csv'}")
    if not rows:
        raise ECGDataError(a.records, "no record could be drawn")
    return index


if __name__ == "__main__":
    run_script(main)
