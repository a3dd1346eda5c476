"""Another device's gain calibration (utils/ecg/gain.py) on real records: measuring a record recorded at gain g
gives exactly its measurements with the GAIN_SCALED ones multiplied by g, the features member trained with
--gain-augment answers a recalibrated record more like the record itself, and one reading amplitude-relative
measurements (--amplitudes relative) answers it exactly alike."""
import json

import numpy as np
import pandas as pd
import pytest

from models.gbm import GBMModel
from utils.artifacts import FEATURE_CACHE
from utils.ecg.cache import features_for_records
from utils.ecg.gain import GAIN_SCALED, AmplitudeView, at_gain, gains_for, qrs_reference, with_gains
from utils.ecg.io import read_record
from utils.ecg.measurements import FEATURE_NAMES, extract_features
from utils.errors import CheckpointError, ConfigError

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


def test_relative_amplitudes_are_ratios_no_gain_changes(tiny_raw):
    """On the 60 sample records: the reference is a plausible QRS amplitude, each `_rel` column is its voltage over
    it, the other columns pass unchanged, and the ratios are the same at x0.8 and x1.25, both from at_gain and from
    measuring the rescaled record itself (there as exactly as at_gain holds); a flat record has no reference."""
    X, _ = _measured(tiny_raw, "train", "trainreference.csv")
    ref = qrs_reference(X)
    assert np.isfinite(ref).all() and 0.3 < np.median(ref) < 3.0, ref
    rel, both, n = AmplitudeView("relative"), AmplitudeView("both"), len(FEATURE_NAMES)
    R, B = rel(X), both(X)
    assert R.shape == X.shape and B.shape == (len(X), len(both.names)) and len(both.names) == n + len(GAIN_SCALED)
    i, j = FEATURE_NAMES.index("sokolow"), rel.names.index("sokolow_rel")
    np.testing.assert_allclose(R[:, j] * ref, X[:, i], rtol=1e-5)
    np.testing.assert_array_equal(B[:, both.names.index("sokolow_rel")], R[:, j])
    np.testing.assert_array_equal(B[:, :n], X)
    kept = [k for k, name in enumerate(FEATURE_NAMES) if name not in GAIN_SCALED]
    np.testing.assert_array_equal(R[:, kept], X[:, kept])  # intervals, rates, axes untouched
    for g in (0.8, 1.25):
        np.testing.assert_allclose(rel(at_gain(X, g)), R, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(both(at_gain(X, g))[:, n:], B[:, n:], rtol=1e-5, atol=1e-7)
    x = read_record(sorted((tiny_raw / "train").glob("*.mat"))[0])
    other = np.array([name not in COUNTS for name in FEATURE_NAMES])
    same = np.isclose(rel(extract_features(1.25 * x)), rel(extract_features(x)), rtol=1e-3, atol=1e-5, equal_nan=True)
    assert same[other].mean() > 0.98
    flat = extract_features(np.zeros((12, 5000)))
    assert np.isnan(qrs_reference(flat)).all() and np.isnan(rel(flat)[FEATURE_NAMES.index("r_amp_V5")])
    assert rel(X[0]).shape == X[0].shape and both(X[0]).shape == (len(both.names),)  # one record, as given
    np.testing.assert_array_equal(both(X[0]), B[0])
    with pytest.raises(ValueError, match=rf"needs the {n} measurements .* got shape \(60, 8\)"):
        rel(X[:, :8])
    with pytest.raises(ConfigError, match="--amplitudes must be one of absolute, relative, both"):
        AmplitudeView("ratio")


def test_a_relative_model_answers_every_gain_alike_and_reloads_its_view(tiny_raw, tmp_path):
    """Trained on the 60 sample records: the model reading ratios gives the 20 test records the same P(abnormal)
    at x0.8 and x1.2 as recorded, where the one reading voltages moves; saved and loaded it still reads ratios
    (gbm.json says so), a gbm.json from before views loads as absolute, a wrong view is a clear error."""
    X, y = _measured(tiny_raw, "train", "trainreference.csv")
    Xt, _ = _measured(tiny_raw, "val", "val_reference.csv")
    rel, plain = (GBMModel(1, seed=2021, amplitudes=a).fit(X, y) for a in ("relative", "absolute"))
    p = rel.predict_proba(Xt)
    for g in (0.8, 1.2):
        np.testing.assert_allclose(rel.predict_proba(at_gain(Xt, g)), p, atol=1e-6)
    assert np.mean([np.abs(plain.predict_proba(at_gain(Xt, g)) - plain.predict_proba(Xt)).mean() for g in (0.8, 1.2)]) > 0.01
    rel.save(tmp_path)
    index = json.loads((tmp_path / "gbm.json").read_text())
    assert index["amplitudes"] == "relative"
    np.testing.assert_allclose(GBMModel.load(tmp_path, n_outputs=1).predict_proba(Xt), p, rtol=1e-6, atol=1e-9)
    plain.save(tmp_path / "old")
    old = json.loads((tmp_path / "old" / "gbm.json").read_text())
    (tmp_path / "old" / "gbm.json").write_text(json.dumps({k: v for k, v in old.items() if k != "amplitudes"}))
    assert GBMModel.load(tmp_path / "old").view.mode == "absolute"
    (tmp_path / "gbm.json").write_text(json.dumps({**index, "amplitudes": "ratio"}))
    with pytest.raises(CheckpointError, match=r"gbm.json: not a features model index .* amplitudes: one of absolute"):
        GBMModel.load(tmp_path)
