"""predict.py: complete answers (a corrupt test record included), the zip, the JSON threshold, exported model
agreement, clear errors, and the README main command's pieces end to end."""
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import paddle
import pandas as pd
import pytest

import predict
from models import build_model
from models.inference import InferencePredictor
from transforms import build_transforms
from utils.artifacts import load_weights
from utils.ecg.io import list_records
from utils.errors import CheckpointError, ECGDataError
from utils.inputs.pictures import ECGImageDataset

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "dataset" / "sample"


def run_predict(raw, ds, model, out, *extra):
    return predict.main(["--data-dir", str(raw), "--dataset-dir", str(ds), "--model", str(model), "--out", str(out),
                         "--num-workers", "0", *extra])


def test_answer_has_one_row_per_test_record_even_a_corrupt_one(tiny_damaged, tiny_trained, tmp_path):
    raw, ds = tiny_damaged
    out, _ = tiny_trained
    report = run_predict(raw, ds, out / "best_model", tmp_path / "answer.csv", "--report", str(tmp_path / "rep.json"))
    text = (tmp_path / "answer.csv").read_text()
    assert text.startswith("name,tag\n")
    ans = pd.read_csv(tmp_path / "answer.csv")
    assert list(ans.columns) == ["name", "tag"]
    assert list(ans["name"]) == sorted(list_records(raw / "val")) and len(ans) == 21
    assert ans["name"].is_unique and set(ans["tag"]) <= {0, 1}
    assert ans.loc[ans["name"] == "zz_truncated", "tag"].item() == 1  # the training majority class
    fb = report["fallback"]
    assert [f["name"] for f in fb] == ["zz_truncated"] and "truncated or corrupt" in fb[0]["reason"]
    assert json.loads((tmp_path / "rep.json").read_text())["n_records"] == 21
    with zipfile.ZipFile(tmp_path / "answer.zip") as z:
        assert z.namelist() == ["answer.csv"]
        assert z.read("answer.csv").decode() == text
    assert not list(tmp_path.glob(".*tmp"))


def test_truth_metrics_are_reported(tiny_raw, tiny_dataset, tiny_trained, tmp_path):
    out, _ = tiny_trained
    report = run_predict(tiny_raw, tiny_dataset, out / "best_model", tmp_path / "a.csv", "--truth",
                         str(tiny_raw / "val_reference.csv"), "--report", str(tmp_path / "r.json"))
    m = report["metrics"]
    truth = pd.read_csv(tiny_raw / "val_reference.csv")
    ans = pd.read_csv(tmp_path / "a.csv").merge(truth, on="name", suffixes=("", "_true"))
    assert m["n"] == 20 and m["accuracy"] == pytest.approx((ans["tag"] == ans["tag_true"]).mean())
    assert np.array(m["confusion"]).sum() == 20 and 0 <= m["f1"] <= 1 and 0 <= m["auc"] <= 1
    assert json.loads((tmp_path / "r.json").read_text())["metrics"] == m


def test_threshold_from_the_model_json_is_used(tiny_raw, tiny_dataset, tiny_trained, tmp_path):
    out, _ = tiny_trained
    model = tmp_path / "best_model"
    shutil.copytree(out / "best_model", model)
    info = json.loads((model / "model.json").read_text())
    for threshold, expected in ((0.0, 1), (1.01, 0)):
        (model / "model.json").write_text(json.dumps({**info, "thresholds": threshold}))
        run_predict(tiny_raw, tiny_dataset, model, tmp_path / "a.csv")
        assert set(pd.read_csv(tmp_path / "a.csv")["tag"]) == {expected}


def test_exported_model_agrees_with_dygraph(tiny_raw, tiny_dataset, tiny_trained, tmp_path):
    out, _ = tiny_trained
    export = tmp_path / "export"
    run_predict(tiny_raw, tiny_dataset, out / "best_model", tmp_path / "a.csv", "--export", str(export))
    names = list_records(tiny_raw / "val")
    ds = ECGImageDataset(tiny_dataset / "val", names, None, 64, build_transforms(False))
    batch = np.stack([ds[i] for i in range(len(ds))])
    model = build_model(2, "none")
    load_weights(model, out / "best_model" / "model.pdparams")
    model.eval()
    with paddle.no_grad():
        dygraph = model(paddle.to_tensor(batch)).numpy()
    static = InferencePredictor(export, "cpu")(batch)
    np.testing.assert_allclose(static, dygraph, rtol=1e-3, atol=1e-3 * np.abs(dygraph).max())
    run_predict(tiny_raw, tiny_dataset, export, tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def test_missing_or_mismatched_model_is_a_clear_error(tiny_raw, tiny_dataset, tiny_trained, tmp_path):
    out, _ = tiny_trained
    nope = tmp_path / "nope"
    for models in ([nope], [out / "best_model", nope], [nope, out / "best_model"]):  # one message, wherever it stands
        with pytest.raises(CheckpointError, match=f"^{re.escape(str(nope))}: model directory not found"):
            predict.main(["--data-dir", str(tiny_raw), "--dataset-dir", str(tiny_dataset), "--model", *map(str, models),
                          "--out", str(tmp_path / "a.csv"), "--num-workers", "0"])
    model = tmp_path / "m"
    shutil.copytree(out / "best_model", model)
    paddle.save(build_model(3, "none").state_dict(), str(model / "model.pdparams"))
    with pytest.raises(CheckpointError, match="trained for 3 classes"):
        run_predict(tiny_raw, tiny_dataset, model, tmp_path / "a.csv")
    (model / "model.json").unlink()
    with pytest.raises(CheckpointError, match="no model.json"):
        run_predict(tiny_raw, tiny_dataset, model, tmp_path / "a.csv")
    assert not (tmp_path / "a.csv").exists()


def test_no_pictures_at_all_is_a_clear_error(tiny_raw, tiny_trained, tmp_path):
    out, _ = tiny_trained  # in this process: the scripts' one-line printing of such errors is tested in test_runtime
    with pytest.raises(ECGDataError, match="no pictures for the 20 test records .* run process.py first"):
        predict.main(["--data-dir", str(tiny_raw), "--dataset-dir", str(tmp_path), "--model", str(out / "best_model"),
                      "--out", str(tmp_path / "a.csv"), "--num-workers", "0"])
    assert not (tmp_path / "a.csv").exists()


def _tree_state():
    """The size and time of every file in the checkout's own folders (tracked or not, ignored ones too: a cache
    left beside the sample counts; a user's data/, output/, venvs and caches of Python aside), and
    `git status --porcelain` of the tracked files where this is a git checkout."""
    own = ["dataset", "models", "transforms", "utils", "tools", "tests", "docs", ".ci"]
    paths = [p for d in own for p in (ROOT / d).rglob("*")] + list(ROOT.glob("*"))
    files = {str(p.relative_to(ROOT)): (p.stat().st_size, p.stat().st_mtime_ns) for p in paths
             if p.is_file() and "__pycache__" not in p.parts}
    git = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True)
    return files, git.stdout if git.returncode == 0 else None


