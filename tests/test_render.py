"""The numpy renderer: size, determinism, fixed scale, spikes kept, ink inside each lead's band."""
import io

import numpy as np
import pytest

from utils.ecg.io import read_record
from utils.inputs.render import band_edges, render_image, render_mask


@pytest.fixture(scope="module")
def sig(tiny_raw):
    return read_record(tiny_raw / "train" / "ptbxl_00275.mat")


def png_bytes(img):
    b = io.BytesIO()
    img.save(b, format="PNG")
    return b.getvalue()


def test_size_mode_determinism_black_on_white(sig):
    img = render_image(sig, size=640)
    assert img.size == (640, 640) and img.mode == "1"
    assert png_bytes(img) == png_bytes(render_image(sig, size=640))
    a = np.asarray(img)
    assert 0.005 < (~a).mean() < 0.2  # ink (False = black) is a small part of a white picture
    assert render_image(sig, size=224).size == (224, 224)


def test_every_band_has_ink_and_a_trace_across_the_width(sig):
    mask = render_mask(sig, size=640)
    edges = band_edges(640, 12)
    for k in range(12):
        band = mask[edges[k]:edges[k + 1]]
        assert band.any(axis=0).all(), f"lead {k}: gap in the trace"


@pytest.mark.parametrize("lead", [0, 5, 11])
def test_ink_stays_inside_its_band(lead):
    edges = band_edges(640, 12)
    flat = np.zeros((12, 5000), np.float32)
    wild = flat.copy()
    wild[lead] = 50 * np.sin(np.linspace(0, 60, 5000))  # +-50 mV: far beyond the band
    diff = render_mask(wild) ^ render_mask(flat)
    rows = np.nonzero(diff.any(axis=1))[0]
    assert len(rows) and rows.min() >= edges[lead] and rows.max() < edges[lead + 1]


def test_single_sample_spike_is_kept():
    s = np.zeros((12, 5000), np.float32)
    s[0, 2500] = 1.5  # one sample of 5000, eight samples per pixel column at 640 px
    mask = render_mask(s, size=640)
    edges = band_edges(640, 12)
    centre = (edges[0] + edges[1]) / 2
    px_per_mv = (640 / 12) / 4.0
    col = 2500 * 640 // 5000
    ink_rows = np.nonzero(mask[edges[0]:edges[1], col])[0] + edges[0]
    assert ink_rows.min() <= centre - 1.4 * px_per_mv  # reaches (nearly) the full 1.5 mV
    assert not mask[edges[0]:int(centre) - 3, col + 3].any()  # and only there


def test_fixed_scale_no_per_record_normalisation():
    t = np.linspace(0, 20 * np.pi, 5000)
    wave = np.tile(np.sin(t), (12, 1)).astype(np.float32)
    extent = lambda m: np.ptp(np.nonzero(m[: band_edges(640, 12)[1]].any(axis=1))[0])  # noqa: E731
    px_per_mv = (640 / 12) / 4.0  # the same for every record
    for amplitude in (0.5, 1.0, 1.5):
        assert extent(render_mask(amplitude * wave, mv_range=4.0, line_width=1)) == pytest.approx(2 * amplitude * px_per_mv, abs=2)


def test_layout_6x2(sig):
    mask = render_mask(sig, size=640, layout="6x2", line_width=2)
    assert mask.shape == (640, 640)
    edges = band_edges(640, 6)
    for k in range(6):
        assert mask[edges[k]:edges[k + 1], :320].any() and mask[edges[k]:edges[k + 1], 320:].any()
