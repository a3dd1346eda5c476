"""ECG-safe augmentations for rendered waveform pictures.

Pictures are grayscale: time runs left to right, each lead has a horizontal band. Allowed: small shifts in
time, small amplitude scaling within each band, brightness/contrast, light noise, erasing short time windows.
Never flipped: a horizontal flip reverses time and a vertical flip inverts polarity, both diagnostic.
"""
import numpy as np
from paddle.vision.transforms import ColorJitter, Compose, Normalize
from PIL import Image

from utils.inputs.render import band_edges

# ImageNet statistics, as the pretrained backbone expects (RGB order; our gray picture fills all 3 channels).
ECG_MEAN = [0.485, 0.456, 0.406]
ECG_STD = [0.229, 0.224, 0.225]
WHITE = 255


def _as_array(img):
    return np.asarray(img, dtype=np.uint8) if isinstance(img, Image.Image) else img


class _RandomOp:
    """Applies `apply` to a gray uint8 array with probability `p`."""

    p = 0.5

    def __call__(self, img):
        img = _as_array(img)
        return self.apply(img) if np.random.rand() < self.p else img


class RandomTimeShift(_RandomOp):
    """Shift the trace left or right by up to `max_frac` of the width; uncovered columns are background.

    A layout of `n_cols` lead columns (6x2: limb leads left, chest leads right) is shifted column by column, each
    within its own bounds (the renderer's), by the same draw: trace never crosses into another column's leads."""

    def __init__(self, max_frac=0.04, p=0.5, n_cols=1):
        self.max_frac, self.p, self.n_cols = max_frac, p, n_cols

    def apply(self, img):
        w = img.shape[1]
        return self.shift(img, int(np.random.randint(-int(self.max_frac * w), int(self.max_frac * w) + 1)))

    def shift(self, img, d):
        """`img` with each lead column's trace moved `d` pixels right (left if negative) within the column."""
        out = np.full_like(img, WHITE)
        edges = band_edges(img.shape[1], self.n_cols)
        for x0, x1 in zip(edges[:-1], edges[1:]):
            n = max(x1 - x0 - abs(d), 0)  # columns of this lead column that stay inside it
            if d >= 0:
                out[:, x1 - n:x1] = img[:, x0:x0 + n]
            else:
                out[:, x0:x0 + n] = img[:, x1 - n:x1]
        return out


class RandomAmplitudeScale(_RandomOp):
    """Scale amplitude by a factor in [1-s, 1+s] about each band's centre line (all bands alike)."""

    def __init__(self, n_rows=12, max_scale=0.1, p=0.5):
        self.n_rows, self.max_scale, self.p = n_rows, max_scale, p

    def apply(self, img):
        h = img.shape[0]
        s = 1.0 + np.random.uniform(-self.max_scale, self.max_scale)
        edges = band_edges(h, self.n_rows)  # the renderer's own band boundaries
        band = np.searchsorted(edges, np.arange(h), side="right") - 1
        top, bottom = edges[band], edges[band + 1]
        centre = (top + bottom - 1) / 2.0
        src = np.round(centre + (np.arange(h) - centre) / s).astype(int)  # nearest source row within the band
        inside = (src >= top) & (src < bottom)
        out = np.full_like(img, WHITE)
        out[inside] = img[src[inside]]
        return out


class RandomTimeErasing(_RandomOp):
    """Blank a short time window (all leads) of up to `max_frac` of the width, like a lead-off dropout."""

    def __init__(self, max_frac=0.05, p=0.3):
        self.max_frac, self.p = max_frac, p

    def apply(self, img):
        w = img.shape[1]
        width = np.random.randint(1, max(2, int(self.max_frac * w) + 1))
        x0 = np.random.randint(0, w - width + 1)
        img = img.copy()
        img[:, x0:x0 + width] = WHITE
        return img


class GaussianNoise(_RandomOp):
    """Add light pixel noise (std in grey levels)."""

    def __init__(self, std=8.0, p=0.3):
        self.std, self.p = std, p

    def apply(self, img):
        noisy = img.astype(np.float32) + np.random.normal(0.0, self.std, img.shape).astype(np.float32)
        return np.clip(noisy, 0, 255).astype(np.uint8)


class ToCHW:
    """Gray uint8 (H, W) -> float32 (3, H, W) in [0, 1] (the gray copied into all three channels)."""

    def __call__(self, img):
        img = _as_array(img).astype(np.float32) / 255.0
        return np.repeat(img[None], 3, axis=0)


def build_transforms(train, n_rows=12, n_cols=1):
    """Training pipeline (augmented) or evaluation pipeline (deterministic); both end ImageNet-normalised CHW.
    `n_rows` x `n_cols`: the pictures' layout (process.py's render_config.json), whose bands and lead columns the
    augmentations keep apart; None for pictures without process.py's bands (whole paper pages, which carry their own
    distortions): then only the brightness, contrast and noise change."""
    tail = [ToCHW(), Normalize(mean=ECG_MEAN, std=ECG_STD, data_format="CHW")]
    if not train:
        return Compose(tail)
    if n_rows is None:
        return Compose([ColorJitter(brightness=0.2, contrast=0.2), GaussianNoise(), *tail])
    return Compose([
        ColorJitter(brightness=0.2, contrast=0.2),  # PIL image in, PIL image out
        RandomTimeShift(n_cols=n_cols), RandomAmplitudeScale(n_rows=n_rows), RandomTimeErasing(), GaussianNoise(),
        *tail,
    ])
