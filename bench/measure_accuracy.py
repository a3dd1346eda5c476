"""How close the global measurements (utils/ecg/measurements.global_measurements) are to cardiologists' wave
boundaries: LUDB (PhysioNet's Lobachevsky University Electrocardiography Database), against neurokit2's.

    python bench/measure_accuracy.py [--ludb ../shared/data/ludb] [--records N] [--workers N] [--json PATH]
                                     [--csv PATH] [--mat-dir DIR] [--no-neurokit]

Each LUDB record (WFDB, 12 leads, 500 Hz, 10 s) is converted to the competition layout ((12, 5000) mV, our lead
order) and measured as tools/measure.py measures a MAT file. The reference is computed here from the per-lead
annotation files (utils/ecg/ludb.py: second-earliest onset / second-latest offset over the leads that annotate a
wave, at least 6; median over the beats), so this also runs on the full LUDB; where the folder has
truth_intervals.csv (its published reference), the table compares with that, and the computed reference is
checked against it (the records where they differ are listed). neurokit2 (ecg_clean, ecg_peaks, ecg_delineate with
method="dwt", on lead II: what a new user would run) is compared too when it is installed - it is not a
dependency of the pipeline: `pip install neurokit2 PyWavelets` in a venv of its own.

Printed: per interval, the mean difference and its SD (measured - reference, ms; bpm for the heart rate), and
the share of the records with a reference value that got a measurement, beside the limits commonly cited from
IEC 60601-2-25 for an analysing electrocardiograph's global intervals on biological ECGs; and the CPU time per
record of each (one core), as records per second per core. LUDB's amplitudes are scaled by PhysioNet (every lead
spans 1 mV): only timing is compared. --mat-dir also writes the converted records as competition MAT files, to
run `python tools/measure.py --records DIR --out FILE.csv` on them.
"""
import argparse
import dataclasses
import json
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tqdm import tqdm  # noqa: E402

from utils.ecg import ludb  # noqa: E402
from utils.ecg.io import FS, LEADS, write_record  # noqa: E402
from utils.ecg.delineation import RULES  # noqa: E402
from utils.ecg.measurements import FEATURE_NAMES, PACED, extract_features, global_measurements  # noqa: E402
from utils.ecg.noise import KINDS, LEVELS, add_noise  # noqa: E402

INTERVALS = ("p_dur", "pr", "qrs_dur", "qt", "hr")
LABELS = {"p_dur": "P duration", "pr": "PR", "qrs_dur": "QRS duration", "qt": "QT", "hr": "heart rate (bpm)"}
LIMITS = {"p_dur": (10, 15), "pr": (10, 10), "qrs_dur": (10, 10), "qt": (25, 30)}  # |mean| and SD, ms
MIN_COVERAGE = 0.9  # of the records where the reference has the interval
DEFAULT_LUDB = ROOT.parent / "shared" / "data" / "ludb"
# --crossval: the rules tried, each one setting of utils/ecg/delineation.Rules moved from the rules before issue 34
# (BEFORE: no knee), the others kept; a fold's rules are the candidate that scores best (objective()) on the other
# folds' records. The shipped RULES are this procedure's choice on all the records (the bench says if they are not).
BEFORE = dataclasses.replace(RULES, qrs_knee_ms=0.0)
ALTERNATIVES = {"qrs_on_threshold": (0.005, 0.02), "qrs_off_threshold": (0.005, 0.0075, 0.015, 0.02),
                "quiet_noise_on": (1.5, 2.5), "quiet_noise_off": (1.5, 2.5), "clear_t": (0.3, 0.7),
                "clear_p": (0.2, 0.5), "t_end_quantile": (50.0, 90.0), "qrs_knee_ms": (120.0, 160.0)}
CANDIDATES = {"before": BEFORE, **{f"{k}={v:g}": dataclasses.replace(BEFORE, **{k: v})
                                   for k, values in ALTERNATIVES.items() for v in values}}
WIDTHS = ((0, 100, "< 100 ms"), (100, 120.001, "100-120 ms"), (120.001, np.inf, "> 120 ms"))  # by the reference


