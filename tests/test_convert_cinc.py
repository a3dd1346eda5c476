"""PhysioNet/CinC Challenge records -> competition layout (tools/convert_cinc.py), on the real records in
../shared/data/cinc: labels, resampling, lead order, windows and splits, bad input, and the three scripts."""
import os
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
from scipy.signal import resample_poly

from pipeline_fixtures import TINY
from tools import convert_cinc
from utils.ecg.cinc import map_dx
from utils.ecg.io import LEADS, list_records, read_record, read_reference, read_reference_task2

ROOT = Path(__file__).resolve().parents[1]

# Real CPSC2018 records (their #Dx line) and the labels the SNOMED-CT table gives them.
KNOWN = {
    "A0016": (0, [1]),  # 426783006 sinus rhythm alone: normal
    "A0017": (1, [5]),  # 164889003 atrial fibrillation
    "A0012": (1, [6]),  # 164884008 ventricular ectopics (CPSC's PVC)
    "A0047": (1, [7]),  # 284470004 premature atrial contraction
    "A0039": (1, [8]),  # 270492004 first-degree AV block
    "A0015": (1, [9]),  # 59118001 RBBB
    "A0013": (1, [11]),  # 429622005 ST depression
    "A0021": (1, [11]),  # 164931005 ST elevation
    "A0011": (1, [12]),  # 164909002 LBBB: other
    "A0043": (1, [5, 9]),  # 164889003,59118001: two labels
}
# Code families absent from the sample: a real record's header with its #Dx line rewritten to the code.
RELABELLED = [
    ("426177001", (1, [2])), ("427084000", (1, [3])), ("427393009", (1, [4])), ("427172004", (1, [6])),
    ("17338001", (1, [6])), ("63593006", (1, [7])), ("713427006", (1, [9])), ("164934002", (1, [10])),
    ("59931005", (1, [10])), ("428750005", (1, [10, 11])), ("55930002", (1, [11])), ("164930006", (1, [11])),
    ("426783006,59118001", (1, [9])), ("426783006,164865005", (1, [12])),
]


@pytest.fixture(scope="session")
def cinc_dir():
    path = Path(os.environ.get("CINC_DIR", ROOT.parent / "shared" / "data" / "cinc"))
    if not (path / "cpsc_2018" / "A0011.hea").is_file() or not (path / "ptb" / "S0001.hea").is_file():
        pytest.skip(f"CinC sample not found at {path}")
    return path


def link_record(src_dir, name, dst_dir):
    dst_dir.mkdir(parents=True, exist_ok=True)
    for ext in (".hea", ".mat"):
        (dst_dir / f"{name}{ext}").symlink_to(src_dir / f"{name}{ext}")


def edit_header(src_hea, dst_hea, edit):
    """Copy a real header, `edit(lines)` -> lines, and write it."""
    dst_hea.parent.mkdir(parents=True, exist_ok=True)
    dst_hea.write_text("\n".join(edit(src_hea.read_text().splitlines())) + "\n")


def set_field(line, i, value):
    f = line.split()
    f[i] = value
    return " ".join(f)


def mat_samples(path):
    """The int16 samples of a CinC MATLAB v4 file as (leads, samples), read without wfdb."""
    return scipy.io.loadmat(path)["val"]


def header_gains(hea):
    lines = [ln.split() for ln in hea.read_text().splitlines()[1:] if ln and not ln.startswith("#")]
    assert all("(" not in f[2] for f in lines)  # no explicit baseline: it is the ADC zero, 0 in these files
    return {f[-1]: (float(f[2].split("/")[0]), int(f[4])) for f in lines}


