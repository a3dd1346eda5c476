"""utils/ecg/ (beats, delineation, measurements, cache): the ECG measurements checked against the labels of the
real sample records (heart rate of sinus bradycardia / tachycardia, QRS width of complete RBBB, irregularity of
AF), undefined measurements on a flat record, and the per-record cache of features_for_records (reuse,
invalidation, unreadable files)."""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from utils.ecg import measurements as ef
from utils.ecg import cache as ec
from utils.ecg.cache import cache_key, features_for_records
from utils.ecg.io import FS, LEADS, N_SAMPLES, read_record, read_reference_task2

SAMPLE = Path(__file__).resolve().parents[1] / "dataset" / "sample"
TRAIN = SAMPLE / "train"
RHYTHM_MEASURES = ("hr", "rr_mean", "rr_median", "rr_std", "rr_min", "rr_max", "rmssd", "pnn50", "rr_cv",
                   "rr_frac_change15", "n_premature")


@pytest.fixture(scope="module")
def sample():
    """(names, Task 2 labels, features) of the 60 sample training records."""
    labels = read_reference_task2(SAMPLE / "trainreference_task2.csv")
    names = list(labels)
    X, bad = features_for_records([TRAIN / f"{n}.mat" for n in names], progress=False)
    assert bad == {}
    return names, labels, X


def column(X, name):
    return X[:, ef.FEATURE_NAMES.index(name)]


def with_class(sample, k, only=False):
    names, labels, _ = sample
    return np.array([(labels[n] == [k]) if only else (k in labels[n]) for n in names])


def synthetic(r_times):
    """Beats (P, QRS, T Gaussians; a different gain per lead) with R at `r_times` seconds. Unit tests only."""
    t = np.arange(N_SAMPLES) / FS
    beat = np.zeros(N_SAMPLES)
    for r in r_times:
        for dt, amp, width in ((-0.16, 0.12, 0.02), (0.0, 1.2, 0.01), (0.01, -0.3, 0.008), (0.28, 0.3, 0.04)):
            beat += amp * np.exp(-0.5 * ((t - r - dt) / width) ** 2)
    gains = np.linspace(-1.0, 1.5, len(LEADS)) + 0.1
    return (gains[:, None] * beat).astype(np.float32)


def test_names_and_shapes(sample):
    names, _, X = sample
    assert isinstance(ef.FEATURE_NAMES, tuple) and len(set(ef.FEATURE_NAMES)) == len(ef.FEATURE_NAMES)
    assert 150 <= len(ef.FEATURE_NAMES) <= 300 and isinstance(ef.FEATURES_VERSION, int)
    assert X.shape == (60, len(ef.FEATURE_NAMES)) and X.dtype == np.float32
    row = ef.extract_features(read_record(TRAIN / f"{names[0]}.mat"))
    assert row.dtype == np.float32 and row.shape == (len(ef.FEATURE_NAMES),)
    np.testing.assert_array_equal(row, X[0])
    # every measurement is defined on a clean normal record: no name is left without a value
    normal = with_class(sample, 1, only=True)
    assert np.isfinite(X[normal]).all()


def test_heart_rate_agrees_with_brady_and_tachycardia_labels(sample):
    _, _, X = sample
    hr = column(X, "hr")
    brady, tachy = with_class(sample, 2), with_class(sample, 3)
    assert brady.sum() >= 3 and tachy.sum() >= 3
    assert (hr[brady] < 62).all(), hr[brady]  # one label sits at 60 bpm
    assert (hr[tachy] > 100).all(), hr[tachy]
    normal = with_class(sample, 1, only=True)
    assert ((hr[normal] > 50) & (hr[normal] < 100)).all(), hr[normal]
    # the beat count is the rate over 10 s (give or take the beats at the edges)
    assert np.all(np.abs(column(X, "n_beats") - hr / 6) <= 1.5)


def test_beats_and_premature_beats_of_a_synthetic_rhythm():
    regular = np.arange(0.3, 9.9, 60 / 72)
    f = ef.extract_features(synthetic(regular))
    get = dict(zip(ef.FEATURE_NAMES, f))
    assert get["n_beats"] == len(regular) and get["hr"] == pytest.approx(72, abs=0.5)
    assert get["n_premature"] == 0 and get["rr_std"] < 5
    rr = [0.8] * 5 + [0.5, 1.1] + [0.8] * 4  # one premature beat and its compensatory pause
    get = dict(zip(ef.FEATURE_NAMES, ef.extract_features(synthetic(0.4 + np.cumsum([0] + rr)))))
    assert get["n_beats"] == len(rr) + 1 and get["n_premature"] == 1 and get["n_premature_normal"] == 1


def test_a_long_pause_keeps_its_few_beats():
    """Three beats in 10 s (a pause), with and without noise: exactly three beats, not the noise between them."""
    times = [1.0, 4.5, 8.0]
    clean = synthetic(times)
    noisy = clean + np.random.default_rng(1).normal(0, 0.02, clean.shape).astype(np.float32)
    for sig in (clean, noisy):
        get = dict(zip(ef.FEATURE_NAMES, ef.extract_features(sig)))
        assert get["n_beats"] == 3 and get["hr"] == pytest.approx(60 / 3.5, abs=0.5)
    one = dict(zip(ef.FEATURE_NAMES, ef.extract_features(synthetic([5.0]))))
    assert one["n_beats"] == 1 and np.isfinite(one["qrs_dur"])  # one beat still has a shape to measure


