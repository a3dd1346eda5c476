"""Competition data I/O: MAT round trip and every bad-input case, each naming the file and the problem."""
import numpy as np
import pytest
import scipy.io

from utils.ecg.io import (
    read_record,
    read_record_groups,
    read_reference,
    read_reference_task2,
    write_record,
    write_record_groups,
    write_reference_task2,
)
from utils.errors import ECGDataError


@pytest.fixture
def real_record(tiny_raw):
    return tiny_raw / "train" / "ptbxl_00275.mat"


def test_mat_round_trip(real_record, tmp_path):
    sig = read_record(real_record)
    assert sig.shape == (12, 5000) and sig.dtype == np.float32
    assert 0.05 < np.abs(sig).max() < 20  # mV, not raw ADC units
    write_record(tmp_path / "copy.mat", sig)
    np.testing.assert_array_equal(read_record(tmp_path / "copy.mat"), sig)
    scipy.io.savemat(tmp_path / "f64.mat", {"ecgdata": sig.astype(np.float64)})  # the competition's own dtype
    np.testing.assert_array_equal(read_record(tmp_path / "f64.mat"), sig)


def _raises(path, fragment):
    with pytest.raises(ECGDataError) as e:
        read_record(path)
    assert str(path) in str(e.value) and fragment in str(e.value), str(e.value)


