"""Per-sample random draws: a dataset item keyed (index, draw seed) seeds the generators its augmentation draws
from, so every sample's draws depend on the run's seed alone, whichever DataLoader worker loads it
(utils/training/sampling.py's SeededBatchSampler makes the keys)."""
import random

import numpy as np


def seed_sample(key):
    """`key` is an index, or (index, draw seed) from SeededBatchSampler: then seed the RNGs the augmentations use
    (numpy's and Python's: ColorJitter draws from `random`) so this sample's draws depend on nothing else."""
    if not isinstance(key, (tuple, list)):
        return key
    index, draw = key
    np.random.seed(draw)
    random.seed(int(draw))
    return index


def derive_seed(*parts):
    """A 32-bit seed from integers (seed, epoch, index): distinct parts give unrelated streams."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])
