"""One printed page per record, as an electrocardiograph prints it: the ECG on its grid (utils/inputs/printout.py)
under a header with the record's name, its measurements (utils.ecg.measurements.global_measurements, the
measurement tool's function) and, when a model answered, the answer: Task 1 normal/abnormal with P(abnormal)
and its threshold, Task 2 the answered diagnoses with their probabilities and thresholds, and for a fusion each
member's probability for them; with the truth, the true labels and a clear mark where the answer is wrong.

    write_printouts(out_dir, records, verdicts=None, truth=None, task=1, workers=0, pdf="each", title="")

draws every record on a pool of processes (every core by default): out_dir/<name>.png (A4 landscape at 10 px/mm,
254 dpi), <name>.pdf (pdf="each"; "all": one printouts.pdf; "none"), thumbs/<name>.jpg, printouts.json (a row
per record: status, answer, probabilities, measurements, right/wrong) and index.html (utils/report/index.py).
A record that cannot be read gets a page saying why; the others are drawn all the same. A record digitised from
a picture (predict.py --images) is drawn as read (blank where paper did not print a lead) and, in
<name>_paper.jpg (also its thumbnail), beside that picture.
"""
import json
import math
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ..atomic import atomic_path, umask_mode, write_text
from ..ecg.gaps import fill_gaps
from ..ecg.io import read_record
from ..ecg.measurements import GLOBAL, global_measurements
from ..errors import ConfigError, ECGDataError
from ..inputs.printout import (A4, Canvas, PdfWriter, draw_ecg, draw_grid, draw_scale_line, font, pdf_page,
                               save_png)
from ..scoring.tasks import get_task

PDF_MODES = ("each", "all", "none")  # a PDF per record | one multi-page printouts.pdf | PNG only
THUMB_REDUCE = 7  # thumbnails: the page reduced 7 times (424 x 300 px)
INDEX_FILE, TABLE_FILE, PDF_ALL = "index.html", "printouts.json", "printouts.pdf"
MAX_MEMBER_COLUMNS = 4  # a fusion of more members shows their range instead of a column each


@dataclass
class Verdict:
    """A model's answer for one record, as predict.py decided it. `probs` and `thresholds`: one per
    probability of the task (its Task's prob_names; Task 1: [P(abnormal)]); `members`: {member title: its probabilities, or None where it could
    not read the record} for a fusion; `fallback`: why no model read the record (its answer is the training
    set's most frequent one)."""

    task: int
    answer: object  # Task 1: tag 0/1; Task 2: 1-based class indices
    probs: list = None
    thresholds: list = None
    members: dict = field(default_factory=dict)
    fallback: str = None
    method: str = ""  # how the members were fused, e.g. "mean of 3 models"


def _num(v, digits=0, unit=""):
    return "—" if v is None or not math.isfinite(v) else f"{v:.{digits}f}{unit}"


def measurement_lines(m):
    """[(label, text)] of the header's measurements, from global_measurements' dict (NaN: '—')."""
    axes = " / ".join(_num(m[k], 0, "°") for k in ("p_axis", "qrs_axis", "t_axis"))
    return [("Heart rate", _num(m["hr"], 0, " bpm")), ("P duration", _num(m["p_dur"], 0, " ms")),
            ("PR", _num(m["pr"], 0, " ms")), ("QRS", _num(m["qrs_dur"], 0, " ms")), ("QT", _num(m["qt"], 0, " ms")),
            ("QTc Bazett", _num(m["qtc"], 0, " ms")), ("QTc Fridericia", _num(m["qtc_fridericia"], 0, " ms")),
            ("P / QRS / T axes", axes)]


def _p(v):
    return "—" if v is None or not math.isfinite(v) else f"{v:.3f}"


# -- one page ---------------------------------------------------------------------------------------------------
def _wrap(canvas, text, width_mm, size_mm, bold=False, sep=" ", max_lines=None):
    """Greedy line breaks of `text` at `sep` to fit `width_mm`; at most `max_lines`, the last ending in "…" when
    text was left out."""
    lines, cur = [], ""
    for word in text.split(sep):
        trial = word if not cur else cur + sep + word
        if cur and canvas.text_width(trial, size_mm, bold) > width_mm:
            lines.append(cur + sep.rstrip())
            cur = word
        else:
            cur = trial
    lines += [cur] if cur else []
    if max_lines and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(", ") + " …"
    return lines


