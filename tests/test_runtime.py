"""Runtime behaviour shared by the scripts: the exported model's device, which constants become flags, output
permissions, and which errors are one-line messages."""
import contextlib
import os
import re
import runpy
import shutil
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paddle
import pandas as pd
import pytest

import predict
import process
import train
from models.inference import InferencePredictor
from utils.atomic import atomic_dir, atomic_path, write_text
from utils.config import parse_config, script_constants
from utils.errors import CheckpointError, ConfigError, ECGDataError, PipelineError, PretrainedWeightsError
from utils.runtime import run_script

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "dataset" / "sample"


# -- 5. exported model on the requested GPU -----------------------------------------------------------------

class FakeConfig:
    """Records every call made on a paddle.inference.Config."""
    made = []

    def __init__(self, *paths):
        self.calls = []
        FakeConfig.made.append(self)

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))

    def called(self, name):
        return [(a, k) for n, a, k in self.calls if n == name]


class FakePredictor:
    def get_input_names(self):
        return ["image"]

    def get_output_names(self):
        return ["logits"]

    def get_input_handle(self, name):
        return object()

    get_output_handle = get_input_handle


@pytest.fixture
def fake_inference(monkeypatch, tmp_path):
    """An exported model directory and a Paddle Inference that only records its configuration."""
    FakeConfig.made = []
    monkeypatch.setattr(paddle.inference, "Config", FakeConfig)
    monkeypatch.setattr(paddle.inference, "create_predictor", lambda config: FakePredictor())
    for name in ("inference.json", "inference.pdiparams"):
        (tmp_path / name).write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize("device, gpu_id", [("gpu:1", 1), ("gpu", 0), ("gpu:0", 0)])
def test_exported_model_runs_on_the_requested_gpu(fake_inference, device, gpu_id):
    pred = InferencePredictor(fake_inference, device=device)
    (config,) = FakeConfig.made
    ((args, kwargs),) = config.called("enable_use_gpu")
    assert dict(zip(("memory_pool_init_size_mb", "device_id"), args), **kwargs)["device_id"] == gpu_id
    assert not config.called("disable_gpu") and not config.called("enable_mkldnn")
    assert f"gpu:{gpu_id}" in pred.device


def test_exported_model_on_cpu_uses_onednn(fake_inference):
    InferencePredictor(fake_inference, device="cpu")
    (config,) = FakeConfig.made
    assert config.called("disable_gpu") and config.called("enable_mkldnn") and not config.called("enable_use_gpu")


# -- 6. only a script's configuration block becomes flags ----------------------------------------------------

def block_constants(path):
    """The NAMEs assigned at column 0 between '# -- configuration' and the next '# ----' line, parsed here
    independently of utils.config."""
    lines = Path(path).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# -- configuration"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("# ----"))
    return [m.group(1) for line in lines[start + 1:end] if (m := re.match(r"([A-Z][A-Z0-9_]*) *=", line))]


def test_predict_help_offers_model_but_not_model_file(capsys):
    with pytest.raises(SystemExit) as e:
        predict.main(["-h"])
    assert e.value.code == 0
    help_text = capsys.readouterr().out
    assert re.search(r"--model\b(?!-)", help_text) and "--model-file" not in help_text


def test_flags_are_exactly_the_configuration_block():
    for script in (train, predict, process):
        names = block_constants(script.__file__)
        flags = script_constants(vars(script))
        assert list(flags) == names and names, script.__file__
        assert flags == {n: getattr(script, n) for n in names}
    assert not {"MODEL_FILE", "INFO_FILE", "STATE_FILE", "BEST_DIR", "EXPORT_PREFIX"} & set(script_constants(vars(predict)))
    assert not {"LEADS", "FS", "N_SAMPLES", "INFO_FILE", "BEST_DIR"} & set(script_constants(vars(train)))


SCRIPT = '''
from utils.artifacts import MODEL_FILE
EARLY = 0  # before the block
# -- configuration ----
ALPHA = 1  # the first
BETA = "b"
if BETA:
    INDENTED = 2  # not at column 0
# ----------------
GAMMA = 3.0  # after the block
'''


