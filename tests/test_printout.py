"""Printouts (utils/inputs/printout.py, utils/report/, tools/printout.py, predict.py --printouts): the geometry read
back from the rendered pixels (5 mm grid, the 10 mm calibration pulse at the stated resolution, lead placement,
25 mm/s), the physical page size of the PNG and the PDF, the header's values against the measurement tool's
function, a record that cannot be read, predict.py's answers on the pages, and the index page in a real headless
browser."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from utils.ecg.io import FS, LEADS, read_record
from utils.ecg.measurements import global_measurements
from utils.inputs.printout import A4, INK, LAYOUT_3X4, PdfWriter, ecg_image, pdf_page, save_png
from utils.report.pages import Verdict, draw_page, write_printouts

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "dataset" / "sample"
PULSES = (1.0, 3.5, 6.0, 8.5)  # seconds: one pulse in each quarter (column) of the 10 s
AMPLITUDE = {lead: 0.1 * (k + 3) for k, lead in enumerate(LEADS)}  # mV: 0.3 (I) ... 1.4 (V6), each lead its own


def pulses_record():
    """A synthetic record whose every lead is flat but for 0.1 s pulses of the lead's own amplitude."""
    sig = np.zeros((12, 5000), np.float32)
    for k, lead in enumerate(LEADS):
        for t in PULSES:
            sig[k, int(t * FS):int((t + 0.1) * FS)] = AMPLITUDE[lead]
    return sig


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The synthetic record's page saved as PNG and read back: (indices, px per mm from the file's dpi)."""
    path = tmp_path_factory.mktemp("page") / "pulses.png"
    save_png(ecg_image(pulses_record()), path)
    im = Image.open(path)
    assert im.mode == "P" and im.size == (2970, 2100)
    dpi = im.info["dpi"]
    assert dpi[0] == pytest.approx(254, abs=0.01) and dpi[1] == pytest.approx(254, abs=0.01)
    # printed at its dpi the page is A4 landscape: 297 x 210 mm
    assert im.size[0] / dpi[0] * 25.4 == pytest.approx(297, abs=0.1) and im.size[1] / dpi[1] * 25.4 == pytest.approx(210, abs=0.1)
    return np.array(im), dpi[0] / 25.4


def run_starts(line, inks):
    """Start positions of runs of pixels whose index is in `inks` along a 1-D line."""
    on = np.isin(line, inks).astype(int)
    return np.flatnonzero(np.diff(np.concatenate([[0], on])) == 1)


def trace_centre(ink, x, top, bottom):
    """The mean row of trace pixels in column x between rows top and bottom."""
    rows = np.flatnonzero(ink[top:bottom, x] == INK["trace"])
    assert len(rows), f"no trace in column {x}, rows {top}-{bottom}"
    return top + rows.mean()


def test_grid_is_1_mm_and_5_mm_from_the_pixels(page):
    ink, ppm = page
    assert ppm == pytest.approx(10)
    s = A4
    y_free = s.px(s.grid_top + 32.5)  # between row 0's and row 1's traces: no ink but the grid
    x_free = s.px(s.grid_left + s.cal_width - 0.5)  # between the calibration pulse and the traces: grid only
    for line in (ink[y_free, s.px(s.grid_left):s.px(s.grid_left + s.grid_width) + 2],
                 ink[s.px(s.grid_top):s.px(s.grid_bottom) + 2, x_free]):
        major = run_starts(line, [INK["major"]])
        lines = run_starts(line, [INK["minor"], INK["major"]])
        assert len(major) > 5 and set(np.diff(major)) == {5 * ppm}, np.diff(major)  # 5 mm
        assert set(np.diff(lines)) == {ppm}  # 1 mm
    # the grid spans the traces: 10 mm for the calibration + 10 s at 25 mm/s, 4 rows of 35 mm
    cols = run_starts(ink[y_free], [INK["major"]])
    assert (cols[-1] - cols[0]) / ppm == pytest.approx(260, abs=0.2)


def test_calibration_pulse_is_1_mv_10_mm_high_on_every_row(page):
    ink, ppm = page
    s = A4
    for row in range(s.n_rows):
        base = s.baseline_y(row)
        top, bottom = base - s.px(15), base + s.px(5)
        flat = trace_centre(ink, s.px(s.grid_left + 1.0), top, bottom)
        high = trace_centre(ink, s.px(s.grid_left + 4.5), top, bottom)  # the pulse spans 2-7 mm
        assert flat == pytest.approx(base, abs=0.6)
        assert (flat - high) / ppm == pytest.approx(10.0, abs=0.1)  # 1 mV at 10 mm/mV
        # 5 mm wide (0.2 s at 25 mm/s): the plateau ends between 6.5 and 7.5 mm
        assert abs(trace_centre(ink, s.px(s.grid_left + 6.5), top, bottom) - high) < 1
        assert abs(trace_centre(ink, s.px(s.grid_left + 7.5), top, bottom) - flat) < 1


def test_each_lead_is_drawn_in_its_place_at_25_mm_per_s(page):
    """Every cell of the 3 x 4 block and the rhythm strip shows the pulse height of the lead the layout names,
    in its own quarter of the 10 s."""
    ink, ppm = page
    s = A4
    cells = [(lead, r, c) for r, row in enumerate(LAYOUT_3X4) for c, lead in enumerate(row)]
    cells += [("II", 3, c) for c in range(4)]  # the rhythm strip: the pulses of all four quarters
    assert [lead for lead, _, c in cells[:12] if c == 0] == ["I", "II", "III"]
    for lead, row, col in cells:
        base = s.baseline_y(row)
        x = s.px(s.grid_left + s.cal_width + (PULSES[col] + 0.05) * s.speed)  # the middle of the pulse
        height_mm = (base - trace_centre(ink, x, base - s.px(18), base + s.px(5))) / ppm
        assert height_mm == pytest.approx(AMPLITUDE[lead] * 10, abs=0.1), (lead, row, col)
        before = s.px(s.grid_left + s.cal_width + (PULSES[col] - 0.2) * s.speed)
        assert trace_centre(ink, before, base - s.px(18), base + s.px(5)) == pytest.approx(base, abs=0.6)
        if row < 3 or col == 0:  # lead label: text ink at the cell's top left
            x0 = s.px(s.grid_left + s.cal_width + col * 2.5 * s.speed)
            y0 = s.px(s.grid_top + row * s.row_height)
            assert (ink[y0:y0 + s.px(7), x0:x0 + s.px(12)] == INK["text"]).sum() > 50, (lead, row, col)
    # 25 mm/s: the rhythm strip's pulses rise 2.5 s = 62.5 mm apart
    base = s.baseline_y(3)
    band = ink[base - s.px(5):base - s.px(3), s.px(s.grid_left + s.cal_width):]  # lead II's 4 mm pulses
    rises = run_starts((band == INK["trace"]).any(axis=0).astype(np.uint8), [1])
    assert len(rises) == 4 and set(np.round(np.diff(rises) / ppm, 1)) == {62.5}, np.diff(rises)


def test_pdf_is_an_a4_page_holding_the_same_pixels(tmp_path):
    im = ecg_image(pulses_record())
    with PdfWriter(tmp_path / "p.pdf") as w:
        w.add_page(pdf_page(im))
        w.add_page(pdf_page(im))
    data = (tmp_path / "p.pdf").read_bytes()
    boxes = re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", data)
    assert len(boxes) == 2 and all((float(w) * 25.4 / 72, float(h) * 25.4 / 72) == pytest.approx((297, 210), abs=0.05)
                                   for w, h in boxes)
    assert b"/Width 2970 /Height 2100" in data and data.count(b"/Type /Page ") == 2
    if shutil.which("pdftoppm"):  # poppler reads it back: at 254 dpi the very same pixels
        subprocess.run(["pdftoppm", "-r", "254", "-f", "1", "-l", "1", "-png", str(tmp_path / "p.pdf"), str(tmp_path / "r")],
                       check=True, timeout=120)
        back = np.array(Image.open(next(tmp_path.glob("r*.png"))).convert("RGB"))
        assert back.shape == (2100, 2970, 3)
        assert (back == np.array(im.convert("RGB"))).all(axis=2).mean() > 0.999


def test_header_shows_the_measurement_tools_values(tmp_path):
    path = SAMPLE / "val" / "ptbxl_09549.mat"
    m = global_measurements(read_record(path))
    canvas, info = draw_page("ptbxl_09549", path)
    h = info["header"]
    def shown(key, unit=""):  # the tool's value as the page prints it: a dash where it is undefined
        return "—" if not np.isfinite(m[key]) else f"{m[key]:.0f}{unit}"
    assert h["Heart rate"] == shown("hr", " bpm") and h["QRS"] == shown("qrs_dur", " ms")
    assert h["PR"] == shown("pr", " ms") and h["QT"] == shown("qt", " ms") and h["QTc Bazett"] == shown("qtc", " ms")
    assert h["QTc Fridericia"] == shown("qtc_fridericia", " ms") and h["P duration"] == shown("p_dur", " ms")
    assert h["P / QRS / T axes"] == f"{shown('p_axis', '°')} / {shown('qrs_axis', '°')} / {shown('t_axis', '°')}"
    assert np.isfinite(m["hr"]) and np.isfinite(m["qrs_dur"]) and np.isfinite(m["qt"])  # a real record: measured
    assert info["measurements"] == pytest.approx({k: (float(v) if np.isfinite(v) else None) for k, v in m.items()})
    ink = canvas.ink
    assert (ink[:A4.px(A4.grid_top - 2), :A4.px(90)] == INK["text"]).sum() > 2000  # the header is drawn
    nan = draw_page("flat", np.zeros((12, 5000), np.float32))[1]  # nothing to measure: dashes, not "nan"
    assert nan["header"]["Heart rate"] == "—" and nan["measurements"]["hr"] is None


def test_answer_truth_and_members_on_the_page():
    path = SAMPLE / "val" / "ptbxl_00108.mat"
    v = Verdict(2, [3, 10], [0.1, 0.05, 0.9, *[0.2] * 6, 0.7, 0.4, 0.1], [0.5] * 12,
                {"resnet50 (fold 0)": [0.3] * 12, "resnet1d (fold 0)": None}, method="mean of 2 models")
    canvas, info = draw_page("r", path, v, truth=[3, 11], task=2)
    assert info["answer"] == "sinus tachycardia, T-wave change" and info["right"] is False
    assert info["truth"] == "sinus tachycardia, ST change" and info["probs"]["sinus tachycardia"] == pytest.approx(0.9)
    assert info["members"] == {"resnet50 (fold 0)": [0.3] * 12, "resnet1d (fold 0)": None}
    header = canvas.ink[:A4.px(A4.grid_top)]
    assert (header == INK["wrong"]).sum() > 500 and (header == INK["wrong_bg"]).sum() > 500  # the WRONG mark
    _, right = draw_page("r", path, Verdict(1, 1, [0.8], [0.5]), truth=1)
    assert right["right"] is True and right["answer"] == "abnormal" and right["thresholds"] == [0.5]


def test_unreadable_record_gets_a_page_saying_so_and_the_others_are_drawn(tmp_path):
    recs = tmp_path / "recs"
    recs.mkdir()
    names = ["ptbxl_00108", "ptbxl_05308", "ptbxl_09549"]
    for n in names:
        shutil.copy(SAMPLE / "val" / f"{n}.mat", recs)
    good = (recs / "ptbxl_00108.mat").read_bytes()
    (recs / "aa_truncated.mat").write_bytes(good[: len(good) // 3])
    (recs / "zz_text.mat").write_text("not a record\n" * 20)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "tools/printout.py", "--records", str(recs), "--out", str(out), "--workers", "2",
                        "--truth", str(SAMPLE / "val_reference.csv"), "--pdf", "all"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"index: {out / 'index.html'}" in r.stdout
    table = json.loads((out / "printouts.json").read_text())
    rows = {row["name"]: row for row in table["records"]}
    assert sorted(rows) == sorted(names + ["aa_truncated", "zz_text"])
    assert rows["aa_truncated"]["status"] == "unreadable" and "truncated or corrupt" in rows["aa_truncated"]["error"]
    assert rows["zz_text"]["status"] == "unreadable" and "not a MAT file" in rows["zz_text"]["error"]
    assert all(rows[n]["status"] == "drawn" and rows[n]["measurements"]["hr"] > 0 for n in names)
    assert table["summary"]["n_unreadable"] == 2 and table["summary"]["has_truth"]
    for n in rows:
        ink = np.array(Image.open(out / f"{n}.png"))
        grid = ink[A4.px(A4.grid_top):A4.px(A4.grid_bottom)]
        if n in names:
            assert (grid == INK["trace"]).sum() > 10000
        else:  # the page says why, in red, and draws no trace
            assert (grid == INK["trace"]).sum() == 0 and (grid == INK["wrong"]).sum() > 3000
        assert (out / "thumbs" / f"{n}.jpg").is_file()
    assert (out / "printouts.pdf").read_bytes().count(b"/Type /Page ") == 5
    assert rows["ptbxl_00108"]["truth"] == "abnormal" and "truth" not in rows["aa_truncated"]


def _probabilities(report):
    return pd.read_csv(report["probabilities"], dtype={"name": str})


def test_predict_printouts_show_the_fused_answers(tiny_raw, tiny_dataset, tiny_trained, tiny_signal, tmp_path):
    """predict.py --printouts with two fused models: a page per test record whose answer, probabilities and member
    probabilities are those of answer.csv and predict_report_probabilities.csv, members named by family and fold."""
    import predict

    picture, signal = tiny_trained[0] / "best_model", tiny_signal[0] / "best_model"
    truth = tiny_raw / "val_reference.csv"
    rep = predict.main(["--data-dir", str(tiny_raw), "--dataset-dir", str(tiny_dataset), "--model", str(picture),
                        str(signal), "--out", str(tmp_path / "a.csv"), "--num-workers", "0", "--truth", str(truth),
                        "--report", str(tmp_path / "r.json"), "--printouts", str(tmp_path / "pages"),
                        "--printout-workers", "2", "--printout-pdf", "none"])
    assert rep["printouts"] == str(tmp_path / "pages" / "index.html") and Path(rep["printouts"]).is_file()
    assert [m["title"] for m in rep["members"]] == ["resnet50 (fold 0)", "resnet1d (fold 0)"]
    rows = {r["name"]: r for r in json.loads((tmp_path / "pages" / "printouts.json").read_text())["records"]}
    answers = pd.read_csv(tmp_path / "a.csv")
    assert sorted(rows) == sorted(answers["name"]) and len(rows) == 20
    probs = _probabilities(rep).pivot(index="name", columns="model", values="p_abnormal")
    tags = pd.read_csv(truth).set_index("name")["tag"]
    for name, tag in zip(answers["name"], answers["tag"]):
        r = rows[name]
        assert r["answer"] == ("abnormal" if tag else "normal") and r["thresholds"] == [pytest.approx(rep["thresholds"])]
        assert r["probs"]["abnormal"] == pytest.approx(probs.loc[name, "fusion"], abs=1e-5)
        assert r["members"]["resnet50 (fold 0)"][0] == pytest.approx(probs.loc[name, str(picture)], abs=1e-5)
        assert r["members"]["resnet1d (fold 0)"][0] == pytest.approx(probs.loc[name, str(signal)], abs=1e-5)
        assert r["right"] == (tag == tags[name]) and not list((tmp_path / "pages").glob("*.pdf"))
    assert sum(not r["right"] for r in rows.values()) == sum(np.array(rep["metrics"]["confusion"])[[0, 1], [1, 0]])


def test_predict_printout_of_a_record_no_model_could_read(tiny_damaged, tiny_trained, tmp_path):
    raw, ds = tiny_damaged
    import predict

    predict.main(["--data-dir", str(raw), "--dataset-dir", str(ds), "--model", str(tiny_trained[0] / "best_model"),
                  "--out", str(tmp_path / "a.csv"), "--num-workers", "0", "--report", str(tmp_path / "r.json"),
                  "--printouts", str(tmp_path / "p"), "--printout-workers", "1"])
    rows = {r["name"]: r for r in json.loads((tmp_path / "p" / "printouts.json").read_text())["records"]}
    assert len(rows) == 21 and rows["zz_truncated"]["status"] == "unreadable"
    assert "truncated or corrupt" in rows["zz_truncated"]["fallback"] and rows["zz_truncated"]["probs"] is None
    assert rows["zz_truncated"]["answer"] == "abnormal"  # the training set's most frequent answer
    assert all(r["status"] == "drawn" for n, r in rows.items() if n != "zz_truncated")
    assert (tmp_path / "p" / "zz_truncated.png").is_file() and (tmp_path / "p" / "zz_truncated.pdf").is_file()


def test_importance_figure_says_when_the_fold_measures_nothing(monkeypatch, tmp_path):
    """A fold too small to move ROC AUC (all importances 0), or with no class measurable at all: the figure says
    so, instead of empty axes (or no figure)."""
    from utils.scoring import plots

    texts = {}

    def keep(fig, path, plt, dpi=90):
        texts[Path(path).name] = " ".join(t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text")))
        plt.close(fig)
        Path(path).write_bytes(b"png")

    monkeypatch.setattr(plots, "_save", keep)
    zeros = pd.DataFrame({"class": ["abnormal"] * 3, "feature": ["hr", "qrs_dur", "pr"], "importance": [0.0] * 3,
                          "std": [0.0] * 3})
    assert plots.plot_importance(zeros, tmp_path / "zero.png", "t", n_records=6) == tmp_path / "zero.png"
    assert "too small" in texts["zero.png"] and "6 records" in texts["zero.png"]
    assert plots.plot_importance(zeros.iloc[:0], tmp_path / "none.png", "t", n_records=6) == tmp_path / "none.png"
    assert "no class has both positives and negatives" in texts["none.png"]
    some = zeros.assign(importance=[0.2, 0.1, 0.0])
    plots.plot_importance(some, tmp_path / "some.png", "t", n_records=60)
    assert "too small" not in texts["some.png"] and "drop in ROC AUC" in texts["some.png"]


# -- the index page in a real browser ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def index_pages(tmp_path_factory):
    """Six sample records with made-up answers (two wrong) and one unreadable record, as write_printouts draws them."""
    out = tmp_path_factory.mktemp("index")
    recs = {n: SAMPLE / "val" / f"{n}.mat" for n in ["ptbxl_00108", "ptbxl_04777", "ptbxl_05308", "ptbxl_05418",
                                                      "ptbxl_09549"]}
    bad = out / "bad.mat"
    bad.write_text("no\n")
    recs["zz_bad"] = bad
    truth = dict(pd.read_csv(SAMPLE / "val_reference.csv").set_index("name")["tag"])
    p = {"ptbxl_00108": 0.9, "ptbxl_04777": 0.2, "ptbxl_05308": 0.7, "ptbxl_05418": 0.1, "ptbxl_09549": 0.6, "zz_bad": None}
    verdicts = {n: Verdict(1, int(p[n] >= 0.5) if p[n] is not None else 1, None if p[n] is None else [p[n]], [0.5],
                           fallback=None if p[n] is not None else "not a MAT file") for n in recs}
    truth["zz_bad"] = 1
    wrong = sorted(n for n in recs if verdicts[n].answer != truth[n])
    assert len(wrong) == 2, wrong  # 04777 is abnormal, 05308 normal
    index = write_printouts(out / "pages", recs, verdicts, {n: truth[n] for n in recs}, workers=2, progress=False)
    return index, recs, p, wrong


def test_index_in_a_headless_browser(index_pages):
    from tools.browser import chromium, unavailable

    why = unavailable()
    if why:
        pytest.skip(f"no headless browser to test the index page in: {why}")
    index, recs, p, wrong = index_pages
    from selenium.webdriver.common.by import By

    driver = chromium(1300, 900)
    try:
        driver.get(index.resolve().as_uri())
        names = lambda: [r.get_attribute("data-name") for r in driver.find_elements(By.CSS_SELECTOR, "#records tbody tr")  # noqa: E731
                         if r.is_displayed()]
        assert names() == list(recs)  # one row per record, in the order given
        assert driver.execute_script("return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        heads = {h.text.strip(): h for h in driver.find_elements(By.CSS_SELECTOR, "#records thead th")}
        heads["P(abnormal)"].click()
        by_p = sorted((n for n in recs if p[n] is not None), key=p.get)
        assert names() == by_p + ["zz_bad"]  # ascending, the record without a probability last
        heads["P(abnormal)"].click()
        assert names() == by_p[::-1] + ["zz_bad"]
        heads["record"].click()
        assert names() == sorted(recs)
        driver.find_element(By.ID, "errors-only").click()
        assert sorted(names()) == wrong and driver.find_element(By.ID, "shown").text == "2"
        driver.find_element(By.ID, "errors-only").click()
        assert len(names()) == len(recs)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        row = driver.find_element(By.CSS_SELECTOR, '#records tbody tr[data-name="ptbxl_05418"] td.num')
        row.click()  # a row (not its links) opens the record's page
        assert driver.current_url == (index.parent / "ptbxl_05418.png").resolve().as_uri()
    finally:
        driver.quit()
