"""Picture backbones (ResNet18/34/50/101 from paddle.vision) with a new classification head, and ImageNet weight
loading (PaddleClas style: load what matches by name and shape, skip the mismatched head with a note)."""
import logging
import os
import socket
import urllib.parse

import paddle
from paddle.vision.models import resnet18, resnet34, resnet50, resnet101
from paddle.vision.models.resnet import model_urls

from utils.errors import PretrainedWeightsError

log = logging.getLogger("ecg")
PROBE_TIMEOUT_S = 5
PICTURE_ARCHS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "resnet101": resnet101}


def _cache_path(arch="resnet50"):
    from paddle.utils.download import WEIGHTS_HOME

    url, _ = model_urls[arch]
    return os.path.join(WEIGHTS_HOME, os.path.basename(urllib.parse.urlparse(url).path))


def _reachable(url, timeout=PROBE_TIMEOUT_S):
    parts = urllib.parse.urlparse(url)
    try:
        socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)), timeout=timeout).close()
        return True, ""
    except OSError as e:
        return False, f"{type(e).__name__}: {e}"


def imagenet_weights_available(arch="resnet50"):
    """True when `--pretrained auto` can work: the weights are cached or the download host answers."""
    return os.path.exists(_cache_path(arch)) or _reachable(model_urls[arch][0])[0]


def fetch_imagenet_weights(arch="resnet50"):
    """Path of Paddle's ImageNet weights for `arch`, downloaded into Paddle's cache if needed.

    Offline, fail within seconds: Paddle's downloader retries, and in non-zero ranks it waits forever for
    rank 0's file, so every rank probes the host first.
    """
    url, md5 = model_urls[arch]
    cached = _cache_path(arch)
    if os.path.exists(cached):
        return cached
    ok, why = _reachable(url)
    if not ok:
        raise PretrainedWeightsError(
            f"cannot download the ImageNet {arch} weights from {url} ({why}). Offline? Either put that file "
            f"at {cached}, or pass --pretrained /path/to/{arch}.pdparams, or --pretrained none to train from scratch.")
    from paddle.utils.download import get_weights_path_from_url

    return get_weights_path_from_url(url, md5)


def load_pretrained(model, path):
    """Load a `.pdparams` state dict into `model`; tensors whose name or shape differ (the head) are skipped."""
    if not os.path.isfile(path):
        raise PretrainedWeightsError(f"{path}: pretrained weights file not found")
    try:
        state = paddle.load(path)
    except Exception as e:
        raise PretrainedWeightsError(f"{path}: cannot read as Paddle weights ({e})") from e
    own = model.state_dict()
    matched, skipped = {}, []
    for key, value in state.items():
        if key in own and list(own[key].shape) == list(value.shape):
            matched[key] = value
        else:
            skipped.append(f"{key} {list(value.shape)}" + (f" vs {list(own[key].shape)}" if key in own else " (not in model)"))
    if not matched:
        raise PretrainedWeightsError(f"{path}: no tensor matches this model (are they weights of the same architecture?)")
    model.set_state_dict({**own, **matched})  # the head keeps its fresh initial values
    missing = [k for k in own if k not in matched]
    log.info(f"pretrained: loaded {len(matched)}/{len(own)} tensors from {path}")
    if skipped:
        log.info(f"pretrained: skipped {', '.join(skipped)} (new head)")
    if missing:
        log.info(f"pretrained: kept initial values for {', '.join(missing)}")
    return matched.keys()


def build_model(num_classes=2, pretrained="none", arch="resnet50"):
    """A picture ResNet with a `num_classes` head. `pretrained`: 'auto' (ImageNet via Paddle), 'none', or a .pdparams path."""
    model = PICTURE_ARCHS[arch](pretrained=False, num_classes=num_classes)
    if pretrained == "auto":
        load_pretrained(model, fetch_imagenet_weights(arch))
    elif pretrained and pretrained != "none":
        load_pretrained(model, pretrained)
    return model