def test_flat_and_noise_records_do_not_raise():
    for sig in (np.zeros((12, N_SAMPLES), np.float32), np.full((12, N_SAMPLES), 2.5, np.float32)):
        get = dict(zip(ef.FEATURE_NAMES, ef.extract_features(sig)))
        assert get["n_beats"] == 0
        assert all(np.isnan(get[m]) for m in RHYTHM_MEASURES + ("qrs_dur", "qt", "pr", "r_amp_II"))
        assert get["std_II"] == pytest.approx(0, abs=1e-6)
    noise = np.random.default_rng(0).normal(0, 1, (12, N_SAMPLES)).astype(np.float32)
    assert ef.extract_features(noise).shape == (len(ef.FEATURE_NAMES),)


def test_rbbb_qrs_is_wider_than_normal(sample):
    _, _, X = sample
    rbbb, normal = with_class(sample, 9), with_class(sample, 1, only=True)
    assert rbbb.sum() >= 1 and normal.sum() >= 5
    qrs = column(X, "qrs_dur")
    assert 70 < np.median(qrs[normal]) < 110, qrs[normal]
    assert qrs[rbbb].mean() > qrs[normal].mean() + 25 and (qrs[rbbb] >= 120).all(), qrs[rbbb]
    assert column(X, "v1_rprime_amp")[rbbb].min() > column(X, "v1_rprime_amp")[normal].max()


def test_af_is_irregular_without_consistent_p_waves(sample):
    _, _, X = sample
    af, normal = with_class(sample, 5), with_class(sample, 1, only=True)
    assert column(X, "rr_frac_change15")[af].mean() > 0.3 > column(X, "rr_frac_change15")[normal].max()
    assert column(X, "p_corr_II")[af].mean() < 0.6 < column(X, "p_corr_II")[normal].min()


def counting(monkeypatch):
    """Count extract_features calls made by features_for_records."""
    calls, real = [], ef.extract_features
    monkeypatch.setattr(ef, "extract_features", lambda sig: calls.append(1) or real(sig))
    return calls


def test_cache_is_reused(tmp_path, monkeypatch):
    paths = sorted(TRAIN.glob("*.mat"))[:3]
    X1, _ = features_for_records(paths, cache_dir=tmp_path, progress=False)
    files = sorted((tmp_path / cache_key() / "train").iterdir())
    stamps = [f"{p.stem}.{p.stat().st_size}-{p.stat().st_mtime_ns}.npy" for p in paths]
    assert [f.name for f in files] == stamps  # one file per record, no temporaries left
    monkeypatch.setattr(ec, "read_record", lambda path: pytest.fail("recomputed a cached record"))
    X2, bad = features_for_records(paths, cache_dir=tmp_path, progress=False)
    assert bad == {}
    np.testing.assert_array_equal(X1, X2)


def test_cache_is_invalidated_by_a_rewritten_record_another_split_and_a_new_version(tmp_path, monkeypatch):
    a, b = sorted(TRAIN.glob("*.mat"))[:2]
    rec = tmp_path / "data" / "rec.mat"
    rec.parent.mkdir()
    shutil.copy(a, rec)
    cache = tmp_path / "cache"
    want_b = ef.extract_features(read_record(b))
    calls = counting(monkeypatch)
    first, _ = features_for_records([rec], cache_dir=cache, progress=False)
    features_for_records([rec], cache_dir=cache, progress=False)
    assert len(calls) == 1
    # another record copied over it keeping an OLDER time (cp -p, unzip): its size/time differ, so measured again
    old_time = rec.stat().st_mtime_ns - 10**9
    shutil.copy(b, rec)
    os.utime(rec, ns=(old_time, old_time))
    again, _ = features_for_records([rec], cache_dir=cache, progress=False)
    assert len(calls) == 2
    np.testing.assert_array_equal(again[0], want_b)
    assert not np.array_equal(again, first, equal_nan=True)
    assert len(list((cache / cache_key() / "data").iterdir())) == 1  # the stale entry is gone
    # a record of the same name in another split folder is another record
    other = tmp_path / "val" / "rec.mat"
    other.parent.mkdir()
    shutil.copy(a, other)
    os.utime(other, ns=(old_time, old_time))
    features_for_records([other], cache_dir=cache, progress=False)
    assert len(calls) == 3
    # a new FEATURES_VERSION measures into a new folder
    monkeypatch.setattr(ef, "FEATURES_VERSION", ef.FEATURES_VERSION + 1)
    features_for_records([rec], cache_dir=cache, progress=False)
    assert len(calls) == 4 and len(list(cache.iterdir())) == 2


def test_unreadable_record_is_reported_with_a_nan_row(tmp_path):
    good = sorted(TRAIN.glob("*.mat"))[0]
    bad = tmp_path / "truncated.mat"
    bad.write_bytes(good.read_bytes()[:2000])
    X, problems = features_for_records([good, bad], cache_dir=tmp_path / "cache", progress=False)
    assert list(problems) == [str(bad)] and "truncated or corrupt" in problems[str(bad)]
    assert np.isnan(X[1]).all() and np.isfinite(X[0]).sum() > 0.9 * X.shape[1]
    assert not list((tmp_path / "cache").rglob("truncated*"))
