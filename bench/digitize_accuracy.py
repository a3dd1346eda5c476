"""Digitiser accuracy (issue 35): paper ECGs generated from test records no model trained on, read back by the
digitiser, scored against the records they were printed from (the PhysioNet 2024 SNR) and diagnosed against the
diagnosis of the original records.

    python bench/digitize_accuracy.py --records DIR --model-t1 DIR [DIR ...] [--model-t2 DIR [DIR ...]]
        [--conditions clean,scan:1,scan:2,scan:3,photo:1,photo:2,photo:3] [--max-records N]
        [--max-records-distorted M] [--seed 2021] [--paper-workers W] [--px-per-mm P] [--work-dir DIR]
        --json FILE [--figure PNG]

--records is a competition folder: its val/ records are the test records, with their truth beside them
(val_reference.csv, and val_reference_task2.csv for --model-t2: bench/common.truth_of), both read from this one
folder. The first --max-records test records by name are used (default: all), copied to WORK/raw; the distorted
conditions (every one but clean) use only the first --max-records-distorted of those (default: the same), so the
costly photo pages can be measured on fewer records than the clean ones. --model-t1 / --model-t2: trained model
directories of each task, several fused as predict.py fuses them (signal and features models: a picture model
would need process.py's pictures of every digitised record, which this bench does not draw).

A condition is PRESET[:LEVEL]: clean (no level), scan or photo at level 1, 2 or 3 (without a level, each page's
level is drawn from 1-3). For each one, the stages (child processes, timed):
- tools/make_paper.py --n 1 --preset --level --seed: one page per record (--paper-workers processes; 0 = every
  core), in a random printer style (--px-per-mm fixes the resolution, for quick runs). The seed is the same for
  every condition, so a record's page has the same style (layout, speed, gain, resolution, grid) in every
  condition and only the distortions differ;
- tools/digitize.py --workers 1: seconds per page = its wall time / pages, CPU seconds per page = its CPU time /
  pages, on one core (both include the script's start, about 2-4 s: negligible over 100 pages, not over 3).
Each page read ("ok") is scored against the record it was printed from (the page's <stem>.mat) as
utils/paper/score.record_snr scores it: per lead (lead_snr), the best alignment within 0.5 s and 1 mV, on the
printed samples only, then the mean over the leads read; with one guard (lead_score): where the best shift keeps
fewer than half of the lead's read samples (a short, misread stretch at the record's edge slid off it until a few
samples match: an SNR up to infinity), the lead gets the best alignment among the shifts that keep at least half
(counted: leads_alignment_restricted). Per condition: pages, read / refused / failed, the mean SNR over the pages read with its 95%
bootstrap CI (pages resampled: bench/protocol.mean_figure) and the median; a page not read has no SNR (the read
rate is the separate figure). Per distortion kind (every kind in the pages' JSON `distortions`, the conditions
pooled): the pages that had it, how many were read, and their mean SNR.

The diagnosis: for each condition two competition folders, WORK/<condition>/raw_digitised (val/<record>.mat: the
digitised page, NaN where not printed; a page not read is a MAT without `ecgdata`, which predict.py cannot read
and answers with its fallback, the training set's most frequent answer) and WORK/<condition>/raw_masked (the
original record with NaN wherever the page did not print the lead, from its JSON's `leads` t0/t1: what is lost by
printing 2.5 s of most leads, apart from the digitiser's own error), both with the truth files. predict.py then
runs once per task (one stage) on WORK/predict, which links every distinct version of every record as
<version>__<record>.mat: the original, each masked original (one per distinct set of printed stretches: the
conditions share a record's layout) and each condition's digitised record. A record's probabilities do not depend
on the others predicted with it (features: a record's measurements; networks in eval mode), so all versions are
scored by the same models with the same thresholds; predict.py reads each as it reads any record (NaN filled by
utils/ecg/gaps.py's policy). Task 1 ROC AUC and Task 2 macro AUC of the original, masked and digitised versions
against the truth, with 95% bootstrap CIs, and the paired differences digitised - original and masked - original
with the paired bootstrap's 95% CI (bench/protocol.py), on each condition's records; "read_only": the same on
the records whose page was read (the digitiser's signal, without the fallback answers).

Prints a `=== stage` line per stage, a table per condition and the per-kind table, the targets (mean SNR >= 15 dB
clean, >= 8 dB photo-like; Task 1 AUC on digitised clean pages within 0.02 of the original; at most 3 s a page on
one core); --json writes every figure (atomically), --figure the SNR per condition and the AUCs per condition.
In --work-dir, a make_paper or digitize stage whose flags, records and code (GENERATOR_CODE, DIGITIZER_CODE) are
unchanged since an earlier run is not run again (its recorded times are reused); predict.py always runs. The JSON
records the commit and any uncommitted change to that code, and warns when the conditions were digitised by
different versions of the digitiser.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.runtime import configure_cpu_threads  # noqa: E402

configure_cpu_threads()  # before paddle is imported (LightGBM first): the scripts we start inherit the environment

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.io  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench import common, protocol  # noqa: E402
from bench.common import (  # noqa: E402,F401 (NOT_READ: the tests') - shared with bench/paper_pictures.py
    DIGITIZER_CODE,
    GENERATOR_CODE,
    NOT_READ,
    code_hash,
    copy_records,
    kept_stage,
    write_not_read,
    write_truths,
)
from utils.atomic import atomic_path, write_text  # noqa: E402
from utils.ecg.io import (  # noqa: E402
    CSV_ENCODING,
    LEADS,
    SHAPE,
    list_records,
    write_record,
)
from utils.paper.layouts import printed_mask  # noqa: E402
from utils.paper.score import MIN_KEPT, record_score  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402

CONDITIONS = "clean,scan:1,scan:2,scan:3,photo:1,photo:2,photo:3"
SNR_CLEAN_DB, SNR_PHOTO_DB = 15.0, 8.0  # issue 35's targets: mean SNR on clean renders, on photo-like pages
AUC_GAP = 0.02  # Task 1 AUC on digitised clean pages within this of the same model on the original signals
SECONDS_PER_PAGE = 3.0  # on one core
ORIGINAL, SEP = "original", "__"  # WORK/predict/val/<version>__<record>.mat
VERSIONS = ("original", "masked", "digitised")
HOW_TO_READ = (
    "SNR: the PhysioNet 2024 Challenge's per-lead SNR (utils/paper/score.py: aligned by at most 0.5 s and 1 mV, on "
    "the printed samples only, not multiplied by the coverage; a lead whose best shift keeps under half of its read "
    "samples is aligned among the shifts that keep half: leads_alignment_restricted), averaged over the leads read, "
    "one value per page read; snr_mean is the mean over the pages READ (status ok) only, with the 95% percentile bootstrap CI over those "
    "pages: a page refused or failed has no SNR and counts only in the read rate (read / pages), so compare "
    "conditions on both. per_kind pools the conditions: a kind's pages also had the other kinds of their preset. "
    "seconds_per_page: tools/digitize.py's wall time / pages with one worker (one core; the machine may be busy: "
    "cpu_seconds_per_page is the steadier figure), its start included. Diagnosis: auc_original is the models on the "
    "original records, auc_masked on the originals with NaN where the page did not print the lead (the loss of "
    "printing only part of most leads), auc_digitised on the digitised pages (a page not read answered with "
    "predict.py's fallback); diff = digitised - original and masked_diff = masked - original on the same records, "
    "with the paired bootstrap's 95% CI (a CI that includes 0: no measurable loss); read_only: the same on the "
    "records whose page was read only. " + protocol.HOW_TO_READ)


def parse_conditions(parser, text):
    return common.parse_conditions(parser, text, CONDITIONS)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", required=True, type=Path, help="competition folder: val/ the test records, truth beside")
    p.add_argument("--model-t1", nargs="+", required=True, type=Path, help="Task 1 model directories (fused)")
    p.add_argument("--model-t2", nargs="+", default=None, type=Path, help="Task 2 model directories (fused)")
    p.add_argument("--conditions", default=CONDITIONS, help=f"comma-separated PRESET[:LEVEL] (default {CONDITIONS})")
    p.add_argument("--max-records", type=int, default=0, help="the first N test records by name (0: all)")
    p.add_argument("--max-records-distorted", type=int, default=0,
                   help="the distorted conditions: only the first M of those (0: the same as the clean one)")
    p.add_argument("--seed", type=int, default=2021, help="tools/make_paper.py --seed")
    p.add_argument("--paper-workers", type=int, default=0, help="tools/make_paper.py --workers (0: every core)")
    p.add_argument("--px-per-mm", type=float, default=0.0,
                   help="tools/make_paper.py --px-per-mm: every page at this resolution (0: random 3-12 px/mm)")
    p.add_argument("--work-dir", type=Path, default=None, help="pages, digitised records, predictions (default: temp)")
    p.add_argument("--json", required=True, type=Path)
    p.add_argument("--figure", type=Path, default=None)
    a = p.parse_args(argv)
    a.conditions = parse_conditions(p, a.conditions)
    if a.max_records < 0 or a.max_records_distorted < 0:
        p.error("--max-records and --max-records-distorted: 0 (all) or more")
    for flag, task, dirs in (("--model-t1", 1, a.model_t1), ("--model-t2", 2, a.model_t2 or [])):
        for d in dirs:
            if not d.is_dir():
                p.error(f"{flag} {d}: not a directory")
            if is_picture_model(d):
                p.error(f"{flag} {d}: a picture model; this bench predicts signal and features models only")
        if dirs and not common.truth_of(a.records, task).is_file():
            p.error(f"{flag}: no Task {task} truth {common.truth_of(a.records, task)}")
    return a


def is_picture_model(model_dir):
    from utils.artifacts import ModelCard

    try:
        return common.is_picture(ModelCard.read(model_dir).arch)
    except Exception:  # noqa: BLE001 - an exported model or no card: predict.py says what is wrong with it
        return False


# -- the test records -------------------------------------------------------------------------------------------------
def test_records(records, limit):
    names = list_records(Path(records) / "val")
    if not names:
        raise SystemExit(f"{records}/val: no test records (*.mat)")
    return names[:limit] if limit else names


# -- the stages: pages, digitised pages --------------------------------------------------------------------------------
def make_condition(a, cond, records_dir, names, work, times, cpu):
    """The condition's pages (WORK/<key>/pages) and their digitised records (WORK/<key>/digitised)."""
    base = work / cond.key
    pages, dig = base / "pages", base / "digitised"
    make = ["tools/make_paper.py", "--records", records_dir, "--out", pages, "--n", 1, "--preset", cond.preset,
            "--level", cond.level, "--seed", a.seed, "--workers", a.paper_workers, "--px-per-mm", a.px_per_mm]
    read = ["tools/digitize.py", "--images", pages, "--out", dig, "--workers", 1]
    key = {"records": hashlib.sha1("\n".join(names).encode()).hexdigest(), "code": code_hash(GENERATOR_CODE),
           "make_paper": [str(x) for x in make]}
    kept_stage(f"make_paper {cond.name}", make, pages, key, times, cpu)
    key = {**key, "digitizer_code": code_hash(DIGITIZER_CODE), "digitize": [str(x) for x in read]}
    kept_stage(f"digitize {cond.name}", read, dig, key, times, cpu)
    return pages, dig, key["digitizer_code"]


