"""utils/ecg/noise.py: ECG noise at a SNR per lead, on real records (the sample's PTB-XL records, and LUDB's where
../shared/data/ludb is there): the SNR achieved, where the noise's power lies, determinism, the input left alone,
bad arguments, and the measurements still running on a noisy record."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sps

from utils.ecg import noise
from utils.ecg.io import FS, read_record
from utils.ecg.measurements import FEATURE_NAMES, extract_features

ROOT = Path(__file__).resolve().parents[1]
RECORDS = sorted((ROOT / "dataset" / "sample" / "train").glob("*.mat"))[::15]  # 4 of the 60
LUDB = ROOT.parent / "shared" / "data" / "ludb"

# Where each kind's power must lie (Hz, inclusive), >90 % of it on every lead.
BANDS = {
    "baseline": [(0, 1)],
    "mains50": [(49, 51), (147, 153)],  # the fundamental and its 3rd harmonic
    "mains60": [(59, 61), (177, 183)],
    "muscle": [(15, 200)],
}


@pytest.fixture(scope="module")
def records():
    return [read_record(p) for p in RECORDS]


def band_share(x, bands, fs=FS):
    """Per row of `x`, the share of its power (Welch, one Hann window over the record, the mean kept) in `bands`."""
    f, p = sps.welch(x, fs=fs, nperseg=x.shape[-1], detrend=False, axis=-1)
    inside = np.zeros(f.shape, dtype=bool)
    for lo, hi in bands:
        inside |= (f >= lo) & (f <= hi)
    return p[..., inside].sum(-1) / p.sum(-1)


def test_the_kinds_and_levels():
    assert noise.KINDS == ("baseline", "mains50", "mains60", "muscle", "mixed")
    assert noise.LEVELS == (20, 10, 5)


@pytest.mark.parametrize("kind", noise.KINDS)
def test_every_lead_gets_the_snr_asked_for(records, kind):
    for i, sig in enumerate(records):
        for level in noise.LEVELS + (0, 30.5):
            noisy = noise.add_noise(sig, kind, level, seed=i)
            assert noisy.dtype == np.float32 and noisy.shape == sig.shape
            # computed here from the definition, not with the module's own helper
            x, y = sig.astype(np.float64), noisy.astype(np.float64)
            p_sig = np.mean((x - np.median(x, axis=1, keepdims=True)) ** 2, axis=1)
            snr = 10 * np.log10(p_sig / np.mean((y - x) ** 2, axis=1))
            np.testing.assert_allclose(snr, level, atol=0.1, err_msg=f"{RECORDS[i].stem} {kind} {level} dB")
            np.testing.assert_allclose(noise.measured_snr(sig, noisy), snr, atol=1e-9)


def test_snr_on_ludb_records():
    if not (LUDB / "records" / "1.hea").is_file():
        pytest.skip(f"LUDB not found at {LUDB}")
    spec = importlib.util.spec_from_file_location("measure_accuracy", ROOT / "bench" / "measure_accuracy.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for number in (1, 61):
        sig, _ = bench.read_ludb(LUDB / "records" / str(number))
        for kind in noise.KINDS:
            for level in noise.LEVELS:
                snr = noise.measured_snr(sig, noise.add_noise(sig, kind, level, seed=number))
                np.testing.assert_allclose(snr, level, atol=0.1, err_msg=f"LUDB {number} {kind} {level} dB")


@pytest.mark.parametrize("kind", sorted(BANDS))
def test_the_noise_power_lies_in_its_band(records, kind):
    for i, sig in enumerate(records):
        for seed in (i, 100 + i):
            added = noise.add_noise(sig, kind, 10, seed=seed).astype(np.float64) - sig
            share = band_share(added, BANDS[kind])
            assert share.min() > 0.9, (RECORDS[i].stem, seed, share.round(3))


@pytest.mark.parametrize("kind, fundamental, harmonic", [("mains50", (49, 51), (147, 153)),
                                                         ("mains60", (59, 61), (177, 183))])
def test_mains_has_a_weak_harmonic_and_a_random_phase_per_lead(kind, fundamental, harmonic):
    x = noise.make_noise(kind, (12, 5000), seed=7)
    share_h = band_share(x, [harmonic])
    assert (share_h > 0.0005).all() and (share_h < 0.05).all()  # 3-15 % of the amplitude: 0.1-2.2 % of the power
    assert (band_share(x, [fundamental]) > 0.9).all()
    corr = np.corrcoef(x)
    assert np.abs(corr[np.triu_indices(12, 1)]).min() < 0.9  # not one waveform copied to every lead


def test_mixed_holds_all_three(records):
    sig = records[0]
    added = noise.add_noise(sig, "mixed", 10, seed=3).astype(np.float64) - sig
    for bands in ([(0, 1)], [(49, 51)], [(15, 45), (55, 145)]):  # wander, mains, muscle away from the mains
        assert band_share(added, bands).min() > 0.01, bands
    # each part is its own kind's noise with the same seed
    parts = np.stack([noise.make_noise(k, sig.shape, seed=3) for k in noise.MIXED_PARTS])
    mixed = noise.make_noise("mixed", sig.shape, seed=3)
    for lead in range(len(sig)):  # a positive mix of the three, per lead (each lead is then scaled to its SNR)
        w, *_ = np.linalg.lstsq(parts[:, lead].T, mixed[lead], rcond=None)
        np.testing.assert_allclose(w @ parts[:, lead], mixed[lead], atol=1e-9)
        assert (w > 0).all()


def test_muscle_noise_comes_in_bursts():
    x = noise.make_noise("muscle", (12, 5000), seed=5)
    rms = np.sqrt(np.mean(x.reshape(12, 20, 250) ** 2, axis=2))  # per lead, per 0.5 s
    assert (rms.max(1) / rms.min(1) > 2).all()


def test_same_seed_same_noise_another_seed_other_noise(records):
    sig = records[1]
    for kind in noise.KINDS:
        a, b = noise.add_noise(sig, kind, 10, seed=1), noise.add_noise(sig, kind, 10, seed=1)
        np.testing.assert_array_equal(a, b)
        c = noise.add_noise(sig, kind, 10, seed=2)
        assert not np.allclose(a, c), kind
        # the level only scales the noise: the same shape at 5 and 20 dB
        n5 = noise.add_noise(sig, kind, 5, seed=1).astype(np.float64) - sig
        n20 = noise.add_noise(sig, kind, 20, seed=1).astype(np.float64) - sig
        np.testing.assert_allclose(n5 * 10 ** (-15 / 20), n20, atol=1e-5)
    # one seed's kinds are unrelated noises
    base, muscle = (noise.make_noise(k, (12, 5000), seed=1) for k in ("baseline", "muscle"))
    assert not np.allclose(base, muscle)


def test_the_input_is_left_unchanged(records):
    sig = records[2].copy()
    sig.setflags(write=False)  # an attempt to write into it would raise
    before = sig.copy()
    for kind in noise.KINDS:
        noisy = noise.add_noise(sig, kind, 5, seed=0)
        assert noisy is not sig and not np.shares_memory(noisy, sig)
    np.testing.assert_array_equal(sig, before)


def test_a_flat_lead_gets_no_noise_and_one_lead_works(records):
    sig = records[0].copy()
    sig[3] = 0.25  # a disconnected lead: a constant
    noisy = noise.add_noise(sig, "muscle", 10, seed=0)
    np.testing.assert_array_equal(noisy[3], sig[3])
    assert noise.measured_snr(sig, noisy)[3] == np.inf
    np.testing.assert_allclose(np.delete(noise.measured_snr(sig, noisy), 3), 10, atol=0.1)
    one = noise.add_noise(sig[1], "baseline", 10, seed=0)
    assert one.shape == sig[1].shape and noise.measured_snr(sig[1], one)[0] == pytest.approx(10, abs=0.1)


@pytest.mark.parametrize("kind, snr, message", [
    ("gaussian", 10, "unknown noise kind 'gaussian'"),
    ("Mains50", 10, "unknown noise kind 'Mains50'"),
    ("muscle", float("nan"), "snr_db must be a finite number of dB, got nan"),
    ("muscle", float("inf"), "snr_db must be a finite number of dB, got inf"),
    ("muscle", "10", "snr_db must be a finite number of dB, got '10'"),
    ("muscle", None, "snr_db must be a finite number of dB, got None"),
])
def test_bad_arguments_raise_a_one_line_value_error(records, kind, snr, message):
    with pytest.raises(ValueError) as e:
        noise.add_noise(records[0], kind, snr, seed=0)
    assert message in str(e.value) and "\n" not in str(e.value)
    if "kind" in message:
        assert "baseline, mains50, mains60, muscle, mixed" in str(e.value)


def test_bad_records_and_seeds_raise_value_error(records):
    bad = records[0].copy()
    bad[2, 10] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        noise.add_noise(bad, "baseline", 10)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        noise.add_noise(records[0], "baseline", 10, seed=-1)
    with pytest.raises(ValueError, match="shorter than 1 s"):
        noise.add_noise(records[0][:, :100], "baseline", 10)
    with pytest.raises(ValueError, match="expected a record"):
        noise.add_noise(records[0][None], "baseline", 10)


@pytest.mark.parametrize("kind", noise.KINDS)
def test_the_measurements_run_on_a_noisy_record(records, kind):
    noisy = noise.add_noise(records[3], kind, 5, seed=0)
    row = extract_features(noisy)
    assert row.shape == (len(FEATURE_NAMES),) and row.dtype == np.float32
    assert np.isfinite(row[FEATURE_NAMES.index("hr")])
