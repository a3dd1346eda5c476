"""tools/paper_copies.py on the embedded sample: each copy is its record as a page of the usual layouts prints it,
labelled and grouped as its record, and the folder reads as a data folder; a record that cannot be read is left out
with a warning."""
import contextlib
import io

import numpy as np
import pandas as pd
import pytest

from tools import paper_copies
from utils.artifacts import mirror_data_inputs
from utils.ecg.io import list_records, read_record, read_record_groups, read_reference, read_reference_task2
from utils.errors import ConfigError
from utils.paper.layouts import LAYOUT_MIX, as_printed

from pipeline_fixtures import ROOT

SAMPLE = ROOT / "dataset" / "sample"


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    src = mirror_data_inputs(SAMPLE, tmp_path_factory.mktemp("src") / "raw")
    (src / "train" / "broken.mat").write_bytes(b"not a MAT file")
    ref = pd.read_csv(src / "trainreference.csv", dtype=str)
    pd.concat([ref, pd.DataFrame({"name": ["broken"], "tag": ["1"]})]).to_csv(src / "trainreference.csv", index=False)
    out, err = tmp_path_factory.mktemp("out") / "paper", io.StringIO()
    with contextlib.redirect_stderr(err):
        paper_copies.main(["--data-dir", str(src), "--out", str(out), "--copies", "2", "--seed", "3"])
    return src, out, err.getvalue()


def test_each_copy_is_its_record_as_a_layout_prints_it(copies):
    src, out, err = copies
    assert "broken.mat" in err and "skipped" in err  # the record that cannot be read: one line, the run goes on
    names = [n for n in list_records(src / "train") if n != "broken"]
    seen = set()
    for i, name in enumerate(names):
        x = read_record(src / "train" / f"{name}.mat", gaps="keep")
        for k in range(2):
            y = read_record(out / "train" / f"{name}_paper{k}.mat", gaps="keep")
            layout = [lay for lay in LAYOUT_MIX if np.array_equal(np.isnan(y), np.isnan(as_printed(x, lay)))]
            assert len(layout) == 1, (name, k)  # NaN exactly where one usual layout prints nothing
            np.testing.assert_array_equal(y[~np.isnan(y)], x[~np.isnan(y)])
            seen.add(layout[0])
            if i < 3:  # the reader fills it (utils/ecg/gaps.py, tested on its own)
                assert np.isfinite(read_record(out / "train" / f"{name}_paper{k}.mat")).all()
    assert "3x4+1" in seen and len(seen) >= 3  # drawn from the mix, not one layout


def test_copies_are_labelled_and_grouped_as_their_record(copies):
    src, out, _ = copies
    tags = dict(read_reference(src / "trainreference.csv").values)
    got = read_reference(out / "trainreference.csv", out / "train")  # every listed record has its file
    assert len(got) == 3 * (len(tags) - 1) and "broken" not in set(got["name"])
    for name, tag in got.values:
        assert tag == tags[name.split("_paper")[0]]
    classes = read_reference_task2(src / "trainreference_task2.csv")
    for name, c in read_reference_task2(out / "trainreference_task2.csv").items():
        assert c == classes[name.split("_paper")[0]]
    groups, src_groups = read_record_groups(out / "record_groups.csv"), read_record_groups(src / "record_groups.csv")
    assert set(groups) == set(got["name"])
    assert all(g == src_groups[n.split("_paper")[0]] for n, g in groups.items())
    assert sorted(p.name for p in (out / "val").glob("*.mat")) == sorted(p.name for p in (src / "val").glob("*.mat"))


def test_a_records_copies_depend_on_the_seed_and_name_only_and_bad_folders_are_errors(copies, tmp_path):
    """Copy 0 of every record is the same with --copies 1 (no shared random stream), another seed draws other
    layouts, a source without groups puts each copy in its record's own group; a folder not empty, or holding
    copies already, and a source without train/ are one-line errors."""
    src, out, _ = copies
    plain = mirror_data_inputs(SAMPLE, tmp_path / "plain")  # no broken record, no groups file
    (plain / "record_groups.csv").unlink()
    for seed, where in (("3", tmp_path / "again"), ("4", tmp_path / "other")):
        paper_copies.main(["--data-dir", str(plain), "--out", str(where), "--copies", "1", "--seed", seed])
    names = list_records(plain / "train")
    same = [np.array_equal(np.isnan(read_record(d / "train" / f"{n}_paper0.mat", gaps="keep")),
                           np.isnan(read_record(out / "train" / f"{n}_paper0.mat", gaps="keep")))
            for d in (tmp_path / "again", tmp_path / "other") for n in names]
    assert all(same[:len(names)]) and not all(same[len(names):])
    groups = read_record_groups(tmp_path / "again" / "record_groups.csv")
    assert all(groups[f"{n}_paper0"] == groups[n] == n for n in names)
    with pytest.raises(ConfigError, match="exists and is not empty"):
        paper_copies.main(["--data-dir", str(plain), "--out", str(tmp_path / "again")])
    with pytest.raises(ConfigError, match="has a copy's name"):
        paper_copies.main(["--data-dir", str(out), "--out", str(tmp_path / "twice")])
    with pytest.raises(ConfigError, match="the same folder as --data-dir"):
        paper_copies.main(["--data-dir", str(src), "--out", str(src)])
    with pytest.raises(ConfigError, match="no train/ folder"):
        paper_copies.main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "x")])
