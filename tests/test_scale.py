"""Per-record stages at scale: the preprocessed-signal cache (keyed by settings and code, rebuilt when either
changes), several processes building one cache at once, memory-mapped items giving the batches in-memory ones
gave, parallel workers giving the serial results, and the cores shared by the ranks of this machine only."""
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paddle
import pytest

import utils.ecg.cache as ec
import utils.inputs.signals as sg
from transforms.signal_augment import build_signal_transforms
from utils.ecg.cache import cache_key, features_for_records
from utils.artifacts import mirror_data_inputs
from utils.ecg.io import read_record
from utils.inputs.loading import make_loader
from utils.inputs.signals import ECGSignalDataset, default_preprocess, prepare_signals, preprocess, read_signal
from utils.training.sampling import SeededBatchSampler

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "dataset" / "sample" / "train"


def _records(tmp_path, n=4):
    d = tmp_path / "data" / "train"
    d.mkdir(parents=True)
    for p in sorted(TRAIN.glob("*.mat"))[:n]:
        shutil.copy2(p, d / p.name)
    return sorted(d.glob("*.mat"))


def _unscaled(path, prep):
    return preprocess(read_record(path), {**prep, "scale": 1.0})


def _no_reading(monkeypatch):
    monkeypatch.setattr(ec, "read_record", lambda path: pytest.fail(f"read {path} again instead of its cache"))


