"""Pacemaker detection (utils/ecg/beats.py, step 5) on real records: non-paced ones (the sample's PTB-XL records,
LUDB's where ../shared/data/ludb is there) with synthetic pacing spikes added are flagged; the same records with
muscle-noise bursts, electrode pops and steps, stray spikes not tied to the beats, or noise from utils/ecg/noise.py
are not; the 4 paced LUDB records (diagnoses.csv) and the paced sample record are flagged, every other one is not,
each with a margin of evidence."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sps

from utils.ecg import measurements as ef
from utils.ecg import noise
from utils.ecg.beats import (LD, PACING_EVIDENCE, SOS_BEAT, SOS_QRS, detect_r_peaks, paced_beats, pacing,
                             ms_to_samples as ms)
from utils.ecg.io import FS, LEADS, read_record

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "dataset" / "sample"
PACED_SAMPLE = "ptbxl_05658"  # the one sample record with PTB-XL's pacemaker statement
TRAIN = [p for p in sorted((SAMPLE / "train").glob("*.mat")) if p.stem != PACED_SAMPLE][::6]  # 10 of the 59 others
LUDB = ROOT.parent / "shared" / "data" / "ludb"
LUDB_UNPACED = (1, 23, 51, 99, 109, 151)  # sinus (23: RBBB), AF (51), both with recorder jumps in the QRS (99, 109)
LUDB_AF = ("ludb_051", "ludb_109")  # a pacemaker paces these only after a long pause, not before every beat

# The directions of I, II and V1-V6 (x to the left, y down, z to the front): a spike is a dipole seen by them.
DIRS = {"I": (1, 0, 0), "II": (0.5, 0.87, 0)}
DIRS.update({v: (np.cos(np.radians(a)), 0.2, np.sin(np.radians(a)))
             for v, a in zip(("V1", "V2", "V3", "V4", "V5", "V6"), (115, 95, 75, 60, 30, 0))})
ELECTRODES = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")


def ludb_signal(number):
    """LUDB record `number` as (12, N) mV in LEADS order: bench/measure_accuracy.read_ludb's signal without its
    annotations (12 files a record: 100 records would take 10 s); the LUDB test checks they agree."""
    import wfdb

    rec = wfdb.rdrecord(str(LUDB / "records" / str(number)))
    names = [s.lower() for s in rec.sig_name]
    return np.nan_to_num(rec.p_signal[:, [names.index(ld.lower()) for ld in LEADS]].T.astype(np.float32))


@pytest.fixture(scope="module")
def records():
    """(name, signal) of the 10 sample records and, where LUDB is there, 6 non-paced LUDB records."""
    out = [(p.stem, read_record(p)) for p in TRAIN]
    if (LUDB / "records").is_dir():
        out += [(f"ludb_{n:03d}", ludb_signal(n)) for n in LUDB_UNPACED]
    return out


@pytest.fixture(scope="module")
def regular(records):
    """The records but LUDB's AF ones: spikes before every beat of those would not be pacing."""
    return [(name, sig) for name, sig in records if name not in LUDB_AF]


def r_peaks(raw):
    """(0.5-40 Hz band, R peaks) of a record, as extract_features finds them."""
    x = sps.sosfiltfilt(SOS_BEAT, raw, axis=1)
    return x, detect_r_peaks(sps.sosfiltfilt(SOS_QRS, x, axis=1))


def evidence(sig):
    """(evidence, paced beats) of a record (12, N) mV."""
    raw = np.asarray(sig, dtype=np.float64)
    x, r = r_peaks(raw)
    return pacing(raw, r, x)[0], paced_beats(raw, r, x)


# --- synthetic spikes and noise ---------------------------------------------------------------------------------

def spike_gains(rng):
    """Per lead (12), a spike's gain, largest 1: a random dipole seen by at least 3 of I, II, V1-V6 at half its
    largest gain or more (one a 12-lead ECG shows in fewer leads is not a pacing spike it can tell)."""
    g = np.zeros(len(LEADS))
    while not g.any() or np.sort(np.abs(g[[LD[n] for n in DIRS]]))[-3] < 0.5 * np.abs(g).max():
        u = rng.normal(size=3)
        for name, d in DIRS.items():
            g[LD[name]] = np.dot(d, u) / np.linalg.norm(d)
    i, ii = g[LD["I"]], g[LD["II"]]
    g[LD["III"]], g[LD["aVR"]], g[LD["aVL"]], g[LD["aVF"]] = ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2
    return g / np.abs(g).max()