@pytest.fixture(scope="session")
def cinc_src(cinc_dir, tmp_path_factory):
    """Real records in nested source folders, plus doctored copies: short, shuffled leads, and bad ones."""
    src = tmp_path_factory.mktemp("cinc_src")
    cpsc = cinc_dir / "cpsc_2018"
    for name in KNOWN:
        link_record(cpsc, name, src / "cpsc_2018" / "g1")
    for name in ("S0001", "S0002"):
        link_record(cinc_dir / "ptb", name, src / "ptb")
    # 6 s: the header says 3000 samples, so wfdb reads the real record's first 6 s.
    edit_header(cpsc / "A0055.hea", src / "short" / "A0055.hea", lambda ls: [set_field(ls[0], 3, "3000"), *ls[1:]])
    (src / "short" / "A0055.mat").symlink_to(cpsc / "A0055.mat")
    # Shuffled leads: header lines and the file's rows permuted together (a real record, leads in another order).
    perm = [11, 3, 0, 7, 5, 1, 9, 2, 10, 4, 8, 6]
    edit_header(cpsc / "A0047.hea", src / "shuffled" / "A0047.hea", lambda ls: [ls[0], *[ls[1 + i] for i in perm], *ls[13:]])
    raw = (cpsc / "A0047.mat").read_bytes()
    d = np.frombuffer(raw[24:], "<i2").reshape(-1, 12)
    (src / "shuffled" / "A0047.mat").write_bytes(raw[:24] + np.ascontiguousarray(d[:, perm]).tobytes())
    # Bad input: a truncated .mat, a missing .mat, a lead missing, an unreadable sampling rate.
    (src / "broken").mkdir()
    shutil.copy(cpsc / "A0020.hea", src / "broken" / "A0020.hea")
    (src / "broken" / "A0020.mat").write_bytes((cpsc / "A0020.mat").read_bytes()[:20000])
    shutil.copy(cpsc / "A0029.hea", src / "broken" / "A0029.hea")
    edit_header(cpsc / "A0042.hea", src / "broken" / "A0042.hea", lambda ls: [*ls[:12], ls[12].replace(" V6", " V7"), *ls[13:]])
    (src / "broken" / "A0042.mat").symlink_to(cpsc / "A0042.mat")
    edit_header(cpsc / "A0070.hea", src / "broken" / "A0070.hea", lambda ls: [set_field(ls[0], 2, "fast"), *ls[1:]])
    (src / "broken" / "A0070.mat").symlink_to(cpsc / "A0070.mat")
    return src


@pytest.fixture(scope="session")
def converted(cinc_src, tmp_path_factory):
    """cinc_src converted with --windows, the PTB source held out as the test set, its record of implausible
    amplitude kept (--keep-implausible): (raw dir, report)."""
    dst = tmp_path_factory.mktemp("cinc_raw") / "raw"
    rep = convert_cinc.main(["--src", str(cinc_src), "--dst", str(dst), "--test-sources", "ptb", "--windows",
                             "--keep-implausible", "--workers", "2"])
    return dst, rep.set_index("record")


@pytest.mark.parametrize("codes, expected", [
    (["426783006"], (0, [1])), (["164889003", "426783006"], (1, [5])), (["428750005"], (1, [10, 11])),
    (["164909002", "270492004"], (1, [8, 12])),
])
def test_snomed_table(codes, expected):
    assert map_dx(codes) == expected
    with pytest.raises(ValueError, match="no #Dx"):
        map_dx([])


def test_known_records_get_their_labels(converted):
    raw, rep = converted
    tags = read_reference(raw / "trainreference.csv", data_dir=raw / "train").set_index("name")["tag"].to_dict()
    classes = read_reference_task2(raw / "trainreference_task2.csv", data_dir=raw / "train")
    for rec, expected in KNOWN.items():
        row = rep.loc[f"cpsc_2018/g1/{rec}"]
        base = f"cinc_cpsc_2018_{rec}"
        assert row["name"] == base and row["split"] == "train"
        names = [n for n in tags if n == base or n.startswith(base + "_w")]
        assert len(names) == row["records_written"] >= 1, rec
        for n in names:  # every window carries its record's labels
            assert (tags[n], classes[n]) == expected, (rec, n)


