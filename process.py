"""Step 1 of 3: render every ECG record (MAT) to a waveform picture (PNG).

    python process.py --data-dir RAW_DIR --out-dir DATASET_DIR [--size 640] [--workers N] [--force] [--preview N]
                      [--amplitude clip|soft] [--highpass HZ]

RAW_DIR holds train/*.mat, val/*.mat (the test set), trainreference.csv and, if the converter wrote it,
record_groups.csv. DATASET_DIR gets train/<name>.png, val/<name>.png, the label files and record_groups.csv as
they are (every labelled record, rendered or not: train.py makes its folds over all of them, so a picture model's
folds are those of a model reading the records), process_report.csv (every record's outcome) and
render_config.json. A bad record is skipped and reported (train.py leaves it out); the rest are rendered.
"""
import json
import os
from multiprocessing import Pool
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from utils.artifacts import PROCESS_REPORT, RECORD_GROUPS, RENDER_CONFIG, check_data_dir
from utils.atomic import atomic_path, write_text
from utils.config import flag_name, parse_config, script_constants
from utils.ecg.io import (
    FS,
    list_records,
    read_record,
    read_record_groups,
    read_reference,
    read_reference_task2,
    write_record_groups,
    write_reference,
    write_reference_task2,
)
from utils.errors import ConfigError, ECGDataError
from utils.inputs.render import AMPLITUDE_MODES, LAYOUTS, RENDER_DEFAULTS, SCALES, render_image
from utils.runtime import run_script

# -- configuration (every constant is also a command-line flag: DATA_DIR -> --data-dir) --------------------
DATA_DIR = "dataset/sample"  # raw competition layout; the default is the embedded PTB-XL sample
OUT_DIR = "dataset"
SIZE = 640  # picture is SIZE x SIZE pixels
LINE_WIDTH = 2  # pixels (chosen on the picture-settings bench: docs/results.md)
LAYOUT = "12x1"  # 12 bands of full width; or 6x2
MV_RANGE = 2.0  # mV spanned by one lead's band (fixed for all records: amplitude is diagnostic)
SCALE = "fixed"  # fixed (MV_RANGE for every lead and record) | per-lead (each lead fills its band, as the original drew them)
AMPLITUDE = "soft"  # the picture, beyond the band (train.py AMPLITUDES is a features setting): soft (compressed smoothly: taller stays taller) | clip (cut flat at its edge, as before)
HIGHPASS = 0.5  # Hz, high-pass before drawing (the signal family's filter, removes baseline wander); 0 = off (as before)
WORKERS = os.cpu_count() or 1
FORCE = False  # re-render images that are newer than their record
PREVIEW = 0  # write DATASET_DIR/preview.png with this many rendered train records
# ----------------------------------------------------------------------------------------------------------

# The settings a picture is drawn with: a change to any redraws every record (RENDER_CONFIG), and the
# picture-settings bench sets each of them on every row.
RENDER_KEYS = ("SIZE", "LINE_WIDTH", "LAYOUT", "MV_RANGE", "SCALE", "AMPLITUDE", "HIGHPASS")


def render_one(job):
    """Render one record; return (split, name, status, detail). Runs in a worker process."""
    split, name, mat, png, cfg = job
    if not cfg["FORCE"] and png.exists() and png.stat().st_mtime >= mat.stat().st_mtime:
        return split, name, "up-to-date", ""
    try:
        sig = read_record(mat)
    except ECGDataError as e:
        png.unlink(missing_ok=True)  # never leave a stale picture of a record that is now bad
        return split, name, "failed", e.problem
    img = render_image(sig, cfg["SIZE"], cfg["LINE_WIDTH"], cfg["LAYOUT"], cfg["MV_RANGE"], cfg["SCALE"],
                       cfg["AMPLITUDE"], cfg["HIGHPASS"])
    with atomic_path(png) as tmp:  # a killed run never leaves a half-written PNG that looks up to date
        img.save(tmp, format="PNG", compress_level=1)
    return split, name, "rendered", ""


