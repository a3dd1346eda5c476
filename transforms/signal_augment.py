"""Augmentations of the raw signal (12, L) that keep the diagnosis: a random crop in time, amplitude scaling,
Gaussian noise and baseline wander. Never time reversal or polarity inversion: both change the diagnosis (a
reversed P-QRS-T, an inverted T wave). Every draw comes from numpy's generator, which SeededBatchSampler seeds
per sample, so a run is reproducible whichever worker draws it.
"""
import numpy as np


class RandomCrop:
    """A random window of `length` samples (the whole record when it is no longer)."""

    def __init__(self, length):
        self.length = length

    def __call__(self, x):
        n = x.shape[-1]
        if n <= self.length:
            return x
        start = np.random.randint(0, n - self.length + 1)
        return x[:, start:start + self.length]


class RandomAmplitude:
    """Multiply every lead by one factor in [1-s, 1+s] (electrode contact, body habitus)."""

    def __init__(self, max_scale=0.15, p=0.5):
        self.max_scale, self.p = max_scale, p

    def __call__(self, x):
        if np.random.rand() >= self.p:
            return x
        return x * np.float32(1.0 + np.random.uniform(-self.max_scale, self.max_scale))


class GaussianNoise:
    """Add white noise of standard deviation up to `max_std` (in the model's scaled units)."""

    def __init__(self, max_std=0.05, p=0.5):
        self.max_std, self.p = max_std, p

    def __call__(self, x):
        if np.random.rand() >= self.p:
            return x
        return x + np.random.normal(0, np.random.uniform(0, self.max_std), x.shape).astype(np.float32)


class BaselineWander:
    """Add a slow sinusoid per lead (breathing, 0.1-0.5 Hz) of amplitude up to `max_amp` (scaled units)."""

    def __init__(self, fs, max_amp=0.3, p=0.3):
        self.fs, self.max_amp, self.p = fs, max_amp, p

    def __call__(self, x):
        if np.random.rand() >= self.p:
            return x
        t = np.arange(x.shape[-1]) / self.fs
        f = np.random.uniform(0.1, 0.5)
        amp = np.random.uniform(0, self.max_amp, (x.shape[0], 1))
        phase = np.random.uniform(0, 2 * np.pi, (x.shape[0], 1))
        return x + (amp * np.sin(2 * np.pi * f * t + phase)).astype(np.float32)


class Compose:
    def __init__(self, ops):
        self.ops = ops

    def __call__(self, x):
        for op in self.ops:
            x = op(x)
        return np.ascontiguousarray(x, dtype=np.float32)


def build_signal_transforms(train, prep):
    """Training: crop + amplitude + noise + wander; otherwise None (the whole record)."""
    if not train:
        return None
    return Compose([RandomCrop(prep["crop"]), RandomAmplitude(), GaussianNoise(), BaselineWander(prep["fs"])])