@pytest.mark.parametrize("dx, expected", RELABELLED)
def test_every_code_family(cinc_dir, tmp_path, dx, expected):
    cpsc = cinc_dir / "cpsc_2018"
    edit_header(cpsc / "A0016.hea", tmp_path / "A0016.hea",
                lambda ls: [f"#Dx: {dx}" if ln.startswith("#Dx") else ln for ln in ls])
    (tmp_path / "A0016.mat").symlink_to(cpsc / "A0016.mat")
    assert convert_cinc.read_signal(str(tmp_path / "A0016"))[2:] == expected


def test_1000_hz_record_is_resampled_with_its_waveform(converted, cinc_dir):
    raw, rep = converted
    out = read_record(raw / "val" / "cinc_ptb_S0001.mat")  # the test split: its first 10 s
    assert rep.loc["ptb/S0001", "fs"] == 1000 and rep.loc["ptb/S0001", "seconds"] == 38.4
    samples = mat_samples(cinc_dir / "ptb" / "S0001.mat").astype(np.float64)
    gains = header_gains(cinc_dir / "ptb" / "S0001.hea")
    mv = np.stack([(samples[i] - gains[lead][1]) / gains[lead][0] for i, lead in enumerate(LEADS)])
    expected = resample_poly(mv, 1, 2, axis=1)[:, :5000]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # The same waveform in time and amplitude as every second raw sample divided by the header's gain.
    direct = mv[:, :10000:2]
    for lead in range(12):
        assert np.corrcoef(out[lead], direct[lead])[0, 1] > 0.98, LEADS[lead]
        assert np.ptp(out[lead]) == pytest.approx(np.ptp(direct[lead]), rel=0.1), LEADS[lead]
    # 2,000,000 units per mV makes this record's leads span about 0.0005 mV: with --keep-implausible, converted as
    # the header says, flagged (by default skipped: test_implausible_amplitude_is_skipped_unless_kept).
    assert "implausible amplitude" in rep.loc["ptb/S0001", "detail"]
    assert not rep.loc[[f"cpsc_2018/g1/{r}" for r in KNOWN], "detail"].str.contains("implausible").any()


def test_leads_are_put_in_order_by_name(converted):
    raw, rep = converted
    assert rep.loc["shuffled/A0047", "status"] == "converted"
    shuffled = read_record(raw / "train" / "cinc_shuffled_A0047.mat")
    original = read_record(raw / "train" / "cinc_cpsc_2018_A0047.mat")
    np.testing.assert_array_equal(shuffled, original)
    assert not np.allclose(original[0], original[1])  # the leads differ, so a mix-up would show


