"""bench/model_selection.py's nested folds: an outer PTB-XL fold never trains, every development record is
predicted, a checkpoint is chosen on its own fold's validation records only, and the k-fold mean scores only the
records no fold model trained on."""
import numpy as np

from bench import model_selection as ms
from utils.scoring.tasks import get_task

T1 = get_task(1)


def test_outer_dir_trains_without_the_outer_fold_and_predicts_every_record(tmp_path):
    raw = tmp_path / "raw"
    (raw / "train").mkdir(parents=True)
    names = [f"ptbxl_{i:05d}" for i in range(1, 7)]
    folds = dict(zip(names, [1, 1, 2, 2, 3, 3]))
    for n in names:
        (raw / "train" / f"{n}.mat").write_bytes(b"x")
    (raw / "trainreference.csv").write_text("name,tag\n" + "".join(f"{n},{i % 2}\n" for i, n in enumerate(names)))
    (raw / "trainreference_task2.csv").write_text("".join(f"{n},1,{3 + i}\n" for i, n in enumerate(names)))
    (raw / "record_groups.csv").write_text("name,group\n" + "".join(f"{n},p{i // 2}\n" for i, n in enumerate(names)))

    d = ms.outer_dir(raw, folds, 2, tmp_path / "outer_2")
    inner = [n for n in names if folds[n] != 2]
    assert sorted(p.stem for p in (d / "train").glob("*.mat")) == inner
    assert sorted(p.stem for p in (d / "val").glob("*.mat")) == names
    ref = (d / "trainreference.csv").read_text().splitlines()
    assert ref[0] == "name,tag" and [r.split(",")[0] for r in ref[1:]] == inner
    t2 = (d / "trainreference_task2.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in t2] == inner and t2[0] == "ptbxl_00001,1,3"  # header-less stays header-less
    assert [r.split(",")[0] for r in (d / "record_groups.csv").read_text().splitlines()[1:]] == inner


def test_selection_uses_the_fold_s_own_validation_records_and_the_mean_scores_the_outer_ones():
    rng = np.random.default_rng(0)
    n = 60
    y = (rng.random(n) < 0.5).astype(int)
    val0, val1 = np.zeros(n, bool), np.zeros(n, bool)
    val0[:20], val1[20:40] = True, True  # records 40-59: validated by neither fold, the outer records
    good = np.clip(0.5 + 0.4 * (2 * y - 1) + rng.normal(0, 0.1, n), 0.01, 0.99)
    noise = rng.random(n)
    # fold 0: checkpoint 1 is good on its own validation records; checkpoint 0 has the lowest loss
    p0 = np.stack([noise, good, noise])[..., None]
    # fold 1: checkpoint 0 is good on fold 1's records only (noise elsewhere), checkpoint 2 elsewhere only
    c0 = np.where(val1, good, noise)
    c2 = np.where(val1, noise, good)
    p1 = np.stack([c0, noise, c2])[..., None]
    res = {"names": np.array([f"r{i}" for i in range(n)]), "iters_0": np.array([100, 200, 300]),
           "iters_1": np.array([100, 200, 300]), "loss_0": np.array([0.2, 0.5, 0.6]), "loss_1": np.array([0.9, 0.3, 0.8]),
           "probs_0": p0, "probs_1": p1, "val_0": val0, "val_1": val1}

    probs1 = p1[..., 0]
    assert ms.select(T1, "auc", res["iters_1"], res["loss_1"], probs1, y[val1], val1) == 0  # not 2, good elsewhere
    assert ms.select(T1, "f1", res["iters_0"], res["loss_0"], p0[..., 0], y[val0], val0) == 1
    assert ms.select(T1, "loss", res["iters_0"], res["loss_0"], p0[..., 0], y[val0], val0) == 0
    assert ms.select(T1, "last", res["iters_0"], res["loss_0"], p0[..., 0], y[val0], val0) == 2

    outer, mean, oof_p, oof_y, ths, singles = ms.outer_predictions(T1, res, "auc", y)
    assert outer.tolist() == [False] * 40 + [True] * 20
    np.testing.assert_allclose(mean, (good[40:] + noise[40:]) / 2)  # fold 0's checkpoint 1, fold 1's checkpoint 0
    np.testing.assert_allclose(oof_p, np.r_[good[:20], good[20:40]])  # each fold on its own validation records
    assert oof_y.tolist() == np.r_[y[:20], y[20:40]].tolist() and len(ths) == 2 and len(singles) == 2
