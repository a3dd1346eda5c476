"""bench/digitize_accuracy.py on 3 sample test records, clean and scan:1 pages at 5 px/mm, the tiny Task 1 signal model:
one run (its stages in this process: pipeline_fixtures.scripts_in_process) whose JSON, folders and pages are checked
against the files themselves and against predict.py's own report."""
import json

import numpy as np
import pandas as pd
import pytest
import scipy.io

from bench import digitize_accuracy as da
from bench import protocol
from pipeline_fixtures import scripts_in_process
from utils.paper.layouts import printed_mask
from utils.paper.score import record_score, record_snr

N = 3  # the sample's first 3 test records by name: 2 abnormal, 1 normal (an AUC is defined)


@pytest.fixture(scope="module")
def run(tiny_raw, tiny_signal, tmp_path_factory):
    work = tmp_path_factory.mktemp("digitize_accuracy")
    model = tiny_signal[0] / "best_model"
    with scripts_in_process() as ran:  # 6 scripts without 6 interpreter and Paddle start-ups
        result = da.main(["--records", str(tiny_raw), "--model-t1", str(model), "--conditions", "clean,scan:1",
                          "--max-records", str(N), "--paper-workers", "1", "--px-per-mm", "5", "--work-dir",
                          str(work / "w"), "--json", str(work / "r.json"), "--figure", str(work / "r.png")])
    assert ran.count("tools/digitize.py") == 2 and ran.count("tools/make_paper.py") == 2
    return result, work, model


def ecgdata(path):
    return np.asarray(scipy.io.loadmat(path)["ecgdata"], np.float64)


def test_the_json_holds_every_figure_and_a_page_per_record(run):
    result, work, _ = run
    assert json.loads((work / "r.json").read_text()) == result
    assert (work / "r.png").stat().st_size > 10_000
    assert {"conditions", "per_kind", "targets", "n_records", "models", "protocol", "how_to_read",
            "seconds"} <= set(result)
    assert result["n_records"] == N and list(result["conditions"]) == ["clean", "scan:1"]
    for name, c in result["conditions"].items():
        assert {"pages", "read", "refused", "failed", "snr_mean", "snr_ci", "snr_median", "seconds_per_page",
                "cpu_seconds_per_page", "task1"} <= set(c)
        assert {"auc_digitised", "auc_original", "auc_masked", "diff", "diff_ci", "masked_diff",
                "masked_diff_ci"} <= set(c["task1"])
        assert c["pages"] == c["records"] == N and c["read"] + c["refused"] + c["failed"] == N
        status = pd.read_csv(work / "w" / name.replace(":", "_") / "digitised" / "digitize.csv")
        assert c["read"] == (status["status"] == "ok").sum()
        assert c["seconds_per_page"] > 0 and c["cpu_seconds_per_page"] > 0
    assert set(result["targets"]) >= {"snr_clean_db", "task1_auc_clean", "seconds_per_page"}


def test_snr_is_the_scorers_on_the_pages_read(run):
    """Each page read scored again from its files (the generator's source record, the digitiser's record) gives the
    bench's SNR, utils/paper/score.record_snr's; the condition's mean and median are over those pages; clean pages
    read well."""
    result, work, _ = run
    table = pd.read_csv(result["pages_csv"], dtype={"stem": str, "record": str})
    for name, c in result["conditions"].items():
        base = work / "w" / name.replace(":", "_")
        rows = table[table["condition"] == name]
        ok = rows[rows["status"] == "ok"]
        assert len(rows) == N and len(ok) == c["read"]
        pairs = [(ecgdata(base / "pages" / f"{s}.mat"), ecgdata(base / "digitised" / f"{s}.mat")) for s in ok["stem"]]
        snr = [record_snr(x, y)[1] for x, y in pairs]
        np.testing.assert_allclose(ok["snr"], snr, rtol=1e-9)
        assert list(ok["leads_restricted"]) == [record_score(x, y)[2] for x, y in pairs]
        assert c["leads_alignment_restricted"] == ok["leads_restricted"].sum()
        if snr:
            assert c["snr_mean"] == pytest.approx(np.mean(snr)) and c["snr_median"] == pytest.approx(np.median(snr))
            assert c["snr_ci"][0] <= c["snr_mean"] <= c["snr_ci"][1]
        assert rows.loc[rows["status"] != "ok", "snr"].isna().all()
    clean = result["conditions"]["clean"]
    assert clean["read"] >= 2 and clean["snr_mean"] > 12  # about 20 dB measured on these pages


def test_a_lead_slid_off_the_record_is_aligned_keeping_half_its_samples(tiny_raw):
    """A short stretch read at the record's start that matches nothing: the best of all shifts within 0.5 s may keep
    a few samples that match (an SNR up to infinity); utils/paper/score.lead_score keeps at least half of what was
    read, and record_snr scores each lead so. A lead read right is scored as lead_snr scores it."""
    from utils.paper.score import lead_score, lead_snr

    x = ecgdata(sorted((tiny_raw / "val").glob("*.mat"))[0])[1]
    y = np.full_like(x, np.nan)
    y[:235] = np.random.default_rng(0).normal(0, 0.5, 235)  # 0.47 s of a misread lead at the record's start
    snr, restricted = lead_score(x, y)
    assert restricted and np.isfinite(snr) and snr < 3
    record = np.tile(np.where(np.arange(len(x)) < 1250, x + 0.01, np.nan), (2, 1))
    record[1] = y
    assert record_snr(np.stack([x, x]), record)[0][1] == snr and record_score(np.stack([x, x]), record)[2] == 1
    _, coverage, s, _ = lead_snr(x, y)
    assert coverage * len(x) < 0.5 * 235  # what the guard is for: lead_snr's best shift drops most of the stretch
    good = np.where(np.arange(len(x)) < 1250, x + 0.01, np.nan)
    assert lead_score(x, good) == (lead_snr(x, good)[0], False)