def test_windows_cover_long_training_records(converted, cinc_dir):
    raw, rep = converted
    import wfdb

    sig = wfdb.rdrecord(str(cinc_dir / "cpsc_2018" / "A0017")).p_signal.T  # 45 s at 500 Hz
    names = [n for n in list_records(raw / "train") if n.startswith("cinc_cpsc_2018_A0017")]
    assert names == [f"cinc_cpsc_2018_A0017_w{k}" for k in range(sig.shape[1] // 5000)] and len(names) == 4
    for k, n in enumerate(names):
        np.testing.assert_allclose(read_record(raw / "train" / f"{n}.mat"), sig[:, k * 5000:(k + 1) * 5000], atol=1e-6)
    assert rep.loc["cpsc_2018/g1/A0039", "records_written"] == 1  # a 10 s record is one record, its own name
    assert "cinc_cpsc_2018_A0039" in list_records(raw / "train")
    # The 38 s test record gives its first 10 s only, under its own name.
    assert list_records(raw / "val") == ["cinc_ptb_S0001"]


def test_short_record_is_padded_and_flagged(converted, cinc_dir):
    raw, rep = converted
    import wfdb

    row = rep.loc["short/A0055"]
    assert row["status"] == "padded" and "zero-padded 4.00 s" in row["detail"] and row["seconds"] == 6.0
    first = wfdb.rdrecord(str(cinc_dir / "cpsc_2018" / "A0055"), sampto=3000).p_signal.T
    out = read_record(raw / "train" / "cinc_short_A0055.mat")
    np.testing.assert_allclose(out[:, :3000], first - np.median(first, axis=1, keepdims=True), atol=1e-5)
    assert not out[:, 3000:].any()


def test_source_split(converted, cinc_src):
    raw, rep = converted
    assert set(rep.loc[rep["split"] == "val"].index) == {"ptb/S0001", "ptb/S0002"}
    truth = read_reference(raw / "val_reference.csv", data_dir=raw / "val")
    assert list(truth["name"]) == ["cinc_ptb_S0001"] and list(truth["tag"]) == [1]
    assert read_reference_task2(raw / "val_reference_task2.csv") == {"cinc_ptb_S0001": [12]}  # 164865005 MI: other
    assert not [n for n in list_records(raw / "train") if n.startswith("cinc_ptb_")]


def test_bad_records_are_reported_and_the_rest_converted(converted, capsys):
    raw, rep = converted
    skipped = rep[rep["status"] == "skipped"]["detail"].to_dict()
    assert rep.loc[sorted(skipped), "reason"].tolist() == ["signal file corrupt", "signal file missing", "lead missing",
                                                           "sampling rate unreadable", "no #Dx codes"]
    assert sorted(skipped) == ["broken/A0020", "broken/A0029", "broken/A0042", "broken/A0070", "ptb/S0002"]
    assert skipped["ptb/S0002"].startswith("no #Dx codes")
    assert skipped["broken/A0020"].startswith("truncated or corrupt signal file A0020.mat")
    assert skipped["broken/A0029"] == "signal file A0029.mat missing"
    assert skipped["broken/A0042"].startswith("lead(s) missing: V6")
    assert skipped["broken/A0070"].startswith("sampling rate cannot be read")  # wfdb alone would assume 250 Hz
    report = pd.read_csv(raw / "convert_report.csv")
    assert len(report) == len(rep) == len(KNOWN) + 2 + 2 + 4  # every record found has its row
    done = report[report["status"] != "skipped"]
    written = set(list_records(raw / "train")) | set(list_records(raw / "val"))
    for name, k in zip(done["name"], done["records_written"]):
        assert {name} <= written or {f"{name}_w{i}" for i in range(k)} <= written, name
    assert not [n for n in written if any(n.startswith(f"cinc_broken_{r}") for r in ("A0020", "A0029", "A0042", "A0070"))]


def test_summary_counts_skipped(cinc_src, tmp_path, capsys):
    convert_cinc.main(["--src", str(cinc_src / "broken"), "--dst", str(tmp_path / "raw"), "--workers", "1"])
    out = capsys.readouterr().out
    assert "converted 0 of 4 records" in out and "skipped 4 (" in out
    for reason in ("signal file corrupt: 1", "signal file missing: 1", "lead missing: 1", "sampling rate unreadable: 1"):
        assert reason in out


def test_same_name_twice_in_a_source_is_reported(cinc_dir, tmp_path):
    for sub in ("g1", "g2"):
        link_record(cinc_dir / "cpsc_2018", "A0016", tmp_path / "src" / "cpsc_2018" / sub)
    rep = convert_cinc.main(["--src", str(tmp_path / "src"), "--dst", str(tmp_path / "raw"), "--workers", "1"])
    assert list(rep["status"]) == ["converted", "skipped"] and rep["reason"][1] == "duplicate name"
    assert list_records(tmp_path / "raw" / "train") + list_records(tmp_path / "raw" / "val") == ["cinc_cpsc_2018_A0016"]


@pytest.fixture(scope="session")
def fraction_split(cinc_dir, tmp_path_factory):
    dst = tmp_path_factory.mktemp("cinc_frac") / "raw"
    rep = convert_cinc.main(["--src", str(cinc_dir), "--dst", str(dst), "--max-records", "24", "--test-fraction", "0.25",
                             "--windows", "--seed", "3", "--workers", "2"])
    return dst, rep


def test_fraction_split_never_leaks_windows(fraction_split):
    raw, rep = fraction_split
    assert len(rep) == 24 and (rep["split"] == "val").sum() == 6  # a seeded quarter of the records
    train, test = list_records(raw / "train"), list_records(raw / "val")
    base = lambda n: n.split("_w")[0]  # noqa: E731
    assert any("_w" in n for n in train)  # there are windowed records to leak
    assert not {base(n) for n in train} & set(test)
    assert not [n for n in test if "_w" in n]
    for name, split in zip(rep["name"], rep["split"]):  # each record's output is on its record's side only
        assert not [n for n in (train if split == "val" else test) if base(n) == name]


@pytest.mark.parametrize("task", [1, 2])
def test_a_fold_never_splits_a_recordings_windows(fraction_split, task):
    """record_groups.csv gives each window its recording (no CinC header carries a patient id), and train.py's
    folds keep a recording's windows together, for both tasks."""
    import train
    from utils.ecg.io import read_record_groups
    from utils.scoring.tasks import get_task

    raw, rep = fraction_split
    groups = read_record_groups(raw / "record_groups.csv")
    train_names = list_records(raw / "train")
    assert sorted(groups) == train_names and all(g == n.split("_w")[0] for n, g in groups.items())
    assert len(set(groups.values())) < len(groups)  # some recordings gave several windows
    fold = {}
    for k in range(4):
        cfg = {"DATA_DIR": str(raw), "DATASET_DIR": "unused", "NUM_FOLDS": 4, "VAL_FOLD": k, "SEED": 2021}
        _, _, va = train.load_split(cfg, get_task(task), train.get_family("resnet1d"))
        fold.update(dict.fromkeys(va["name"], k))
    assert sorted(fold) == train_names
    folds_of_recording = {}
    for name, k in fold.items():
        folds_of_recording.setdefault(groups[name], set()).add(k)
    assert all(len(ks) == 1 for ks in folds_of_recording.values()), folds_of_recording


def test_converted_folder_runs_through_the_three_scripts(fraction_split, tmp_path):
    import predict
    import process
    import train

    raw, rep = fraction_split
    ds, out = tmp_path / "dataset", tmp_path / "output"
    process.main(["--data-dir", str(raw), "--out-dir", str(ds), "--size", "64", "--workers", "1"])
    assert len(list((ds / "train").glob("*.png"))) == len(list_records(raw / "train"))
    train.main(["--dataset-dir", str(ds), "--output-dir", str(out), "--iters", "2", "--warmup-iters", "0",
                "--eval-interval", "2", "--save-interval", "2", *TINY])
    report = predict.main(["--data-dir", str(raw), "--dataset-dir", str(ds), "--model", str(out / "best_model"),
                           "--out", str(tmp_path / "answer.csv"), "--truth", str(raw / "val_reference.csv"),
                           "--num-workers", "0"])
    ans = pd.read_csv(tmp_path / "answer.csv")
    assert list(ans["name"]) == list_records(raw / "val") and set(ans["tag"]) <= {0, 1}
    n_test = ((rep["split"] == "val") & (rep["status"] != "skipped")).sum()
    assert report["metrics"]["n"] == len(ans) == n_test > 0 and not report["fallback"]


@contextmanager
def time_limit(seconds):
    """Fail (not hang) if the block runs longer: a walk that follows a symlink cycle never ends."""
    def stop(*_):
        raise TimeoutError(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_symlinked_source_folders_are_followed_once(cinc_dir, tmp_path, capsys):
    """A source folder that is a symlink (downloads kept elsewhere) is searched; cycles and a second link to a
    folder already searched are searched once, with a warning."""
    store = tmp_path / "downloads" / "cpsc_2018"
    for name in ("A0016", "A0017"):
        link_record(cinc_dir / "cpsc_2018", name, store)
    src = tmp_path / "src"
    src.mkdir()
    (src / "cpsc_2018").symlink_to(store, target_is_directory=True)
    (src / "mirror").symlink_to(store, target_is_directory=True)  # the same records under another name
    (store / "again").symlink_to(store, target_is_directory=True)  # a cycle inside the linked folder
    (src / "cpsc_2018_again").symlink_to(src, target_is_directory=True)  # a cycle back to --src
    with time_limit(60):
        rep = convert_cinc.main(["--src", str(src), "--dst", str(tmp_path / "raw"), "--test-fraction", "0",
                                 "--workers", "1"])
    assert list(rep["record"]) == ["cpsc_2018/A0016", "cpsc_2018/A0017"] and set(rep["status"]) == {"converted"}
    assert list_records(tmp_path / "raw" / "train") == ["cinc_cpsc_2018_A0016", "cinc_cpsc_2018_A0017"]
    err = capsys.readouterr().err
    for link, target in (("mirror", src / "cpsc_2018"), ("cpsc_2018_again", src), ("cpsc_2018/again", src / "cpsc_2018")):
        assert f"warning: {src / link}: the same folder as {target}, searched once" in err, err


def test_broken_symlinks_are_reported(cinc_dir, tmp_path, capsys):
    """A symlinked header whose target is gone is a reported skip (it was a traceback); a symlinked source folder
    whose target is gone is a warning (it was silently nothing)."""
    src = tmp_path / "src"
    link_record(cinc_dir / "cpsc_2018", "A0016", src / "cpsc_2018")
    (src / "cpsc_2018" / "A0099.hea").symlink_to(tmp_path / "gone" / "A0099.hea")
    (src / "georgia").symlink_to(tmp_path / "gone" / "georgia", target_is_directory=True)
    rep = convert_cinc.main(["--src", str(src), "--dst", str(tmp_path / "raw"), "--test-fraction", "0", "--workers", "1"])
    assert list(rep["status"]) == ["converted", "skipped"] and rep["reason"][1] == "header unreadable"
    assert rep["detail"][1].startswith("header cannot be read (FileNotFoundError")
    assert (f"warning: {src / 'georgia'}: a symlink to {tmp_path / 'gone' / 'georgia'}, which does not exist; not searched"
            in capsys.readouterr().err)


def test_implausible_amplitude_is_skipped_unless_kept(cinc_dir, tmp_path, capsys):
    """The real PTB record S0001 (header gain 2,000,000/mV: ~0.0005 mV tall) is written only with
    --keep-implausible; by default it is a counted, reported skip, and a copy an earlier run wrote is removed."""
    src, dst = tmp_path / "src", tmp_path / "raw"
    link_record(cinc_dir / "cpsc_2018", "A0016", src / "cpsc_2018")
    link_record(cinc_dir / "ptb", "S0001", src / "ptb")
    args = ["--src", str(src), "--dst", str(dst), "--test-fraction", "0", "--workers", "1"]
    kept = convert_cinc.main([*args, "--keep-implausible"]).set_index("record")
    assert kept.loc["ptb/S0001", "status"] == "converted" and kept.loc["ptb/S0001", "records_written"] == 1
    assert "implausible amplitude" in kept.loc["ptb/S0001", "detail"]
    assert list_records(dst / "train") == ["cinc_cpsc_2018_A0016", "cinc_ptb_S0001"]
    capsys.readouterr()

    rep = convert_cinc.main(args).set_index("record")
    row = rep.loc["ptb/S0001"]
    assert (row["status"], row["reason"], row["records_written"]) == ("skipped", "implausible amplitude", 0)
    assert row["detail"].startswith("implausible amplitude (median lead peak-to-peak 0.000")
    assert "--keep-implausible" in row["detail"] and row["fs"] == 1000 and row["tag"] == 1  # the facts stay reported
    assert rep.loc["cpsc_2018/A0016", "status"] == "converted"
    assert list_records(dst / "train") == ["cinc_cpsc_2018_A0016"]  # the earlier run's copy is gone
    assert list(read_reference(dst / "trainreference.csv")["name"]) == ["cinc_cpsc_2018_A0016"]
    assert list(read_reference_task2(dst / "trainreference_task2.csv")) == ["cinc_cpsc_2018_A0016"]
    report = pd.read_csv(dst / "convert_report.csv")
    assert list(report.columns) == convert_cinc.REPORT_COLUMNS and len(report) == 2
    out = capsys.readouterr().out
    assert "converted 1 of 2 records" in out and "skipped 1 (implausible amplitude: 1)" in out
