import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Paddle on one thread per test process: the scripts' configure_cpu_threads would give each of the two xdist
# workers every core (4 threads fighting for 2 cores), and one thread keeps reductions in a fixed order.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from utils.runtime import load_before_paddle  # noqa: E402

load_before_paddle()  # test modules import paddle before the scripts do (see utils/runtime.py)

pytest_plugins = ("worker_guard",)  # a pytest-xdist worker's fork children die with it (tests/worker_guard.py)

from pipeline_fixtures import (  # noqa: E402,F401
    tiny_damaged, tiny_dataset, tiny_features2, tiny_features_kfold, tiny_raw, tiny_signal, tiny_trained, tiny_trained2)


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pytest.ini): a process per core, at most 2 (each more builds every session fixture again)."""
    return max(1, min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def ptbxl_dir():
    """The real PTB-XL subset beside the checkout (../shared/data/ptbxl), or $PTBXL_DIR."""
    path = Path(os.environ.get("PTBXL_DIR", ROOT.parent / "shared" / "data" / "ptbxl"))
    if not (path / "ptbxl_database.csv").is_file():
        pytest.skip(f"PTB-XL subset not found at {path}")
    return path


@pytest.fixture(scope="session")
def raw_small(ptbxl_dir, tmp_path_factory):
    """16 train + 6 test real records converted to the competition layout (test = fold 8)."""
    from tools import convert_ptbxl

    dst = tmp_path_factory.mktemp("convert") / "raw"
    convert_ptbxl.main(["--src", str(ptbxl_dir), "--dst", str(dst), "--test-fold", "8", "--max-records", "16",
                        "--max-test-records", "6", "--workers", "2"])
    return dst
