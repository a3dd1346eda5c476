"""Where each lead's stretch sits on a printed page: rows of cells, each cell one lead over a stretch of time.

A layout is a list of rows; a row is a list of leads (its columns share the row's time span equally: in the 3 x 4
layout at 25 mm/s a row spans 10 s and the k-th column holds seconds 2.5k to 2.5(k+1)), or one lead over the
whole span (a rhythm strip). `cells(layout, seconds)` gives every printed stretch.
"""
from typing import NamedTuple

import numpy as np

from ..ecg.io import FS, LEADS, SHAPE

BLOCK_3X4 = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
LAYOUTS = {
    "3x4+1": BLOCK_3X4 + (("II",),),
    "3x4+3": BLOCK_3X4 + (("V1",), ("II",), ("V5",)),
    "3x4": BLOCK_3X4,
    "6x2": (("I", "V1"), ("II", "V2"), ("III", "V3"), ("aVR", "V4"), ("aVL", "V5"), ("aVF", "V6")),
    "12x1": tuple((lead,) for lead in ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")),
}

# The layouts printers use, weighted: the page generator's mix (utils/paper/generate.random_style) and the
# paper-aware training copies' (tools/paper_copies.py).
LAYOUT_MIX = {"3x4+1": 55, "3x4+3": 15, "3x4": 8, "6x2": 12, "12x1": 10}


class Cell(NamedTuple):
    lead: str
    row: int
    col: int
    t0: float  # seconds of the recording
    t1: float


def cells(layout, seconds):
    """Every printed stretch of `layout` (a LAYOUTS key) when a row spans `seconds` s: [Cell], row by row."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    out = []
    for r, row in enumerate(LAYOUTS[layout]):
        width = seconds / len(row)
        out += [Cell(lead, r, c, c * width, (c + 1) * width) for c, lead in enumerate(row)]
    return out


def printed_mask(stretches, shape=SHAPE):
    """(12, N) bool: where each stretch (a Cell, or a page truth's `leads` entry: lead, t0, t1 seconds) is printed,
    sampled as the digitiser places a stretch (round(t0 * FS) to round(t1 * FS))."""
    out = np.zeros(shape, bool)
    for s in stretches:
        lead, t0, t1 = (s["lead"], s["t0"], s["t1"]) if isinstance(s, dict) else (s.lead, s.t0, s.t1)
        out[LEADS.index(lead), int(round(t0 * FS)):min(int(round(t1 * FS)), shape[1])] = True
    return out


def as_printed(x, layout, seconds=10.0):
    """Record `x` (12, N) as a page of `layout` prints it (a row `seconds` long): NaN outside each lead's printed
    stretch."""
    x = np.asarray(x)
    return np.where(printed_mask(cells(layout, seconds), x.shape), x, np.nan).astype(x.dtype)
