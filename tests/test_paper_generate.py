"""The paper ECG generator (utils/paper/generate.py, distort.py, tools/make_paper.py) on real PTB-XL records: the
truth matches the contract (utils/paper/__init__.py), each lead's ink sits in its box, the trace read back naively
from a clean page's mask is the signal (time, gain and 0 line right), geometric distortions move the mask and the
boxes with the picture, presets differ and seeds repeat, and the tool writes every file and survives a broken
record."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
from PIL import Image

from utils.ecg.io import FS, LEADS, read_record
from utils.paper.distort import KINDS, PRESETS, distort, preset_levels
from utils.paper.generate import (CHOICES, PageStyle, draw_page, draw_page_labels, make_page, page_geometry,
                                  random_style)
from utils.paper.layouts import LAYOUTS, cells

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = sorted((ROOT / "dataset" / "sample" / "val").glob("*.mat"))
CONTRACT_KEYS = {"record", "layout", "speed", "gain", "px_per_mm", "seconds_shown", "distortions", "size", "seed",
                 "leads"}


@pytest.fixture(scope="module")
def sigs():
    return {p.stem: read_record(p) for p in SAMPLE[:4]}


@pytest.fixture(scope="module")
def sig(sigs):
    return next(iter(sigs.values()))


def grey(image):
    return np.asarray(image.convert("L"), np.float32)


def test_the_truth_is_the_contract_for_every_layout(sig):
    for layout in LAYOUTS:
        style = PageStyle(layout=layout, px_per_mm=3.0, speed=50.0 if layout == "6x2" else 25.0)
        image, truth, mask = draw_page(sig, style, 3, record="rec")
        assert CONTRACT_KEYS <= set(truth)
        json.dumps(truth)  # JSON as it is
        assert truth["record"] == "rec" and truth["layout"] == layout and truth["distortions"] == {}
        assert truth["size"] == [image.width, image.height] and mask.shape == (image.height, image.width)
        assert image.mode == "RGB" and mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
        expected = cells(layout, truth["seconds_shown"])
        assert [(e["lead"], e["row"], e["col"], e["t0"], e["t1"]) for e in truth["leads"]] == \
               [(c.lead, c.row, c.col, pytest.approx(c.t0), pytest.approx(c.t1)) for c in expected]
        assert truth["seconds_shown"] == (10.0 if style.speed == 25 else pytest.approx(truth["seconds_shown"]))
        for e in truth["leads"]:
            x0, y0, x1, y1 = e["box"]
            assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height
            # the box spans its stretch at the paper speed
            assert (x1 - x0) == pytest.approx((e["t1"] - e["t0"]) * style.speed * style.px_per_mm, abs=1.5)
    # 50 mm/s on A4 landscape: what fits, not 10 s
    assert draw_page(sig, PageStyle(speed=50.0, px_per_mm=3.0), 0)[1]["seconds_shown"] < 6


@pytest.mark.parametrize("clip", ["row", "none"])
def test_each_leads_ink_sits_in_its_box(sigs, clip):
    for k, (name, s) in enumerate(sigs.items()):
        style = random_style(np.random.default_rng(k), px_per_mm=4.0, clip=clip, gain=10.0)
        _, truth, labels = draw_page_labels(s, style, k, record=name)
        grow = max(1, round(style.trace_width * style.px_per_mm))  # traces are thickened sideways too
        inside = []
        for i, e in enumerate(truth["leads"]):
            ys, xs = np.nonzero(labels == i + 1)
            assert len(ys) > 0, f"{name} {e['lead']}: no ink"
            x0, y0, x1, y1 = e["box"]
            inside.append(np.mean((xs >= x0 - grow) & (xs <= x1 + grow) & (ys >= y0) & (ys < y1)))
        if clip == "row":
            assert min(inside) == 1.0
        else:  # a tall QRS may reach into the next row, as on real printers
            assert np.median(inside) > 0.98 and min(inside) > 0.8, (name, inside)


def read_back(mask, truth, style):
    """Each cell's trace from the mask alone: the centroid of the ink in each pixel column of its box, in mV, at
    the column's time. {index in truth['leads']: (samples, mV read, mV true)}."""
    g = page_geometry(style)
    ppm, pps = style.px_per_mm, style.speed * style.px_per_mm / FS
    out = {}
    for k, e in enumerate(truth["leads"]):
        x0, y0, x1, y1 = e["box"]
        cols = np.arange(x0 + 1, x1 - 1)
        ink = mask[y0:y1, cols] > 0
        has = ink.sum(0) > 0
        rows = np.arange(y0, y1)[:, None]
        centroid = (ink * rows).sum(0)[has] / ink.sum(0)[has]
        mv = (g.zero(e["row"]) * ppm - centroid) / (style.gain * ppm) + e["baseline"]
        samples = e["t0"] * FS + (cols[has] - x0 + 0.5) / pps
        out[k] = (samples, mv)
    return out