def test_signal_cache_is_reused_and_rebuilt_when_the_settings_or_the_code_change(tmp_path, monkeypatch):
    paths, cache, prep = _records(tmp_path, 3), tmp_path / "cache", default_preprocess()
    items, bad = prepare_signals(paths, prep, cache)
    assert bad == {} and all(isinstance(i, str) and Path(i).parent == cache / sg.signal_cache_key(prep) / "train" for i in items)
    for item, path in zip(items, paths):
        np.testing.assert_array_equal(read_signal(item), _unscaled(path, prep))
    assert not list(cache.rglob("*.tmp"))

    with monkeypatch.context() as m:  # a second pass, and another scale (applied when read), reuse every file
        _no_reading(m)
        assert prepare_signals(paths, {**prep, "scale": 3.0}, cache) == (items, {})

    # other settings: another folder, other values
    hp = {**prep, "highpass_hz": 1.0}
    items_hp, _ = prepare_signals(paths, hp, cache)
    assert sg.signal_cache_key(hp) != sg.signal_cache_key(prep) and len(list(cache.iterdir())) == 2
    np.testing.assert_array_equal(read_signal(items_hp[0]), _unscaled(paths[0], hp))
    assert not np.array_equal(read_signal(items_hp[0]), read_signal(items[0]))

    # other preprocessing code (here: a version that doubles the amplitude): another folder, its own values
    real = sg.preprocess

    def doubled(x, prep):
        return real(2 * np.asarray(x), prep)

    key = sg.signal_cache_key(prep)
    monkeypatch.setattr(sg, "preprocess", doubled)
    assert sg.signal_cache_key(prep) != key
    items_new, _ = prepare_signals(paths, prep, cache)
    assert len(list(cache.iterdir())) == 3
    np.testing.assert_allclose(read_signal(items_new[0]), 2 * read_signal(items[0]), rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(sg, "preprocess", real)

    # a damaged cache file (a disk error, a copy cut short) is preprocessed again, not read
    Path(items[1]).write_bytes(Path(items[1]).read_bytes()[:1000])
    again, _ = prepare_signals(paths, prep, cache)
    np.testing.assert_array_equal(read_signal(again[1]), _unscaled(paths[1], prep))


def test_signal_cache_not_writable_keeps_the_signals_in_memory(tmp_path, caplog):
    paths = _records(tmp_path, 2)
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with caplog.at_level("WARNING", logger="ecg"):
        items, bad = prepare_signals(paths, default_preprocess(), blocker / "cache", workers=2)
    assert bad == {} and all(isinstance(i, np.ndarray) for i in items)
    np.testing.assert_array_equal(items[0], _unscaled(paths[0], default_preprocess()))
    assert sum("cannot cache preprocessed signals" in r.getMessage() for r in caplog.records) == 1


BUILDER = """
import json, os, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from utils.ecg.cache import features_for_records
from utils.inputs.signals import default_preprocess, prepare_signals
paths = sorted(Path({data!r}).glob("*.mat"))
Path({sync!r}, f"ready-{{os.getpid()}}").touch()
while not Path({sync!r}, "go").exists():  # start together
    time.sleep(0.005)
items, bad = prepare_signals(paths, default_preprocess(), Path({cache!r}) / "signals", workers=1, progress=False)
X, bad2 = features_for_records(paths, cache_dir=Path({cache!r}) / "features", progress=False)
print(json.dumps({{"items": items, "bad": bad, "bad2": bad2, "X": X.tolist()}}))
"""


def test_two_processes_building_one_cache_at_once_agree(tmp_path):
    """Two processes (two ranks, or two runs on one DATA_DIR) fill one empty cache at the same moment, both
    writing every record: each file is whole, both get the same items, and the values are the serial ones."""
    paths = _records(tmp_path, 8)
    cache, sync = tmp_path / "cache", tmp_path / "sync"
    sync.mkdir()
    code = BUILDER.format(root=str(ROOT), data=str(paths[0].parent), cache=str(cache), sync=str(sync))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PADDLE_")}  # not ranks: both take every record in order
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**env, "OMP_NUM_THREADS": "1"}) for _ in range(2)]
    deadline = time.time() + 120
    while len(list(sync.glob("ready-*"))) < 2 and time.time() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.01)
    (sync / "go").touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    a, b = (json.loads(o.strip().splitlines()[-1]) for o, _ in outs)
    assert a["items"] == b["items"] and a["bad"] == b["bad"] == {} and a["bad2"] == b["bad2"] == {}
    np.testing.assert_array_equal(np.array(a["X"], np.float32), np.array(b["X"], np.float32))
    assert not [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".npy")]  # no temporaries left
    prep = default_preprocess()
    for item, path in zip(a["items"], paths):
        np.testing.assert_array_equal(read_signal(item), _unscaled(path, prep))
    want, _ = features_for_records(paths, progress=False)
    np.testing.assert_array_equal(np.array(a["X"], np.float32), want)
    assert len(list((cache / "features" / cache_key() / "train").iterdir())) == len(paths)


def test_ranks_of_one_machine_start_at_their_own_share(monkeypatch):
    jobs = list(range(10))
    monkeypatch.setenv("PADDLE_LOCAL_SIZE", "2")
    monkeypatch.setenv("PADDLE_LOCAL_RANK", "1")
    assert ec._rank_order(jobs) == [5, 6, 7, 8, 9, 0, 1, 2, 3, 4]
    monkeypatch.setenv("PADDLE_LOCAL_RANK", "0")
    assert ec._rank_order(jobs) == jobs


def test_workers_give_the_serial_results_in_order(tmp_path):
    """Two worker processes measure and preprocess as one process does, in the records' order, and report an
    unreadable record among them the same way."""
    paths = _records(tmp_path, 5)
    broken = paths[0].parent / "zz_broken.mat"
    broken.write_bytes(paths[0].read_bytes()[:3000])
    paths = paths[:2] + [broken] + paths[2:]
    X1, bad1 = features_for_records(paths, progress=False, workers=1)
    X2, bad2 = features_for_records(paths, progress=False, workers=2)
    np.testing.assert_array_equal(X1, X2)
    assert list(bad1) == list(bad2) == [str(broken)]
    s1, sbad1 = prepare_signals(paths, default_preprocess(), workers=1)
    s2, sbad2 = prepare_signals(paths, default_preprocess(), workers=2)
    assert sbad1 == sbad2 and list(sbad1) == [str(broken)] and s1[2] is None and s2[2] is None
    for a, b in zip(s1[:2] + s1[3:], s2[:2] + s2[3:]):
        np.testing.assert_array_equal(a, b)