def _header_left(canvas, name, source, lines, title):
    s = canvas.sheet
    x = s.grid_left
    canvas.text(x, 7.0, name, size_mm=5.5, bold=True)
    right = s.grid_left + s.grid_width
    if title:
        canvas.text(right, 7.5, title, size_mm=2.6, ink="muted", anchor="ra")
    if source:
        canvas.text(right, 11.0, source, size_mm=2.2, ink="muted", anchor="ra")
    canvas.text(x, 16.0, "Measurements", size_mm=3.0, bold=True)
    for k, (label, text) in enumerate(lines):
        y = 20.5 + 4.2 * k
        canvas.text(x, y, label, size_mm=3.0, ink="muted")
        canvas.text(x + 33.0, y, text, size_mm=3.0)


def _member_columns(verdict):
    """[(column header, {label: probs})]: a column per member, or one 'members' range column for many."""
    members = verdict.members or {}
    if not members:
        return []
    if len(members) <= MAX_MEMBER_COLUMNS:
        return [(f"#{i + 1}", {label: p}) for i, (label, p) in enumerate(members.items())]
    return [("members", dict(members))]


def _member_text(ps, k):
    vals = [p[k] for p in ps.values() if p is not None]
    if not vals:
        return "—"
    return _p(vals[0]) if len(ps) == 1 else f"{min(vals):.3f}–{max(vals):.3f}"


def _header_answer(canvas, verdict, truth, x, x_end):
    """The answer block; returns {text shown} for the record's table row."""
    task = get_task(verdict.task)
    wrong = truth is not None and not task.is_right(verdict.answer, truth)
    right_edge = canvas.text(x, 16.0, f"Answer (Task {task.number})", size_mm=3.0, bold=True)
    if verdict.method:
        canvas.text(right_edge + 2.0, 16.4, verdict.method, size_mm=2.6, ink="muted")
    text = task.answer_text(verdict.answer)
    size = 3.6 if task.several else 5.0  # one word (NORMAL/ABNORMAL) big; a list of diagnoses smaller
    shown = text if task.several else text.upper()
    while canvas.text_width(shown, size, True) > x_end - x and size > 2.4:
        size -= 0.2
    canvas.text(x, 20.2, shown, size_mm=size, bold=True, ink="wrong" if wrong else "text")
    y = 27.0
    if verdict.fallback:
        for line in _wrap(canvas, f"no model could read this record ({verdict.fallback}): answered with the training "
                                  f"set's most frequent answer", x_end - x, 2.6, max_lines=3):
            canvas.text(x, y, line, size_mm=2.6, ink="wrong")
            y += 3.4
        return
    # the table: answered classes (Task 1: P(abnormal)) and, with the truth, the true ones not answered
    max_rows = 5
    answered_cols = task.answer_columns(verdict.answer)
    rows = sorted(answered_cols) if task.several else [0]
    marks = truth is not None and task.several  # a mark per class: which answered are true, which true were missed
    missed = sorted(task.answer_columns(truth) - set(rows)) if marks else []
    hidden = max(0, len(rows) + len(missed) - max_rows)
    rows = rows[:max(0, max_rows - len(missed))] + missed[:max_rows]  # the missed ones are always shown
    cols = _member_columns(verdict)
    xs = [x, x + 44.0, x + 55.0] + [x + 71.0 + 12.0 * i for i in range(len(cols))]
    mark_x = (xs[-1] + (22.0 if cols and cols[0][0] == "members" else 12.0)) if cols else x + 71.0
    heads = ["class" if task.several else "probability", "p", "threshold"] + [c for c, _ in cols]
    for hx, head in zip(xs, heads):
        canvas.text(hx, y, head, size_mm=2.6, ink="muted")
    if marks:
        canvas.text(mark_x, y, "truth", size_mm=2.6, ink="muted")
    y += 3.8
    for k in rows:
        cells = [task.prob_label(k), _p(verdict.probs[k]), _p(verdict.thresholds[k])]
        cells += [_member_text(ps, k) for _, ps in cols]
        answered = k in answered_cols or not task.several
        for cx, cell in zip(xs, cells):
            canvas.text(cx, y, cell, size_mm=3.0, ink="text" if answered else "muted")
        if marks:
            true = k in task.answer_columns(truth)
            mark, ink = (("✓", "right") if true else ("✗ not true", "wrong")) if answered else ("✗ missed", "wrong")
            canvas.text(mark_x, y, mark, size_mm=3.0, bold=True, ink=ink)
        y += 4.0
    if hidden:
        canvas.text(x, y, f"+ {hidden} more (printouts.json)", size_mm=2.6, ink="muted")
        y += 3.6
    if cols:
        legend = ("   ".join(f"{c} {label}" for c, ps in cols for label in ps) if cols[0][0] != "members"
                  else f"members: the lowest–highest of {len(verdict.members)}: " + ", ".join(verdict.members))
        for line in _wrap(canvas, legend, x_end - x, 2.4, max_lines=2):
            canvas.text(x, y, line, size_mm=2.4, ink="muted")
            y += 3.0