@pytest.mark.parametrize("fixed", [
    dict(layout="3x4+1", speed=25.0, gain=10.0, px_per_mm=10.0, orientation="landscape", trace_width=0.2),
    dict(layout="6x2", speed=50.0, gain=5.0, px_per_mm=5.0, orientation="portrait", baseline="record"),
    dict(layout="12x1", speed=50.0, gain=5.0, px_per_mm=6.0, orientation="portrait", label_place="left",
         trace_width=0.2),
    dict(layout="3x4+3", speed=50.0, gain=10.0, px_per_mm=6.0, clip="row", label_place="above"),
], ids=lambda d: f"{d['layout']}-{d['speed']:g}mm/s-{d['gain']:g}mm/mV")
def test_a_clean_pages_mask_reads_back_as_the_signal(sigs, fixed):
    """The naive reading: a thick pen turns a narrow QRS into a bar whose centroid is its middle, and a tall one
    may reach into the next row, so not every lead passes; the 0 line and the gain are checked by the error."""
    for name, s in list(sigs.items())[:2]:
        style = random_style(np.random.default_rng(5), **fixed)
        _, truth, mask = draw_page(s, style, 1, record=name)
        r, errors, slopes = [], [], []
        for k, (samples, mv) in read_back(mask, truth, style).items():
            x = s[LEADS.index(truth["leads"][k]["lead"])].astype(np.float64)
            true = np.interp(samples, np.arange(len(x)), x)
            r.append(np.corrcoef(true, mv)[0, 1])
            errors.append(np.median(np.abs(mv - true)))
            steep = np.abs(np.gradient(true))
            slow = steep < np.percentile(steep, 70)  # the gain where the pen's width does not blur the wave
            slopes.append(np.polyfit(true[slow], mv[slow], 1)[0])
        assert np.mean(np.array(r) > 0.95) >= 0.75 and np.median(r) > 0.96, (name, np.round(r, 3))
        assert np.median(errors) < 0.02 + 1.0 / (style.gain * style.px_per_mm), (name, errors)  # 0 line within ~1 px
        assert abs(np.median(slopes) - 1.0) < 0.06, (name, np.round(slopes, 3))  # mm/mV as printed


def test_reading_back_fails_when_the_geometry_is_wrong(sigs):
    """The read-back test is a real test: the same page read with the neighbouring lead or 0.1 s late fails it."""
    name, s = next(iter(sigs.items()))
    style = PageStyle(px_per_mm=6.0)
    _, truth, mask = draw_page(s, style, 1, record=name)
    shifted, swapped = [], []
    for k, (samples, mv) in read_back(mask, truth, style).items():
        x = s[LEADS.index(truth["leads"][k]["lead"])].astype(np.float64)
        shifted.append(np.corrcoef(np.interp(samples + 0.1 * FS, np.arange(5000), x), mv)[0, 1])
        other = s[(LEADS.index(truth["leads"][k]["lead"]) + 6) % 12].astype(np.float64)
        swapped.append(np.corrcoef(np.interp(samples, np.arange(5000), other), mv)[0, 1])
    assert np.median(shifted) < 0.6 and np.median(swapped) < 0.9


def test_random_styles_are_drawable_and_varied():
    rng = np.random.default_rng(0)
    styles = [random_style(rng) for _ in range(400)]
    for st in styles:
        g = page_geometry(st)  # raises when the style leaves no room
        assert 1.0 <= g.seconds <= 10.0
    for field in ("paper", "orientation", "header", "label_place", "grid_color", "grid_kind", "trace_color", "cal",
                  "cal_shape", "layout", "speed", "gain", "clip", "baseline", "header_font"):
        seen = {getattr(st, field) for st in styles}
        assert len(seen) >= min(3, len(CHOICES[field])), (field, seen)
    assert set(CHOICES["grid_color"]) == {st.grid_color for st in styles}
    assert set(LAYOUTS) == {st.layout for st in styles}
    ppm = [st.px_per_mm for st in styles]
    assert min(ppm) < 3.5 and max(ppm) > 11
    landscape_usual = [st for st in styles if st.orientation == "landscape" and st.speed == 25]
    assert np.mean([page_geometry(st).seconds == 10 for st in landscape_usual]) > 0.95
    assert random_style(np.random.default_rng(1), layout="6x2", gain=5.0).gain == 5.0
    with pytest.raises(TypeError):
        random_style(rng, colour="red")
    with pytest.raises(ValueError):
        PageStyle(grid_color="purple")


def _dark_share(image, mask):
    """The share of `mask`'s pixels that are darker than the paper and grid (ink, or partly ink once down-sampled)."""
    g = grey(image)
    return float(np.mean(g[mask > 0] < 170))