def read_ecgdata(path):
    """`ecgdata` of a MAT record as it is (NaN kept: not utils.ecg.io.read_record, which fills gaps)."""
    x = np.asarray(scipy.io.loadmat(path, variable_names=["ecgdata"])["ecgdata"], np.float64)
    if x.shape != SHAPE:
        raise ValueError(f"{path}: ecgdata of shape {x.shape}, expected {SHAPE}")
    return x


def code_state():
    """The commit measured and the files of the code measured (GENERATOR_CODE, DIGITIZER_CODE) that differ from it."""
    import subprocess

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return None

    paths = sorted(set(GENERATOR_CODE) | set(DIGITIZER_CODE))
    status = git("status", "--porcelain", "--", *paths)
    return {"commit": (git("rev-parse", "HEAD") or "").strip() or None,
            "uncommitted": [line[3:] for line in (status or "").splitlines()],
            "generator": code_hash(GENERATOR_CODE), "digitizer": code_hash(DIGITIZER_CODE)}


def reason(error):
    """A refusal's reason without its figures: "too coarse", "speed unclear"."""
    text = re.split(r"[:(;]", str(error))[0].strip()
    return re.sub(r"\d+(\.\d+)?", "#", text) or "(no reason given)"


def score_pages(cond, pages, dig):
    """One row per generated page: its record, style, distortions, digitiser status, and SNR (dB, NaN when not
    read) with the per-lead SNRs."""
    index = pd.read_csv(pages / "index.csv", dtype=str, keep_default_na=False, encoding=CSV_ENCODING)
    status = pd.read_csv(dig / "digitize.csv", dtype=str, keep_default_na=False, encoding=CSV_ENCODING)
    status = {r["name"]: r for r in status.to_dict("records")}
    rows = []
    for stem, record in tqdm(list(zip(index["stem"], index["record"])), desc=f"SNR {cond.name}", unit="page"):
        truth = json.loads((pages / f"{stem}.json").read_text())
        d = status.get(stem, {"status": "failed", "error": "no row in digitize.csv"})
        row = {"condition": cond.name, "stem": stem, "record": record, "status": d["status"], "error": d["error"],
               "layout": truth["layout"], "speed": truth["speed"], "gain": truth["gain"],
               "px_per_mm": truth["px_per_mm"], "level": truth.get("level"), "distortions": truth["distortions"],
               "leads": truth["leads"], "snr": float("nan"), "snr_leads": [float("nan")] * len(LEADS),
               "leads_restricted": 0}
        if d["status"] == "ok":
            per, mean, restricted = record_score(read_ecgdata(pages / f"{stem}.mat"), read_ecgdata(dig / f"{stem}.mat"))
            row["snr"], row["snr_leads"], row["leads_restricted"] = mean, [float(v) for v in per], restricted
        rows.append(row)
    return rows


