"""PhysioNet/CinC Challenge 2020/2021 records -> competition labels and 10 s, 500 Hz, 12-lead signals in mV.

The SNOMED-CT mapping below is the one table of it (docs/data.md shows it); tools/convert_cinc.py is the command.
"""
import re
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from .io import FS, LEADS, N_SAMPLES
from .ptbxl import OTHER_CLASS

SINUS_RHYTHM = "426783006"  # normal (tag 0, class 1) only when it is the record's one code
# SNOMED-CT code -> Task 2 classes (1-based, utils.ecg_io.CLASS_NAMES). Any code not here (but sinus rhythm) -> other.
SNOMED_CLASSES = {
    "426177001": (2,),  # sinus bradycardia
    "427084000": (3,),  # sinus tachycardia
    "427393009": (4,),  # sinus arrhythmia
    "164889003": (5,),  # atrial fibrillation
    "427172004": (6,),  # premature ventricular contractions
    "17338001": (6,),  # ventricular premature beats
    "164884008": (6,),  # ventricular ectopics (CPSC's "PVC")
    "284470004": (7,),  # premature atrial contraction
    "63593006": (7,),  # supraventricular premature beats
    "270492004": (8,),  # first-degree AV block
    "713427006": (9,),  # complete right bundle branch block
    "59118001": (9,),  # right bundle branch block (type unspecified)
    "164934002": (10,),  # T-wave abnormal
    "59931005": (10,),  # T-wave inversion
    "428750005": (10, 11),  # nonspecific ST-T abnormality: both
    "429622005": (11,),  # ST depression
    "164931005": (11,),  # ST elevation
    "55930002": (11,),  # ST changes
    "164930006": (11,),  # ST interval abnormal
}


def parse_dx(comments):
    """The SNOMED-CT codes of a header's `#Dx:` line (wfdb's `comments`, without '#') -> list of str; [] if none."""
    for line in comments:
        key, _, value = line.partition(":")
        if key.strip().lower() == "dx":
            return [c.strip() for c in value.split(",") if c.strip()]
    return []


def map_dx(codes):
    """SNOMED-CT codes -> (tag, classes). Normal (0, [1]) is sinus rhythm alone; anything else is abnormal (1)."""
    codes = set(codes)
    if not codes:
        raise ValueError("no #Dx codes")
    if codes == {SINUS_RHYTHM}:
        return 0, [1]
    classes = set()
    for code in codes - {SINUS_RHYTHM}:
        classes.update(SNOMED_CLASSES.get(code, (OTHER_CLASS,)))
    return 1, sorted(classes)


def parse_fs(header_text):
    """The sampling rate (Hz) from a WFDB header's record line (`name nsig fs[/cf][(base)] nsamp ...`).

    wfdb silently assumes 250 Hz when the field is absent or unreadable, so it is read here and checked."""
    lines = [ln.split() for ln in header_text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    field = lines[0][2] if lines and len(lines[0]) > 2 else ""
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)(?:/[^(]*)?(?:\(.*\))?", field)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"sampling rate cannot be read from the header's record line ({field!r})")
    return float(m.group(1))


MV_PER_UNIT = {"mv": 1.0, "uv": 1e-3, "\u00b5v": 1e-3, "\u03bcv": 1e-3, "v": 1e3}


def to_millivolts(signal, units):
    """(samples, leads) in the header's physical units -> mV; an unknown unit raises ValueError."""
    scale = []
    for u in units:
        key = (u or "mV").strip().lower()
        if key not in MV_PER_UNIT:
            raise ValueError(f"unit {u!r} is not a voltage (mV, uV, V)")
        scale.append(MV_PER_UNIT[key])
    return signal * np.asarray(scale)


def missing_leads(names):
    """The competition's leads absent from `names` (matched case-insensitively)."""
    have = {n.strip().upper() for n in names}
    return [lead for lead in LEADS if lead.upper() not in have]


def reorder_leads(signal, names):
    """(samples, leads) with lead `names` -> (12, samples) in the competition's order (I, II, III, aVR, ..., V6)."""
    upper = [n.strip().upper() for n in names]
    lacking = missing_leads(names)
    if lacking:
        raise ValueError(f"lead(s) missing: {', '.join(lacking)} (has {', '.join(names)})")
    return np.stack([signal[:, upper.index(lead.upper())] for lead in LEADS])


def resample_to_fs(x, fs):
    """(leads, samples) at `fs` Hz -> 500 Hz with a polyphase filter (scipy.signal.resample_poly)."""
    ratio = (Fraction(FS) / Fraction(fs)).limit_denominator(10000)
    if ratio == 1:
        return x
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=1)


def first_10s(x):
    """(12, n) at 500 Hz -> ((12, 5000), padded seconds). A shorter record has each lead's median removed and is
    then zero-padded at its end (a flat line on the lead's centre, as process.py draws it)."""
    n = x.shape[1]
    if n >= N_SAMPLES:
        return x[:, :N_SAMPLES], 0.0
    x = x - np.median(x, axis=1, keepdims=True)
    return np.pad(x, ((0, 0), (0, N_SAMPLES - n))), (N_SAMPLES - n) / FS


def windows_10s(x):
    """Every whole, non-overlapping 10 s window of (12, n) at 500 Hz, in time order (the tail is dropped)."""
    return [x[:, k * N_SAMPLES:(k + 1) * N_SAMPLES] for k in range(x.shape[1] // N_SAMPLES)]
