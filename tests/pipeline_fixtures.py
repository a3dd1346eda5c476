"""Session fixtures for the training and prediction tests: the embedded real sample rendered small, and a
model trained on it for a few iterations (64 px, batch 4), shared so the slow parts run once."""
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "dataset" / "sample"
TINY_RENDER = ["--mv-range", "4", "--line-width", "1"]
TINY = ["--image-size", "64", "--batch-size", "4", "--pretrained", "none", "--num-workers", "0", "--log-iters", "5"]


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory):
    """A copy of the embedded sample (60 train, 20 test real PTB-XL records) that tests may damage."""
    raw = tmp_path_factory.mktemp("raw") / "sample"
    shutil.copytree(SAMPLE, raw)
    return raw


@pytest.fixture(scope="session")
def tiny_dataset(tiny_raw, tmp_path_factory):
    import process

    out = tmp_path_factory.mktemp("dataset")
    # The earlier 4 mV / 1 px pictures: at 64 px a 2 px line fills half of a 5 px band, and the tiny runs' LR 0.01
    # from scratch, which the exact-resume and loss checks were set up on, is near divergence on denser pictures.
    process.main(["--data-dir", str(tiny_raw), "--out-dir", str(out), "--size", "64", *TINY_RENDER, "--workers", "1"])
    return out


@pytest.fixture(scope="session")
def tiny_trained(tiny_dataset, tmp_path_factory):
    """(output dir, train state) after 30 iterations that save checkpoints at 15 and 30."""
    import train

    out = tmp_path_factory.mktemp("output")
    state = train.main(["--dataset-dir", str(tiny_dataset), "--output-dir", str(out), "--iters", "30",
                        "--warmup-iters", "0", "--lr", "0.01", "--eval-interval", "15", "--save-interval", "15", *TINY])
    return out, state



@pytest.fixture(scope="session")
def tiny_trained2(tiny_dataset, tmp_path_factory):
    """(output dir, train state) of a Task 2 model: 40 iterations with 2 DataLoader workers, 5 folds."""
    import train

    out = tmp_path_factory.mktemp("output2")
    state = train.main(["--task", "2", "--dataset-dir", str(tiny_dataset), "--output-dir", str(out), "--iters", "40",
                        "--warmup-iters", "0", "--lr", "0.003", "--eval-interval", "20", "--save-interval", "40",
                        "--num-folds", "5", *TINY, "--num-workers", "2", "--log-iters", "10"])  # the last value wins
    return out, state


@pytest.fixture(scope="session")
def tiny_damaged(tiny_raw, tiny_dataset, tmp_path_factory):
    """The sample plus a truncated test record, rendered at 64 px: (raw dir, dataset dir). The sample's pictures
    are tiny_dataset's (drawn with the same settings, copied with their times, so process.py finds them up to
    date): process.py here tries the truncated record and reports it failed, without drawing the 80 others again."""
    import process

    raw = tmp_path_factory.mktemp("damaged") / "raw"
    shutil.copytree(tiny_raw, raw)
    good = (raw / "val" / "ptbxl_00108.mat").read_bytes()
    (raw / "val" / "zz_truncated.mat").write_bytes(good[: len(good) // 3])
    ds = tmp_path_factory.mktemp("damaged_ds") / "ds"
    shutil.copytree(tiny_dataset, ds)
    process.main(["--data-dir", str(raw), "--out-dir", str(ds), "--size", "64", *TINY_RENDER, "--workers", "1"])
    return raw, ds


SIGNAL = ["--arch", "resnet1d", "--batch-size", "8", "--warmup-iters", "2", "--lr", "0.003", "--log-iters", "5",
          "--pretrained", "none"]


@pytest.fixture(scope="session")
def tiny_signal(tiny_raw, tmp_path_factory):
    """(output dir, train state) of a resnet1d Task 1 model on the raw sample: 24 iterations, 2 workers,
    evaluations at 8, 16, 24, checkpoints at 12 and 24."""
    import train

    out = tmp_path_factory.mktemp("signal")
    state = train.main(["--data-dir", str(tiny_raw), "--output-dir", str(out), "--iters", "24", "--eval-interval", "8",
                        "--save-interval", "12", "--num-workers", "2", *SIGNAL])
    return out, state


@pytest.fixture(scope="session")
def tiny_features2(tiny_raw, tmp_path_factory):
    """(output dir, train state) of a Task 2 features model on the raw sample: 5 folds, no importance figure (it
    is tested on Task 1; 12 classes of it cost a minute here). Shared by the features and the fusion tests."""
    import train

    out = tmp_path_factory.mktemp("features2")
    state = train.main(["--task", "2", "--arch", "features", "--data-dir", str(tiny_raw), "--output-dir", str(out),
                        "--num-folds", "5", "--importance-repeats", "0"])
    return out, state