def spike(kind, spread):
    """A pacing spike's wave (peak 1) at 500 Hz: a 0.5-2 ms pulse is one sample, `spread` of it in the next one
    when it straddles two; unipolar with its recharge tail (15 %, 8 ms), bipolar biphasic."""
    s = np.zeros(ms(60))
    s[:2] = 1 - spread, spread
    if kind == "bipolar":
        s[1:3] -= 0.8 * s[:2].copy()
    else:
        s[2:] -= 0.15 * np.exp(-np.arange(len(s) - 2) / ms(8))
    return s


def add_waves(sig, times, wave, gains):
    """`sig` + `wave` x `gains` (per lead) starting at each sample of `times` (cut at the record's end)."""
    out = np.array(sig, dtype=np.float64)
    for t in times:
        n = min(len(wave), out.shape[1] - t)
        out[:, t:t + n] += gains[:, None] * wave[None, :n]
    return out


def paced(sig, amp, kind, spread, site, seed, every=1):
    """`sig` with a spike of `amp` mV before every `every`-th QRS: ventricular 20-80 ms before the R peak,
    atrial 150-200 ms, or both (dual), the delay fixed within the record."""
    rng = np.random.default_rng(seed)
    r = r_peaks(np.asarray(sig, dtype=np.float64))[1]
    delays = {"ventricular": [20, 80], "atrial": [150, 200]}
    out = np.array(sig, dtype=np.float64)
    for where in (["ventricular", "atrial"] if site == "dual" else [site]):
        t = r[::every] - ms(rng.uniform(*delays[where]))
        out = add_waves(out, t[t >= 0], amp * spike(kind, spread), spike_gains(rng))
    return out


def lead_matrix():
    """(12, 9): each lead as a sum of electrode potentials (Einthoven, Goldberger, Wilson's terminal)."""
    m = np.zeros((len(LEADS), len(ELECTRODES)))
    e = {name: i for i, name in enumerate(ELECTRODES)}
    limb = {"I": {"LA": 1, "RA": -1}, "II": {"LL": 1, "RA": -1}, "III": {"LL": 1, "LA": -1},
            "aVR": {"RA": 1, "LA": -.5, "LL": -.5}, "aVL": {"LA": 1, "RA": -.5, "LL": -.5},
            "aVF": {"LL": 1, "RA": -.5, "LA": -.5}}
    for lead, w in limb.items():
        for k, v in w.items():
            m[LD[lead], e[k]] = v
    for v in ELECTRODES[3:]:
        m[LD[v], e[v]] = 1
        m[LD[v], :3] = -1 / 3
    return m


def muscle_bursts(sig, rng, n=4):
    """4 bursts of muscle noise (20-150 Hz, 100-400 ms, 0.1-0.5 mV RMS) on the limb or the chest leads."""
    out = np.array(sig, dtype=np.float64)
    sos = sps.butter(4, [20, 150], btype="bandpass", fs=FS, output="sos")
    for _ in range(n):
        size = ms(rng.uniform(100, 400))
        t = rng.integers(0, out.shape[1] - size)
        leads = list(range(6)) if rng.random() < 0.5 else list(range(6, 12))
        burst = sps.sosfiltfilt(sos, rng.normal(size=(len(leads), size + 200)), axis=1)[:, 100:-100]
        out[leads, t:t + size] += burst * np.hanning(size) * rng.uniform(0.1, 0.5) / burst.std()
    return out


def electrode_jumps(sig, rng, n=4, tau_ms=(50, 300)):
    """`n` electrode pops (a 0.5-3 mV jump of one electrode decaying with tau 50-300 ms) or, tau_ms None, steps
    that stay, seen by every lead that uses the electrode."""
    out = np.array(sig, dtype=np.float64)
    m = lead_matrix()
    for _ in range(n):
        t = rng.integers(ms(100), out.shape[1] - ms(100))
        e = np.zeros(len(ELECTRODES))
        e[rng.integers(len(ELECTRODES))] = rng.choice([-1, 1]) * rng.uniform(0.5, 3)
        after = np.arange(out.shape[1] - t)
        decay = np.ones(len(after)) if tau_ms is None else np.exp(-after / ms(rng.uniform(*tau_ms)))
        out[:, t:] += (m @ e)[:, None] * decay[None, :]
    return out