def read_ludb(path):
    """(float32 (12, N) mV in LEADS order, per-lead waves() in that order) of one LUDB record (path without
    extension)."""
    import wfdb

    rec = wfdb.rdrecord(str(path))
    if rec.fs != FS:
        raise ValueError(f"{path}: {rec.fs} Hz, expected {FS}")
    names = [s.lower() for s in rec.sig_name]
    order = [names.index(ld.lower()) for ld in LEADS]
    sig = np.nan_to_num(rec.p_signal[:, order].T.astype(np.float32))
    leads = []
    for ld in LEADS:
        ann = wfdb.rdann(str(path), ld.lower())
        leads.append(ludb.waves(ann.sample, ann.symbol))
    return sig, leads


def neurokit_intervals(nk, sig):
    """neurokit2 on lead II, as a new user runs it: clean, R peaks, DWT delineation; the median over beats of
    each interval (ms) and the heart rate from the median RR."""
    x = nk.ecg_clean(sig[LEADS.index("II")], sampling_rate=FS)
    _, info = nk.ecg_peaks(x, sampling_rate=FS)
    r = np.asarray(info["ECG_R_Peaks"])
    out = {k: np.nan for k in INTERVALS}
    if len(r) < 2:
        return out
    out["hr"] = 60 * FS / np.median(np.diff(r))
    _, waves = nk.ecg_delineate(x, r, sampling_rate=FS, method="dwt")
    g = {k: np.asarray(waves.get(f"ECG_{k}", []), dtype=float) for k in
         ("P_Onsets", "P_Offsets", "R_Onsets", "R_Offsets", "T_Offsets")}
    ms = 1000 / FS

    def med(a, b):
        if len(a) != len(b) or not len(a):
            return np.nan
        d = (b - a) * ms
        d = d[np.isfinite(d)]
        return float(np.median(d)) if len(d) else np.nan

    out.update(p_dur=med(g["P_Onsets"], g["P_Offsets"]), pr=med(g["P_Onsets"], g["R_Onsets"]),
               qrs_dur=med(g["R_Onsets"], g["R_Offsets"]), qt=med(g["R_Onsets"], g["T_Offsets"]))
    return out


def measure_one(job):
    """One record: its reference, ours and (if asked and installed) neurokit2's, with the CPU seconds each took."""
    path, with_nk, mat_dir, crossval, noise = job
    sig, leads = read_ludb(path)
    row = {"name": f"ludb_{int(Path(path).name):03d}"}
    if mat_dir:
        write_record(Path(mat_dir) / f"{row['name']}.mat", sig)
    row.update({f"ref_{k}": v for k, v in ludb.reference(leads).items()})
    t = time.process_time()
    features = extract_features(sig)
    ours = global_measurements(row=features)
    row["ours_s"] = time.process_time() - t
    row["ours_paced"] = bool(features[FEATURE_NAMES.index("frac_paced")] >= PACED)
    row.update({f"ours_{k}": ours[k] for k in INTERVALS})
    for c, rules in (CANDIDATES.items() if crossval else ()):
        got = global_measurements(row=extract_features(sig, rules)) if rules != RULES else ours
        row.update({f"{c}|{k}": got[k] for k in INTERVALS})
    for kind, snr in noise:  # the record's number seeds its noise: the levels of a kind differ only in scale
        got = global_measurements(row=extract_features(add_noise(sig, kind, snr, seed=int(Path(path).name))))
        row.update({f"noise:{kind}:{snr:g}|{k}": got[k] for k in INTERVALS})
    if with_nk:
        import neurokit2 as nk

        t = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = neurokit_intervals(nk, sig)
            except Exception:  # noqa: BLE001 - neurokit2 raising on a record is a missed measurement
                res = {k: np.nan for k in INTERVALS}
        row["nk_s"] = time.process_time() - t
        row.update({f"nk_{k}": res[k] for k in INTERVALS})
    return row


