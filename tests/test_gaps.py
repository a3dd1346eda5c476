"""Records with gaps (utils/ecg/gaps.py): what the models read where paper did not print a lead."""
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from scipy import signal as sps

from utils.ecg.beats import SOS_QRS, detect_r_peaks
from utils.ecg.gaps import LIMB, fill_gaps
from utils.ecg.io import LEADS, read_record
from utils.ecg.measurements import global_measurements
from utils.paper.layouts import as_printed

SAMPLE = sorted((Path(__file__).resolve().parents[1] / "dataset" / "sample" / "val").glob("*.mat"))[:8]


def peaks(x):
    return detect_r_peaks(sps.sosfiltfilt(SOS_QRS, x.astype(np.float64)))


@pytest.fixture(scope="module")
def records():
    assert len(SAMPLE) == 8
    return {p.stem: read_record(p) for p in SAMPLE}


def test_limb_leads_follow_from_any_two_of_them(records):
    x = next(iter(records.values()))
    for keep in (("aVR", "aVL"), ("III", "aVF"), ("I", "II")):
        y = x.copy()
        y[[i for i in LIMB if LEADS[i] not in keep], 1000:3000] = np.nan
        filled = fill_gaps(y)
        # the record's own limb leads obey Einthoven to its quantisation (PTB-XL: 1 uV)
        np.testing.assert_allclose(filled[LIMB, 1000:3000], x[LIMB, 1000:3000], atol=0.01)


# Median QRS-duration error allowed (ms). Without a rhythm strip the R peaks of each column come from other leads,
# whose QRS peaks a little earlier or later: a lead's beats placed at another column's peaks are that much off
# (docs/methods.md, "Records from paper": measured +7 ms median on 60 PTB-XL records in the 3 x 4 layout).
QRS_TOLERANCE = {"3x4+1": 4, "6x2": 6, "3x4": 14}


@pytest.mark.parametrize("layout", list(QRS_TOLERANCE))
def test_a_printed_page_filled_keeps_the_rhythm_and_each_leads_beats(records, layout):
    qrs, rate, matched = [], [], 0
    for x in records.values():
        y = as_printed(x, layout)
        filled = fill_gaps(y)
        known = np.isfinite(y)
        assert np.isfinite(filled).all() and filled.dtype == np.float32
        np.testing.assert_array_equal(filled[known], y[known])  # what was printed stays as printed
        p, q = peaks(x), peaks(filled)
        matched += len(p) == len(q) and np.abs(p - q).max() <= 20  # within 40 ms: other leads, another fiducial
        a, b = global_measurements(x), global_measurements(filled)
        qrs.append(b["qrs_dur"] - a["qrs_dur"])
        rate.append(b["hr"] - a["hr"])
    assert matched >= len(records) - 1, f"{layout}: the R peaks of {len(records) - matched} filled records moved"
    assert np.median(np.abs(qrs)) <= QRS_TOLERANCE[layout] and np.median(np.abs(rate)) <= 1, (qrs, rate)


def test_flat_filling_would_fail_the_same_check(records):
    """The check above can fail: a flat fill (each lead's level) loses beats wherever only one lead is left."""
    x = next(iter(records.values()))
    y = as_printed(x, "3x4")
    flat = np.where(np.isfinite(y), y, np.nanmedian(y, axis=1, keepdims=True))
    filled = fill_gaps(y)
    flat_error = np.abs(global_measurements(flat)["qrs_dur"] - global_measurements(x)["qrs_dur"])
    ours = np.abs(global_measurements(filled)["qrs_dur"] - global_measurements(x)["qrs_dur"])
    assert ours < flat_error or np.mean(np.abs(filled - x)) < np.mean(np.abs(flat - x))


def test_a_lead_never_printed_is_flat_and_the_reader_fills_or_keeps_gaps(records, tmp_path):
    x = next(iter(records.values()))
    y = as_printed(x, "3x4+1")
    y[LEADS.index("V6")] = np.nan
    path = tmp_path / "paper.mat"
    scipy.io.savemat(path, {"ecgdata": y})
    filled = read_record(path)
    np.testing.assert_array_equal(filled, fill_gaps(y))
    assert np.all(filled[LEADS.index("V6")] == 0)
    kept = read_record(path, gaps="keep")
    np.testing.assert_array_equal(np.isnan(kept), np.isnan(y))
    assert np.allclose(fill_gaps(x), x)  # a whole record is left as it is