# -- the versions of each record predict.py reads --------------------------------------------------------------------
def write_versions(cond, rows, names, raw, dig, base):
    """WORK/<key>/raw_digitised and raw_masked (val/<record>.mat and the truth files, kept to `names`);
    {record: (digitised path, masked path, masked signature)}."""
    out = {}
    by_record = {r["record"]: r for r in rows}
    folders = {v: base / f"raw_{v}" for v in ("digitised", "masked")}
    for folder in folders.values():
        shutil.rmtree(folder / "val", ignore_errors=True)
        (folder / "val").mkdir(parents=True)
        write_truths(raw, folder, names)
    for n in tqdm(names, desc=f"versions {cond.name}", unit="record"):
        r = by_record.get(n)
        d, m = folders["digitised"] / "val" / f"{n}.mat", folders["masked"] / "val" / f"{n}.mat"
        if r is None:  # tools/make_paper.py could not draw it: nothing was printed or read
            write_not_read(d, "no page: tools/make_paper.py skipped the record")
            write_not_read(m, "no page: tools/make_paper.py skipped the record")
            out[n] = (d, m, "no page")
            continue
        if r["status"] == "ok":
            shutil.copyfile(dig / f"{r['stem']}.mat", d)
        else:
            write_not_read(d, f"page {r['status']}: {r['error']}")
        mask = printed_mask(r["leads"])
        x = read_ecgdata(raw / "val" / f"{n}.mat")
        write_record(m, np.where(mask, x, np.nan))
        out[n] = (d, m, hashlib.sha1(np.packbits(mask).tobytes()).hexdigest()[:10])
    return out


