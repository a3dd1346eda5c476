"""The numpy renderer: size, determinism, fixed scale, spikes kept, ink inside each lead's band; amplitude beyond the
band compressed (soft) instead of cut flat; the signal family's high-pass before drawing."""
import io

import numpy as np
import pytest
from scipy.stats import spearmanr

from utils.ecg.filters import highpass
from utils.ecg.io import FS, read_record
from utils.inputs.render import band_edges, render_image, render_mask, soft_compress
from utils.inputs.signals import preprocess


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


# ptbxl_14257: V4-V6 R waves of 2.1-2.3 mV (and V1's baseline starting 4 mV off): beyond the +-1 mV of the 2 mV band.
TALL, V5 = "ptbxl_14257.mat", 10


def _top_rows(mask, lead, n_rows=12):
    """Per pixel column, the row of the band's highest ink, counted from the band's top edge (0: at the edge)."""
    e = band_edges(mask.shape[0], n_rows)
    band = mask[e[lead]:e[lead + 1]]
    return np.where(band.any(axis=0), band.argmax(axis=0), band.shape[0])


def test_soft_amplitude_keeps_what_clipping_cuts_flat(tiny_raw):
    sig = read_record(tiny_raw / "train" / TALL)
    clip_top, soft_top = _top_rows(render_mask(sig), V5), _top_rows(render_mask(sig, amplitude="soft"), V5)
    flat = clip_top == 0  # columns where clipping draws V5's R waves flat along the band's edge
    assert flat.sum() >= 20
    # soft: never at the edge, and as many heights as the R waves have, in their order
    assert soft_top.min() > 0 and len(np.unique(soft_top[flat])) >= 4
    x = sig[V5] - np.median(sig[V5])
    col = np.arange(x.size) * 640 // x.size
    col_max = np.maximum.reduceat(x, np.searchsorted(col, np.arange(640)))
    assert spearmanr(-soft_top[flat], col_max[flat]).statistic > 0.8
    # the same record at half, once and twice its amplitude (V5 1.15 / 2.3 / 4.6 mV): clipping draws all three to
    # the edge, soft draws each taller than the one before
    heights = [(_top_rows(render_mask(f * sig), V5).min(), _top_rows(render_mask(f * sig, amplitude="soft"), V5).min())
               for f in (0.5, 1.0, 2.0)]
    assert [c for c, _ in heights] == [0, 0, 0]
    soft = [s for _, s in heights]
    assert soft[0] > soft[1] > soft[2] > 0, heights


def test_soft_amplitude_is_linear_in_the_normal_range(tiny_raw):
    sig = read_record(tiny_raw / "train" / TALL)
    small = sig * (0.45 / np.abs(sig - np.median(sig, axis=1, keepdims=True)).max())  # within +-0.45 mV: below the knee
    np.testing.assert_array_equal(render_mask(small, amplitude="soft"), render_mask(small))
    v = np.array([0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 50.0])
    drawn = soft_compress(v, 1.0)
    assert drawn[0] == 0.5 and np.all(np.diff(drawn) > 0) and drawn[-1] < 1.0  # rises strictly, never reaches the edge
    np.testing.assert_allclose(soft_compress(-v, 1.0), -drawn)  # polarity kept


def test_highpass_keeps_a_drifting_trace_in_its_band(sig):
    t = np.arange(sig.shape[1]) / FS
    drifting = sig + 1.5 * np.sin(2 * np.pi * 0.15 * t + 1.0)  # 1.5 mV baseline wander at 0.15 Hz on every lead
    e = band_edges(640, 12)

    def at_edges(mask):  # pixel columns whose trace is pinned to a band's top or bottom edge, over all bands
        return sum(int((mask[e[k]] | mask[e[k + 1] - 1]).sum()) for k in range(12))

    clean, drawn, unfiltered = (render_mask(sig, highpass_hz=0.5), render_mask(drifting, highpass_hz=0.5),
                                render_mask(drifting))
    assert at_edges(unfiltered) > 10 * at_edges(clean)  # without the filter the wander pushes the trace out
    assert at_edges(drawn) <= at_edges(clean) + 20  # filtered: no more than the clean record's own tall QRS
    assert (drawn & clean).sum() / (drawn | clean).sum() > 0.8  # and it is the clean record's picture, nearly
    # the very filter of the signal family (utils/ecg/filters.py), not a second copy
    np.testing.assert_array_equal(render_mask(sig, highpass_hz=0.5), render_mask(highpass(sig, 0.5)))
    prep = {"highpass_hz": 0.5, "fs": FS, "scale": 1.0}
    np.testing.assert_array_equal(preprocess(sig, prep), highpass(sig, 0.5).astype(np.float32))