def test_constants_outside_the_block_are_not_flags(tmp_path):
    path = tmp_path / "script.py"
    path.write_text(SCRIPT)
    ns = runpy.run_path(str(path))
    assert script_constants(ns) == {"ALPHA": 1, "BETA": "b"}
    assert parse_config(script_constants(ns), ["--alpha", "5"], source_file=str(path)) == {"ALPHA": 5, "BETA": "b"}
    with pytest.raises(SystemExit):
        parse_config(script_constants(ns), ["--gamma", "1"], source_file=str(path))
    path.write_text("ALPHA = 1\n")
    with pytest.raises(ValueError, match=r"script\.py.*# -- configuration"):
        script_constants(runpy.run_path(str(path)))


# -- 7. outputs get the umask's permissions ------------------------------------------------------------------

@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path):
    return stat.S_IMODE(Path(path).stat().st_mode)


def current_umask():
    old = os.umask(0)
    os.umask(old)
    return old


def test_atomic_writes_respect_the_umask(tmp_path):
    for mask in (0o022, 0o077, 0o002):
        f_mode, d_mode, out = 0o666 & ~mask, 0o777 & ~mask, tmp_path / oct(mask)
        with umask(mask):
            with atomic_path(out / "a.bin") as tmp:
                tmp.write_bytes(b"x")
            write_text(out / "b.txt", "x")
            write_text(out / "b.txt", "replaced")
            with atomic_dir(out / "model") as tmp:
                (tmp / "model.json").write_text("{}")
            with atomic_dir(out / "model") as tmp:  # replacing an existing directory
                (tmp / "model.json").write_text("{}")
        modes = [mode(p) for p in (out / "a.bin", out / "b.txt", out / "model", out / "model" / "model.json")]
        assert modes == [f_mode, f_mode, d_mode, f_mode], f"umask {oct(mask)}: {[oct(m) for m in modes]}"


def test_pictures_and_answers_are_readable_by_others(tiny_raw, tiny_dataset, tiny_trained, tmp_path):
    raw = tmp_path / "raw"
    (raw / "train").mkdir(parents=True)
    (raw / "val").mkdir()
    refs = pd.read_csv(SAMPLE / "trainreference.csv").head(2)
    refs.to_csv(raw / "trainreference.csv", index=False)
    for name in refs["name"]:
        shutil.copy(SAMPLE / "train" / f"{name}.mat", raw / "train")
    shutil.copy(next((SAMPLE / "val").glob("*.mat")), raw / "val")
    with umask(0o022):
        process.main(["--data-dir", str(raw), "--out-dir", str(tmp_path / "ds"), "--size", "64", "--workers", "1"])
        out, _ = tiny_trained
        predict.main(["--data-dir", str(tiny_raw), "--dataset-dir", str(tiny_dataset), "--model", str(out / "best_model"),
                      "--out", str(tmp_path / "answer.csv"), "--report", str(tmp_path / "rep.json"), "--num-workers", "0"])
    pictures = list((tmp_path / "ds").glob("*/*.png"))
    assert len(pictures) == 3
    for f in [*pictures, *(tmp_path / "ds").glob("*.*"), *(tmp_path / p for p in ("answer.csv", "answer.zip", "rep.json"))]:
        assert mode(f) == 0o644, f
    # tiny_trained ran under the session's umask: train.py's model directories get that umask's modes
    mask = current_umask()
    for d in [out / "best_model", *out.glob("iter_*")]:
        assert mode(d) == 0o777 & ~mask, d
        assert all(mode(f) == 0o666 & ~mask for f in d.iterdir()), d


# -- 8. one-line errors only for the project's own error types -----------------------------------------------

def raising(error):
    def main():
        raise error
    return main


@pytest.mark.parametrize("error", [ValueError("boom"), RuntimeError("(PreconditionNotMet) paddle"),
                                   FileNotFoundError(2, "No such file", "x.png")])
def test_other_errors_keep_their_traceback(error, monkeypatch):
    monkeypatch.delenv("ECG_DEBUG", raising=False)
    with pytest.raises(type(error)) as e:
        run_script(raising(error))
    assert e.value is error