def link_versions(work, names, conditions):
    """WORK/predict/val/<version>__<record>.mat, a link to every distinct version of every record (a masked
    original once per distinct set of printed stretches); {condition: {version: {record: entry name}}}, with
    condition None the originals."""
    val = work / "predict" / "val"
    shutil.rmtree(val, ignore_errors=True)
    val.mkdir(parents=True)
    links = {}

    def link(entry, target):
        if entry not in links:
            links[entry] = target
            (val / f"{entry}.mat").symlink_to(Path(target).resolve())
        return entry

    plan = {None: {ORIGINAL: {n: link(f"{ORIGINAL}{SEP}{n}", work / "raw" / "val" / f"{n}.mat") for n in names}}}
    for cond, versions in conditions.items():
        plan[cond] = {"digitised": {n: link(f"{cond.key}{SEP}{n}", d) for n, (d, _, _) in versions.items()},
                      "masked": {n: link(f"masked-{sig}{SEP}{n}", m) for n, (_, m, sig) in versions.items()}}
    return plan


def predict_all(models, task_number, work, times):
    """predict.py (one stage) on every version of every record: {entry: (answer, probability)} and the entries
    answered with the fallback."""
    task = get_task(task_number)
    out = work / "predict"
    report = out / f"predict_t{task_number}.json"
    common.stage(f"predict task {task_number}", ["predict.py", "--task", task_number, "--data-dir", out,
                                                 "--dataset-dir", out / "dataset", "--model", *models,
                                                 "--out", out / f"answer_t{task_number}.csv", "--report", report],
                 times)
    entries, answers, probs = protocol.read_predictions(task, report)
    fallback = {f["name"]: f["reason"] for f in json.loads(report.read_text())["fallback"]}
    return dict(zip(entries, zip(answers, probs))), fallback, str(report)


def diagnosis(task_number, truth, plan, cond, names, read, predicted, fallback):
    """The condition's task block: AUC (Task 2 macro) of the original, masked and digitised versions of `names`
    with CIs, the paired differences against the original, the fallback counts; "read_only": the same on the
    records whose page was read (`read`), None without any."""
    out = versions_block(task_number, truth, plan, cond, names, predicted, fallback)
    out["read_only"] = versions_block(task_number, truth, plan, cond, read, predicted, fallback) if read else None
    return out


def versions_block(task_number, truth, plan, cond, names, predicted, fallback):
    task = get_task(task_number)
    metric = protocol.auc_metric(task)
    entries = {ORIGINAL: plan[None][ORIGINAL], "masked": plan[cond]["masked"], "digitised": plan[cond]["digitised"]}
    sets = {v: ([predicted[entries[v][n]][0] for n in names], [predicted[entries[v][n]][1] for n in names])
            for v in VERSIONS}
    out = {"metric": metric, "n": len(names)}
    for v in VERSIONS:
        fig = protocol.test_figures(task, truth, names, *sets[v])[metric]
        out[f"auc_{v}"], out[f"auc_{v}_ci"] = fig["value"], fig["ci95"]
    for v, key in (("digitised", "diff"), ("masked", "masked_diff")):
        d = protocol.paired_differences(task, truth, names, sets[v], sets[ORIGINAL], (metric,))[metric]
        out[key], out[f"{key}_ci"], out[f"{key}_p_not_better"] = d["diff"], d["ci95"], d["p_a_not_better"]
    for v in VERSIONS:
        out[f"fallback_{v}"] = sum(entries[v][n] in fallback for n in names)
    return out


