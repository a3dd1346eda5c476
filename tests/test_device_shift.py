"""bench/device_shift.py's perturbations on a real record: each does what its name says, and a perturbed copy keeps
the records' names and the label files."""
import numpy as np
import pytest
from scipy import signal

from bench import device_shift as ds
from pipeline_fixtures import scripts_in_process
from utils.ecg.io import FS, N_SAMPLES, read_record, write_record

RNG = np.random.default_rng(0)
T = np.arange(N_SAMPLES) / FS


@pytest.fixture(scope="module")
def record(tiny_raw):
    return read_record(sorted((tiny_raw / "val").glob("*.mat"))[0]).astype(np.float64)


def _power(x, hz):
    """Power of each lead at `hz` (periodogram bin)."""
    f, p = signal.periodogram(x, fs=FS, axis=-1)
    return p[..., np.argmin(abs(f - hz))]


def _apply(name, x):
    return ds.PERTURBATIONS[name][1](x, np.random.default_rng(1))


def test_gain_scales_the_amplitude(record):
    np.testing.assert_allclose(_apply("gain_0.8", record), 0.8 * record)
    np.testing.assert_allclose(_apply("gain_1.2", record), 1.2 * record)


def test_low_pass_40_removes_a_60_hz_sine_and_keeps_the_ecg(record):
    x = record + 0.2 * np.sin(2 * np.pi * 60 * T)
    y = _apply("lowpass_40", x)
    assert (_power(y, 60) < 1e-3 * _power(x, 60)).all()
    assert np.corrcoef(y[1], record[1])[0, 1] > 0.97  # lead II keeps its shape
    assert (_power(_apply("lowpass_150", x), 60) > 0.9 * _power(x, 60)).all()  # 60 Hz passes 150 Hz


def test_high_pass_removes_a_slow_drift_more_at_0_5_than_at_0_05_hz(record):
    x = record + 0.5 * np.sin(2 * np.pi * 0.2 * T)
    left = [_power(_apply(n, x), 0.2).mean() for n in ("highpass_0.05", "highpass_0.5")]
    assert left[1] < 0.2 * left[0] < 0.2 * _power(x, 0.2).mean()


def test_hum_adds_a_50_hz_line_and_noise_has_its_sd(record):
    y = _apply("hum_50", record)
    assert (_power(y, 50) > 100 * _power(record, 50)).all()
    np.testing.assert_allclose(np.abs(y - record).max(axis=1), ds.HUM_MV, rtol=0.05)  # 10 samples a period: near the peak
    assert np.std(_apply("noise", record) - record) == pytest.approx(ds.NOISE_MV, rel=0.02)


def test_250_hz_recording_keeps_shape_and_length(record):
    y = _apply("resample_250", record)
    assert y.shape == record.shape
    assert np.corrcoef(y[1], record[1])[0, 1] > 0.99
    z = _apply("resample_250", 0.2 * np.sin(2 * np.pi * 180 * T)[None].repeat(12, 0))  # above 125 Hz: gone
    assert np.abs(z[:, 100:-100]).max() < 0.02


def test_perturbed_copy_keeps_names_and_label_files(tiny_raw, tmp_path):
    raw = tmp_path / "raw"
    (raw / "val").mkdir(parents=True)
    names = sorted(p.name for p in (tiny_raw / "val").glob("*.mat"))[:3]
    for n in names:
        write_record(raw / "val" / n, read_record(tiny_raw / "val" / n))
    for f in ("val_reference.csv", "val_reference_task2.csv"):
        (raw / f).write_text((tiny_raw / f).read_text() if (tiny_raw / f).is_file() else "name,tag\n")
    dst = ds.perturbed_copy(raw, tmp_path / "gain" / "raw", "gain_1.2")
    assert sorted(p.name for p in (dst / "val").glob("*.mat")) == names
    for f in ("val_reference.csv", "val_reference_task2.csv"):
        assert (dst / f).read_text() == (raw / f).read_text()
    np.testing.assert_allclose(read_record(dst / "val" / names[0]), 1.2 * read_record(raw / "val" / names[0]), rtol=1e-6)


def test_per_class_changes_pair_each_class_of_the_perturbed_and_clean_predictions(tiny_raw, tiny_features2, tmp_path):
    """--per-class on a real Task 2 model: every class is named, and each change is that class's ROC AUC on the
    gain-x1.2 copy minus on the clean records, as scikit-learn computes them from the two predict.py runs (a class
    with no positive or no negative among the 20 test records has none). Task 1 refuses the flag."""
    from sklearn.metrics import roc_auc_score

    from bench import protocol
    from utils.scoring.tasks import get_task

    task, out = get_task(2), tmp_path / "shift"
    with scripts_in_process() as ran:  # its 4 predict.py runs without 4 Paddle start-ups
        result = ds.main(["--models", f"features={tiny_features2[0] / 'best_model'}", "--raw", str(tiny_raw), "--task",
                          "2", "--perturbations", "gain_1.2", "--per-class", "--out", str(out)])
    assert ran == ["predict.py"] * 4  # the member and its fusion, clean and perturbed
    per = result["features"]["gain_1.2"]["per_class"]
    assert list(per) == list(task.class_names)
    truth = task.read_labels(tiny_raw / "val_reference_task2.csv").set_index("name")["y"]

    def aucs(report):
        names, _, probs = protocol.read_predictions(task, report)
        Y, P = task.label_array(truth.loc[names]), np.stack(probs)
        return [roc_auc_score(Y[:, k], P[:, k]) if 0 < Y[:, k].sum() < len(Y) else None for k in range(Y.shape[1])]

    clean, shifted = aucs(out / "clean" / "predict_0.json"), aucs(out / "gain_1.2" / "predict_0.json")
    assert sum(c is not None for c in clean) >= 4
    for k, cls in enumerate(task.class_names):
        d = per[cls]
        if clean[k] is None:
            assert d["diff"] is None
        else:
            assert (d["b"], d["a"], d["diff"]) == pytest.approx((clean[k], shifted[k], shifted[k] - clean[k]), abs=1e-6)
    with pytest.raises(SystemExit):
        ds.parse(["--models", "a=b", "--raw", str(tiny_raw), "--per-class"])
