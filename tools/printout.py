"""Print any MAT records as an electrocardiograph does, no model needed: one A4 landscape page per record (the 12
leads 3 x 4 and a lead II rhythm strip at 25 mm/s, 10 mm/mV on the red grid, the measurements above), as PNG and
PDF, and an index page.

    python tools/printout.py --records DIR --out OUT_DIR [--truth FILE] [--task 1|2] [--workers N]
                             [--pdf each|all|none] [--title TEXT]

DIR's *.mat files each get OUT_DIR/<name>.png (2970 x 2100 px, 254 dpi: A4 at 100 %), <name>.pdf (--pdf each;
--pdf all: one OUT_DIR/printouts.pdf), thumbs/<name>.jpg, printouts.json and OUT_DIR/index.html. --truth (the
task's label file, e.g. val_reference.csv) prints each record's true labels. A record that cannot be read gets a
page saying why. predict.py --printouts DIR does the same with the model's answers; `python tools/browser.py
OUT_DIR/index.html SHOT.png` takes a screenshot of the index in headless Chromium.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from utils.ecg.io import list_records  # noqa: E402
from utils.errors import ECGDataError  # noqa: E402
from utils.report.pages import PDF_MODES, write_printouts  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402
from utils.runtime import run_script  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", required=True, type=Path, help="a folder of MAT records (its *.mat files)")
    p.add_argument("--out", required=True, type=Path, help="the pages, their index.html and printouts.json")
    p.add_argument("--truth", default="", help="the records' labels in the task's format (prints them)")
    p.add_argument("--task", type=int, default=1, choices=(1, 2), help="the format of --truth")
    p.add_argument("--workers", type=int, default=0, help="processes (0: every core)")
    p.add_argument("--pdf", default="each", choices=PDF_MODES, help="a PDF per record, one for all, or none")
    p.add_argument("--title", default="", help="printed on every page and the index (default: the folder)")
    a = p.parse_args(argv)
    if not a.records.is_dir():
        raise ECGDataError(a.records, "not a folder of MAT records")
    names = list_records(a.records)
    if not names:
        hint = f" (a competition folder? its test records are in {a.records / 'val'})" if (a.records / "val").is_dir() else ""
        raise ECGDataError(a.records, "no .mat records in this folder" + hint)
    truth = get_task(a.task).read_truth(a.truth) if a.truth else None
    title = a.title or f"records of {a.records.resolve()}"
    index = write_printouts(a.out, {n: a.records / f"{n}.mat" for n in names}, truth=truth, task=a.task,
                            workers=a.workers, pdf=a.pdf, title=title, log=print)
    print(f"index: {index}")
    return index


if __name__ == "__main__":
    run_script(main)
