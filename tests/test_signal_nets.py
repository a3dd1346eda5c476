"""The signal family's benchmark networks (issue 22, item 1): xresnet1d18/34/50/101 and inception1d (Strodthoff et al.
2020's PTB-XL benchmark) build with the benchmark's sizes, take any record length at 100 Hz, train through train.py,
and predict.py reloads, exports and runs them."""
import contextlib
import io
import logging
import sys
from unittest import mock

import numpy as np
import paddle
import pandas as pd
import pytest

import predict
import train
from bench import ptbxl_accuracy
from models.families import ARCHS, SIGNAL_ARCHS, get_family
from models import inference
from models.inference import InferencePredictor
from models.xresnet1d import XResBlock
from pipeline_fixtures import SIGNAL
from utils.artifacts import ModelCard, read_json
from utils.ecg.io import read_record
from utils.inputs.signals import preprocess
from utils.scoring.tasks import get_task

T1 = get_task(1)
# Trainable parameters with 2 outputs: the same counts as the benchmark's PyTorch models (12 leads in, kernel 5,
# widths 64, head [128]; counted layer by layer from their models/xresnet1d.py and models/inception1d.py).
PARAMS = {"xresnet1d18": 364_546, "xresnet1d34": 694_274, "xresnet1d50": 953_602, "xresnet1d101": 1_871_874,
          "inception1d": 507_266}
# End to end: 18 (basic blocks), 50 (bottleneck blocks, as 101's, at half the depth: 101 exported took 10-18 s)
# and inception1d; 34 and 101 share their blocks with 18 and 50, and every depth is built above.
TRAINED = ["xresnet1d18", "xresnet1d50", "inception1d"]


def help_text(main):
    """What the script whose `main` this is prints for --help (in this process: a new one costs its imports, ~6 s)."""
    out = io.StringIO()
    with mock.patch.object(sys, "argv", ["script", "--help"]), contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main()
    return out.getvalue()


def trainable(model):
    return sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)


def test_every_signal_arch_is_a_choice_everywhere_resnet1d_is():
    assert set(PARAMS) | {"resnet1d"} == set(SIGNAL_ARCHS)
    assert all(ARCHS[a] == "signal" for a in SIGNAL_ARCHS)
    helps = {"train.py": help_text(train.main), "bench/ptbxl_accuracy.py": help_text(ptbxl_accuracy.main)}
    for script, text in helps.items():
        missing = [a for a in SIGNAL_ARCHS if a not in text]
        assert not missing, f"{script} --help does not name {missing}"
    with pytest.raises(Exception, match="xresnet1d101, inception1d"):
        get_family("xresnet1d")


@pytest.mark.parametrize("arch", list(PARAMS), ids=[f"{a}-{n / 1e6:.2f}M" for a, n in PARAMS.items()])
def test_network_builds_with_the_benchmark_size_and_takes_any_length(arch):
    paddle.seed(0)
    model = get_family(arch).build(arch, 2, "none")
    assert trainable(model) == PARAMS[arch]
    model.eval()
    for length in (250, 1000, 333):  # 2.5 s and 10 s at 100 Hz, and an odd length
        with paddle.no_grad():
            out = model(paddle.randn([3, 12, length]))
        assert out.shape == [3, 2] and np.isfinite(out.numpy()).all()
    twelve = get_family(arch).build(arch, 12, "none")  # Task 2: one logit per class
    assert trainable(twelve) == PARAMS[arch] + 10 * 129 and twelve(paddle.randn([2, 12, 250])).shape == [2, 12]


def test_xresnet_blocks_start_as_their_shortcut():
    """The last batch norm of every block starts at zero: a new block is ReLU(shortcut(x))."""
    model = get_family("xresnet1d101").build("xresnet1d101", 2, "none")
    blocks = [b for b in model.sublayers() if isinstance(b, XResBlock)]
    assert len(blocks) == 33 and sum(b.shortcut is not None for b in blocks) == 4  # 3+4+23+3; 1 widening, 3 halving
    for block in (blocks[0], blocks[3], blocks[5]):  # widening, halving, plain
        block.eval()
        x = paddle.randn([2, block.convs[0][0].weight.shape[1], 64])
        short = block.shortcut(x) if block.shortcut is not None else x
        np.testing.assert_allclose(block(x).numpy(), paddle.nn.functional.relu(short).numpy(), atol=1e-6)


@pytest.fixture(scope="module", params=TRAINED)
def trained(request, tiny_raw, tmp_path_factory):
    """(arch, output dir, train state): 2 iterations of batch 4 on the sample, 2 DataLoader workers (what is checked
    is that the network trains, reloads and exports, not what it learns)."""
    arch = request.param
    out = tmp_path_factory.mktemp(arch)
    flags = [f for f in SIGNAL if f != "resnet1d"]
    flags.insert(flags.index("--arch") + 1, arch)
    state = train.main(["--data-dir", str(tiny_raw), "--output-dir", str(out), "--iters", "2", "--eval-interval", "1",
                        "--save-interval", "2", "--num-workers", "2", *flags, "--batch-size", "4"])  # the last value wins
    return arch, out, state


def test_trains_and_predict_reloads_exports_and_answers(trained, tiny_raw, tmp_path):
    arch, out, state = trained
    assert len(state["history"]["eval"]) == 2 and np.isfinite([r["loss"] for r in state["history"]["train"]]).all()
    info = read_json(out / "best_model" / "model.json")
    assert info["arch"] == arch and info["input"]["kind"] == "signal" and (out / "finished.json").is_file()

    # predict.py rebuilds the network from model.json: on the validation records, the same as val_predictions.csv
    card, log = ModelCard.from_json(info), logging.getLogger("ecg")
    run, _ = inference.load_predictor(out / "best_model", card, T1, "cpu", log)
    table = pd.read_csv(out / "best_model" / "val_predictions.csv", dtype={"name": str})
    x = np.stack([preprocess(read_record(tiny_raw / "train" / f"{n}.mat"), info["input"]) for n in table["name"]])
    np.testing.assert_allclose(T1.probs(run(x)), table["p_abnormal"], rtol=1e-4, atol=1e-5)

    # predict.py answers every test record, and its exported (static graph) model agrees with the dygraph one
    exp = tmp_path / "exported"
    predict.main(["--data-dir", str(tiny_raw), "--model", str(out / "best_model"), "--out", str(tmp_path / "a.csv"),
                  "--export", str(exp), "--num-workers", "0"])
    answer = pd.read_csv(tmp_path / "a.csv", dtype={"name": str})
    names = sorted(p.stem for p in (tiny_raw / "val").glob("*.mat"))
    assert sorted(answer["name"]) == names and set(answer["tag"]) <= {0, 1}
    assert read_json(exp / "model.json")["arch"] == arch
    xv = np.stack([preprocess(read_record(tiny_raw / "val" / f"{n}.mat"), info["input"]) for n in names[:4]])
    np.testing.assert_allclose(InferencePredictor(exp, "cpu")(xv), run(xv), rtol=1e-3, atol=1e-4)