@pytest.mark.parametrize("kinds", [{"rotation": 1.0}, {"perspective": 0.8, "lens": 0.8},
                                   {"crease": 1.0, "wrinkle": 1.0, "rotation": 0.5, "crop": 0.8},
                                   {"resolution": 1.0, "rotation": 0.4}],
                         ids=lambda d: "+".join(d))
def test_geometric_distortions_move_the_mask_and_boxes_with_the_picture(sig, kinds):
    style = PageStyle(px_per_mm=4.0, clip="row", trace_width=0.4, grid_color="grey")
    image, truth, labels = draw_page_labels(sig, style, 2)
    mask = np.where(labels > 0, 255, 0).astype(np.uint8)
    boxes = [e["box"] for e in truth["leads"]]
    out, out_mask, out_boxes, applied = distort(image, mask, boxes, kinds, np.random.default_rng(9), style.px_per_mm)
    assert set(applied) == set(kinds)
    assert out_mask.shape == (out.height, out.width) and set(np.unique(out_mask)) <= {0, 255}
    assert _dark_share(out, out_mask) > 0.9  # the warped mask lies on the warped ink
    if out.size == image.size:  # ... and the unwarped one does not
        assert _dark_share(out, mask) < 0.6
    for k in (0, 5, 12):  # one lead's ink alone, through the same warp (the same seed draws the same warp)
        alone = np.where(labels == k + 1, 255, 0).astype(np.uint8)
        _, m, b, _ = distort(image, alone, boxes, kinds, np.random.default_rng(9), style.px_per_mm)
        ys, xs = np.nonzero(m)
        x0, y0, x1, y1 = b[k]
        assert np.mean((xs >= x0 - 2) & (xs <= x1 + 2) & (ys >= y0 - 2) & (ys <= y1 + 2)) > 0.97
        assert 0 <= x0 <= x1 <= out.width and 0 <= y0 <= y1 <= out.height


def test_every_kind_runs_and_presets_differ_and_seeds_repeat(sig):
    style = PageStyle(px_per_mm=3.0)
    image, truth, mask = draw_page(sig, style, 4)
    boxes = [e["box"] for e in truth["leads"]]
    for kind in KINDS:
        out, m, b, applied = distort(image, mask, boxes, {kind: 1.0}, np.random.default_rng(0), 3.0)
        assert m.shape == (out.height, out.width) and len(b) == len(boxes)
        assert kind in applied or kind == "resolution"  # 75 dpi is already as coarse as level 1
    pages = {}
    for preset in PRESETS:
        kinds = preset_levels(preset, np.random.default_rng(3), 2)
        a = make_page(sig, style, 11, kinds, record="r")
        b = make_page(sig, style, 11, kinds, record="r")
        assert np.array_equal(np.asarray(a[0]), np.asarray(b[0])) and a[1] == b[1] and np.array_equal(a[2], b[2])
        pages[preset] = np.asarray(a[0])
        assert (preset == "clean") == (a[1]["distortions"] == {})
    for p, q in (("clean", "scan"), ("clean", "photo"), ("scan", "photo")):
        assert pages[p].shape != pages[q].shape or np.abs(pages[p].astype(int) - pages[q]).mean() > 2
    other = make_page(sig, style, 12, {}, record="r")[0]
    assert not np.array_equal(np.asarray(other), pages["clean"])  # another seed: another header


def test_make_paper_writes_every_file_and_reports_a_broken_record(tmp_path):
    src = tmp_path / "raw" / "val"
    src.mkdir(parents=True)
    for p in SAMPLE[:3]:
        (src / p.name).write_bytes(p.read_bytes())
    (src / "broken.mat").write_bytes(SAMPLE[0].read_bytes()[:300])
    out = tmp_path / "pages"
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "make_paper.py"), "--records", str(tmp_path / "raw"),
                          "--out", str(out), "--workers", "2", "--px-per-mm", "3", "--seed", "1"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "broken.mat" in run.stdout + run.stderr
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    assert list(index.columns)[:8] == ["stem", "record", "layout", "speed", "gain", "px_per_mm", "preset", "level"]
    assert sorted(index["record"]) == sorted(p.stem for p in SAMPLE[:3])
    for row in index.itertuples():
        truth = json.loads((out / f"{row.stem}.json").read_text())
        image = Image.open(out / row.image)
        mask = np.asarray(Image.open(out / f"{row.stem}_mask.png"))
        assert CONTRACT_KEYS <= set(truth) and truth["record"] == row.record and truth["size"] == list(image.size)
        assert mask.shape == (image.height, image.width) and mask.dtype == np.uint8
        assert row.image.endswith(".jpg") == ("jpeg" in truth["distortions"])
        ecg = scipy.io.loadmat(out / f"{row.stem}.mat")["ecgdata"]
        assert np.array_equal(ecg, read_record(src / f"{row.record}.mat"))
    assert "broken.mat" in (out / "skipped.csv").read_text()
    assert not list(out.glob(".*.tmp"))
