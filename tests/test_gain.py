"""Another device's gain calibration (utils/ecg/gain.py) on real records: measuring a record recorded at gain g
gives exactly its measurements with the GAIN_SCALED ones multiplied by g, and the features member trained with
--gain-augment answers a recalibrated record more like the record itself."""
import numpy as np
import pandas as pd
import pytest

from models.gbm import GBMModel
from utils.artifacts import FEATURE_CACHE
from utils.ecg.cache import features_for_records
from utils.ecg.gain import GAIN_SCALED, at_gain, gains_for, with_gains
from utils.ecg.io import read_record
from utils.ecg.measurements import FEATURE_NAMES, extract_features
from utils.errors import ConfigError

COUNTS = {"v1_n_rpeaks", "n_t_negative"}  # thresholded counts: the only measurements a gain may move otherwise


def test_a_record_measured_at_another_gain_is_at_gain_of_its_measurements(tiny_raw):
    """Exact for almost every record: the P-wave and T-end delineation has thresholds in mV, so on a few records
    (one of these 16 pairs) a gain moves a P or T boundary and the measurements that hang on it. A name wrongly in
    GAIN_SCALED (an interval) or missing from it (an amplitude) breaks every pair."""
    other = np.array([n not in COUNTS for n in FEATURE_NAMES])
    scaled = np.array([n in GAIN_SCALED for n in FEATURE_NAMES])
    exact, entries = [], []
    for path in sorted((tiny_raw / "train").glob("*.mat"))[:8]:
        x = read_record(path)
        row = extract_features(x)
        assert np.nanmax(np.abs(row[scaled])) > 0.1  # the scaled measurements are there to scale
        for g in (0.8, 1.25):
            same = np.isclose(extract_features(g * x), at_gain(row, g), rtol=1e-3, atol=1e-5, equal_nan=True)[other]
            exact.append(same.all())
            entries.append(same.mean())
    assert np.mean(exact) >= 14 / 16 and np.mean(entries) > 0.98, (exact, entries)
    assert at_gain(row, 1.0).tolist() == pytest.approx(row.tolist(), nan_ok=True)


def test_gains_and_their_rows():
    assert gains_for(0) == () and gains_for(0.2) == pytest.approx((0.8, 1.2))
    with pytest.raises(ConfigError, match=r"--gain-augment must be in \[0, 1\)"):
        gains_for(1.0)
    X = np.arange(2 * len(FEATURE_NAMES), dtype=np.float32).reshape(2, -1)
    rows = with_gains(X, (0.5, 2.0))
    assert rows.shape == (6, len(FEATURE_NAMES))
    np.testing.assert_array_equal(rows[:2], X)
    np.testing.assert_array_equal(rows[4:], at_gain(X, 2.0))


def _measured(tiny_raw, split, label_file):
    refs = pd.read_csv(tiny_raw / label_file)
    X, bad = features_for_records([tiny_raw / split / f"{n}.mat" for n in refs["name"]],
                                  cache_dir=tiny_raw / FEATURE_CACHE, workers=2)
    assert not bad
    return X, refs["tag"].to_numpy()


def test_gain_augmented_model_answers_a_recalibrated_record_more_alike(tiny_raw):
    """Trained on the 60 sample records, scored on the 20 test records: how far P(abnormal) moves when a record
    comes from a device at x0.8 or x1.2. Gain augmentation (x0.8 and x1.2 copies of the training records) must
    shrink that move clearly on records it never saw (measured: 0.104 -> 0.055)."""
    X, y = _measured(tiny_raw, "train", "trainreference.csv")
    Xt, _ = _measured(tiny_raw, "val", "val_reference.csv")

    def moves(augment):
        m = GBMModel(1, seed=2021, augment=augment).fit(X, y)
        p = m.predict_proba(Xt)[:, 0]
        return np.mean([np.abs(m.predict_proba(at_gain(Xt, g))[:, 0] - p).mean() for g in (0.8, 1.2)])

    plain, augmented = moves(None), moves(lambda x: with_gains(x, gains_for(0.2)))
    assert augmented < 0.75 * plain, (plain, augmented)