def _header_truth(canvas, task, answer, truth, x, x_end):
    """The truth block (`task`: a Task); with an answer, right or wrong, and for several answers what differs."""
    canvas.text(x, 16.0, "Truth", size_mm=3.0, bold=True)
    if truth is None:
        canvas.text(x, 20.5, "not in the truth file", size_mm=3.0, ink="muted")
        return
    y = 20.5
    for line in _wrap(canvas, task.answer_text(truth), x_end - x, 3.2, sep=", ", max_lines=3):
        canvas.text(x, y, line, size_mm=3.2, bold=True)
        y += 4.0
    if answer is None:
        return
    y += 1.5
    if task.is_right(answer, truth):
        canvas.text(x, y, "✓ right", size_mm=4.5, bold=True, ink="right")
        return
    canvas.rect(x - 1.0, y - 1.0, x_end, y + 7.0, "wrong_bg", outline="wrong", width_px=4)
    canvas.text(x + 1.0, y + 0.3, "✗ WRONG", size_mm=5.0, bold=True, ink="wrong")
    y += 9.0
    if task.several:
        got, want = task.answer_columns(answer), task.answer_columns(truth)
        for label, ks in (("missed", want - got), ("not true", got - want)):
            if ks:
                for line in _wrap(canvas, f"{label}: " + ", ".join(task.prob_names[k] for k in sorted(ks)), x_end - x,
                                  2.6, sep=", ", max_lines=3):
                    canvas.text(x, y, line, size_mm=2.6, ink="wrong")
                    y += 3.3


def _unreadable(canvas, problem):
    s = canvas.sheet
    x0, x1 = s.grid_left + 30, s.grid_left + s.grid_width - 30
    y0 = s.grid_top + 35
    lines = _wrap(canvas, problem, x1 - x0 - 10, 3.5, max_lines=6)
    canvas.rect(x0, y0, x1, y0 + 22 + 4.8 * len(lines), "wrong_bg", outline="wrong", width_px=5)
    canvas.text(x0 + 5, y0 + 5, "This record could not be read", size_mm=7.0, bold=True, ink="wrong")
    for k, line in enumerate(lines):
        canvas.text(x0 + 5, y0 + 16 + 4.8 * k, line, size_mm=3.5, ink="wrong")


