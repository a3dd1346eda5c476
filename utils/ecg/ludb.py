"""The LUDB reference intervals (Lobachevsky University Electrocardiography Database, PhysioNet) from its per-lead
cardiologists' annotations, as shared/data/ludb/README.md derives truth_intervals.csv:

Per beat, the global onset of a wave is the second-earliest onset over the 12 leads and its offset the
second-latest offset (the CSE study's earliest/latest, robust to one stray lead), counted only where at least 6
leads annotate that wave; p_dur = P off - P on, pr = QRS on - P on, qrs_dur = QRS off - QRS on,
qt = T off - QRS on; then the median over the record's beats. hr is 60000 / the median RR of consecutive
qualified QRS onsets. A P wave belongs to the QRS it precedes, a T wave to the QRS it follows.

Reading the WFDB files (wfdb.rdann) is the caller's (bench/measure_accuracy.py): this module takes each lead's
annotation samples and symbols and needs only numpy.
"""
import numpy as np

from .io import FS

MIN_LEADS = 6  # a wave counts in a beat where at least this many leads annotate it
REFERENCE = ("hr", "p_dur", "pr", "qrs_dur", "qt", "n_beats", "n_p", "n_t")


def waves(samples, symbols):
    """{'p'|'N'|'t': [(onset, peak, offset), ...]} of one lead's annotations `(` peak `)`; a peak without both
    brackets around it is skipped."""
    out = {"p": [], "N": [], "t": []}
    samples, symbols = list(samples), list(symbols)
    for i, s in enumerate(symbols):
        if s in out and 0 < i < len(symbols) - 1 and symbols[i - 1] == "(" and symbols[i + 1] == ")":
            out[s].append((int(samples[i - 1]), int(samples[i]), int(samples[i + 1])))
    return out


def _global(bounds):
    """(onset, offset) of one wave in one beat from its leads' (onset, offset): second-earliest onset and
    second-latest offset, or None under MIN_LEADS leads."""
    if len(bounds) < MIN_LEADS:
        return None
    on = sorted(b[0] for b in bounds)
    off = sorted(b[1] for b in bounds)
    return on[1], off[-2]


def beats(leads):
    """Per beat (a QRS annotated in at least MIN_LEADS leads): dict of global (onset, offset) of 'N' and, where
    they qualify, 'p' and 't'. `leads`: per lead, waves() of its annotations."""
    qrs = sorted((w, k) for k, lw in enumerate(leads) for w in lw["N"])
    # group the leads' QRS complexes: one beat's annotations overlap each other
    groups, cur, cur_end = [], [], -1
    for w, k in qrs:
        if cur and w[0] > cur_end:
            groups.append(cur)
            cur = []
        cur_end = max(cur_end, w[2]) if cur else w[2]
        cur.append((w, k))
    if cur:
        groups.append(cur)
    out = []
    for g in groups:
        one = {}
        for w, k in g:  # one annotation per lead
            one.setdefault(k, w)
        n = _global([(w[0], w[2]) for w in one.values()])
        if n is None:
            continue
        centre = np.median([w[1] for w in one.values()])
        out.append({"N": n, "centre": centre, "leads": set(one)})
    for i, b in enumerate(out):
        prev_c = out[i - 1]["centre"] if i else -np.inf
        next_c = out[i + 1]["centre"] if i + 1 < len(out) else np.inf
        for sym, lo, hi in (("p", prev_c, b["centre"]), ("t", b["centre"], next_c)):
            bounds = []
            for lw in leads:
                cand = [w for w in lw[sym] if lo < w[1] < hi]
                if cand:  # the nearest to this beat's QRS
                    w = cand[-1] if sym == "p" else cand[0]
                    bounds.append((w[0], w[2]))
            g = _global(bounds)
            if g is not None:
                b[sym] = g
    return out


def reference(leads, fs=FS):
    """{REFERENCE name: value} of one record from its leads' waves(): intervals in ms, hr in bpm, NaN where no
    beat qualifies."""
    ms = 1000 / fs
    bs = beats(leads)
    on = np.array([b["N"][0] for b in bs], dtype=float)
    rr = np.diff(on) * ms
    p = [b for b in bs if "p" in b]
    t = [b for b in bs if "t" in b]
    med = lambda v: float(np.median(v)) if len(v) else np.nan  # noqa: E731
    return {"hr": 60000 / med(rr) if len(rr) else np.nan,
            "p_dur": med([(b["p"][1] - b["p"][0]) * ms for b in p]),
            "pr": med([(b["N"][0] - b["p"][0]) * ms for b in p]),
            "qrs_dur": med([(b["N"][1] - b["N"][0]) * ms for b in bs]),
            "qt": med([(b["t"][1] - b["N"][0]) * ms for b in t]),
            "n_beats": len(bs), "n_p": len(p), "n_t": len(t)}
