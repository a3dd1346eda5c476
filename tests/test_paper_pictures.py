"""bench/paper_pictures.py on 3 sample test records and about 4 training records, clean and scan:1 pages at 5 px/mm, a
64 px ResNet18 trained for 4 iterations and the tiny Task 1 signal model: one run (its stages in this process:
pipeline_fixtures.scripts_in_process) whose JSON is checked against its files (the pictures are the pages, the AUCs
predict.py's reports give); the page-to-picture fit and the render-settings refusal between paper pages and
process.py's renders on their own."""
import json
import logging

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from bench import common, protocol
from bench import paper_pictures as pp
from pipeline_fixtures import scripts_in_process
from utils.errors import ConfigError, ECGDataError
from utils.scoring.tasks import get_task

N, NT = 3, 4  # test records (2 abnormal, 1 normal: an AUC is defined), training records
CONDS = ("clean", "scan:1")
SAMPLE = pp.ROOT / "dataset" / "sample"


@pytest.fixture(scope="module")
def run(tiny_raw, tiny_signal, tmp_path_factory):
    work = tmp_path_factory.mktemp("paper_pictures")
    model = tiny_signal[0] / "best_model"
    with scripts_in_process() as ran:
        result = pp.main(["--records", str(tiny_raw), "--model-t1", str(model), "--conditions", ",".join(CONDS),
                          "--max-records", str(N), "--max-train-records", str(NT), "--image-size", "64",
                          "--iters", "4", "--batch-size", "4", "--num-folds", "2", "--train-workers", "0",
                          "--paper-workers", "1", "--px-per-mm", "5", "--work-dir", str(work / "w"),
                          "--json", str(work / "r.json"), "--figure", str(work / "r.png")])
    assert ran.count("tools/make_paper.py") == 4 and ran.count("tools/digitize.py") == 2
    assert ran.count("train.py") == 1 and ran.count("predict.py") == 2
    return result, work / "w", work


def test_the_json_holds_every_figure(run):
    result, w, work = run
    assert json.loads((work / "r.json").read_text()) == result
    assert (work / "r.png").stat().st_size > 10_000
    assert {"conditions", "protocol", "seconds", "n_records", "n_train_records", "render_config"} <= set(result)
    assert list(result["conditions"]) == list(CONDS) and result["n_records"] == N
    assert 0 < result["n_train_records"] <= NT + 3  # select_pools keeps a patient's records together
    for c in result["conditions"].values():
        assert {"n", "picture", "digitised", "original", "diff_picture_minus_digitised"} <= set(c)
        assert c["n"] == c["pages"] == c["pictures"] == N
        assert {"auc", "ci"} <= set(c["picture"]) and {"auc", "ci"} <= set(c["original"])


def test_the_pictures_are_the_pages(run, tmp_path):
    """One picture per page, named <condition>__<record>, each the page fitted into the square; the training
    pictures' labels and groups are their records'; render_config.json marks them as paper pages."""
    result, w, _ = run
    ds = w / "pictures"
    names = result["record_names"]
    train = sorted(p.stem.split("__")[1] for p in (ds / "train").glob("clean__*.png"))
    assert len(train) == result["n_train_records"] and result["n_train_pages"] == len(CONDS) * len(train)
    for cond in CONDS:
        key = cond.replace(":", "_")
        assert sorted(p.stem for p in (ds / "val").glob(f"{key}__*.png")) == [f"{key}__{n}" for n in names]
        index = pd.read_csv(w / key / "pages" / "index.csv", dtype=str)
        for record, image in zip(index["record"], index["image"]):
            pp.page_picture(w / key / "pages" / image, tmp_path / "p.png", 64)
            np.testing.assert_array_equal(np.asarray(Image.open(ds / "val" / f"{key}__{record}.png")),
                                          np.asarray(Image.open(tmp_path / "p.png")))
        assert len(list((ds / "train").glob(f"{key}__*.png"))) == len(train)
    labels = pd.read_csv(ds / "trainreference.csv", dtype={"name": str})
    raw_labels = dict(pd.read_csv(result["records"] + "/trainreference.csv", dtype={"name": str}).values)
    assert len(labels) == result["n_train_pages"]
    assert all(raw_labels[n.split("__")[1]] == tag for n, tag in labels.values)
    groups = dict(pd.read_csv(ds / "record_groups.csv", dtype=str).values)
    for n in train:
        assert groups[f"clean__{n}"] == groups[f"scan_1__{n}"]
    cfg = json.loads((ds / "render_config.json").read_text())
    assert cfg["layout"] == "paper" and cfg["size"] == 64 and cfg == result["render_config"]