def _shown_path(path):
    """A record's path as the page prints it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def draw_page(name, record, verdict=None, truth=None, task=1, sheet=A4, title="", source=None, truth_known=None):
    """(Canvas, info) of one record's page. `record`: a MAT path or a (12, N) array in mV; `verdict`: the model's
    answer (None: drawn without one); `truth`: the record's true label (None: not known; with `truth_known` the
    page says the truth file lacks it). `info` is the record's
    row of printouts.json: status ("drawn" or "unreadable", with `error`), measurements, the header's texts, the
    answer, its probabilities and (with the truth) `right`."""
    canvas = Canvas(sheet)
    task = get_task(verdict.task if verdict is not None else task)
    info = {"name": name, "status": "drawn", "error": None}
    sig = None
    if isinstance(record, np.ndarray):
        sig = record
    else:
        source = _shown_path(record) if source is None else source
        try:
            sig = read_record(record, gaps="keep")  # drawn as read: what paper did not print stays blank
        except ECGDataError as e:
            info.update(status="unreadable", error=e.problem)
    m = {k: float("nan") for k in GLOBAL}
    if sig is not None:
        try:
            m = global_measurements(fill_gaps(sig))  # measured as the models read it
        except Exception as e:  # a measurement bug must not cost the page: say so on it
            info["measurement_error"] = f"{type(e).__name__}: {e}"
        draw_ecg(canvas, sig)
    else:
        draw_grid(canvas)
        draw_scale_line(canvas)
        _unreadable(canvas, info["error"])
    info["measurements"] = {k: (float(v) if math.isfinite(v) else None) for k, v in m.items()}
    lines = measurement_lines(m)
    if "measurement_error" in info:
        lines.append(("measurements failed", info["measurement_error"][:60]))
    info["header"] = dict(lines)
    _header_left(canvas, name, source, lines, title)
    s = sheet
    x_answer, x_truth, x_end = s.grid_left + 72.0, s.grid_left + 208.0, s.grid_left + s.grid_width
    if verdict is not None:
        _header_answer(canvas, verdict, truth, x_answer, x_truth - 4.0)
        info.update(answer=task.answer_text(verdict.answer), answer_value=verdict.answer, fallback=verdict.fallback,
                    probs=None if verdict.probs is None else dict(zip(task.prob_names, map(float, verdict.probs))),
                    thresholds=None if verdict.thresholds is None else list(map(float, verdict.thresholds)),
                    members=verdict.members or {})
    if truth is not None or truth_known:
        _header_truth(canvas, task, None if verdict is None else verdict.answer, truth, x_truth, x_end)
    if truth is not None:
        info["truth"] = task.answer_text(truth)
        info["truth_value"] = truth
        if verdict is not None:
            info["right"] = bool(task.is_right(verdict.answer, truth))
    return canvas, info


# -- many pages ---------------------------------------------------------------------------------------------------
def _draw_job(job):
    """Draw and save one page (runs in a pool worker); returns its printouts.json row (+ the PDF page for "all")."""
    name, record, verdict, truth, opts = job
    canvas, info = draw_page(name, record, verdict, truth, opts["task"], title=opts["title"],
                             source=opts.get("sources", {}).get(name), truth_known=opts["truth_known"])
    out = Path(opts["out_dir"])
    image = canvas.image()
    with atomic_path(out / f"{name}.png") as tmp:
        save_png(image, tmp)
    info["page"] = f"{name}.png"
    thumb = image.convert("RGB").reduce(THUMB_REDUCE)
    with atomic_path(out / "thumbs" / f"{name}.jpg") as tmp:
        thumb.save(tmp, format="JPEG", quality=85)
    info["thumb"] = f"thumbs/{name}.jpg"
    picture = opts.get("images", {}).get(name)
    if picture is not None:  # a page read from paper: the picture beside what was read, to check it by eye
        both = beside(picture, image)
        with atomic_path(out / f"{name}_paper.jpg") as tmp:
            both.save(tmp, format="JPEG", quality=88)
        info["paper"], info["source_image"] = f"{name}_paper.jpg", str(picture)
        with atomic_path(out / "thumbs" / f"{name}.jpg") as tmp:
            both.reduce(THUMB_REDUCE).save(tmp, format="JPEG", quality=85)
    if opts["pdf"] == "each":
        with atomic_path(out / f"{name}.pdf") as tmp, PdfWriter(tmp) as w:
            w.add_page(pdf_page(image))
        info["pdf"] = f"{name}.pdf"
    elif opts["pdf"] == "all":
        info["_pdf_page"] = pdf_page(image)
        info["pdf"] = PDF_ALL
    return info


def beside(picture, page):
    """The source `picture` (a path), scaled to the page's height, left of the page: one RGB image. A picture
    that cannot be opened is a grey panel saying so."""
    from PIL import Image, ImageDraw, ImageOps

    page = page.convert("RGB")
    try:
        with Image.open(picture) as im:
            src = ImageOps.exif_transpose(im).convert("RGB")
        src = src.resize((max(1, round(src.width * page.height / src.height)), page.height), Image.LANCZOS)
    except (OSError, ValueError) as e:
        src = Image.new("RGB", (page.height * 3 // 4, page.height), (200, 200, 200))
        ImageDraw.Draw(src).text((20, 20), f"cannot open {Path(picture).name}: {e}"[:80], fill=(0, 0, 0),
                                 font=font(30))
    out = Image.new("RGB", (src.width + page.width, page.height), (255, 255, 255))
    out.paste(src, (0, 0))
    out.paste(page, (src.width, 0))
    return out


def default_workers():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def write_printouts(out_dir, records, verdicts=None, truth=None, task=1, workers=0, pdf="each", title="",
                    progress=True, log=None, images=None):
    """Draw a page per record into `out_dir` and write its index; returns the index's path.

    records: {name: MAT path} (in the index's order); verdicts: {name: Verdict} (None: no model, pages without an
    answer); truth: {name: true label} (None: no truth); workers: processes (0: every core); images: {name: the
    picture the record was digitised from}: each such page is also drawn beside it, <name>_paper.jpg."""
    if pdf not in PDF_MODES:
        raise ConfigError(f"printouts: pdf must be one of {', '.join(PDF_MODES)}, got {pdf!r}")
    from .index import write_index

    t0 = time.time()
    out = Path(out_dir)
    (out / "thumbs").mkdir(parents=True, exist_ok=True)
    verdicts, truth_known = verdicts or {}, truth is not None
    truth = truth or {}
    opts = {"out_dir": str(out), "task": task, "pdf": pdf, "title": title, "truth_known": truth_known,
            "images": {n: str(p) for n, p in (images or {}).items()}}
    jobs = [(name, path, verdicts.get(name), truth.get(name), opts) for name, path in records.items()]
    workers = max(1, min(workers or default_workers(), len(jobs) or 1))
    font(30), font(30, True)  # load before forking: each worker inherits them
    rows = []
    pdf_tmp = None
    writer = None
    try:
        if pdf == "all":
            pdf_tmp = out / f".{PDF_ALL}.tmp"
            writer = PdfWriter(pdf_tmp)
        if workers == 1 or len(jobs) < 2:
            results = map(_draw_job, jobs)
            pool = None
        else:
            methods = multiprocessing.get_all_start_methods()
            pool = multiprocessing.get_context("fork" if "fork" in methods else "spawn").Pool(workers)
            results = pool.imap(_draw_job, jobs, chunksize=max(1, min(8, len(jobs) // (4 * workers))))
        try:
            if progress:
                from tqdm import tqdm

                results = tqdm(results, total=len(jobs), desc="printouts", unit="page")
            for info in results:
                page = info.pop("_pdf_page", None)
                if writer is not None and page is not None:
                    writer.add_page(page)
                rows.append(info)
        finally:
            if pool is not None:
                pool.close()
                pool.join()
        if writer is not None:
            writer.close()
            writer = None
            os.chmod(pdf_tmp, umask_mode(0o666))
            os.replace(pdf_tmp, out / PDF_ALL)
    finally:
        if writer is not None:
            writer.f.close()
        if pdf_tmp is not None and pdf_tmp.exists():
            pdf_tmp.unlink()
    seconds = time.time() - t0
    summary = {"task": task, "n_records": len(rows), "n_unreadable": sum(r["status"] != "drawn" for r in rows),
               "has_answers": bool(verdicts), "has_truth": truth_known,
               "n_wrong": sum(r.get("right") is False for r in rows) if truth_known and verdicts else None,
               "pdf": pdf, "workers": workers, "seconds": round(seconds, 2),
               "records_per_second": round(len(rows) / seconds, 2) if seconds > 0 else None, "title": title}
    write_text(out / TABLE_FILE, json.dumps({"summary": summary, "records": rows}, indent=1, allow_nan=False,
                                            default=_jsonable) + "\n")
    index = write_index(out / INDEX_FILE, rows, summary)
    if log is not None:
        log(f"printouts: {len(rows)} pages ({summary['n_unreadable']} unreadable) in {out}, {seconds:.1f} s "
            f"({summary['records_per_second']} records/s on {workers} workers); index {index}")
    return index


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON: {type(v).__name__}")