def stats(df, who):
    """{interval: {mean, sd, n, n_ref, coverage, pass}} of `who` (ours / nk) against the reference."""
    out = {}
    for k in INTERVALS:
        ref, got = df[f"ref_{k}"].to_numpy(float), df[f"{who}_{k}"].to_numpy(float)
        both = np.isfinite(ref) & np.isfinite(got)
        d = got[both] - ref[both]
        n_ref = int(np.isfinite(ref).sum())
        s = {"mean": float(d.mean()) if len(d) else np.nan, "sd": float(d.std(ddof=1)) if len(d) > 1 else np.nan,
             "n": int(both.sum()), "n_ref": n_ref, "coverage": both.sum() / n_ref if n_ref else np.nan,
             "measured_without_reference": int((np.isfinite(got) & ~np.isfinite(ref)).sum())}
        worst = np.argsort(-np.abs(d - np.median(d)))[:4] if len(d) > 5 else []  # for information only
        rest = np.delete(d, worst)
        s.update(mean_without_4_largest=float(rest.mean()) if len(rest) else np.nan,
                 sd_without_4_largest=float(rest.std(ddof=1)) if len(rest) > 1 else np.nan,
                 largest=[[str(n), float(v)] for n, v in zip(df["name"].to_numpy()[both][worst], d[worst])])
        if k in LIMITS:
            m, sd = LIMITS[k]
            s["pass"] = bool(abs(s["mean"]) <= m and s["sd"] <= sd and s["coverage"] >= MIN_COVERAGE)
        out[k] = s
    return out


def objective(s):
    """How far a table (stats()) is from the limits, lower is better: over the limited intervals, (mean / its
    limit)^2 + (SD / its limit)^2, plus 10 for each measured on fewer than MIN_COVERAGE of the records."""
    total = 0.0
    for k, (m, sd) in LIMITS.items():
        x = s[k]
        if not (np.isfinite(x["mean"]) and np.isfinite(x["sd"])):
            return np.inf
        total += (x["mean"] / m) ** 2 + (x["sd"] / sd) ** 2 + (10.0 if x["coverage"] < MIN_COVERAGE else 0.0)
    return total


def fold_of(names, k, seed=0):
    """The cross-validation fold of each record: a seeded permutation of the records cut into k near-equal folds."""
    order = np.random.default_rng(seed).permutation(len(names))
    fold = np.empty(len(names), dtype=int)
    fold[order] = np.arange(len(names)) % k
    return fold


def as_ours(df, candidate):
    """`df` with the candidate's measurements in the ours_* columns (what stats() reads)."""
    out = df.copy()
    for k in INTERVALS:
        out[f"ours_{k}"] = df[f"{candidate}|{k}"]
    return out


def crossval(df, k):
    """Every rule chosen out of sample: for each of k folds of the records, the candidate (CANDIDATES) with the
    best objective() on the other folds measures this fold; -> ({interval: stats} of the pooled held-out
    measurements, with the folds' choices under "folds"), and the frame of those measurements (cv_* columns)."""
    fold = fold_of(df["name"].to_numpy(), k)
    cv = df[["name"] + [f"ref_{x}" for x in INTERVALS]].copy()
    chosen = []
    for f in range(k):
        train = df[fold != f]
        scores = {c: objective(stats(as_ours(train, c), "ours")) for c in CANDIDATES}
        best = min(scores, key=scores.get)  # ties: the first, the rules before
        chosen.append({"fold": f, "records": int((fold == f).sum()), "rules": best, "objective": scores[best],
                       "objective_before": scores["before"]})
        for x in INTERVALS:
            cv.loc[fold == f, f"cv_{x}"] = df.loc[fold == f, f"{best}|{x}"].to_numpy()
    whole = {c: objective(stats(as_ours(df, c), "ours")) for c in CANDIDATES}
    best = min(whole, key=whole.get)
    return {**stats(cv, "cv"), "folds": chosen, "k": k, "candidates": list(CANDIDATES), "in_sample_best": best,
            "shipped_is_in_sample_best": CANDIDATES[best] == RULES}, cv


