"""Record groups (record_groups.csv) and train.py's folds: a patient's records, or a recording's windows, never on
both sides of a split; the same folds for every model family, whichever records each can read. Real PTB-XL records
(../shared/data/ptbxl) of patients with several records, through the converter, process.py and train.py's split."""
import logging
import shutil

import numpy as np
import pandas as pd
import pytest

import train
from models.families import get_family
from pipeline_fixtures import TINY_RENDER
from tools import convert_ptbxl
from utils.ecg.io import read_record_groups, read_reference, write_record_groups, write_reference
from utils.errors import ECGDataError
from utils.scoring.tasks import get_task
from utils.training.sampling import split_records, stratified_folds

T1, T2 = get_task(1), get_task(2)
FOLDS = 5


@pytest.fixture(scope="session")
def patients_raw(ptbxl_dir, tmp_path_factory):
    """(raw dir, {name: patient_id}): convert_ptbxl --test-fold 8 on a database of the training records of 12
    patients with 2-4 records each, 20 records of single patients and 2 test records. Chosen by patient id, so
    whichever records ../shared/data/ptbxl holds (it grows) the test sees such a set."""
    db = pd.read_csv(ptbxl_dir / "ptbxl_database.csv")
    train_rows = db[db["strat_fold"] != 8]
    several = train_rows["patient_id"].duplicated(keep=False)
    counts = train_rows[several]["patient_id"].value_counts()
    chosen = sorted(counts[counts <= 4].index)[:12]
    single = train_rows[~several].iloc[::40].head(20)
    assert len(chosen) == 12 and len(single) == 20
    rows = pd.concat([train_rows[train_rows["patient_id"].isin(chosen)], single, db[db["strat_fold"] == 8].head(2)])
    src = tmp_path_factory.mktemp("ptbxl_patients") / "src"
    src.mkdir()
    (src / "records500").symlink_to(ptbxl_dir / "records500")
    rows.to_csv(src / "ptbxl_database.csv", index=False)
    raw = src.parent / "raw"
    convert_ptbxl.main(["--src", str(src), "--dst", str(raw), "--test-fold", "8", "--workers", "1"])
    patient = {convert_ptbxl.record_name(i): p for i, p in zip(rows["ecg_id"], rows["patient_id"])}
    return raw, patient


def training_counts(raw, patient):
    """(training records, records that share their patient with another) of the patients_raw set."""
    names = list(read_record_groups(raw / "record_groups.csv"))
    ids = [patient[n] for n in names]
    return len(names), sum(ids.count(i) > 1 for i in ids)


class ReadOnce:
    """A family whose records are read once for every fold (train.load_split asks only for `labels`)."""

    def __init__(self, family):
        self.family, self.labelled = family, None

    def labels(self, *args):
        self.labelled = self.labelled or self.family.labels(*args)
        return self.labelled


def validation_folds(task, family, data_dir=None, dataset_dir=None, num_folds=FOLDS):
    """{name: the fold that validates it} under train.py's split."""
    fold, family = {}, ReadOnce(get_family(family))
    for k in range(num_folds):
        cfg = {"DATA_DIR": str(data_dir), "DATASET_DIR": str(dataset_dir), "NUM_FOLDS": num_folds, "VAL_FOLD": k,
               "SEED": 2021}
        labelled, tr, va = train.load_split(cfg, task, family)
        assert not set(tr["name"]) & set(va["name"])
        fold.update(dict.fromkeys(va["name"], k))
    assert set(fold) == set(labelled.refs["name"])  # k-fold: each record validated once
    return fold


def split_groups(fold, group):
    """The groups with records in more than one fold."""
    folds_of = {}
    for name, k in fold.items():
        folds_of.setdefault(group[name], set()).add(k)
    return sorted(g for g, ks in folds_of.items() if len(ks) > 1)


def test_converter_writes_each_records_patient(patients_raw, capsys):
    raw, patient = patients_raw
    groups = read_record_groups(raw / "record_groups.csv")
    assert list(groups) == list(read_reference(raw / "trainreference.csv")["name"])  # the training records, only
    n, _ = training_counts(raw, patient)
    assert len(groups) == n and len(set(groups.values())) == 32  # 12 patients + 20 single ones
    assert all(g == f"ptbxl_patient_{int(patient[n])}" for n, g in groups.items())