def test_memory_mapped_items_give_the_batches_in_memory_signals_gave(tmp_path):
    """A dataset of cache files (read memory-mapped, scaled per item) yields exactly the batches of the former
    dataset of scaled arrays held in memory, augmented or not, with DataLoader workers or without."""
    paths = _records(tmp_path, 6)
    prep = default_preprocess()
    files, _ = prepare_signals(paths, prep, tmp_path / "cache")
    arrays = [_unscaled(p, prep) for p in paths]
    scale = sg.fit_scale([read_signal(f) for f in files])
    assert scale == sg.fit_scale(arrays) and scale != 1.0
    labels = np.arange(6) % 2

    def batches(ds, workers, train):
        # make_loader as the pipeline's: a bare DataLoader here forked its workers while the reader thread of the
        # one before still ran and hung; its time limit ended the xdist worker, whose orphaned children then kept
        # the whole run waiting (tests/worker_guard.py)
        order = {"batch_sampler": SeededBatchSampler(ds, 2, 11, drop_last=False)} if train else {"batch_size": 4}
        with make_loader(ds, "memory-mapped", timeout=120, num_workers=workers, **order) as loader:
            return [(x.numpy(), y.numpy()) for x, y in loader]

    for train in (True, False):
        tf = build_signal_transforms(train, prep)
        before = ECGSignalDataset([a * np.float32(scale) for a in arrays], labels, tf)  # what datasets() built before
        mapped = ECGSignalDataset(files, labels, tf, scale=scale)
        want = batches(before, 0, train)
        for workers in (0, 2):
            got = batches(mapped, workers, train)
            assert len(got) == len(want)
            for (gx, gy), (wx, wy) in zip(got, want):
                np.testing.assert_array_equal(gx, wx)
                np.testing.assert_array_equal(gy, wy)


def test_training_folds_reuse_the_signal_cache(tiny_signal, tiny_raw, monkeypatch):
    """After a resnet1d run, another fold's records come from DATA_DIR/signal_cache: no record is read again,
    and the dataset holds file names, not signals."""
    import train
    from models.families import Sources, get_family
    from utils.artifacts import SIGNAL_CACHE, read_json
    from utils.scoring.tasks import get_task

    out, _ = tiny_signal
    cfg = {**read_json(out / "best_model" / "model.json")["config"], "VAL_FOLD": 3}
    assert (tiny_raw / SIGNAL_CACHE).is_dir()
    _no_reading(monkeypatch)
    family, task = get_family("resnet1d"), get_task(1)
    labelled, train_df, val_df = train.load_split(cfg, task, family)
    ds, _, _ = family.datasets(task, labelled, train_df, val_df, Sources(tiny_raw, tiny_raw), family.options(cfg),
                               logging.getLogger("ecg"))
    assert all(isinstance(s, str) and s.endswith(".npy") for s in ds.signals) and len(ds) == len(train_df)


def test_cores_are_shared_by_the_ranks_of_this_machine_only(monkeypatch):
    from utils import runtime

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    for k in [k for k in os.environ if k.startswith("PADDLE_")]:
        monkeypatch.delenv(k)
    assert runtime.local_ranks() == (0, 1) and runtime.worker_count(0) == 16 and runtime.worker_count(3) == 3
    # two machines of 4 ranks each: 16 ranks in all, 4 here
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "8")
    monkeypatch.setenv("PADDLE_TRAINER_ID", "6")
    monkeypatch.setenv("PADDLE_LOCAL_SIZE", "4")
    monkeypatch.setenv("PADDLE_LOCAL_RANK", "2")
    assert runtime.local_ranks() == (2, 4) and runtime.cores_per_rank() == 4 and runtime.worker_count(0) == 4