def noise_shifts(df, noise):
    """{kind: {level dB: {interval: shift}}}: how far each interval moves when the noise is added (noisy minus
    clean measurement of the same record, ms): mean, SD, median and 95th percentile of |shift|, and `kept`, the
    share of the records measured clean that are still measured noisy."""
    out = {}
    for kind, snr in noise:
        table = {}
        for k in INTERVALS:
            clean, noisy = df[f"ours_{k}"].to_numpy(float), df[f"noise:{kind}:{snr:g}|{k}"].to_numpy(float)
            both, measured = np.isfinite(clean) & np.isfinite(noisy), np.isfinite(clean)
            d = noisy[both] - clean[both]
            table[k] = {"mean": float(d.mean()) if len(d) else np.nan,
                        "sd": float(d.std(ddof=1)) if len(d) > 1 else np.nan,
                        "median_abs": float(np.median(np.abs(d))) if len(d) else np.nan,
                        "p95_abs": float(np.percentile(np.abs(d), 95)) if len(d) else np.nan,
                        "kept": float(both.sum() / measured.sum()) if measured.any() else np.nan}
        out.setdefault(kind, {})[f"{snr:g}"] = table
    return out


def print_noise(shifts):
    print("\nnoise added (utils/ecg/noise.py, SNR per lead): interval shift noisy - clean, mean / SD ms "
          "[95th percentile of |shift|] (share still measured)")
    for kind, levels in shifts.items():
        for snr, t in levels.items():
            print(f"  {kind:<8} {snr:>3} dB: " + ", ".join(
                f"{LABELS[k]} {t[k]['mean']:+.0f} / {t[k]['sd']:.0f} [{t[k]['p95_abs']:.0f}] ({100 * t[k]['kept']:.0f}%)"
                for k in LIMITS))


def by_width(df, who):
    """QRS duration error of `who` by the reference's QRS width (WIDTHS): {label: {mean, sd, n}}."""
    ref, got = df["ref_qrs_dur"].to_numpy(float), df[f"{who}_qrs_dur"].to_numpy(float)
    out = {}
    for lo, hi, label in WIDTHS:
        d = (got - ref)[(ref >= lo) & (ref < hi) & np.isfinite(got)]
        out[label] = {"mean": float(d.mean()) if len(d) else np.nan,
                      "sd": float(d.std(ddof=1)) if len(d) > 1 else np.nan, "n": int(len(d))}
    return out


def use_truth(df, truth_csv):
    """Compare with truth_intervals.csv (the folder's published reference) where it has the record, keeping the
    reference computed here as calc_*; -> the records where the two differ (more than rounding), as text lines."""
    truth = pd.read_csv(truth_csv).set_index("name")
    lines = []
    for k in ludb.REFERENCE:
        df[f"calc_{k}"] = df[f"ref_{k}"]
    for i, name in enumerate(df["name"]):
        if name not in truth.index:
            continue
        for k in ludb.REFERENCE:
            a, b = float(df.at[i, f"calc_{k}"]), float(truth.at[name, k])
            df.at[i, f"ref_{k}"] = b
            if not ((np.isnan(a) and np.isnan(b)) or abs(a - b) <= 0.05 + 1e-9 * abs(b)):
                lines.append(f"{name} {k}: computed {a:.1f}, {truth_csv.name} {b:.1f}")
    return lines, int(df["name"].isin(truth.index).sum())


def paced_records(folder):
    """Names of the records whose diagnoses (diagnoses.csv, if there) mention artificial pacing."""
    path = Path(folder) / "diagnoses.csv"
    if not path.is_file():
        return set()
    dx = pd.read_csv(path)
    return set(dx["name"][dx["diagnoses"].str.contains(r"\bpacing\b", case=False, regex=True, na=False)])


def print_crossval(res):
    cv = res["crossval"]
    print(f"\ncross-validated ({cv['k']} folds of the records: each fold measured with the rules chosen on the others "
          f"among {len(cv['candidates'])} candidates; in-sample above):")
    for k in LIMITS:
        lim = f"+-{LIMITS[k][0]} / {LIMITS[k][1]}"
        print(f"| {LABELS[k]:<17} | {lim:<17} | {fmt(cv[k]):<18} | in-sample {fmt(res['ours'][k])}")
    print("rules chosen per fold: " + ", ".join(f"{c['fold']}: {c['rules']}" for c in cv["folds"])
          + f"; on all the records: {cv['in_sample_best']}"
          + ("" if cv["shipped_is_in_sample_best"] else " (NOT the shipped utils/ecg/delineation.RULES)"))


