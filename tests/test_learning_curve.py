"""bench/learning_curve.py: the pools on the real PTB-XL labels (nested, a patient never split, the classes in
proportion), the power-law fit and its extrapolation, the command's errors, and one tiny run end to end (features,
two sizes, two folds, on a cut-down conversion) whose JSON and figure are checked."""
import json
import math

import numpy as np
import pytest

from bench import learning_curve as lc
from pipeline_fixtures import scripts_in_process
from utils.scoring.tasks import get_task


# -- the pools, on the real database's labels (no record converted: select_pools reads only the label files) -----------
@pytest.fixture(scope="module")
def dev_labels(ptbxl_dir, tmp_path_factory):
    """The development records' label files and record_groups.csv as tools/convert_ptbxl.py writes them (test fold
    8), and the database rows they come from."""
    from tools import convert_ptbxl

    db = convert_ptbxl.load_database(ptbxl_dir)
    dev = db[db["strat_fold"] != 8]
    d = tmp_path_factory.mktemp("labels")
    convert_ptbxl.write_labels(d, dev, db[db["strat_fold"] == 8])
    return d, dev


def _sizes(n):
    return [n // 8, n // 4, n // 2, n]


@pytest.mark.parametrize("task_number", [1, 2])
def test_pools_are_nested_keep_patients_whole_and_stop_at_the_first_group_past_the_size(dev_labels, task_number):
    d, dev = dev_labels
    sizes = _sizes(len(dev))
    pools = lc.select_pools(d, get_task(task_number), sizes, seed=2021)
    group_of = dict(zip(dev["name"], dev["group"]))
    group_size = dev["group"].value_counts()
    for small, big in zip(pools, pools[1:]):
        assert set(small) < set(big)
    assert sorted(pools[-1]) == sorted(dev["name"])
    for size, pool in zip(sizes, pools):
        assert len(set(pool)) == len(pool)
        assert size <= len(pool) < size + group_size.max()  # the shortest prefix of whole groups
        inside = {group_of[n] for n in pool}
        assert sum(group_size[g] for g in inside) == len(pool)  # every record of a patient in it, or none
    assert lc.select_pools(d, get_task(task_number), sizes, seed=2021) == pools
    # the shortest prefix: a pool asked for at its own size is itself, one record more takes the next group
    assert lc.select_pools(d, get_task(task_number), [len(p) for p in pools], seed=2021) == pools
    assert len(lc.select_pools(d, get_task(task_number), [len(pools[0]) + 1], seed=2021)[0]) > len(pools[0])
    assert lc.select_pools(d, get_task(task_number), sizes, seed=7)[0] != pools[0]


def test_task1_pools_keep_the_abnormal_share(dev_labels):
    d, dev = dev_labels
    tag = dict(zip(dev["name"], dev["tag"]))
    share = dev["tag"].mean()
    slack = 2 * dev["group"].value_counts().max()  # one patient of each stratum at a pool's edge
    for pool in lc.select_pools(d, get_task(1), _sizes(len(dev)), seed=3):
        assert abs(sum(tag[n] for n in pool) - share * len(pool)) <= slack


def test_task2_pools_keep_each_stratum_and_class_in_proportion(dev_labels):
    d, dev = dev_labels
    task = get_task(2)
    members, strata = lc.development_records(d, task)
    assert sorted(n for ns in members.values() for n in ns) == sorted(dev["name"])
    for g, ns in members.items():  # the stratum is a class of the group's records
        assert any(strata[g] in c for c in dev.set_index("name").loc[ns, "classes"])
    stratum_of = {n: strata[g] for g, ns in members.items() for n in ns}
    total = {s: sum(stratum_of[n] == s for n in dev["name"]) for s in set(strata.values())}
    biggest = dev["group"].value_counts().max()
    classes = dict(zip(dev["name"], dev["classes"]))
    class_share = {c: np.mean([c in cs for cs in dev["classes"]]) for c in range(1, 13)}
    for pool in lc.select_pools(d, task, _sizes(len(dev)), seed=2021):
        f = len(pool) / len(dev)
        for s, n_s in total.items():  # each stratum's records in proportion, up to the groups at the pool's edge
            assert abs(sum(stratum_of[n] == s for n in pool) - f * n_s) <= 2 * biggest
        for c, p in class_share.items():
            assert abs(np.mean([c in classes[n] for n in pool]) - p) <= 0.05


def test_a_size_beyond_the_development_records_is_refused(dev_labels):
    d, dev = dev_labels
    with pytest.raises(ValueError, match="more than"):
        lc.select_pools(d, get_task(1), [len(dev) + 1], seed=0)
    assert lc.requested_sizes("10,20,all", 30) == [10, 20, 30]
    for text, why in (("10,x", "neither"), ("20,10", "increase"), ("10,all,20", "increase"), ("10,31", "more than"),
                      ("0,10", "neither"), ("", "no size")):
        with pytest.raises(ValueError, match=why):
            lc.requested_sizes(text, 30)


@pytest.mark.parametrize("argv, message", [
    (["--sizes", "250,abc"], "neither a positive number"),
    (["--sizes", "500,250"], "must increase"),
    (["--sizes", "250,99999"], "more than the"),
    (["--members", "features,nosuchnet"], "unknown member nosuchnet"),
    (["--sizes", "250,500,1000", "--picture-sizes", "300"], "must be one of --sizes"),
])
def test_bad_flags_are_one_line_usage_errors(ptbxl_dir, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        lc.parse(["--src", str(ptbxl_dir), *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and ": error: " in err[-1]


def test_a_pool_folder_holds_its_records_labels_and_the_shared_caches(tmp_path):
    """write_pool on a made-up converted folder and picture folder: its own label files (Task 2's header-less), the
    test records whole, links into the converted folder, the caches shared, and the pictures' folder beside it."""
    raw, ds = tmp_path / "raw", tmp_path / "dataset"
    names, test = [f"ptbxl_{i:05d}" for i in range(1, 7)], ["ptbxl_00100", "ptbxl_00101"]
    for split, ns in (("train", names), ("val", test)):
        for d in (raw / split, ds / split):
            d.mkdir(parents=True)
        for n in ns:
            (raw / split / f"{n}.mat").write_bytes(b"x")
            (ds / split / f"{n}.png").write_bytes(b"p")
    (raw / "trainreference.csv").write_text("name,tag\n" + "".join(f"{n},{i % 2}\n" for i, n in enumerate(names)))
    (raw / "trainreference_task2.csv").write_text("".join(f"{n},1,{3 + i}\n" for i, n in enumerate(names)))
    (raw / "record_groups.csv").write_text("name,group\n" + "".join(f"{n},p{i // 2}\n" for i, n in enumerate(names)))
    for f in lc.TEST_FILES:
        (raw / f).write_text("truth\n")
    (ds / "render_config.json").write_text("{}")
    pool = names[:4]
    d = lc.write_pool(raw, pool, tmp_path / "pools", tmp_path / "cache", dataset=ds)
    assert d.name == lc.pool_id(pool) and lc.pool_id(pool) != lc.pool_id(names[:2])
    assert sorted(p.stem for p in (d / "train").glob("*.mat")) == pool
    assert sorted(p.stem for p in (d / "val").glob("*.mat")) == test
    assert all(p.is_symlink() and p.resolve().parent == (raw / "train").resolve() for p in (d / "train").iterdir())
    assert [r.split(",")[0] for r in (d / "trainreference.csv").read_text().splitlines()] == ["name", *pool]
    t2 = (d / "trainreference_task2.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in t2] == pool and t2[0] == "ptbxl_00001,1,3"
    assert [r.split(",")[0] for r in (d / "record_groups.csv").read_text().splitlines()[1:]] == pool
    assert (d / "val_reference.csv").read_text() == "truth\n"
    for cache in ("features_cache", "signal_cache"):
        assert (d / cache).resolve() == (tmp_path / "cache" / cache).resolve()
    pics = d / "dataset"
    assert (pics / "train" / f"{names[5]}.png").is_file() and (pics / "render_config.json").is_file()
    assert (pics / "trainreference.csv").read_text() == (d / "trainreference.csv").read_text()
    assert (pics / "record_groups.csv").read_text() == (d / "record_groups.csv").read_text()
    (d / "train" / "stale.mat").symlink_to(raw / "train" / f"{names[5]}.mat")
    lc.write_pool(raw, pool, tmp_path / "pools", tmp_path / "cache", dataset=ds)  # again: rebuilt, nothing stale
    assert sorted(p.stem for p in (d / "train").glob("*.mat")) == pool


# -- the fit -----------------------------------------------------------------------------------------------------------
SIZES = [250, 500, 1000, 1734]


def _curve(a, c, sizes=SIZES):
    return [1 - a * n ** (-c) for n in sizes]


def test_fit_recovers_the_power_law_and_its_extrapolation():
    a, c = 1.8, 0.42
    fit = lc.fit_power_law(SIZES, _curve(a, c))
    assert fit["a"] == pytest.approx(a, rel=1e-9) and fit["c"] == pytest.approx(c, rel=1e-9)
    for target in (0.95, 0.97):
        n = lc.size_for(fit, target)
        assert n == math.ceil((a / (1 - target)) ** (1 / c))
        assert 1 - a * n ** (-c) >= target > 1 - a * (n - 1) ** (-c)
    rng = np.random.default_rng(0)
    draws = np.array(_curve(a, c)) + rng.normal(0, 0.004, (400, len(SIZES)))
    out = lc.fit_summary(SIZES, _curve(a, c), draws)
    assert out["fit"]["size_for"] == {"0.95": lc.size_for(fit, 0.95), "0.97": lc.size_for(fit, 0.97)}
    for n in lc.EXTRAPOLATE:
        e = out["extrapolated"][str(n)]
        assert e["value"] == pytest.approx(1 - a * n ** (-c))
        assert e["ci95"][0] < e["value"] < e["ci95"][1] and e["ci95"][1] - e["ci95"][0] < 0.2
    wider = lc.fit_summary(SIZES, _curve(a, c), np.array(_curve(a, c)) + rng.normal(0, 0.02, (400, len(SIZES))))
    spread = [out["extrapolated"]["17000"]["ci95"], wider["extrapolated"]["17000"]["ci95"]]
    assert spread[1][1] - spread[1][0] > spread[0][1] - spread[0][0]  # noisier points, a wider interval


def test_a_curve_that_does_not_fall_never_reaches_a_target():
    for aucs in ([0.90, 0.89, 0.88, 0.87], [0.9] * 4):  # c < 0 and c = 0
        fit = lc.fit_power_law(SIZES, aucs)
        assert fit["c"] <= 1e-12
        out = lc.fit_summary(SIZES, aucs, np.tile(aucs, (50, 1)))
        assert out["fit"]["size_for"] == {"0.95": None, "0.97": None}
        assert 0 <= out["extrapolated"]["88000"]["value"] <= aucs[0] + 1e-9  # an AUC still, however far it falls
    assert lc.fit_power_law([250], [0.9]) is None
    none = lc.fit_summary([250, 500], [0.9, None], np.full((10, 2), np.nan))
    assert none["fit"] is None and none["extrapolated"]["17000"] == {"value": None, "ci95": None}


def test_sizes_a_member_did_not_train_at_are_left_out_of_its_fit():
    aucs = [None, None, *_curve(1.5, 0.3, SIZES[2:])]  # a picture member: the two largest sizes only
    draws = np.full((100, 4), np.nan)
    draws[:, 2:] = np.array(aucs[2:]) + np.random.default_rng(1).normal(0, 0.003, (100, 2))
    out = lc.fit_summary(SIZES, aucs, draws)
    assert out["fit"]["c"] == pytest.approx(0.3) and out["extrapolated"]["17000"]["ci95"] is not None


# -- one tiny run, end to end ------------------------------------------------------------------------------------------
@pytest.fixture
def stages_in_process():
    """The stages in this process (pipeline_fixtures.scripts_in_process): without ~5 s of interpreter and Paddle
    start-up per stage, which would take this test well past a minute on a busy machine. The process boundary is
    bench/common.stage's, every bench's."""
    with scripts_in_process() as ran:
        yield ran


def test_a_tiny_learning_curve_end_to_end(ptbxl_dir, tmp_path, stages_in_process):
    out, fig = tmp_path / "lc.json", tmp_path / "fig" / "lc.png"
    work = tmp_path / "work"
    # 80 and all 120 records, 2 folds: 40 training records at least per fold (LightGBM's 400 trees on 20 records
    # take tens of seconds: without early stopping, models/gbm.py) and 40 validation records (thresholds tuned)
    lc.main(["--src", str(ptbxl_dir), "--members", "features", "--sizes", "80,all", "--num-folds", "2",
             "--max-records", "120", "--max-test-records", "30", "--work-dir", str(work), "--json", str(out),
             "--figure", str(fig)])
    assert stages_in_process == ["tools/convert_ptbxl.py", *["tools/train_kfold.py", "predict.py"] * 2]
    got = json.loads(out.read_text())
    for key in ("task", "sizes", "members", "n_test", "trust", "protocol", "bootstrap", "seconds"):
        assert key in got
    assert got["task"] == 1 and len(got["sizes"]) == 2 and all(isinstance(n, int) for n in got["sizes"])
    developed = (work / "raw" / "trainreference.csv").read_text().splitlines()[1:]
    assert 80 <= got["sizes"][0] < got["sizes"][1] == len(developed)  # all: every converted development record
    assert got["n_test"] == len(list((work / "raw" / "val").glob("*.mat")))
    m = got["members"]["features"]
    for key in ("oof_auc", "oof_ci95", "test_auc", "test_ci95", "train_minutes"):
        assert len(m[key]) == 2
    for v, ci in [*zip(m["oof_auc"], m["oof_ci95"]), *zip(m["test_auc"], m["test_ci95"])]:
        assert 0 <= ci[0] <= v <= ci[1] <= 1
    assert set(m["fit"]) >= {"a", "c", "size_for"} and set(m["fit"]["size_for"]) == {"0.95", "0.97"}
    for n in ("17000", "88000"):
        e = m["extrapolated"][n]
        assert e["value"] == pytest.approx(min(1, max(0, 1 - m["fit"]["a"] * int(n) ** (-m["fit"]["c"]))))
        assert e["ci95"] is None or e["ci95"][0] <= e["ci95"][1]
    assert "extrapolation" in got["trust"] and "misspecification" in got["trust"]
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    small, big = (work / "pools" / p for p in got["pools"])  # the pools on disk: nested, linked, one cache
    names = [{p.name for p in (d / "train").glob("*.mat")} for d in (small, big)]
    assert names[0] < names[1] and [len(n) for n in names] == got["sizes"]
    assert all((small / "train" / n).resolve().parent == (work / "raw" / "train").resolve() for n in names[0])
    for cache in ("features_cache", "signal_cache"):
        assert (small / cache).resolve() == (big / cache).resolve() == (work / "cache" / cache).resolve()
    assert any((work / "cache" / "features_cache").rglob("*.npy"))  # the measurements landed in the shared cache


def test_where_two_fitted_curves_cross():
    """A member that starts lower but falls faster overtakes the other where a1 n^-c1 = a2 n^-c2; parallel curves
    (same c) never meet; the pair's JSON names who leads beyond the meeting point."""
    slow, fast = {"a": 1.35, "c": 0.39}, {"a": 3.0, "c": 0.5}
    c = lc.crossing(slow, fast)
    n = c["records"]
    assert c["then_ahead"] == "b" and n == round((1.35 / 3.0) ** (1 / (0.39 - 0.5)))
    err = lambda f, x: f["a"] * x ** (-f["c"])  # noqa: E731
    assert err(fast, n * 2) < err(slow, n * 2) and err(fast, n / 2) > err(slow, n / 2)
    assert lc.crossing(slow, {"a": 2.0, "c": 0.39}) is None and lc.crossing(slow, None) is None
    members = {"features": {"fit": slow}, "resnet1d": {"fit": fast}, "resnet18": {"fit": None}}
    assert lc.crossings(members) == {"features x resnet1d": {"records": n, "then_ahead": "resnet1d"}}
