import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline_fixtures import tiny_dataset, tiny_raw, tiny_trained  # noqa: E402,F401