def test_per_kind_counts_the_pages_that_had_each_distortion(run):
    result, work, _ = run
    kinds = {}
    for p in (work / "w" / "scan_1" / "pages").glob("*.json"):
        for k in json.loads(p.read_text())["distortions"]:
            kinds[k] = kinds.get(k, 0) + 1
    assert kinds and {k: v["pages"] for k, v in result["per_kind"].items()} == kinds


def test_masked_and_digitised_records_hold_nan_where_the_page_did_not_print(run, tiny_raw):
    """raw_masked: the original where the page printed the lead, NaN elsewhere; raw_digitised: a record for every
    test record, the digitiser's record of its page as it is (NaN kept), a page not read a MAT without ecgdata."""
    result, work, _ = run
    for name in result["conditions"]:
        base = work / "w" / name.replace(":", "_")
        index = pd.read_csv(base / "pages" / "index.csv", dtype=str)
        assert sorted(p.stem for p in (base / "raw_digitised" / "val").glob("*.mat")) == sorted(index["record"])
        assert (base / "raw_digitised" / "val_reference.csv").is_file()
        read = pd.read_csv(base / "digitised" / "digitize.csv", dtype=str, keep_default_na=False).set_index("name")
        for stem, record in zip(index["stem"], index["record"]):
            shown = printed_mask(json.loads((base / "pages" / f"{stem}.json").read_text())["leads"])
            assert 0 < shown.mean() < 1  # the layouts print part of most leads
            masked = ecgdata(base / "raw_masked" / "val" / f"{record}.mat")
            original = ecgdata(tiny_raw / "val" / f"{record}.mat")
            assert (np.isfinite(masked) == shown).all()
            np.testing.assert_allclose(masked[shown], original[shown], rtol=1e-6)
            mat = scipy.io.loadmat(base / "raw_digitised" / "val" / f"{record}.mat")
            if read.loc[stem, "status"] == "ok":
                np.testing.assert_array_equal(mat["ecgdata"], ecgdata(base / "digitised" / f"{stem}.mat"))
                assert np.isfinite(mat["ecgdata"]).any() and np.isnan(mat["ecgdata"]).any() == (shown.mean() < 1)
            else:
                assert "ecgdata" not in mat and da.NOT_READ in mat


def test_diagnosis_matches_predict_py_on_the_same_records(run, tmp_path):
    """The original records' AUC is what predict.py itself reports for the same model and records; a page not read
    is answered with the fallback and nothing else is; the differences are the AUCs' differences."""
    import predict

    result, work, model = run
    raw = work / "w" / "raw"
    assert sorted(p.stem for p in (raw / "val").glob("*.mat")) == result["record_names"]
    report = predict.main(["--data-dir", str(raw), "--model", str(model), "--out", str(tmp_path / "a.csv"),
                           "--truth", str(raw / "val_reference.csv"), "--report", str(tmp_path / "r.json")])
    for c in result["conditions"].values():
        t = c["task1"]
        assert t["n"] == N
        assert t["auc_original"] == pytest.approx(report["metrics"]["auc"], abs=1e-9)
        assert t["fallback_digitised"] == c["pages"] - c["read"]
        assert t["fallback_masked"] == t["fallback_original"] == 0  # records with gaps are read (utils/ecg/gaps.py)
        assert t["diff"] == pytest.approx(t["auc_digitised"] - t["auc_original"])
        assert t["masked_diff"] == pytest.approx(t["auc_masked"] - t["auc_original"])
        ro = t["read_only"]
        assert ro["n"] == c["read"] and ro["fallback_digitised"] == 0
    # one seed: a record's page has the same layout in every condition, so one masked original is predicted
    for n in result["record_names"]:
        a, b = (ecgdata(work / "w" / k / "raw_masked" / "val" / f"{n}.mat") for k in ("clean", "scan_1"))
        np.testing.assert_array_equal(a, b)
    assert len(list((work / "w" / "predict" / "val").glob("masked-*.mat"))) == N


def test_mean_figure_is_the_bootstrap_of_the_mean():
    x = np.array([1.0, 2.0, 4.0, 8.0, np.nan])
    fig = protocol.mean_figure(x)
    assert fig["value"] == pytest.approx(3.75) and fig["n"] == 4
    means = np.concatenate([W @ x[:4] / 4 for W in protocol.resample_counts(4)])
    assert fig["ci95"] == pytest.approx(list(np.percentile(means, [2.5, 97.5])))
    assert protocol.mean_figure([5.0, 5.0])["ci95"] == [5.0, 5.0]
    assert protocol.mean_figure([np.nan]) == {"value": None, "ci95": None, "n": 0}


@pytest.mark.parametrize("bad", ["clean:1", "scan:4", "fax", "clean,clean", ""])
def test_conditions_are_checked(bad, tmp_path):
    with pytest.raises(SystemExit):
        da.parse(["--records", str(tmp_path), "--model-t1", str(tmp_path), "--json", "x", "--conditions", bad])