# -- the figures -------------------------------------------------------------------------------------------------------
def snr_block(values):
    """Mean (95% bootstrap CI), median and count of the pages' SNRs (those finite)."""
    fig = protocol.mean_figure(values)
    ok = np.asarray(values, np.float64)
    ok = ok[np.isfinite(ok)]
    return {"snr_mean": fig["value"], "snr_ci": fig["ci95"], "snr_median": float(np.median(ok)) if len(ok) else None,
            "snr_n": fig["n"]}


def condition_result(cond, rows, names, times, cpu):
    pages = len(rows)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "refused", "failed")}
    read = [r for r in rows if r["status"] == "ok"]
    lead_snr = np.array([r["snr_leads"] for r in read]) if read else np.full((0, len(LEADS)), np.nan)
    per_lead = {ld: (float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else None)
                for ld, v in zip(LEADS, lead_snr.T)}
    refusals = {}
    for r in rows:
        if r["status"] != "ok":
            refusals[reason(r["error"])] = refusals.get(reason(r["error"]), 0) + 1
    gen, dig = f"make_paper {cond.name}", f"digitize {cond.name}"
    return {"preset": cond.preset, "level": cond.level, "records": len(names), "pages": pages,
            "read": counts["ok"], "refused": counts["refused"], "failed": counts["failed"],
            "read_rate": counts["ok"] / pages if pages else None,
            **snr_block([r["snr"] for r in read]), "snr_per_lead": per_lead,
            "leads_alignment_restricted": sum(r["leads_restricted"] for r in read),
            "pages_alignment_restricted": sum(r["leads_restricted"] > 0 for r in read),
            "not_read_reasons": dict(sorted(refusals.items(), key=lambda kv: -kv[1])),
            "seconds_per_page": times[dig] / pages if pages else None,
            "cpu_seconds_per_page": cpu[dig] / pages if pages and cpu[dig] is not None else None,
            "generate_seconds_per_page": times[gen] / pages if pages else None,
            "generate_cpu_seconds_per_page": cpu[gen] / pages if pages and cpu[gen] is not None else None}


def per_kind(rows):
    """{kind: {pages, read, snr_mean, snr_ci, snr_median, snr_n}} over every page that had the kind."""
    kinds = sorted({k for r in rows for k in r["distortions"]})
    out = {}
    for k in kinds:
        have = [r for r in rows if k in r["distortions"]]
        read = [r for r in have if r["status"] == "ok"]
        out[k] = {"pages": len(have), "read": len(read), "conditions": sorted({r["condition"] for r in have}),
                  "mean_level": float(np.mean([r["distortions"][k] for r in have])),
                  **snr_block([r["snr"] for r in read])}
    return out


def targets(conds):
    out = {}
    clean = conds.get("clean")
    if clean:
        t1 = clean["task1"]
        lo_hi = t1["diff_ci"]
        out["snr_clean_db"] = {"rule": f"mean SNR >= {SNR_CLEAN_DB:g} dB on clean renders", "target": SNR_CLEAN_DB,
                               "snr_mean": clean["snr_mean"], "snr_ci": clean["snr_ci"],
                               "met": clean["snr_mean"] is not None and clean["snr_mean"] >= SNR_CLEAN_DB,
                               "read_rate": clean["read_rate"]}
        out["task1_auc_clean"] = {
            "rule": f"Task 1 AUC on digitised clean pages within {AUC_GAP:g} of the same models on the original "
                    "signals", "target": AUC_GAP, "diff": t1["diff"], "diff_ci": lo_hi,
            "met": t1["diff"] is not None and abs(t1["diff"]) <= AUC_GAP,
            "ci_within": bool(lo_hi and -AUC_GAP <= lo_hi[0] and lo_hi[1] <= AUC_GAP)}
        ro = t1["read_only"]
        if ro:  # the pages read: the digitiser's signal, without the fallback answers of the pages not read
            out["task1_auc_clean"]["read_only"] = {
                "n": ro["n"], "diff": ro["diff"], "diff_ci": ro["diff_ci"],
                "met": ro["diff"] is not None and abs(ro["diff"]) <= AUC_GAP,
                "ci_within": bool(ro["diff_ci"] and -AUC_GAP <= ro["diff_ci"][0] and ro["diff_ci"][1] <= AUC_GAP)}
    photo = {c: r for c, r in conds.items() if r["preset"] == "photo"}
    if photo:
        out["snr_photo_db"] = {"rule": f"mean SNR >= {SNR_PHOTO_DB:g} dB on photo-like pages", "target": SNR_PHOTO_DB,
                               "conditions": {c: {"snr_mean": r["snr_mean"], "snr_ci": r["snr_ci"],
                                                  "read_rate": r["read_rate"],
                                                  "met": r["snr_mean"] is not None and r["snr_mean"] >= SNR_PHOTO_DB}
                                              for c, r in photo.items()}}
    out["seconds_per_page"] = {"rule": f"at most {SECONDS_PER_PAGE:g} s a page on one core", "target": SECONDS_PER_PAGE,
                               "conditions": {c: {"seconds_per_page": r["seconds_per_page"],
                                                  "cpu_seconds_per_page": r["cpu_seconds_per_page"],
                                                  "met": r["seconds_per_page"] is not None
                                                  and r["seconds_per_page"] <= SECONDS_PER_PAGE}
                                              for c, r in conds.items()}}
    return out


