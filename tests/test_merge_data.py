"""tools/merge_data.py: PTB-XL (the embedded sample) and real CinC records converted by tools/convert_cinc.py merged
into one data folder that train.py trains on, every label file and the groups carried over; bad merges refused."""
import os
from pathlib import Path

import pandas as pd
import pytest

import train
from tools import convert_cinc, merge_data
from utils.artifacts import read_json
from utils.ecg.io import read_record, read_record_groups, read_reference, read_reference_task2
from utils.errors import ConfigError, ECGDataError

ROOT = Path(__file__).resolve().parents[1]
CPSC = ["A0011", "A0012", "A0013", "A0015", "A0016", "A0017", "A0021", "A0039", "A0043", "A0047", "A0050", "A0060"]


@pytest.fixture(scope="module")
def cinc_raw(tmp_path_factory):
    """12 real CPSC2018 records converted: 9 training, 3 test records."""
    cinc = Path(os.environ.get("CINC_DIR", ROOT.parent / "shared" / "data" / "cinc")) / "cpsc_2018"
    if not (cinc / "A0011.hea").is_file():
        pytest.skip(f"CinC sample not found at {cinc}")
    src = tmp_path_factory.mktemp("cinc_src") / "cpsc_2018"
    src.mkdir()
    for name in CPSC:
        for ext in (".hea", ".mat"):
            (src / f"{name}{ext}").symlink_to(cinc / f"{name}{ext}")
    dst = tmp_path_factory.mktemp("cinc_raw") / "raw"
    convert_cinc.main(["--src", str(src.parent), "--dst", str(dst), "--test-fraction", "0.25", "--workers", "1"])
    return dst


def test_merged_folder_holds_every_record_label_and_group(tiny_raw, cinc_raw, tmp_path):
    dst = tmp_path / "merged"
    counts = merge_data.main(["--src", str(tiny_raw), "--src", str(cinc_raw), "--dst", str(dst)])
    for split, t1, t2 in (("train", "trainreference.csv", "trainreference_task2.csv"),
                          ("val", "val_reference.csv", "val_reference_task2.csv")):
        want = pd.concat([read_reference(s / t1) for s in (tiny_raw, cinc_raw)], ignore_index=True)
        got = read_reference(dst / t1, data_dir=dst / split)  # every listed record is there
        assert got.to_dict("records") == want.to_dict("records") and counts[split] == len(want)
        assert read_reference_task2(dst / t2) == {**read_reference_task2(tiny_raw / t2), **read_reference_task2(cinc_raw / t2)}
        name = got["name"].iloc[-1]  # a CinC record, linked: the same signal
        assert (dst / split / f"{name}.mat").is_symlink()
        assert (read_record(dst / split / f"{name}.mat") == read_record(cinc_raw / split / f"{name}.mat")).all()
    groups = read_record_groups(dst / "record_groups.csv")
    assert groups == {**read_record_groups(tiny_raw / "record_groups.csv"), **read_record_groups(cinc_raw / "record_groups.csv")}
    assert sum(n.startswith("ptbxl_") for n in groups) > 0


def test_train_learns_from_both_collections(tiny_raw, cinc_raw, tmp_path):
    """The features member on the merged folder: its folds hold records of both collections."""
    dst = tmp_path / "merged"
    merge_data.main(["--src", str(tiny_raw), "--src", str(cinc_raw), "--dst", str(dst), "--copy"])
    assert not any(p.is_symlink() for p in (dst / "train").iterdir())
    out = tmp_path / "out"
    train.main(["--arch", "features", "--data-dir", str(dst), "--output-dir", str(out), "--num-folds", "3",
                "--importance-repeats", "0"])
    assert read_json(out / "best_model" / "model.json")["arch"] == "features"
    log = (out / "train.log").read_text()
    assert f"{60 + 9} labelled records" in log


def test_bad_merges_are_one_line_errors(tiny_raw, cinc_raw, tmp_path):
    with pytest.raises(ConfigError, match="at least two different"):
        merge_data.main(["--src", str(tiny_raw), "--src", str(tiny_raw), "--dst", str(tmp_path / "a")])
    with pytest.raises(ConfigError, match="exists"):
        merge_data.main(["--src", str(tiny_raw), "--src", str(cinc_raw), "--dst", str(tmp_path)])
    twin = tmp_path / "twin"  # the sample again under another folder: every name collides
    twin.mkdir()
    for f in ("trainreference.csv", "val_reference.csv"):
        (twin / f).write_text((tiny_raw / f).read_text())
    for split in ("train", "val"):
        (twin / split).symlink_to(tiny_raw / split)
    with pytest.raises(ECGDataError, match=r"record ptbxl_\w+ is also in .*sample: rename one collection"):
        merge_data.main(["--src", str(tiny_raw), "--src", str(twin), "--dst", str(tmp_path / "b")])
    assert not (tmp_path / "b").exists()
    with pytest.raises(ECGDataError, match="not a converted data folder"):
        merge_data.main(["--src", str(tiny_raw), "--src", str(tmp_path / "a_missing"), "--dst", str(tmp_path / "c")])