def write_preview(out_dir, refs, n):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    rows = refs[refs["name"].map(lambda s: (out_dir / "train" / f"{s}.png").exists())].head(n)
    if rows.empty:
        return None
    cols = min(4, len(rows))
    nr = (len(rows) + cols - 1) // cols
    fig, axes = plt.subplots(nr, cols, figsize=(4 * cols, 4.3 * nr), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, r in zip(axes.flat, rows.itertuples()):
        ax.imshow(Image.open(out_dir / "train" / f"{r.name}.png"), cmap="gray")
        ax.set_title(f"{r.name}  {'abnormal' if r.tag else 'normal'}", fontsize=9, color="red" if r.tag else "black")
    fig.tight_layout()
    path = out_dir / "preview.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return path


def main(argv=None):
    cfg = parse_config(script_constants(globals()), argv, description=__doc__.split("\n")[0], source_file=__file__,
                       choices={"LAYOUT": sorted(LAYOUTS), "SCALE": SCALES, "AMPLITUDE": AMPLITUDE_MODES})
    data_dir, out_dir = check_data_dir(cfg["DATA_DIR"]), Path(cfg["OUT_DIR"])
    for key in ("SIZE", "LINE_WIDTH", "WORKERS"):
        if cfg[key] < 1:
            raise ConfigError(f"{flag_name(key)} must be >= 1, got {cfg[key]}")
    if not 0 <= cfg["HIGHPASS"] < FS / 2:
        raise ConfigError(f"--highpass must be 0 (off) or a frequency below {FS / 2:g} Hz, got {cfg['HIGHPASS']}")
    if cfg["AMPLITUDE"] != "clip" and cfg["SCALE"] == "per-lead":
        raise ConfigError(f"--amplitude {cfg['AMPLITUDE']} needs --scale fixed: a per-lead scale never leaves the band")

    # Pictures are "up to date" only if drawn with the same settings: on a change, re-render everything.
    settings = {k.lower(): cfg[k] for k in RENDER_KEYS}
    cfg_path = out_dir / RENDER_CONFIG
    try:
        prev = json.loads(cfg_path.read_text()) if cfg_path.exists() else None
    except ValueError:
        prev = None
    if isinstance(prev, dict):  # written before a setting existed: drawn with what it draws when not given
        prev = {**RENDER_DEFAULTS, **prev}
    have_pngs = any(any((out_dir / split).glob("*.png")) for split in ("train", "val"))
    if prev != settings and have_pngs:  # no (or other) settings beside existing pictures: they cannot be trusted
        if not cfg["FORCE"]:
            print(f"render settings differ from {cfg_path} ({prev} -> {settings}): re-rendering every record")
        cfg["FORCE"] = True
        cfg_path.unlink(missing_ok=True)  # a killed run must not leave old pictures under the new settings
    elif not have_pngs:
        write_text(cfg_path, json.dumps(settings, indent=2) + "\n")  # lets a killed first run resume

    refs = read_reference(data_dir / "trainreference.csv") if (data_dir / "trainreference.csv").exists() else None
    task2 = data_dir / "trainreference_task2.csv"
    labels2 = read_reference_task2(task2) if refs is not None and task2.exists() else None
    groups = read_record_groups(data_dir / RECORD_GROUPS) if (data_dir / RECORD_GROUPS).exists() else None  # checked early
    jobs, report = [], []
    for split in ("train", "val"):
        for name in list_records(data_dir / split):
            jobs.append((split, name, data_dir / split / f"{name}.mat", out_dir / split / f"{name}.png", cfg))
        (out_dir / split).mkdir(parents=True, exist_ok=True)
    if refs is not None:  # a labelled record without its file is reported, not silently dropped
        have = set(list_records(data_dir / "train"))
        lacking = {n: "trainreference.csv" for n in refs["name"] if n not in have}
        lacking.update({n: task2.name for n in labels2 or {} if n not in have and n not in lacking})
        for name, listed_in in lacking.items():
            report.append(("train", name, "failed", f"listed in {listed_in} but {data_dir / 'train' / name}.mat is missing"))
    if not jobs:
        raise ECGDataError(data_dir, "no .mat records in train/ or val/")

    workers = min(cfg["WORKERS"], len(jobs))
    pool = Pool(workers) if workers > 1 else None  # --workers 1: no processes, easier to debug
    try:
        results = pool.imap_unordered(render_one, jobs, chunksize=16) if pool else map(render_one, jobs)
        for res in tqdm(results, total=len(jobs), desc="render", unit="rec"):
            report.append(res)
            if res[2] == "failed":
                tqdm.write(f"skipped {res[0]}/{res[1]}: {res[3]}")
    finally:
        if pool:  # close + join, not terminate: workers forked from a process that loaded Paddle report SIGTERM loudly
            pool.close()
            pool.join()

    rep = pd.DataFrame(report, columns=["split", "name", "status", "detail"]).sort_values(["split", "name"])
    with atomic_path(out_dir / PROCESS_REPORT) as tmp:
        rep.to_csv(tmp, index=False)
    if refs is not None:  # whole: train.py's folds are made over every labelled record, then the failed left out
        write_reference(out_dir / "trainreference.csv", refs)
        if labels2 is not None:
            write_reference_task2(out_dir / task2.name, labels2)
    if groups is not None:
        write_record_groups(out_dir / RECORD_GROUPS, groups)
    else:  # never leave an earlier run's groups beside labels they may not describe
        (out_dir / RECORD_GROUPS).unlink(missing_ok=True)
    write_text(cfg_path, json.dumps(settings, indent=2) + "\n")

    counts = rep["status"].value_counts()
    print(f"rendered {counts.get('rendered', 0)}, up to date {counts.get('up-to-date', 0)}, "
          f"failed {counts.get('failed', 0)} (train {len(list_records(data_dir / 'train'))}, "
          f"test {len(list_records(data_dir / 'val'))} records) -> {out_dir}")
    if counts.get("failed", 0):
        print(f"failed records are listed in {out_dir / PROCESS_REPORT}")
    if cfg["PREVIEW"] > 0 and refs is not None:
        path = write_preview(out_dir, refs, cfg["PREVIEW"])
        print(f"preview: {path}")
    if counts.get("failed", 0) == len(rep):
        raise ECGDataError(out_dir / PROCESS_REPORT, "every record failed")


if __name__ == "__main__":
    run_script(main)