def _auc(report, names, entry):
    task = get_task(1)
    got = dict(zip(*protocol.read_predictions(task, report)[::2]))
    truth = task.read_truth(common.truth_of(pp.Path(report).parents[1] / "raw", 1))
    return roc_auc_score([truth[n] for n in names], [float(np.ravel(got[entry(n)])[-1]) for n in names])


def test_aucs_are_predict_pys_and_the_difference_is_paired(run):
    result, w, _ = run
    names = result["record_names"]
    rep = result["predict_reports"]["task1"]
    for cond, c in result["conditions"].items():
        key = cond.replace(":", "_")
        assert c["picture"]["auc"] == pytest.approx(_auc(rep["picture"], names, lambda n: f"{key}__{n}"))
        assert c["digitised"]["auc"] == pytest.approx(_auc(rep["records"], names, lambda n: f"{key}__{n}"))
        assert c["original"]["auc"] == pytest.approx(_auc(rep["records"], names, lambda n: f"original__{n}"))
        d = c["diff_picture_minus_digitised"]
        assert d["diff"] == pytest.approx(c["picture"]["auc"] - c["digitised"]["auc"])
        assert d["ci"][0] <= d["diff"] + 1e-12 and d["diff"] - 1e-12 <= d["ci"][1]
        status = pd.read_csv(w / key / "digitised" / "digitize.csv")
        assert c["read"] == (status["status"] == "ok").sum()
        assert c["digitised"]["fallback"] == N - c["read"] and c["picture"]["fallback"] == 0
        assert c["original"]["fallback"] == 0


def test_a_page_is_fitted_into_the_square_keeping_its_aspect(tmp_path):
    page = np.full((100, 300), 200, np.uint8)
    page[:, :150] = 0  # left half black
    Image.fromarray(page).convert("RGB").save(tmp_path / "page.jpg", quality=95)
    box = pp.page_picture(tmp_path / "page.jpg", tmp_path / "pic.png", 60)
    pic = np.asarray(Image.open(tmp_path / "pic.png"))
    assert pic.shape == (60, 60) and Image.open(tmp_path / "pic.png").mode == "L"
    assert box == (0, 20, 60, 20)  # 300 x 100 -> 60 x 20, centred
    assert (pic[:20] == 255).all() and (pic[40:] == 255).all()  # white above and below
    assert pic[20:40, :28].max() < 20 and abs(int(np.median(pic[20:40, 32:])) - 200) < 6


def test_paper_pages_and_process_renders_refuse_each_other(tmp_path):
    """A model trained on paper pages refuses process.py's pictures and a process.py model the pages; pages of
    other conditions or size are still pages."""
    from utils.inputs.pictures import check_render_settings

    a = pp.parse(["--records", str(SAMPLE), "--model-t1", str(tmp_path), "--image-size", "64", "--json", "x"])
    paper, render = pp.paper_config(a), {"size": 64, "line_width": 2, "layout": "12x1", "mv_range": 2.0,
                                         "scale": "fixed", "amplitude": "soft", "highpass": 0.5}
    log = logging.getLogger("test")
    for trained, drawn in ((paper, render), (render, paper)):
        (tmp_path / "render_config.json").write_text(json.dumps(drawn))
        with pytest.raises(ECGDataError, match="paper pages and process.py's renders"):
            check_render_settings({"image_size": 64, "render_config": trained}, tmp_path, "m", log)
    (tmp_path / "render_config.json").write_text(json.dumps({**paper, "size": 128, "pages": {"conditions": ["photo"]}}))
    check_render_settings({"image_size": 64, "render_config": paper}, tmp_path, "m", log)


def test_paper_pages_train_without_band_augmentations():
    from transforms.picture_augment import build_transforms

    x = build_transforms(True, None, None)(Image.fromarray(np.full((32, 32), 255, np.uint8)))
    assert x.shape == (3, 32, 32) and len(build_transforms(True, None, None).transforms) == 4


def test_predict_images_refuses_a_paper_page_model(run, tmp_path):
    """predict.py --images draws the records it read as process.py would: a model of paper pages cannot read those."""
    import predict

    result, w, _ = run
    with pytest.raises(ConfigError, match="paper pages"):
        predict.main(["--images", str(w / "clean" / "pages"), "--model", result["picture_models"]["task1"],
                      "--out", str(tmp_path / "a.csv")])


@pytest.mark.parametrize("bad", [["--conditions", "clean:1"], ["--arch", "resnet1d"], ["--max-train-records", "-1"]])
def test_flags_are_checked(bad, tmp_path):
    with pytest.raises(SystemExit):
        pp.parse(["--records", str(SAMPLE), "--model-t1", str(tmp_path), "--json", "x", *bad])