def stray_spikes(sig, rng, n=5):
    """`n` pacing-like spikes (1-5 mV, either kind) at random times, tied to no QRS."""
    out = np.array(sig, dtype=np.float64)
    for t in rng.integers(ms(50), out.shape[1] - ms(100), n):
        wave = rng.uniform(1, 5) * spike(rng.choice(["unipolar", "bipolar"]), rng.uniform(0, 0.5))
        out = add_waves(out, [t], wave, spike_gains(rng))
    return out


NOISE = {
    "muscle bursts": muscle_bursts,
    "electrode pops": electrode_jumps,
    "electrode steps": lambda sig, rng: electrode_jumps(sig, rng, n=2, tau_ms=None),
    "stray spikes": stray_spikes,
    "all four": lambda sig, rng: stray_spikes(electrode_jumps(electrode_jumps(muscle_bursts(sig, rng), rng), rng,
                                                                 n=2, tau_ms=None), rng),
    "muscle 5 dB": lambda sig, rng: noise.add_noise(sig, "muscle", 5, seed=int(rng.integers(1000))),
    "mains 60 Hz 5 dB": lambda sig, rng: noise.add_noise(sig, "mains60", 5, seed=int(rng.integers(1000))),
    "mixed 5 dB": lambda sig, rng: noise.add_noise(sig, "mixed", 5, seed=int(rng.integers(1000))),
}


# --- synthetic pacing is flagged, noise is not -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["unipolar", "bipolar"])
@pytest.mark.parametrize("amp, spread", [(1, 0), (2, 0.5), (5, 0)])
def test_pacing_spikes_added_to_real_records_are_flagged(regular, amp, spread, kind):
    """Every record, its sites cycling through ventricular, atrial and dual-chamber pacing: a 1 mV spike of one
    sample, or a 2-5 mV one however it falls on the samples, is found before most QRS complexes (not an early
    beat, never paced, nor the first where its spike would fall before the record)."""
    for j, (name, sig) in enumerate(regular):
        site = ("ventricular", "atrial", "dual")[j % 3]
        ev, beats = evidence(paced(sig, amp, kind, spread, site, seed=j))
        assert ev >= PACING_EVIDENCE + 2, f"{name} {site}: evidence {ev:.1f}"
        assert beats.mean() >= 0.7, f"{name} {site}: {beats.sum()} of {len(beats)} beats paced"


@pytest.mark.parametrize("kind", ["unipolar", "bipolar"])
def test_half_millivolt_spikes_are_flagged_where_steeper_than_the_qrs(regular, kind):
    """0.5 mV, one sample: found where the spike's jump is over twice the record's steepest QRS change in 3
    leads (step 5), which is most records: 12 (unipolar) and 14 (bipolar) of the 14 here."""
    flagged = [evidence(paced(sig, 0.5, kind, 0, "ventricular", seed=j))[0] >= PACING_EVIDENCE
               for j, (_, sig) in enumerate(regular)]
    assert np.mean(flagged) >= 0.75, flagged


def test_intermittent_pacing_needs_more_than_a_few_beats(regular):
    """Spikes before every other beat of a record of 10 beats or more: a paced record, about half its beats paced;
    before 2 beats only: not one (a pacemaker that paced 2 of 10 beats leaves the heart's own beat to measure)."""
    tested = 0
    for j, (name, sig) in enumerate(regular):
        r = r_peaks(np.asarray(sig, dtype=np.float64))[1]
        if len(r) < 10:
            continue
        tested += 1
        ev, beats = evidence(paced(sig, 2, "unipolar", 0, "ventricular", seed=j, every=2))
        assert ev >= PACING_EVIDENCE and 0.3 <= beats.mean() <= 0.6, f"{name}: {ev:.1f}, {beats.mean():.2f}"
        two = add_waves(sig, r[[2, 5]] - ms(50), 2 * spike("unipolar", 0), spike_gains(np.random.default_rng(j)))
        ev, beats = evidence(two)
        assert ev < PACING_EVIDENCE and not beats.any(), f"{name}: 2 paced beats, evidence {ev:.1f}"
    assert tested >= 8


