"""The family contract (models/families.py): each family reads its own options from train.py's settings and no
other family's, checks them, and hands the runner one kind of test input (a paddle.io.Dataset)."""
import inspect
import logging
from types import SimpleNamespace

import paddle
import pytest

import train
from models.families import (
    ARCHS,
    FAMILIES,
    FeaturesOptions,
    FittedFamily,
    NetworkFamily,
    PictureOptions,
    SignalOptions,
    Sources,
    get_family,
)
from utils.config import parse_config, script_constants
from utils.errors import ConfigError

OWN = {"picture": ({"IMAGE_SIZE": 64}, PictureOptions(64)),
       "signal": ({"CROP_SECONDS": 2.5, "TTA_STRIDE_SECONDS": 1.25, "TTA_AGG": "max"}, SignalOptions(2.5, 1.25, "max")),
       "features": ({"GAIN_AUGMENT": 0.1, "AMPLITUDES": "both"}, FeaturesOptions(0.1, "both"))}


@pytest.mark.parametrize("name", FAMILIES)
def test_a_family_reads_its_own_settings_and_no_other(name):
    """Given only its own flags a family makes its options (another family's flags would be a KeyError), and
    from train.py's defaults it makes the defaults of its options class."""
    settings, want = OWN[name]
    assert FAMILIES[name].options(settings) == want
    defaults = parse_config(script_constants(vars(train)), [])
    assert FAMILIES[name].options(defaults) == type(want)()


def test_every_option_field_is_a_train_flag_but_the_benches_trees():
    defaults = parse_config(script_constants(vars(train)), [])
    for cls in (PictureOptions, SignalOptions, FeaturesOptions):
        for field in inspect.signature(cls).parameters:
            if field != "trees":
                assert field.upper() in defaults, f"{cls.__name__}.{field} is no train.py flag"
                assert defaults[field.upper()] == getattr(cls(), field), f"{cls.__name__}.{field}: another default"


@pytest.mark.parametrize("make, match", [
    (lambda: SignalOptions(crop_seconds=12), "--crop-seconds"),
    (lambda: SignalOptions(2.5, 3.0), "--tta-stride-seconds"),
    (lambda: SignalOptions(tta_agg="median"), "--tta-agg"),
    (lambda: FeaturesOptions(gain_augment=1.5), r"--gain-augment must be in \[0, 1\)"),
])
def test_options_are_checked_when_made(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_options_are_frozen():
    with pytest.raises(AttributeError):
        PictureOptions(64).image_size = 128


def test_the_contract_is_what_each_kind_of_family_implements():
    """Networks take datasets(..., options, log) and give their input shape; fitted families take fit(..., seed,
    options, log) and have no input shape (nothing exports them)."""
    for family in FAMILIES.values():
        kind = NetworkFamily if family.iterative else FittedFamily
        assert isinstance(family, kind)
    assert list(inspect.signature(NetworkFamily.datasets).parameters)[-2:] == ["options", "log"]
    assert list(inspect.signature(FittedFamily.fit).parameters)[-3:] == ["seed", "options", "log"]
    assert not hasattr(get_family("features"), "input_spec") and set(ARCHS.values()) == set(FAMILIES)


def test_features_test_inputs_are_a_dataset_like_the_networks(tiny_raw):
    """test_inputs gives every family's runner a paddle.io.Dataset, item i the input of record have[i]."""
    from utils.ecg.measurements import FEATURE_NAMES, FEATURES_VERSION

    names = sorted(p.stem for p in (tiny_raw / "val").glob("*.mat"))[:2] + ["no_such_record"]
    card = SimpleNamespace(input={"kind": "features", "version": FEATURES_VERSION, "n_features": len(FEATURE_NAMES)})
    ds, have, missing = get_family("features").test_inputs(card, Sources(tiny_raw, tiny_raw, 1), names, tiny_raw,
                                                           logging.getLogger("ecg"))
    assert isinstance(ds, paddle.io.Dataset) and have == names[:2] and list(missing) == ["no_such_record"]
    assert len(ds) == 2 and ds[0].shape == (len(FEATURE_NAMES),)