def fmt(s, decimals=0):
    if not np.isfinite(s["mean"]):
        return "-"
    return f"{s['mean']:+.{decimals}f} / {s['sd']:.{decimals}f} ({100 * s['coverage']:.0f}%)"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ludb", default=str(DEFAULT_LUDB), help="LUDB folder (records/<n>.hea, .dat, .<lead>)")
    p.add_argument("--records", type=int, default=None, help="only the first N records")
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--no-neurokit", action="store_true", help="do not run neurokit2 even if installed")
    p.add_argument("--json", default=None, help="write the figures here too")
    p.add_argument("--csv", default=None, help="write every record's reference and measurements here")
    p.add_argument("--mat-dir", default=None, help="also write the converted records here (competition MAT files)")
    p.add_argument("--noise", default=",".join(f"{k}" for k in KINDS if k != "mixed"),
                   help=f"noise kinds to add ({', '.join(KINDS)}; 'none': off), each at --snr")
    p.add_argument("--snr", default=",".join(f"{v:g}" for v in LEVELS), help="signal-to-noise ratios, dB per lead")
    p.add_argument("--crossval", type=int, default=5, metavar="K",
                   help="choose the delineation's rules on K-1 folds of the records, score the K-th (0: off)")
    a = p.parse_args(argv)
    kinds = [] if a.noise == "none" else [k.strip() for k in a.noise.split(",") if k.strip()]
    if set(kinds) - set(KINDS):
        p.error(f"--noise {a.noise}: unknown kind(s) {sorted(set(kinds) - set(KINDS))}; known: {', '.join(KINDS)}")
    try:
        noise = [(k, float(v)) for k in kinds for v in a.snr.split(",")]
    except ValueError:
        p.error(f"--snr {a.snr}: expected comma-separated numbers of dB")

    folder = Path(a.ludb)
    recs = folder / "records" if (folder / "records").is_dir() else folder
    paths = sorted((h.with_suffix("") for h in recs.glob("*.hea")), key=lambda h: int(h.name))[:a.records]
    if not paths:
        p.error(f"no LUDB records (*.hea) in {recs}")
    with_nk = False
    if not a.no_neurokit:
        try:
            import neurokit2 as nk
            with_nk, nk_version = True, nk.__version__
        except ImportError:
            print("neurokit2 not installed (pip install neurokit2 PyWavelets, in a venv of its own): ours only")
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max(1, a.workers)) as ex:
        rows = list(tqdm(ex.map(measure_one, [(str(x), with_nk, a.mat_dir, a.crossval > 1, noise) for x in paths], chunksize=4),
                         total=len(paths), desc="LUDB", unit="rec"))
    wall = time.perf_counter() - t0
    df = pd.DataFrame(rows)
    truth_csv = folder / "truth_intervals.csv"
    check = use_truth(df, truth_csv) if truth_csv.is_file() else None
    if a.csv:
        df.to_csv(a.csv, index=False, float_format="%.1f")

    res = {"records": len(df), "workers": a.workers, "wall_s": wall, "limits": LIMITS, "min_coverage": MIN_COVERAGE,
           "ours": stats(df, "ours"), "ours_ms_per_record": 1000 * df["ours_s"].mean(),
           "ours_records_per_s_per_core": 1 / df["ours_s"].mean()}
    if with_nk:
        res.update(neurokit2=stats(df, "nk"), neurokit2_version=nk_version,
                   neurokit2_ms_per_record=1000 * df["nk_s"].mean(),
                   neurokit2_records_per_s_per_core=1 / df["nk_s"].mean())
    if check is not None:
        diff, n = check
        bad = sorted({line.split()[0] for line in diff})
        res["reference"] = truth_csv.name
        res["reference_check"] = {"records": n, "differing": bad, "details": diff}
    else:
        res["reference"] = "computed from the annotations (utils/ecg/ludb.py)"

    print(f"\nLUDB, {len(df)} records: measured - reference ({res['reference']}), mean / SD (share of the records "
          "with a reference value that got one)")
    head = f"| {'interval':<17} | {'limit (mean / SD)':<17} | {'ours':<18} |" + (
        f" {'neurokit2 ' + nk_version + ' (DWT, II)':<26} |" if with_nk else "")
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for k in INTERVALS:
        lim = f"+-{LIMITS[k][0]} / {LIMITS[k][1]}" if k in LIMITS else ""
        dec = 1 if k == "hr" else 0
        line = f"| {LABELS[k]:<17} | {lim:<17} | {fmt(res['ours'][k], dec):<18} |"
        if with_nk:
            line += f" {fmt(res['neurokit2'][k], dec):<26} |"
        print(line)
    passed = [k for k in LIMITS if res["ours"][k]["pass"]]
    print(f"ours within the limits (and measured on >= {MIN_COVERAGE:.0%} of the records): {len(passed)} of "
          f"{len(LIMITS)}" + (f" ({', '.join(LABELS[k] for k in passed)})" if passed else ""))
    missed = [k for k in LIMITS if not res["ours"][k]["pass"]]
    for k in missed:
        s = res["ours"][k]
        print(f"  {LABELS[k]} missed: {fmt(s)}; without its 4 largest deviations {s['mean_without_4_largest']:+.0f} / "
              f"{s['sd_without_4_largest']:.0f} ({', '.join(f'{n} {v:+.0f}' for n, v in s['largest'])})")
    res["qrs_by_width"] = {"ours": by_width(df, "ours")}
    if a.crossval > 1:
        res["crossval"], cv = crossval(df, a.crossval)
        res["qrs_by_width"]["crossval"] = by_width(cv, "cv")
        print_crossval(res)
    if noise:
        res["noise"] = noise_shifts(df, noise)
        print_noise(res["noise"])
    print("QRS duration error by the reference's QRS width, mean / SD (records): " + "; ".join(
        f"{who} " + ", ".join(f"{w} {v['mean']:+.0f} / {v['sd']:.0f} ({v['n']})" for w, v in t.items())
        for who, t in res["qrs_by_width"].items()))
    paced = paced_records(folder)
    if paced:  # for information: the pacemaker spike is where measurements and cardiologists disagree most
        keep = df[~df["name"].isin(paced)]
        res["without_paced"] = {"records": len(keep), "paced": sorted(paced), "ours": stats(keep, "ours")}
        if with_nk:
            res["without_paced"]["neurokit2"] = stats(keep, "nk")
        print(f"without the {len(df) - len(keep)} records with artificial pacing ({', '.join(sorted(paced))}): ours "
              + ", ".join(f"{LABELS[k]} {fmt(res['without_paced']['ours'][k])}" for k in LIMITS))
    flagged = sorted(df["name"][df["ours_paced"]])
    res["flagged_paced"] = flagged
    print(f"flagged as paced (pacemaker spikes that keep time with the beats: no QRS duration, P duration or PR): "
          f"{len(flagged)}" + (f" ({', '.join(flagged)})" if flagged else "")
          + (f"; {len(set(flagged) & paced)} of the {len(paced)} with pacing in diagnoses.csv" if paced else ""))
    extra = {LABELS[k]: res["ours"][k]["measured_without_reference"] for k in LIMITS}
    print("measured where the reference has none (e.g. a P wave in atrial fibrillation): "
          + ", ".join(f"{k} {v}" for k, v in extra.items()))
    print(f"CPU time per record (one core): ours {res['ours_ms_per_record']:.1f} ms "
          f"({res['ours_records_per_s_per_core']:.0f} records/s per core)" + (
              f"; neurokit2 {res['neurokit2_ms_per_record']:.0f} ms, one lead "
              f"({res['neurokit2_records_per_s_per_core']:.1f} records/s per core)" if with_nk else "")
          + f"; {len(df)} records in {wall:.0f} s with {a.workers} workers")
    if "reference_check" in res:
        rc = res["reference_check"]
        differing = f"; differing: {', '.join(rc['differing'])}" if rc["differing"] else ""
        print(f"reference computed from the annotations vs {truth_csv.name}: {rc['records'] - len(rc['differing'])} "
              f"of {rc['records']} records identical{differing}")
        for line in rc["details"]:
            print(f"  {line}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2, default=float) + "\n")
        print(f"figures: {a.json}")
    return res


if __name__ == "__main__":
    main()