# -- printing ----------------------------------------------------------------------------------------------------------
def fmt(v, digits=1, ci=None, sign=False):
    if v is None:
        return "n/a"
    s = f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"
    return s + (f" [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]" if sign and ci else
                f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def table_lines(conds, tasks):
    head = (f"{'condition':<9} {'recs':>5} {'pages':>5} {'read':>5} {'refus':>5} {'fail':>5}  "
            f"{'SNR dB mean [95% CI]':<22} {'median':>6} {'s/page':>6} {'CPU s':>6}")
    lines = [head]
    for c, r in conds.items():
        lines.append(f"{c:<9} {r['records']:>5} {r['pages']:>5} {r['read']:>5} {r['refused']:>5} {r['failed']:>5}  "
                     f"{fmt(r['snr_mean'], 1, r['snr_ci']):<22} {fmt(r['snr_median']):>6} "
                     f"{fmt(r['seconds_per_page'], 2):>6} {fmt(r['cpu_seconds_per_page'], 2):>6}")
    for t in tasks:
        metric = "AUC" if t == "task1" else "macro AUC"
        lines += ["", f"{'Task ' + t[-1] + ' ' + metric:<18} {'original [95% CI]':<24} {'masked':<8} "
                      f"{'digitised':<9} {'digitised - original [95% CI]':<31} {'masked - original [95% CI]':<29} "
                      f"{'fallback':>8}   {'pages read only: n, digitised - original [95% CI]'}"]
        for c, r in conds.items():
            d, ro = r[t], r[t]["read_only"]
            lines.append(f"{c:<18} {fmt(d['auc_original'], 3, d['auc_original_ci']):<24} "
                         f"{fmt(d['auc_masked'], 3):<8} {fmt(d['auc_digitised'], 3):<9} "
                         f"{fmt(d['diff'], 3, d['diff_ci'], sign=True):<31} "
                         f"{fmt(d['masked_diff'], 3, d['masked_diff_ci'], sign=True):<29} "
                         f"{d['fallback_digitised']:>8}   "
                         + (f"{ro['n']:>3}, {fmt(ro['diff'], 3, ro['diff_ci'], sign=True)}" if ro else "none read"))
    return lines


def kind_lines(kinds):
    lines = [f"{'kind':<12} {'pages':>5} {'read':>5} {'mean level':>10}  SNR dB mean [95% CI]   conditions"]
    for k, r in kinds.items():
        lines.append(f"{k:<12} {r['pages']:>5} {r['read']:>5} {r['mean_level']:>10.2f}  "
                     f"{fmt(r['snr_mean'], 1, r['snr_ci']):<22} {','.join(r['conditions'])}")
    return lines


def target_lines(tg):
    lines = []
    if "snr_clean_db" in tg:
        t = tg["snr_clean_db"]
        lines.append(f"  {t['rule']}: {fmt(t['snr_mean'], 1, t['snr_ci'])} -> {'met' if t['met'] else 'NOT met'}")
    if "snr_photo_db" in tg:
        t = tg["snr_photo_db"]
        lines.append(f"  {t['rule']}: " + "; ".join(f"{c} {fmt(r['snr_mean'], 1, r['snr_ci'])} "
                                                   f"({'met' if r['met'] else 'NOT met'})"
                                                   for c, r in t["conditions"].items()))
    if "task1_auc_clean" in tg:
        t = tg["task1_auc_clean"]
        lines.append(f"  {t['rule']}: {fmt(t['diff'], 3, t['diff_ci'], sign=True)} -> "
                     f"{'met' if t['met'] else 'NOT met'} (CI within +-{AUC_GAP:g}: {'yes' if t['ci_within'] else 'no'})")
        if t.get("read_only"):
            r = t["read_only"]
            lines.append(f"    on the {r['n']} pages read only: {fmt(r['diff'], 3, r['diff_ci'], sign=True)} -> "
                         f"{'met' if r['met'] else 'NOT met'} (CI within: {'yes' if r['ci_within'] else 'no'})")
    t = tg["seconds_per_page"]
    lines.append(f"  {t['rule']}: " + "; ".join(f"{c} {fmt(r['seconds_per_page'], 2)} s "
                                               f"({'met' if r['met'] else 'NOT met'})"
                                               for c, r in t["conditions"].items()))
    return lines


def plot(result, snr, path):
    """SNR per page per condition (box and points, the targets as lines) and each task's AUC per condition
    (original, masked, digitised with 95% CIs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = result["conditions"]
    names = list(conds)
    tasks = [t for t in ("task1", "task2") if t in next(iter(conds.values()))]
    fig, axes = plt.subplots(1, 1 + len(tasks), figsize=(4.5 + 4.5 * len(tasks) + 0.5 * len(names), 4.8),
                             squeeze=False)
    axes = axes[0]
    x = np.arange(len(names))
    ax = axes[0]
    have = [i for i, c in enumerate(names) if len(snr[c])]
    if have:
        ax.boxplot([snr[names[i]] for i in have], positions=x[have], widths=0.55, showfliers=False)
    rng = np.random.default_rng(0)
    for i, c in enumerate(names):
        ax.scatter(i + rng.uniform(-0.18, 0.18, len(snr[c])), snr[c], s=6, alpha=0.45, color="C0", zorder=3)
    ax.axhline(SNR_CLEAN_DB, color="C2", ls="--", lw=1, label=f"target clean: {SNR_CLEAN_DB:g} dB")
    ax.axhline(SNR_PHOTO_DB, color="C3", ls=":", lw=1, label=f"target photo: {SNR_PHOTO_DB:g} dB")
    ax.set_xticks(x, [f"{c}\n{conds[c]['read']}/{conds[c]['pages']}\nread" for c in names], fontsize="small")
    ax.set_ylabel("mean SNR of a page (dB; pages read)")
    ax.set_title("digitised pages: PhysioNet 2024 SNR", fontsize="medium")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="small", loc="lower left")
    for ax, t in zip(axes[1:], tasks):
        for j, (v, color) in enumerate((("original", "0.35"), ("masked", "C1"), ("digitised", "C0"))):
            vals = np.array([np.nan if conds[c][t][f"auc_{v}"] is None else conds[c][t][f"auc_{v}"] for c in names])
            ci = [conds[c][t][f"auc_{v}_ci"] or [np.nan, np.nan] for c in names]
            err = np.abs(np.array([[lo, hi] for lo, hi in ci]).T - vals)
            ax.errorbar(x + (j - 1) * 0.22, vals, yerr=err, fmt="o", ms=4, capsize=2, color=color,
                        label={"original": "original records", "masked": "originals, printed samples only",
                               "digitised": "digitised pages (a page not read: fallback)"}[v])
        ax.set_xticks(x, names, fontsize="small")
        ax.set_ylabel("ROC AUC" if t == "task1" else "macro ROC AUC")
        ax.set_title(f"Task {t[-1]} diagnosis (95% CI)", fontsize="medium")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize="small", loc="lower left")
    distorted = result.get("n_records_distorted", result["n_records"])
    fig.suptitle(f"Digitiser on generated pages of {result['n_records']} test records"
                 + (f" (the distorted conditions: the first {distorted})" if distorted < result["n_records"] else ""),
                 fontsize="medium")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the run -----------------------------------------------------------------------------------------------------------
def main(argv=None):
    a = parse(argv)
    t0 = time.time()
    work = (a.work_dir or Path(tempfile.mkdtemp(prefix="digitize_accuracy_"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    names = test_records(a.records, a.max_records)
    n_distorted = min(a.max_records_distorted or len(names), len(names))
    raw = work / "raw"
    copy_records(Path(a.records) / "val", raw / "val", names)
    write_truths(a.records, raw, names)
    subset = work / f"first_{n_distorted}"  # the distorted conditions' records, as links
    if n_distorted < len(names):
        shutil.rmtree(subset, ignore_errors=True)
        subset.mkdir()
        for n in names[:n_distorted]:
            (subset / f"{n}.mat").symlink_to(raw / "val" / f"{n}.mat")

    times, cpu, rows, versions, cond_names, code = {}, {}, {}, {}, {}, {}
    for cond in a.conditions:
        own = names if cond.preset == "clean" or n_distorted == len(names) else names[:n_distorted]
        pages, dig, code[cond.name] = make_condition(a, cond, raw if len(own) == len(names) else subset, own, work,
                                                     times, cpu)
        rows[cond] = score_pages(cond, pages, dig)
        versions[cond] = write_versions(cond, rows[cond], own, raw, dig, work / cond.key)
        cond_names[cond] = own
    plan = link_versions(work, names, versions)

    models = {"task1": [str(d.resolve()) for d in a.model_t1]}
    if a.model_t2:
        models["task2"] = [str(d.resolve()) for d in a.model_t2]
    predictions = {t: predict_all(m, int(t[-1]), work, times) for t, m in models.items()}

    conds = {}
    for cond in a.conditions:
        conds[cond.name] = condition_result(cond, rows[cond], cond_names[cond], times, cpu)
        for t, (predicted, fallback, _) in predictions.items():
            conds[cond.name][t] = diagnosis(int(t[-1]), common.truth_of(raw, int(t[-1])), plan, cond, cond_names[cond],
                                            [r["record"] for r in rows[cond] if r["status"] == "ok"], predicted,
                                            fallback)
        conds[cond.name]["digitizer_code"] = code[cond.name]
    all_rows = [r for rs in rows.values() for r in rs]
    kinds = per_kind(all_rows)
    tg = targets(conds)
    warnings_ = []
    for t, (_, fallback, _) in predictions.items():
        masked = [e for e in fallback if e.startswith("masked-")]
        if masked:
            warnings_.append(f"{t}: predict.py could not read {len(masked)} masked original(s) (e.g. {masked[0]}: "
                             f"{fallback[masked[0]]}): their figures are the fallback's, not the models'")
        orig = [e for e in fallback if e.startswith(ORIGINAL + SEP)]
        if orig:
            warnings_.append(f"{t}: predict.py could not read {len(orig)} original record(s)")
    if len(set(code.values())) > 1:
        warnings_.append("the conditions were digitised by different versions of the digitiser (utils/paper/, "
                         "tools/digitize.py changed between their stages): " + ", ".join(f"{c} {h[:8]}"
                                                                                          for c, h in code.items()))
    source = code_state()
    if source["uncommitted"]:
        warnings_.append(f"uncommitted changes in the code measured: {', '.join(source['uncommitted'])}")

    print(f"\n=== digitiser accuracy: {len(names)} test records of {a.records} ({n_distorted} for the distorted "
          f"conditions), seed {a.seed}, {os.cpu_count()} cores")
    print("\n".join(table_lines(conds, list(models))))
    print("\nper distortion kind (pages that had it, the conditions pooled; SNR over the pages read):")
    print("\n".join(kind_lines(kinds)))
    print("\ntargets:")
    print("\n".join(target_lines(tg)))
    for w in warnings_:
        print(f"warning: {w}")
    print(HOW_TO_READ)
    seconds = {**times, "total": time.time() - t0}
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))

    pages_csv = work / "pages.csv"
    table = pd.DataFrame([{**{k: v for k, v in r.items() if k not in ("leads", "snr_leads", "distortions")},
                           "distortions": ";".join(f"{k}={v:g}" for k, v in r["distortions"].items()),
                           **{f"snr_{ld}": v for ld, v in zip(LEADS, r["snr_leads"])}} for r in all_rows])
    with atomic_path(pages_csv) as tmp:
        table.to_csv(tmp, index=False)
    result = {"conditions": conds, "per_kind": kinds, "targets": tg, "n_records": len(names),
              "n_records_distorted": n_distorted, "records": str(Path(a.records).resolve()),
              "record_names": names, "models": models, "seed": a.seed, "paper_workers": a.paper_workers,
              "px_per_mm": a.px_per_mm or "random 3-12",
              "cores": os.cpu_count(), "work_dir": str(work), "pages_csv": str(pages_csv),
              "predict_reports": {t: p[2] for t, p in predictions.items()}, "warnings": warnings_,
              "code": source,
              "protocol": {"statement": protocol.PROTOCOL, "bootstrap": protocol.bootstrap_info(),
                           "snr": "utils/paper/score.lead_snr per lead (align='search'), its alignment restricted to "
                                  f"shifts keeping at least {MIN_KEPT:g} of the lead's read samples when its best "
                                  "one does not (utils/paper/score.lead_score); the page's SNR is the mean over "
                                  "its leads read"},
              "how_to_read": HOW_TO_READ, "seconds": seconds}
    write_text(a.json, json.dumps(result, indent=2, allow_nan=False) + "\n")
    print(f"figures: {a.json}")
    if a.figure:
        plot(result, {c.name: [r["snr"] for r in rows[c] if np.isfinite(r["snr"])] for c in a.conditions}, a.figure)
        print(f"figure: {a.figure}")
    return result


if __name__ == "__main__":
    main()