def test_scripts_take_every_core_and_the_suite_one_thread_per_process():
    """With OMP_NUM_THREADS unset, a script gives Paddle every core of its rank (configure_cpu_threads), and the
    suite one thread per process: tests/conftest.py sets it first, and importing a script (as collection does)
    keeps it. A value set by the user wins in both."""
    from utils import runtime

    with pytest.MonkeyPatch.context() as m:  # a script's own start-up, in this process (Paddle is loaded already)
        m.delenv("OMP_NUM_THREADS", raising=False)
        runtime.configure_cpu_threads()
        assert os.environ["OMP_NUM_THREADS"] == str(runtime.cores_per_rank())
        m.setenv("OMP_NUM_THREADS", "3")
        runtime.configure_cpu_threads()
        assert os.environ["OMP_NUM_THREADS"] == "3"
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS" and not k.startswith("PADDLE_")}
    show = "import os\nprint(os.environ['OMP_NUM_THREADS'])"
    suite = "import sys\nsys.path.insert(0, 'tests')\nimport conftest\nimport train\n" + show
    for code, want in ((suite, "1"), (suite, "3")):
        run_env = {**env, "OMP_NUM_THREADS": "3"} if want == "3" else env
        got = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=run_env, capture_output=True, text=True, check=True)
        assert got.stdout.strip().splitlines()[-1] == want, (code, got.stdout, got.stderr[-500:])


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_machines_on_one_data_dir_train_and_share_one_signal_cache(tmp_path):
    """The multi-machine command (paddle.distributed.launch --nnodes 2 --master HOST:PORT --rank R), both
    "machines" here on one DATA_DIR with an empty cache: they build it at once, then train as 2 ranks."""
    raw = tmp_path / "raw"
    mirror_data_inputs(ROOT / "dataset" / "sample", raw)  # the records, not a cache left beside them
    out, master = tmp_path / "out", f"127.0.0.1:{_free_port()}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PADDLE_")}, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "paddle.distributed.launch", "--master", master, "--nnodes", "2",
                               "--rank", str(r), "--nproc_per_node", "1", "--log_dir", str(tmp_path / f"log{r}"),
                               "train.py", "--arch", "resnet1d", "--data-dir", str(raw), "--output-dir", str(out),
                               "--iters", "3", "--batch-size", "8", "--warmup-iters", "0", "--save-interval", "3",
                               "--num-workers", "0", "--pretrained", "none", "--prep-workers", "1"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in (0, 1)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(t[-3000:] for t in logs)
    assert "batch 8 x 2 process(es)" in (out / "train.log").read_text()
    assert (out / "best_model" / "model.pdparams").is_file()
    files = sorted((raw / "signal_cache").rglob("*"))
    npys = [f for f in files if f.is_file()]
    assert len(npys) == 60 and all(f.suffix == ".npy" for f in npys)  # one whole file per training record
    prep = default_preprocess()
    for f in npys[:5]:
        np.testing.assert_array_equal(read_signal(str(f)), _unscaled(raw / "train" / f"{f.name.split('.')[0]}.mat", prep))


class _Pids(paddle.io.Dataset):
    """Each item: the id of the process that loaded it."""

    def __len__(self):
        return 4

    def __getitem__(self, key):
        from utils.inputs.draws import seed_sample

        seed_sample(key)
        return np.array([os.getpid()], np.int64), np.int64(0)


def test_the_validation_loader_keeps_its_workers_between_evaluations():
    from utils.training.engine import build_loaders

    _, _, val_loader = build_loaders(_Pids(), _Pids(), 2, 0, 1, 1)
    first = {int(x) for x, _ in val_loader for x in x.numpy().ravel()}
    second = {int(x) for x, _ in val_loader for x in x.numpy().ravel()}
    assert first == second and os.getpid() not in first