@pytest.mark.parametrize("kind", list(NOISE))
def test_noise_is_not_taken_for_pacing(records, kind):
    """Muscle-noise bursts, electrode pops and steps, stray spikes at random times, noise at 5 dB: spikes, if
    any, do not keep time with the beats, so no record is paced (nor any beat)."""
    for j, (name, sig) in enumerate(records):
        ev, beats = evidence(NOISE[kind](sig, np.random.default_rng(j)))
        assert ev < PACING_EVIDENCE - 1 and not beats.any(), f"{name}: evidence {ev:.1f}"


def test_pacing_is_still_flagged_in_muscle_noise(regular):
    for j, (name, sig) in enumerate(regular):
        noisy = muscle_bursts(paced(sig, 2, "unipolar", 0, "ventricular", seed=j), np.random.default_rng(j))
        assert evidence(noisy)[0] >= PACING_EVIDENCE, name


def test_a_paced_record_gets_no_qrs_duration_p_duration_or_pr(records):
    name, sig = records[0]
    row = ef.extract_features(paced(sig, 2, "unipolar", 0, "ventricular", seed=0))
    g = ef.global_measurements(row=row)
    assert row[ef.FEATURE_NAMES.index("frac_paced")] >= max(ef.PACED, 0.75)
    assert np.isnan(g["qrs_dur"]) and np.isnan(g["p_dur"]) and np.isnan(g["pr"]) and np.isfinite(g["qt"])
    g = ef.global_measurements(sig)
    assert np.isfinite(g["qrs_dur"]) and np.isfinite(g["pr"]), name


def test_no_beats_or_a_flat_record_is_not_paced():
    sig = np.zeros((len(LEADS), 5000))
    assert pacing(sig, np.zeros(0, dtype=int))[0] == 0 and paced_beats(sig, np.zeros(0, dtype=int)).shape == (0,)
    assert not paced_beats(sig, np.arange(200, 5000, 500)).any()


# --- real paced records ------------------------------------------------------------------------------------------

def test_only_the_paced_sample_record_is_flagged_with_a_margin():
    """The sample's 80 records: the evidence of ptbxl_05658 (8 of its 11 beats paced) is 6.0, every other is 0
    or less; the cut (PACING_EVIDENCE, 3.5) lies 2 or more from both."""
    ev = {p.stem: evidence(read_record(p))[0] for p in sorted(SAMPLE.rglob("*.mat"))}
    assert len(ev) >= 60 and ev.pop(PACED_SAMPLE) >= PACING_EVIDENCE + 2
    assert max(ev.values()) <= PACING_EVIDENCE - 2, max(ev.items(), key=lambda kv: kv[1])


def test_ludb_records_paced_by_their_diagnoses_and_only_they_are_flagged_with_a_margin():
    """LUDB's 4 records with pacing in diagnoses.csv (45: atrial and ventricular, 93: biventricular, 95: 6 of 11
    beats paced, then AF; 111: ventricular) have evidence 6.3-15.1; the other 96 have no spike that keeps time
    with their beats (0 or less); the cut lies 2 or more from every one."""
    if not (LUDB / "records").is_dir():
        pytest.skip(f"LUDB not found at {LUDB}")
    spec = importlib.util.spec_from_file_location("measure_accuracy", ROOT / "bench" / "measure_accuracy.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    paced_names = bench.paced_records(LUDB)
    assert len(paced_names) == 4
    ev = {}
    for path in sorted((LUDB / "records").glob("*.hea")):
        name = f"ludb_{int(path.stem):03d}"
        if name in paced_names:
            sig = bench.read_ludb(path.with_suffix(""))[0]
            assert np.array_equal(sig, ludb_signal(int(path.stem)))  # the fast reader of the others reads the same
        else:
            sig = ludb_signal(int(path.stem))
        ev[name] = evidence(sig)[0]
    missed = {n: round(v, 1) for n, v in ev.items() if n in paced_names and v < PACING_EVIDENCE + 2}
    wrong = {n: round(v, 1) for n, v in ev.items() if n not in paced_names and v > PACING_EVIDENCE - 2}
    assert len(ev) == 100 and not missed and not wrong, (missed, wrong)