def test_project_errors_are_one_line(monkeypatch):
    monkeypatch.delenv("ECG_DEBUG", raising=False)
    assert issubclass(ECGDataError, PipelineError) and issubclass(ECGDataError, ValueError)
    assert issubclass(CheckpointError, PipelineError) and issubclass(CheckpointError, RuntimeError)
    assert issubclass(PretrainedWeightsError, PipelineError) and issubclass(PretrainedWeightsError, RuntimeError)
    cases = [(ECGDataError("x.mat", "truncated"), "error: x.mat: truncated"),
             (CheckpointError("out/m: no model.json"), "error: out/m: no model.json"),
             (PretrainedWeightsError("w.pdparams: not found"), "error: w.pdparams: not found"),
             (ConfigError("--val-fold 12 >= --num-folds 10"), "error: --val-fold 12 >= --num-folds 10"),
             (PipelineError("p"), "error: p"),
             (SystemExit("error: passes through"), "error: passes through")]
    for error, message in cases:
        with pytest.raises(SystemExit) as e:
            run_script(raising(error))
        assert e.value.code == message
    monkeypatch.setenv("ECG_DEBUG", "1")
    with pytest.raises(ECGDataError):
        run_script(raising(ECGDataError("x.mat", "truncated")))


def test_bad_model_directories_are_one_line_errors(tiny_raw, tiny_dataset, tiny_trained, tmp_path):
    out, _ = tiny_trained
    export = tmp_path / "export"  # an exported model whose program file is missing
    export.mkdir()
    shutil.copy(out / "best_model" / "model.json", export)
    (export / "inference.pdiparams").write_bytes(b"")
    args = ["--data-dir", str(tiny_raw), "--dataset-dir", str(tiny_dataset), "--out", str(tmp_path / "a.csv"),
            "--report", str(tmp_path / "rep.json"), "--num-workers", "0"]
    with pytest.raises(CheckpointError, match="no exported program"):
        predict.main([*args, "--model", str(export)])
    env = {k: v for k, v in os.environ.items() if k != "ECG_DEBUG"}
    cases = [(tmp_path / "nope", "model directory not found"), (export, "no exported program")]

    def run(model):
        return subprocess.run([sys.executable, "predict.py", *args, "--model", str(model)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(len(cases)) as pool:  # both commands at once: each spends seconds importing Paddle
        runs = list(pool.map(run, [model for model, _ in cases]))
    for (model, problem), r in zip(cases, runs):
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
        last = r.stderr.strip().splitlines()[-1]  # Paddle may warn on stderr before it
        assert last.startswith(f"error: {model}: {problem}") and r.stderr.count("error:") == 1, r.stderr
    assert not (tmp_path / "a.csv").exists()


def test_paddle_start_up_notices_are_filtered_and_nothing_else():
    """configure_cpu_threads imports Paddle with its thread notice dropped and its ccache warning filtered (with 2
    threads, as the scripts run); a bare `import paddle` prints them, and other stderr lines still pass."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    quiet = ("from utils.runtime import configure_cpu_threads\nconfigure_cpu_threads()\nimport paddle, sys, warnings\n"
             "print('still shown', file=sys.stderr)\nwarnings.warn('a warning of our own')\n")
    bare = "import paddle\n"
    runs = {name: subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                                 timeout=300) for name, code in (("quiet", quiet), ("bare", bare))}
    assert all(r.returncode == 0 for r in runs.values()), {n: r.stderr[-2000:] for n, r in runs.items()}
    assert "OMP_NUM_THREADS set to 2" in runs["bare"].stderr  # what is filtered is really printed by Paddle
    assert "OMP_NUM_THREADS" not in runs["quiet"].stderr and "No ccache found" not in runs["quiet"].stderr
    assert "still shown" in runs["quiet"].stderr and "a warning of our own" in runs["quiet"].stderr


def test_a_log_line_never_lands_inside_a_progress_bar(monkeypatch):
    """With a progress bar running on stderr and log lines on stdout (one terminal), every log line starts on a
    line of its own: the bar is lifted first. A plain stream handler would write it right after the bar."""
    import io

    from tqdm import tqdm

    from utils.runtime import get_logger

    screen = io.StringIO()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(sys, "stderr", screen)
    log = get_logger()
    with tqdm(total=10, desc="measure", file=sys.stderr, mininterval=0) as bar:
        bar.update(3)
        log.info("a log line")
        bar.update(3)
    segments = re.split(r"[\r\n]", screen.getvalue())
    line = next(s for s in segments if "a log line" in s)
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[INFO\] a log line$", line), segments
    assert any("measure" in s and "6/10" in s for s in segments)  # the bar went on below it
