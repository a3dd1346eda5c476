"""The photo dewarp step (utils/paper/dewarp.py) and its hook in the digitiser (utils/paper/digitize.py): pages of a
real sample record drawn by the page generator (utils/paper/generate.py) and photographed by utils/paper/distort.py
(perspective and barrel lens distortion, the desk showing) at 5 px per mm.

Measured when written (2026-12-07, seed 1, record ptbxl_05308): without the dewarp the perspective + lens page is
refused ("no grid and 13 % of the picture is dark ink": the desk), with it read at 7.8 dB; the lens term found
0.06 for a true 0.072. A clean page and a scanned-like page (turned, JPEG'd) are not touched by the hook."""
from pathlib import Path

import numpy as np
import pytest

import utils.paper.digitize as digitize_module
from utils.ecg.io import read_record
from utils.paper import generate
from utils.paper.dewarp import dewarp, find_sheet
from utils.paper.digitize import digitize
from utils.paper.score import record_snr

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "dataset" / "sample" / "val" / "ptbxl_05308.mat"
PHOTO = {"perspective": 0.6, "lens": 0.6}


@pytest.fixture(scope="module")
def sig():
    return read_record(RECORD)


def page(sig, kinds, seed=1):
    style = generate.PageStyle(layout="3x4+1", header="brief", px_per_mm=5.0, grid_color="red")
    image, truth, _ = generate.make_page(sig, style, seed, kinds)
    return image, truth


def without_dewarp(monkeypatch, image):
    with monkeypatch.context() as m:
        m.setattr(digitize_module, "dewarp", lambda rgb, debug=None: rgb)
        return digitize(image)


def test_photo_with_perspective_and_lens_is_read_after_the_dewarp(sig, monkeypatch):
    image, _ = page(sig, PHOTO)
    before = without_dewarp(monkeypatch, image)
    before_snr = record_snr(sig, before.signal)[1] if before.status == "ok" else -np.inf
    assert before_snr < 3.0, (before.status, before.error, before_snr)  # refused when written
    debug = {}
    d = digitize(image, debug)
    assert "dewarp_corners" in debug  # the sheet was found and resampled
    assert d.status == "ok", d.error
    assert (d.layout, d.speed, d.gain, d.seconds) == ("3x4+1", 25.0, 10.0, 10.0)
    assert record_snr(sig, d.signal)[1] >= 6.0  # measured 7.8 dB


def test_lens_term_and_corners_are_found(sig):
    image, _ = page(sig, PHOTO)
    a = np.asarray(image)
    found = find_sheet(a)
    assert found is not None
    corners, k, _, _, _ = found
    assert k == pytest.approx(0.12 * PHOTO["lens"], abs=0.025)  # distort.py: k = 0.12 x level
    h, w = a.shape[:2]
    tl, tr, br, bl = corners
    # a perspective quadrilateral inside the picture, corners in their own quadrants
    assert tl[0] < w / 2 < tr[0] and bl[0] < w / 2 < br[0] and tl[1] < h / 2 < bl[1] and tr[1] < h / 2 < br[1]
    out = dewarp(a)
    assert out is not a and out.ndim == 3 and out.dtype == np.uint8
    assert 0.5 * h * w < out.shape[0] * out.shape[1] < 1.5 * h * w


def test_the_desk_is_left_out(sig):
    """What the corners' lines leave of the desk at the sheet's edges is made paper: no dark band at the borders."""
    image, _ = page(sig, PHOTO)
    out = dewarp(np.asarray(image)).astype(np.float32)
    v = out.max(axis=2)
    edge = max(3, int(0.01 * min(v.shape)))
    for band in (v[:, :edge], v[:, -edge:], v[:edge], v[-edge:]):
        assert np.mean(band < 140) < 0.05


@pytest.mark.parametrize("kinds", [{}, {"rotation": 0.4, "jpeg": 0.5, "blur": 0.2}])
def test_clean_and_scanned_pages_go_through_unchanged(sig, kinds, monkeypatch):
    image, _ = page(sig, kinds)
    a = np.asarray(image.convert("RGB"))
    assert dewarp(a) is a  # no sheet on a background: the very same array back
    d = digitize(image)
    b = without_dewarp(monkeypatch, image)
    assert (d.status, d.error, d.layout) == (b.status, b.error, b.layout)
    np.testing.assert_array_equal(d.signal, b.signal)


def test_a_picture_without_a_sheet_is_left_alone():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    assert dewarp(noise) is noise
    white = np.full((300, 400, 3), 250, np.uint8)
    assert dewarp(white) is white


@pytest.mark.parametrize("level, was", [(0.02, 6.4), (0.3, 8.8), (0.6, 9.2)])
def test_perspective_pages_read_close_to_the_flat_one(sig, level, was):
    """Perspective alone (the page drawn as the flat one, resampled). Measured 2026-12-07 (seed 1): the flat page
    22.0 dB; with perspective 0.02 / 0.3 / 0.6 read at 6.4 / 8.8 / 9.2 dB before two fixes in the digitiser, 14.5 /
    14.6 / 12.8 after. (1) The resampled strokes' part-inked edges make runs across 2 px here and 3 there: the
    shortest common run across (the pen's width) came out 2 px and the strokes were not thinned across, so steep
    QRS strokes were read as broad plateaus (peaks widened, amplitude ratio ~1.1-1.2 by least squares); now at
    least 3 px are thinned, strokes narrower than that kept. (2) At 0.02 the 1-3 px sliver of desk along the
    picture's top and bottom (too thin for the dewarp to find) was followed as the outer rows' trace, their pulses
    missed, and the trace start (a median over rows) taken half-way into the pulse (0.17 s early)."""
    image, _ = page(sig, {"perspective": level})
    d = digitize(image)
    assert d.status == "ok", d.error
    assert (d.layout, d.speed, d.gain) == ("3x4+1", 25.0, 10.0)
    assert record_snr(sig, d.signal)[1] >= 11.0, was


def test_a_sliver_of_desk_at_the_picture_edges_is_made_paper():
    from utils.paper.digitize import clear_edges
    rgb = np.full((200, 300, 3), 250, np.uint8)
    rgb[100, 50:250] = 0  # a trace stroke inside: kept
    rgb[:, 150, :] = 0  # a vertical stroke crossing the top and bottom edges: kept (a few px of each edge line)
    a = rgb.copy()
    a[:2] = 60  # desk along the top, 2 px
    a[:, :3] = 60  # and the left, 3 px
    out = clear_edges(a)
    assert (out[:2, 3:] == rgb[:2, 3:]).all() and (out[:, :3] >= 240).all()
    assert (out[100, 50:250] == 0).all() and (out[2:, 150] == 0).all()
    assert clear_edges(rgb) is rgb  # nothing to clear: the same array
