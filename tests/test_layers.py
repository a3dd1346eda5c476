"""The architecture's import rules (docs/development.md, Import layers): utils/ is layered, each layer importing only those below it.

    base (utils/*.py: errors, atomic, config, runtime, artifacts)  <  ecg  <  inputs, scoring  <  paper  <  report, training

report (the printouts a person reads: pages and their index) draws with inputs' printout renderer, reads records
and measurements from ecg and asks scoring's Task what an answer means, but never training: predict.py and
tools/printout.py use it, the latter with no model. No layer below training loads Paddle except inputs (the
datasets): the base, ecg, scoring (Task, thresholds, metrics, fusion) and report load none, so a tool that only
reads records, scores answers or draws pages runs without it. The converters and tools/measure.py import only
utils/ecg/ and the base; predict.py never loads utils/training/, not even through another module."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE = {"errors", "atomic", "config", "runtime", "artifacts"}
ALLOWED = {  # layer -> the utils layers its modules may import
    "base": {"base"},
    "ecg": {"base", "ecg"},
    "inputs": {"base", "ecg", "inputs"},
    "scoring": {"base", "ecg", "scoring"},
    "paper": {"base", "ecg", "inputs", "paper"},
    "report": {"base", "ecg", "inputs", "scoring", "paper", "report"},
    "training": {"base", "ecg", "inputs", "scoring", "training"},
}


def layer_of(module):
    """'utils.ecg.io' -> 'ecg'; 'utils.atomic' -> 'base'; not a utils module -> None."""
    parts = module.split(".")
    if parts[0] != "utils" or len(parts) < 2:
        return None
    return "base" if parts[1] in BASE else parts[1]


def imported_modules(path):
    """Absolute names of the modules a file imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            found.append(mod)
            found += [f"{mod}.{a.name}" for a in node.names if layer_of(f"{mod}.{a.name}") and mod == "utils"]
    return found


def test_every_utils_module_belongs_to_a_layer():
    flat = {p.stem for p in (ROOT / "utils").glob("*.py")} - {"__init__"}
    assert flat == BASE, f"utils/ holds flat modules outside the base layer: {sorted(flat - BASE)}"
    assert {p.name for p in (ROOT / "utils").iterdir() if p.is_dir() and p.name != "__pycache__"} == set(ALLOWED) - {"base"}


@pytest.mark.parametrize("path", sorted((ROOT / "utils").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_layers_import_only_layers_below_them(path):
    own = layer_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
    bad = [m for m in imported_modules(path) if layer_of(m) and layer_of(m) not in ALLOWED[own]]
    assert not bad, f"{path.relative_to(ROOT)} ({own}) imports {bad}: allowed layers {sorted(ALLOWED[own])}"


def paddle_or_models_loaded_by(package, also):
    """In a fresh interpreter, import every module of `package` and the modules `also` names: the Paddle and
    models/ modules that loaded, as a printed list ("[]" for none)."""
    code = (f"import sys, importlib, pkgutil, {package}\n"
            f"for m in pkgutil.iter_modules({package}.__path__): importlib.import_module('{package}.' + m.name)\n"
            f"import {also}\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('paddle', 'models')))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_ecg_layer_and_converters_import_no_paddle_and_no_higher_layer():
    for tool in sorted((ROOT / "tools").glob("convert_*.py")) + [ROOT / "tools" / "measure.py"]:
        bad = [m for m in imported_modules(tool) if layer_of(m) not in (None, "base", "ecg") or m.split(".")[0] in ("models", "paddle")]
        assert not bad, f"{tool.name} imports {bad}: converters and the measurement tool use utils/ecg/ and the base only"
    loaded = paddle_or_models_loaded_by("utils.ecg", "tools.convert_ptbxl, tools.convert_cinc, tools.measure")
    assert loaded == "[]", f"utils/ecg/ or a converter loads {loaded}"


def test_predict_never_loads_the_training_layer():
    code = "import sys, predict\nprint(sorted(m for m in sys.modules if m.startswith('utils.training') or m == 'train'))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]", f"predict.py loads {r.stdout.strip()}"


def test_no_layer_below_training_but_inputs_loads_paddle():
    """The base, ecg, scoring, paper and report layers (every module of each) load neither Paddle nor models/: Task,
    thresholds and fusion are plain numpy; the loss lives in utils/training; paper pages are drawn and read with
    numpy, scipy and PIL."""
    # One interpreter for the four (a start-up each cost ~5 s): each package's new Paddle/models modules, in turn.
    # Nothing loaded by all of them in one process is the same as nothing loaded by each alone.
    base = ", ".join(f"utils.{m}" for m in sorted(BASE))
    code = ("import sys, importlib, pkgutil\n"
            "def loaded(): return {m for m in sys.modules if m.split('.')[0] in ('paddle', 'models')}\n"
            f"import {base}\nprint('base', sorted(loaded()))\n"
            "for package in ('utils.ecg', 'utils.scoring', 'utils.paper', 'utils.report'):\n"
            "    before = loaded()\n"
            "    p = importlib.import_module(package)\n"
            "    for m in pkgutil.iter_modules(p.__path__): importlib.import_module(package + '.' + m.name)\n"
            "    print(package, sorted(loaded() - before))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["base", "utils.ecg", "utils.scoring", "utils.paper", "utils.report"]
    for line in lines:
        package, loaded = line.split(" ", 1)
        assert loaded == "[]", f"{package} loads {loaded}"


def test_printouts_need_no_paddle_and_no_model():
    """tools/printout.py draws any records with no model: utils/report/ and it load neither Paddle nor models/."""
    loaded = paddle_or_models_loaded_by("utils.report", "utils.inputs.printout, tools.printout")
    assert loaded == "[]", f"utils/report/ or tools/printout.py loads {loaded}"
