"""PTB-XL -> competition layout, on real PTB-XL rows and records."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import wfdb

from tools import convert_ptbxl
from utils.ecg.io import list_records, read_record, read_reference, read_reference_task2, write_record
from utils.ecg.ptbxl import map_scp_codes


@pytest.mark.parametrize("codes, expected", [
    ({"NORM": 100.0, "SR": 0.0}, (0, [1])),
    ({"NORM": 100.0}, (0, [1])),
    ({"NORM": 100.0, "SBRAD": 0.0}, (1, [2])),  # every key counts, likelihood 0 too
    ({"SR": 0.0}, (1, [12])),
    ({"AFIB": 100.0, "NDT": 50.0, "STD_": 0.0, "LVH": 100.0}, (1, [5, 10, 11, 12])),
    ({"STACH": 100.0, "SARRH": 0.0, "PVC": 0.0, "PAC": 0.0, "1AVB": 0.0, "CRBBB": 0.0}, (1, [3, 4, 6, 7, 8, 9])),
    ({"LOWT": 0.0, "INVT": 0.0, "NT_": 0.0, "TAB_": 0.0, "STE_": 0.0, "NST_": 0.0}, (1, [10, 11])),
])
def test_label_mapping(codes, expected):
    assert map_scp_codes(codes) == expected


# Real rows of ../shared/data/ptbxl/ptbxl_database.csv and the labels their scp_codes must give.
REAL = {
    43: (0, [1]),  # {'NORM': 100.0, 'SR': 0.0}
    482: (1, [5, 11, 12]),  # {'ASMI', 'IMI', 'IRBBB', 'LAFB', 'NST_': 0.0, 'AFIB': 0.0}
    269: (1, [7, 9, 12]),  # {'IMI', 'CRBBB', 'PAC': 0.0, 'LPR', 'QWAVE', 'SR'}
    209: (1, [8, 10]),  # {'NDT', '1AVB', 'SR'}
    341: (1, [10, 11]),  # {'NDT', 'STD_': 0.0, 'SR'}
    1517: (1, [2, 11]),  # {'NORM': 100.0, 'NST_': 0.0, 'SBRAD': 0.0}
    9824: (1, [12]),  # {'SR': 0.0}
}


def test_real_rows_map_to_the_right_labels(ptbxl_dir):
    db = convert_ptbxl.load_database(ptbxl_dir).set_index("ecg_id")
    for ecg_id, (tag, classes) in REAL.items():
        assert (db.loc[ecg_id, "tag"], db.loc[ecg_id, "classes"]) == (tag, classes), ecg_id
        assert db.loc[ecg_id, "name"] == f"ptbxl_{ecg_id:05d}"


@pytest.mark.parametrize("test_fold", [8, 3])
def test_converter_writes_those_labels(ptbxl_dir, tmp_path, test_fold):
    """The same real rows through the whole converter: a small database of just them."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "records500").symlink_to(ptbxl_dir / "records500")
    db = pd.read_csv(ptbxl_dir / "ptbxl_database.csv")
    db[db["ecg_id"].isin(list(REAL))].to_csv(src / "ptbxl_database.csv", index=False)
    convert_ptbxl.main(["--src", str(src), "--dst", str(tmp_path / "raw"), "--test-fold", str(test_fold),
                        "--workers", "1"])
    raw = tmp_path / "raw"
    in_test = {8: {43, 269, 1517}, 3: {341, 9824}}[test_fold]  # their strat_fold (the rest: folds 2 and 8)
    for split, ref, t2 in (("train", "trainreference.csv", "trainreference_task2.csv"),
                           ("val", "val_reference.csv", "val_reference_task2.csv")):
        ids = sorted(i for i in REAL if (i in in_test) == (split == "val"))
        names = [f"ptbxl_{i:05d}" for i in ids]
        assert list_records(raw / split) == names
        tags = read_reference(raw / ref, data_dir=raw / split).set_index("name")["tag"]
        classes = read_reference_task2(raw / t2, data_dir=raw / split)
        assert {n: (tags[n], classes[n]) for n in names} == {n: REAL[i] for n, i in zip(names, ids)}


def test_convert_one_matches_wfdb(ptbxl_dir, tmp_path):
    out = convert_ptbxl.convert_one((str(ptbxl_dir), "records500/00000/00043_hr", tmp_path / "x.mat", True))
    expected = wfdb.rdrecord(str(ptbxl_dir / "records500/00000/00043_hr")).p_signal.T.astype(np.float32)
    np.testing.assert_array_equal(read_record(out), expected)


