"""The picture input around the renderer: the time-shift augmentation keeps a 6x2 picture's lead columns apart
(limb-lead trace never lands among the chest leads, nor the reverse), seeded per sample as before; and a model
refuses pictures drawn with another amplitude curve or high-pass than its training pictures."""
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from models.families import PictureOptions, Sources, get_family
from transforms import ECG_MEAN, ECG_STD, RandomTimeShift, build_transforms
from utils.ecg.io import read_record
from utils.errors import ECGDataError
from utils.inputs.draws import derive_seed
from utils.inputs.pictures import check_render_settings
from utils.inputs.render import render_image
from utils.scoring.tasks import get_task

SIZE = 128
HALF = SIZE // 2  # the 6x2 layout's column boundary (render.band_edges(128, 2))
LOG = logging.getLogger("ecg")


@pytest.fixture(scope="module")
def columns(tiny_raw):
    """A real record drawn 6x2, as two gray pictures: only the limb-lead column inked, only the chest-lead one."""
    sig = read_record(tiny_raw / "train" / "ptbxl_00275.mat")
    full = np.asarray(render_image(sig, SIZE, layout="6x2").convert("L"))
    limb, chest = full.copy(), full.copy()
    limb[:, HALF:] = 255
    chest[:, :HALF] = 255
    assert (limb[:, HALF - 2:HALF] < 128).any() and (chest[:, HALF:HALF + 2] < 128).any()  # trace up to the boundary
    return {"limb": (limb, np.s_[:, HALF:]), "chest": (chest, np.s_[:, :HALF])}  # picture, the other column's area


def _shift(img, out):
    """The d with out's inked column == img's shifted by d within its column (None if none is)."""
    for d in range(-int(0.04 * SIZE), int(0.04 * SIZE) + 1):
        if np.array_equal(RandomTimeShift(n_cols=2).shift(img, d), out):
            return d
    return None


def test_time_shift_moves_each_column_on_its_own(columns):
    for img, other in columns.values():
        seen, old_leaks = set(), 0
        for seed in range(40):
            np.random.seed(seed)
            out = RandomTimeShift(p=1, n_cols=2)(img)
            assert not (out[other] < 128).any(), f"seed {seed}: trace shifted into the other lead column"
            seen.add(_shift(img, out))
            np.random.seed(seed)
            old_leaks += bool((RandomTimeShift(p=1, n_cols=1)(img)[other] < 128).any())  # the whole-picture shift
        assert None not in seen and min(seen) < 0 < max(seen)  # a real shift, both ways
        assert old_leaks >= 5  # the check itself: the old whole-picture shift fails it


def test_training_pipeline_keeps_6x2_columns_apart(columns, tmp_path):
    ds = tmp_path / "ds"
    (ds / "train").mkdir(parents=True)
    for name, (img, _) in columns.items():
        Image.fromarray(img).save(ds / "train" / f"{name}.png")
    (ds / "render_config.json").write_text(json.dumps({"size": SIZE, "line_width": 2, "layout": "6x2", "mv_range": 2.0,
                                                       "scale": "fixed", "amplitude": "clip", "highpass": 0.0}))
    df = pd.DataFrame({"name": list(columns), "y": [0, 1]})
    src = Sources(Path("unused"), ds)
    train_ds, _, inp = get_family("resnet18").datasets(get_task(1), None, df, df, src, PictureOptions(SIZE), LOG)
    assert inp["render_config"]["layout"] == "6x2"

    def leaks(dataset):
        n = 0
        for i, (_, other) in enumerate(columns.values()):
            for j in range(30):  # keyed as SeededBatchSampler keys a sample: (index, derive_seed(seed, epoch, i))
                x, _ = dataset[(i, derive_seed(7, 0, 100 * i + j))]
                gray = x[0] * ECG_STD[0] + ECG_MEAN[0]
                n += bool((gray[other] < 0.5).any())
        return n

    first = [train_ds[(0, derive_seed(7, 0, j))][0] for j in range(3)]
    assert leaks(train_ds) == 0
    np.testing.assert_array_equal(first, [train_ds[(0, derive_seed(7, 0, j))][0] for j in range(3)])  # reproducible
    train_ds.transform = build_transforms(True, 6, 1)  # the same pipeline with the whole-picture shift: it leaks
    assert leaks(train_ds) >= 5


def _dataset_with(tmp_path, settings):
    ds = tmp_path / "ds"
    ds.mkdir(exist_ok=True)
    (ds / "render_config.json").write_text(json.dumps(settings))
    return ds


OLD = {"size": 640, "line_width": 2, "layout": "12x1", "mv_range": 2.0, "scale": "fixed"}  # before amplitude/highpass
NEW = {**OLD, "amplitude": "clip", "highpass": 0.0}


@pytest.mark.parametrize("key,value", [("amplitude", "soft"), ("highpass", 0.5)])
def test_model_refuses_pictures_of_another_amplitude_curve_or_highpass(tmp_path, key, value):
    card = {"image_size": 64, "render_config": NEW}
    check_render_settings(card, _dataset_with(tmp_path, NEW), "m", LOG)  # the same settings: read
    check_render_settings(card, _dataset_with(tmp_path, OLD), "m", LOG)  # drawn before the settings existed: the same
    check_render_settings({**card, "render_config": OLD}, _dataset_with(tmp_path, NEW), "m", LOG)  # an older model
    with pytest.raises(ECGDataError, match=rf"other settings .*{key}: model {NEW[key]!r}, pictures {value!r}"):
        check_render_settings(card, _dataset_with(tmp_path, {**NEW, key: value}), "m", LOG)
    with pytest.raises(ECGDataError, match=rf"{key}: model {NEW[key]!r}, pictures {value!r}"):
        check_render_settings({**card, "render_config": OLD}, _dataset_with(tmp_path, {**NEW, key: value}), "m", LOG)
    with pytest.raises(ECGDataError, match=rf"{key}: model {value!r}, pictures {NEW[key]!r}"):
        check_render_settings({**card, "render_config": {**NEW, key: value}}, _dataset_with(tmp_path, OLD), "m", LOG)