def test_main_command_end_to_end_leaves_the_checkout_as_it_was(tmp_path):
    """tools/run_sample.py (README's main command) on the embedded sample, tiny sizes: every model, the fusion,
    the printouts; everything it writes lands in its output folder, nothing in the checkout (the tracked sample
    gets no cache, no tracked file is rewritten, git status gains nothing)."""
    before = _tree_state()
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}  # as a user runs it: Paddle's thread notice appears above 1
    r = subprocess.run([sys.executable, "tools/run_sample.py", "--output-dir", str(out), "--image-size", "64",
                        "--batch-size", "4", "--iters", "2", "--warmup-iters", "1", "--eval-interval", "2",
                        "--num-workers", "0", "--pretrained", "none", "--signal-iters", "2", "--signal-batch-size", "4"],
                       cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=480)
    assert r.returncode == 0, r.stdout[-6000:]
    (files, git), (files_now, git_now) = before, _tree_state()
    changed = sorted(k for k in files.keys() | files_now.keys() if files.get(k) != files_now.get(k))
    assert not changed and git_now == git, (changed, git, git_now)
    assert "test F1" in r.stdout and f"submission: {out / 'answer.zip'}" in r.stdout
    table = r.stdout[r.stdout.index("test F1"):].splitlines()
    assert [line.split()[0] for line in table[1:5]] == ["resnet50", "resnet1d", "features", "fusion"]  # every model, their fusion
    assert all("(fold 0)" in line for line in table[1:4]), table  # named by family and fold, not a cut path
    assert "6 validation records per model make this a smoke run" in r.stdout
    # the sample's inputs were copied, and the caches built beside the copy
    truth = pd.read_csv(SAMPLE / "val_reference.csv")
    assert sorted(p.name for p in (out / "sample" / "val").glob("*.mat")) == sorted(f"{n}.mat" for n in truth["name"])
    assert (out / "sample" / "features_cache").is_dir() and (out / "sample" / "signal_cache").is_dir()
    assert (out / "dataset" / "render_config.json").is_file()
    index = out / "printouts" / "index.html"
    assert f"printouts: {index}" in r.stdout and index.is_file()  # a printed page per test record, and their index
    pages = json.loads((index.parent / "printouts.json").read_text())["records"]
    assert sorted(p["name"] for p in pages) == sorted(truth["name"]) and all((index.parent / p["page"]).is_file() for p in pages)
    report = json.loads((out / "predict_report.json").read_text())
    assert len(report["models"]) == 3 and report["fusion"]["out_of_fold"]["n"] > 0
    assert len(pd.read_csv(out / "answer.csv")) == len(truth)
    # a quiet log: none of the third-party notices filtered at start-up, and no log line glued to a progress bar
    # (stdout and stderr in one pipe, as on a terminal; text mode turns the bars' carriage returns into line ends)
    assert not any(n in r.stdout for n in ("No ccache found", "OMP_NUM_THREADS set to", "always track global mean"))
    assert "rec/s]" in r.stdout and re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[INFO\]", r.stdout, re.M)
    assert not re.search(r"\|[^\n]*\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[INFO\]", r.stdout)


def test_the_main_job_copies_the_sample_and_never_overwrites_a_folder_it_did_not_make(tmp_path):
    from utils.artifacts import MIRROR_MARK, mirror_data_inputs
    from utils.errors import ECGDataError

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "trainreference.csv").write_text("name,tag\nmine,1\n")
    with pytest.raises(ECGDataError, match="is not a copy this pipeline made: refusing"):
        mirror_data_inputs(SAMPLE, theirs)
    assert (theirs / "trainreference.csv").read_text() == "name,tag\nmine,1\n"
    copy = mirror_data_inputs(SAMPLE, tmp_path / "copy")
    src = sorted(str(p.relative_to(SAMPLE)) for p in SAMPLE.rglob("*") if p.is_file() and "_cache" not in str(p))
    assert sorted(str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file() and p.name != MIRROR_MARK) == src
    mat = sorted((copy / "val").glob("*.mat"))[0]
    assert mat.stat().st_mtime_ns == (SAMPLE / "val" / mat.name).stat().st_mtime_ns  # the caches key on it
    (copy / "val" / "stale.mat").write_bytes(b"x")  # an input the source no longer has goes; a cache stays
    (copy / "features_cache").mkdir()
    mirror_data_inputs(SAMPLE, copy)
    assert not (copy / "val" / "stale.mat").exists() and (copy / "features_cache").is_dir()