def test_converted_layout(raw_small, ptbxl_dir):
    db = pd.read_csv(ptbxl_dir / "ptbxl_database.csv").set_index("ecg_id")
    train, test = list_records(raw_small / "train"), list_records(raw_small / "val")
    assert len(train) == 16 and len(test) == 6 and not set(train) & set(test)
    folds = {n: db.loc[int(n.split("_")[1]), "strat_fold"] for n in train + test}
    assert all(folds[n] == 8 for n in test) and all(folds[n] != 8 for n in train)
    refs = read_reference(raw_small / "trainreference.csv", data_dir=raw_small / "train")
    assert sorted(refs["name"]) == train and set(refs["tag"]) == {0, 1}  # proportional sampling keeps both classes
    t2 = read_reference_task2(raw_small / "trainreference_task2.csv", data_dir=raw_small / "train")
    assert set(t2) == set(train)
    for name, tag in zip(refs["name"], refs["tag"]):
        assert (t2[name] == [1]) == (tag == 0)
        codes = eval(db.loc[int(name.split("_")[1]), "scp_codes"])
        assert map_scp_codes(codes) == (tag, t2[name])
    truth = read_reference(raw_small / "val_reference.csv", data_dir=raw_small / "val")
    assert sorted(truth["name"]) == test
    assert set(read_reference_task2(raw_small / "val_reference_task2.csv")) == set(test)
    assert read_record(raw_small / "val" / f"{test[0]}.mat").shape == (12, 5000)


def test_empty_test_fold_warns(ptbxl_dir, tmp_path):
    r = subprocess.run([sys.executable, "tools/convert_ptbxl.py", "--src", str(ptbxl_dir), "--dst", str(tmp_path / "raw"),
                        "--max-records", "2"], capture_output=True, text=True, cwd=convert_ptbxl.Path(__file__).parents[1])
    assert r.returncode == 0, r.stderr
    assert "no record has strat_fold 10" in r.stderr and "--test-fold" in r.stderr
    assert len(list_records(tmp_path / "raw" / "train")) == 2


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="ptbxl_database.csv not found"):
        convert_ptbxl.main(["--src", str(tmp_path), "--dst", str(tmp_path / "o")])


def test_reconverting_into_the_same_folder_leaves_no_stale_records(ptbxl_dir, tmp_path):
    dst = tmp_path / "raw"
    convert_ptbxl.main(["--src", str(ptbxl_dir), "--dst", str(dst), "--test-fold", "8", "--max-records", "6",
                        "--max-test-records", "3", "--workers", "1"])
    convert_ptbxl.main(["--src", str(ptbxl_dir), "--dst", str(dst), "--test-fold", "3", "--max-records", "4",
                        "--max-test-records", "2", "--workers", "1"])
    for split, ref in (("train", "trainreference.csv"), ("val", "val_reference.csv")):
        assert list_records(dst / split) == sorted(read_reference(dst / ref)["name"])


def test_converting_again_leaves_unchanged_records_and_their_times(ptbxl_dir, tmp_path):
    """Two benches on one work folder both convert into it: the second must not rewrite identical records, whose
    file times key the signal and measurement caches a running training of the first is reading."""
    dst = tmp_path / "raw"
    args = ["--src", str(ptbxl_dir), "--dst", str(dst), "--test-fold", "8", "--max-records", "4",
            "--max-test-records", "2", "--workers", "1"]
    convert_ptbxl.main(args)
    files = sorted(dst.glob("*/*.mat"))
    before = {p: p.stat().st_mtime_ns for p in files}
    changed = files[0]
    sig = read_record(changed)
    write_record(changed, sig + 0.5)  # one record whose content differs: written again
    moved = changed.stat().st_mtime_ns
    convert_ptbxl.main(args)
    assert {p: p.stat().st_mtime_ns for p in files[1:]} == {p: before[p] for p in files[1:]}
    assert changed.stat().st_mtime_ns != moved and np.array_equal(read_record(changed), sig)
    assert not write_record(files[1], read_record(files[1])) and write_record(tmp_path / "new.mat", sig)
    damaged = tmp_path / "damaged.mat"
    damaged.write_bytes(b"")  # a file cut off at 0 bytes is written again, not an error
    assert write_record(damaged, sig) and np.array_equal(read_record(damaged), sig)
    assert write_record(tmp_path / "new", sig)  # not skipped because new.mat holds the same data
