"""bench/ as a small package (docs/development.md, Layout): every bench is a script that imports no other bench, only
what the benches share (bench/common.py, bench/protocol.py); the recorded results live in bench/results/."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SHARED = {"common", "protocol"}  # the bench modules a bench may import
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if p.stem not in SHARED)


def bench_modules_imported(path):
    """The bench modules `path` imports, as `bench.X` or, as a script run from bench/ could, as plain `X`."""
    stems = {p.stem for p in BENCH.glob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names] if node.module == "bench" else [])
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "bench" and len(parts) > 1:
                found.add(parts[1])
            elif parts[0] in stems:
                found.add(parts[0])
    return found


def test_the_layout_test_sees_every_bench_script():
    assert len(SCRIPTS) >= 15 and all((BENCH / f"{m}.py").is_file() for m in SHARED)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_a_bench_imports_no_other_bench(path):
    others = bench_modules_imported(path) - SHARED
    assert not others, f"{path.relative_to(ROOT)} imports {sorted(others)}: move what they share to bench/common.py"


def test_the_shared_modules_import_no_bench_script():
    for name in SHARED:
        assert bench_modules_imported(BENCH / f"{name}.py") <= SHARED


def test_results_live_in_bench_results():
    loose = sorted(p.name for p in BENCH.glob("*.json"))
    assert not loose, f"JSON results at bench/'s top level: {loose}; they go in bench/results/"
    assert not (BENCH / "figures").exists(), "the docs' pictures go in bench/results/figures/"
    assert any((BENCH / "results").glob("*.json")) and any((BENCH / "results" / "figures").glob("*.png"))


PIPELINE = {"process", "train", "predict"}
TIMERS = {"predict_speed", "render", "scale", "train_speed"}  # speed benches: they time a script's own functions


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_only_speed_benches_import_a_pipeline_script(path):
    """What a bench shares with predict.py or train.py lives in a module both import (models/inference.py's
    predict_member, say), so no accuracy bench runs a script's insides; a speed bench may time them."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            imported.add(node.module)
    scripts = imported & PIPELINE
    assert not scripts or path.stem in TIMERS, f"{path.relative_to(ROOT)} imports {sorted(scripts)}"