@pytest.mark.parametrize("task", [T1, T2], ids=["task1", "task2"])
def test_a_fold_never_splits_a_patient(patients_raw, task):
    """Real records of 12 patients with 2-4 records each among 44-68: every fold holds all of a patient's records."""
    raw, patient = patients_raw
    n, shared = training_counts(raw, patient)
    fold = validation_folds(task, "resnet1d", data_dir=raw)
    assert 24 <= shared <= 48 and len(fold) == n == shared + 20 and split_groups(fold, patient) == []
    assert min(np.bincount(list(fold.values()), minlength=FOLDS)) >= n // FOLDS - 3  # still balanced


def test_picture_and_signal_families_get_the_same_folds(patients_raw, tmp_path):
    """A record that cannot be read: process.py reports it and carries the labels and groups whole, the picture and
    the signal family leave it out, and both validate the same records on every fold - the folds of the intact
    records, minus it: a record's fold does not depend on which others a family could read."""
    raw, patient = patients_raw
    damaged, ds = tmp_path / "raw", tmp_path / "ds"
    shutil.copytree(raw, damaged)
    bad = sorted(n for n in read_record_groups(raw / "record_groups.csv") if list(patient.values()).count(patient[n]) > 1)[0]
    path = damaged / "train" / f"{bad}.mat"
    path.write_bytes(path.read_bytes()[:3000])
    import process

    process.main(["--data-dir", str(damaged), "--out-dir", str(ds), "--size", "32", *TINY_RENDER, "--workers", "1"])
    assert (ds / "record_groups.csv").read_text() == (raw / "record_groups.csv").read_text()
    for task in (T1, T2):
        intact = validation_folds(task, "resnet1d", data_dir=raw)
        signal = validation_folds(task, "resnet1d", data_dir=damaged)
        pictures = validation_folds(task, "resnet18", dataset_dir=ds)
        assert bad not in signal and signal == pictures == {n: k for n, k in intact.items() if n != bad}


def test_without_the_file_every_record_is_its_own_group(patients_raw, tmp_path, caplog):
    raw, patient = patients_raw
    refs = T1.read_labels(raw / "trainreference.csv")
    (tmp_path / "trainreference.csv").write_text((raw / "trainreference.csv").read_text())
    with caplog.at_level(logging.INFO, logger="ecg"):
        split_records(refs, T1, FOLDS, 0, 2021, tmp_path / "trainreference.csv")
    assert f"no {tmp_path / 'record_groups.csv'}: every record is its own group" in caplog.text
    # a record the file does not list is its own group, and the log counts them
    groups = read_record_groups(raw / "record_groups.csv")
    write_record_groups(tmp_path / "record_groups.csv", dict(list(groups.items())[3:]))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ecg"):
        split_records(refs, T1, FOLDS, 0, 2021, tmp_path / "trainreference.csv")
    listed = dict(list(groups.items())[3:])
    full = [listed.get(n, n) for n in groups]  # an unlisted record: its own group
    shared = sum(full.count(g) > 1 for g in full)
    assert f"record_groups.csv: 3 of the {len(groups)} labelled records are not listed" in caplog.text
    assert f"groups ({tmp_path / 'record_groups.csv'}): {len(set(full))} among {len(groups)} labelled records, " \
           f"{shared} records share theirs" in caplog.text


def test_too_few_groups_for_the_folds_is_one_line(tmp_path):
    names = [f"r{i}" for i in range(8)]
    refs = pd.DataFrame({"name": names, "y": [0, 1] * 4})
    write_reference(tmp_path / "trainreference.csv", refs.rename(columns={"y": "tag"}))
    write_record_groups(tmp_path / "record_groups.csv", {n: f"p{i // 3}" for i, n in enumerate(names)})  # 3 patients
    with pytest.raises(ECGDataError) as e:
        split_records(refs, T1, 4, 0, 2021, tmp_path / "trainreference.csv")
    assert str(e.value) == (f"{tmp_path / 'trainreference.csv'}: 8 labelled records in 3 groups (record_groups.csv) "
                            f"are too few for 4 folds (--num-folds)")
    tr, va = split_records(refs, T1, 3, 0, 2021, tmp_path / "trainreference.csv")
    assert len({int(n[1:]) // 3 for n in va["name"]}) == 1  # 3 folds of 3 patients: one patient validates


def test_greedy_folds_that_leave_one_empty_fall_back_to_folds_of_the_groups():
    """StratifiedGroupKFold can leave a fold empty with few groups (found by a seeded search): every fold is used."""
    y = [0, 0, 1, 0, 1, 0, 0, 1, 0]
    groups = np.array([1, 4, 4, 4, 3, 0, 1, 3, 4])
    folds = stratified_folds(y, 4, 35, groups)
    assert sorted(set(folds)) == [0, 1, 2, 3]
    assert all(len(set(folds[groups == g])) == 1 for g in set(groups))