def test_bad_records(real_record, tmp_path):
    png = tmp_path / "picture.mat"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 400)
    _raises(png, "not a MAT file")
    text = tmp_path / "notes.mat"
    text.write_text("name,tag\n" + "ptbxl_00001,0\n" * 20)
    _raises(text, "not a MAT file")
    tiny = tmp_path / "tiny.mat"
    tiny.write_bytes(b"MATLAB")
    _raises(tiny, "not a MAT file")
    data = real_record.read_bytes()
    cut = tmp_path / "cut.mat"
    cut.write_bytes(data[: len(data) // 2])
    _raises(cut, "truncated or corrupt")
    other = tmp_path / "other.mat"
    scipy.io.savemat(other, {"signal": np.zeros((12, 5000))})
    _raises(other, "no variable 'ecgdata' in MAT file (found: signal)")
    for shape in ((5000, 12), (12, 2500), (8, 5000)):
        bad = tmp_path / f"shape{shape[0]}x{shape[1]}.mat"
        scipy.io.savemat(bad, {"ecgdata": np.zeros(shape)})
        _raises(bad, f"has shape {shape}, expected (12, 5000)")
    for value in (np.inf, -np.inf):
        sig = np.zeros((12, 5000))
        sig[3, 77] = value
        bad = tmp_path / f"infinite_{value}.mat"
        scipy.io.savemat(bad, {"ecgdata": sig})
        _raises(bad, "infinite values (first at lead aVR, sample 77)")
    empty = tmp_path / "all_nan.mat"  # NaN marks what paper did not print (tests/test_gaps.py); all of it is nothing
    scipy.io.savemat(empty, {"ecgdata": np.full((12, 5000), np.nan)})
    _raises(empty, "holds no sample at all")
    _raises(tmp_path / "absent.mat", "record file not found")


def test_reference_good_and_bad(tmp_path):
    (tmp_path / "a.mat").write_bytes(b"")
    (tmp_path / "b.mat").write_bytes(b"")
    good = tmp_path / "good.csv"
    good.write_text("name,tag\na,0\nb.mat,1\n")
    df = read_reference(good, data_dir=tmp_path)
    assert list(df["name"]) == ["a", "b"] and list(df["tag"]) == [0, 1]
    cases = {
        "name,tag\na,2\n": "row 2 ('a'): tag must be 0 or 1, found '2'",
        "name,tag\na,x\n": "tag must be 0 or 1, found 'x'",
        "name,tag\na,\n": "tag must be 0 or 1, found ''",
        "name,tag\na,0\nb,1\na,1\n": "duplicate name 'a' (rows 2, 4)",
        "file,label\na,0\n": "header must be 'name,tag'",
        "name,tag\na,0\nc,1\n": "row 3: record 'c' has no file",
    }
    for i, (text, fragment) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.csv"
        path.write_text(text)
        with pytest.raises(ECGDataError) as e:
            read_reference(path, data_dir=tmp_path)
        assert str(path) in str(e.value) and fragment in str(e.value), str(e.value)
    with pytest.raises(ECGDataError, match="label file not found"):
        read_reference(tmp_path / "none.csv")


def test_task2_reference(tmp_path):
    path = tmp_path / "t2.csv"
    path.write_text("r1,1\nr2,10,11\nr3,5,12,2\n")
    labels = read_reference_task2(path)
    assert labels == {"r1": [1], "r2": [10, 11], "r3": [2, 5, 12]}
    write_reference_task2(tmp_path / "back.csv", labels)
    assert read_reference_task2(tmp_path / "back.csv") == labels
    assert (tmp_path / "back.csv").read_text().splitlines()[1] == "r2,10,11"
    cases = {"r1,13\n": "class index 13 outside 1..12", "r1,0\n": "class index 0 outside",
             "r1,abc\n": "class indices must be integers", "r1,1\nr1,2\n": "row 2: duplicate name 'r1'",
             "r1\n": "no class index"}
    for i, (text, fragment) in enumerate(cases.items()):
        bad = tmp_path / f"bad{i}.csv"
        bad.write_text(text)
        with pytest.raises(ECGDataError) as e:
            read_reference_task2(bad)
        assert str(bad) in str(e.value) and fragment in str(e.value), str(e.value)


BOM = b"\xef\xbb\xbf"  # Excel's "CSV UTF-8" starts every file with it


def test_label_files_with_a_utf8_bom_read_as_without(tiny_raw, tmp_path):
    """The real sample's four label files, each with a BOM: the same labels, the first record's name intact."""
    readers = {"trainreference.csv": read_reference, "val_reference.csv": read_reference,
               "trainreference_task2.csv": read_reference_task2, "val_reference_task2.csv": read_reference_task2}
    for name, read in readers.items():
        bom = tmp_path / name
        bom.write_bytes(BOM + (tiny_raw / name).read_bytes())
        split = tiny_raw / ("train" if name.startswith("train") else "val")
        got, want = read(bom, data_dir=split), read(tiny_raw / name, data_dir=split)
        if read is read_reference:
            assert got.equals(want), name
        else:
            assert got == want and len(got) in (60, 20), name


def test_label_files_not_utf8_are_a_clear_error(tmp_path):
    for name, text, read in (("t1.csv", "name,tag\nr\xe9c,0\n", read_reference),
                             ("t2.csv", "r\xe9c,1\n", read_reference_task2)):
        path = tmp_path / name
        path.write_bytes(text.encode("latin-1"))  # Excel's "CSV" on a Western Windows
        with pytest.raises(ECGDataError) as e:
            read(path)
        assert str(path) in str(e.value) and "not UTF-8 text" in str(e.value), str(e.value)


def test_record_groups_round_trip_and_bad_files(tiny_raw, tmp_path):
    """record_groups.csv: the sample's real one, a round trip, a BOM, and each malformed file an error naming it."""
    groups = read_record_groups(tiny_raw / "record_groups.csv")  # convert_ptbxl's: one patient per record here
    assert len(groups) == 60 and all(g.startswith("ptbxl_patient_") for g in groups.values())
    write_record_groups(tmp_path / "g.csv", {"a": "p1", "b": "p1", "c": "x, y"})
    assert read_record_groups(tmp_path / "g.csv") == {"a": "p1", "b": "p1", "c": "x, y"}
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbfname,group\r\na.mat,p1\r\n\r\n")
    assert read_record_groups(tmp_path / "bom.csv") == {"a": "p1"}
    for text, problem in [("", "header must be 'name,group', found an empty file"),
                          ("name,patient\na,1\n", "header must be 'name,group', found name,patient"),
                          ("name,group\na,1,2\n", "row 2: 3 fields, expected 2 (name,group)"),
                          ("name,group\na,\n", "row 2: empty group"),
                          ("name,group\na,1\nb,2\na,3\n", "row 4: duplicate name 'a' (also row 2)")]:
        (tmp_path / "bad.csv").write_text(text)
        with pytest.raises(ECGDataError) as e:
            read_record_groups(tmp_path / "bad.csv")
        assert str(e.value) == f"{tmp_path / 'bad.csv'}: {problem}"
    (tmp_path / "latin1.csv").write_bytes("name,group\nm\xfcller,1\n".encode("latin-1"))
    with pytest.raises(ECGDataError, match="latin1.csv: not UTF-8 text"):
        read_record_groups(tmp_path / "latin1.csv")
