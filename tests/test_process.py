"""process.py end to end on real records: outputs, skip/--force, bad files reported, preview, errors."""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from PIL import Image

from utils.ecg.io import list_records
from utils.errors import ConfigError
from utils.runtime import run_script

ROOT = Path(__file__).resolve().parents[1]


def run(raw, out, *extra, cli=False):
    """process.py on `raw` -> its return code, stdout and stderr. `cli`: the command line itself, 2 worker
    processes; else process.main in this process (a new one costs ~3 s of imports), one worker (no fork of a
    process that holds Paddle's threads), its errors as run_script gives them."""
    argv = ["--data-dir", str(raw), "--out-dir", str(out), "--size", "128", *extra]
    if cli:
        return subprocess.run([sys.executable, "process.py", *argv, "--workers", "2"], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
    import process

    stdout, stderr, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            run_script(lambda: process.main([*argv, "--workers", "1"]))
        except SystemExit as e:
            code = int(e.code or 0) if not isinstance(e.code, str) else 1
            if isinstance(e.code, str):  # a message: the interpreter prints it to stderr and exits with status 1
                print(e.code, file=sys.stderr)
    return SimpleNamespace(returncode=code, stdout=stdout.getvalue(), stderr=stderr.getvalue())


def statuses(out):
    rep = pd.read_csv(out / "process_report.csv", keep_default_na=False)
    return rep, rep["status"].value_counts().to_dict()


def test_cli_renders_skips_and_forces(raw_small, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "ds"
    shutil.copytree(raw_small, raw)
    r = run(raw, out, cli=True)
    assert r.returncode == 0, r.stderr
    for split in ("train", "val"):
        names = list_records(raw / split)
        assert sorted(p.stem for p in (out / split).glob("*.png")) == names
        assert Image.open(out / split / f"{names[0]}.png").size == (128, 128)
    assert (out / "trainreference.csv").read_text() == (raw / "trainreference.csv").read_text()
    assert (out / "trainreference_task2.csv").is_file() and (out / "render_config.json").is_file()
    assert statuses(out)[1] == {"rendered": 22}
    assert "rendered 22, up to date 0, failed 0" in r.stdout

    r = run(raw, out)
    assert statuses(out)[1] == {"up-to-date": 22} and "rendered 0, up to date 22" in r.stdout
    later = time.time() + 5
    touched = raw / "train" / f"{list_records(raw / 'train')[3]}.mat"
    os.utime(touched, (later, later))
    run(raw, out)
    rep, counts = statuses(out)
    assert counts == {"rendered": 1, "up-to-date": 21}
    assert rep.loc[rep["status"] == "rendered", "name"].item() == touched.stem
    run(raw, out, "--force")
    assert statuses(out)[1] == {"rendered": 22}


def test_bad_files_are_reported_and_the_rest_rendered(raw_small, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "ds"
    shutil.copytree(raw_small, raw)
    train = list_records(raw / "train")
    assert run(raw, out).returncode == 0 and (out / "train" / f"{train[0]}.png").exists()
    bad_train = raw / "train" / f"{train[0]}.mat"
    bad_train.write_bytes(bad_train.read_bytes()[:5000])  # truncated after its picture was drawn
    later = time.time() + 5
    os.utime(bad_train, (later, later))
    (raw / "val" / "garbage.mat").write_text("this is not an ECG")
    gone = raw / "train" / f"{train[1]}.mat"
    gone.unlink()  # listed in trainreference.csv, file missing
    r = run(raw, out, "--preview", "4")
    assert r.returncode == 0, r.stderr
    rep, counts = statuses(out)
    assert counts == {"up-to-date": 20, "failed": 3}  # 22 real - 1 deleted + 1 garbage; 2 unreadable
    failed = rep[rep["status"] == "failed"].set_index("name")["detail"]
    assert "truncated or corrupt" in failed[train[0]]
    assert "not a MAT file" in failed["garbage"]
    assert "listed in trainreference.csv but" in failed[train[1]]
    assert f"skipped train/{train[0]}" in r.stdout + r.stderr and "failed 3" in r.stdout
    names = set(pd.read_csv(out / "trainreference.csv")["name"])  # carried whole: train.py leaves the failed out
    assert train[0] in names and train[1] in names and len(names) == 16
    assert not (out / "train" / f"{train[0]}.png").exists()
    assert Image.open(out / "preview.png").size[0] > 300


def test_changed_render_settings_re_render_everything(raw_small, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "ds"
    shutil.copytree(raw_small, raw)
    name = list_records(raw / "train")[0]
    assert run(raw, out).returncode == 0
    r = run(raw, out, "--size", "64")  # later flag wins: pictures newer than their records, but drawn at 128 px
    assert statuses(out)[1] == {"rendered": 22} and "render settings differ" in r.stdout
    assert Image.open(out / "train" / f"{name}.png").size == (64, 64)
    assert json.loads((out / "render_config.json").read_text())["size"] == 64
    run(raw, out, "--size", "64", "--layout", "6x2")
    assert statuses(out)[1] == {"rendered": 22}
    run(raw, out, "--size", "64", "--layout", "6x2")
    assert statuses(out)[1] == {"up-to-date": 22}
    (out / "render_config.json").unlink()  # as a run killed while switching settings leaves it
    run(raw, out, "--size", "64", "--layout", "6x2")
    assert statuses(out)[1] == {"rendered": 22}


def test_amplitude_and_highpass_flags(raw_small, tmp_path, capsys):
    import process  # in this process: five runs of a subprocess would take most of a minute on a busy machine

    raw, out = tmp_path / "raw", tmp_path / "ds"
    shutil.copytree(raw_small, raw)
    name = list_records(raw / "train")[0]

    def main(*extra):
        process.main(["--data-dir", str(raw), "--out-dir", str(out), "--size", "128", "--workers", "1", *extra])
        return capsys.readouterr().out

    main()
    rc = json.loads((out / "render_config.json").read_text())
    assert rc["amplitude"] == "soft" and rc["highpass"] == 0.5  # the defaults: measured best out of fold (docs/results.md)
    soft = Image.open(out / "train" / f"{name}.png").tobytes()
    printed = main("--amplitude", "clip", "--highpass", "0")
    assert statuses(out)[1] == {"rendered": 22} and "render settings differ" in printed
    rc = json.loads((out / "render_config.json").read_text())
    assert rc["amplitude"] == "clip" and rc["highpass"] == 0.0
    assert Image.open(out / "train" / f"{name}.png").tobytes() != soft
    old = {k: v for k, v in rc.items() if k not in ("amplitude", "highpass")}  # as process.py wrote it before them
    (out / "render_config.json").write_text(json.dumps(old))
    printed = main("--amplitude", "clip", "--highpass", "0")  # what every picture before the flags was
    assert statuses(out)[1] == {"up-to-date": 22} and "render settings differ" not in printed
    printed = main()  # a dataset drawn before: redrawn with today's defaults
    assert statuses(out)[1] == {"rendered": 22} and "render settings differ" in printed
    assert Image.open(out / "train" / f"{name}.png").tobytes() == soft
    main()
    assert statuses(out)[1] == {"up-to-date": 22}
    for flags, msg in ((["--amplitude", "soft", "--scale", "per-lead"], "--amplitude soft needs --scale fixed"),
                       (["--highpass", "-1"], r"--highpass must be 0 \(off\) or a frequency below 250 Hz, got -1")):
        with pytest.raises(ConfigError, match=msg):
            main(*flags)
    with pytest.raises(SystemExit):
        main("--amplitude", "tanh")
    assert "invalid choice: 'tanh'" in capsys.readouterr().err


def test_missing_data_dir_is_a_clear_error(tmp_path):
    r = run(tmp_path / "nowhere", tmp_path / "ds", cli=True)
    assert r.returncode != 0 and r.stderr.strip() == f"error: {tmp_path / 'nowhere'}: not found (the data folder: " \
        "train/*.mat, val/*.mat and their label files)"
    (tmp_path / "empty").mkdir()
    r = run(tmp_path / "empty", tmp_path / "ds", cli=True)
    assert r.returncode != 0 and "has neither train/ nor val/" in r.stderr


def test_malformed_labels_are_a_one_line_error(raw_small, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(raw_small, raw)
    (raw / "trainreference.csv").write_text("name,tag\nptbxl_00001,7\n")
    r = run(raw, tmp_path / "ds", cli=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"error: {raw / 'trainreference.csv'}: row 2 ('ptbxl_00001'): tag must be 0 or 1, found '7'"


def test_picture_settings_rows_never_lean_on_process_defaults():
    """bench/picture_settings.py's rows: each sets every render setting itself. When process.py's defaults became
    soft + 0.5 Hz, rows that left them out ("clip", "high-pass alone") silently drew the new default's pictures
    (two "different" settings trained identically, to the last digit). Every render constant is replaced by a
    sentinel default here: a row that leaves one out gets the sentinel."""
    import process
    from bench.picture_settings import SETTINGS
    from utils.config import parse_config, script_constants

    render = [k for k in process.RENDER_KEYS if k != "SIZE"]  # the bench sets --size itself (--image-size)
    unset = {**script_constants(vars(process)), **{k: "UNSET" for k in render}}
    parsed = {}
    for key, (name, flags) in SETTINGS.items():
        cfg = parse_config(unset, flags.split())
        assert all(cfg[k] != "UNSET" for k in render), f"{key}: leaves {[k for k in render if cfg[k] == 'UNSET']} to defaults"
        parsed[key] = {k: str(cfg[k]) for k in render}
    assert len({tuple(v.values()) for v in parsed.values()}) == len(parsed), parsed  # no two rows draw alike
    amp_hp = {key: (v["AMPLITUDE"], v["HIGHPASS"]) for key, v in parsed.items()}
    assert amp_hp["2mv-2px"] == ("clip", "0") and amp_hp["highpass"] == ("clip", "0.5")
    assert amp_hp["soft"] == ("soft", "0") and amp_hp["soft-highpass"] == ("soft", "0.5")
