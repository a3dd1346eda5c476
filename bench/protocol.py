"""The bench protocol, shared by every accuracy bench: how sure is a test figure, and is a difference a finding?

- `test_figures`: each headline test figure with its 95% bootstrap confidence interval (Task 1: F1 of the submitted
  answers, ROC AUC, accuracy; Task 2: macro F1, micro F1, macro AUC, and optionally F1 and AUC per class).
- `paired_difference(s)`: two configurations scored on the same test records, the difference of a figure with the
  95% CI of the PAIRED bootstrap (both resampled with the same records), and the share of resamples in which the
  first is not better (`p_a_not_better`).
- `read_predictions`: one predict.py run's per-record answers and probabilities (answer CSV + the report's
  predict_report_probabilities.csv), what the two functions above take.

The bootstrap: records (one per patient on the PTB-XL benches) are drawn with replacement, `n_resamples` times
(default 1000) with numpy's seeded generator (`seed`, default 0), every figure recomputed on each resample exactly
as utils/scoring computes it (the value itself is `task.score`'s), and the CI is the 2.5th and 97.5th percentile
of the resampled figures (percentile bootstrap). A resample in which a figure is undefined (an AUC without a
positive or a negative) is left out of that figure's percentiles (and counted: `n_undefined`); Task 2's macro
figures average the classes present in the resample, as utils/scoring/metrics.py does on the test set.

Why not scipy.stats.bootstrap: it is the same percentile bootstrap, but one undefined resample makes its whole
CI NaN, and its BCa interval is NaN for a degenerate distribution (a model against itself: every paired difference
0). Here a resample is a vector of record counts (how often each record was drawn), so every figure is computed
for all resamples at once with array operations (ROC AUC as the Mann-Whitney statistic with the counts as weights,
ties counted half, identical to scikit-learn's on the resampled records): 1000 resamples of 148 records take
milliseconds for Task 1 and well under a second for Task 2 (tests/test_protocol.py checks the figures against
scikit-learn and the CIs against scipy.stats.bootstrap).
"""
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

N_RESAMPLES = 1000
SEED = 0
CELLS_PER_CHUNK = 1_000_000  # resamples x records held at once (memory bound for large test sets)

HOW_TO_READ = ("how to read it: [low, high] is the 95% bootstrap CI over the records scored (the test patients, or the "
               "development records out of fold; resampled with replacement, 1000 seeded resamples); on ~150 test "
               "patients an AUC difference under ~0.03 is usually noise, and a difference whose paired CI includes 0 "
               "is not a finding")
PROTOCOL = ("protocol: settings are chosen on the development records (validation / out-of-fold), never on the test "
            "fold; the test fold is scored once per configuration, to report, not to choose")


def headline(task):
    """The figures `test_figures` reports: the task's own (Task.headline)."""
    return task.headline


def auc_metric(task):
    """The figure a setting is chosen by: the task's threshold-free score (Task.auc_metric)."""
    return task.auc_metric


def auc_metrics(task):
    """The AUC figures a per-class comparison reads: Task 1 ("auc",); Task 2 "macro_auc" and "auc/<k>" per class."""
    return (task.auc_metric, *(f"auc/{k}" for k in range(task.num_outputs) if task.several))


def metric_label(task, metric):
    """How a table names a metric of `auc_metrics`: "AUC", "macro AUC" or the class name."""
    if "/" in metric:
        return task.class_names[int(metric.split("/")[1])]
    return {"auc": "AUC", "macro_auc": "macro AUC"}.get(metric, metric)


def decided(task, probs, thresholds=None, y=None):
    """(answers, probabilities) of one configuration, what the functions below score: the answers at `thresholds`,
    or (without them) at thresholds tuned on `y`, the truth of these same records (out-of-fold figures: the tuning
    is the task's own, as train.py's validation does)."""
    probs = np.asarray(probs)
    if thresholds is None:
        thresholds = task.thresholds(y, probs)
    return task.decide(probs, thresholds), list(probs)


# -- the test records, aligned with their truth ------------------------------------------------------------------
@dataclass
class Scored:
    """One configuration's answers on the test records that have a truth, as arrays: `y` the truth, `pred` the
    answers, `prob` the probabilities (Task 1: (n,) each, P(abnormal); Task 2: (n, 12) indicators / probabilities),
    `report` the task's own scores of them (task.score)."""

    names: list
    y: np.ndarray
    pred: np.ndarray
    prob: np.ndarray
    report: dict


def align(task, truth_path, names, answers, probs):
    """A Scored of `names` (with their `answers` and `probs`), kept to the records of `truth_path`, in `names`' order,
    as `task.score` scores them."""
    names, answers, probs = list(names), list(answers), list(probs)
    if not (len(names) == len(answers) == len(probs)):
        raise ValueError(f"{len(names)} names, {len(answers)} answers and {len(probs)} probabilities: one each per record")
    report, _, _ = task.score(truth_path, names, answers, probs)
    keep, y, pred, prob = task.aligned(truth_path, names, answers, probs)
    return Scored([names[i] for i in keep], y, pred, prob, report)


# -- figures on weighted records: W (B, n) counts of each record in each of B resamples ------------------------------
def _f1(tp, fp, fn):
    den = 2 * tp + fp + fn
    return np.divide(2 * tp, den, out=np.zeros(np.shape(den)), where=den > 0)  # zero_division=0, as scikit-learn


def _auc(W, y, s):
    """ROC AUC of scores `s` for truth `y` (n,) in each resample (B,): the Mann-Whitney statistic with the counts as
    weights and ties counted half (= scikit-learn's roc_auc_score on the resampled records); NaN without a positive
    or a negative."""
    order = np.argsort(s, kind="mergesort")
    s, pos = s[order], (y[order] > 0.5).astype(np.float64)
    neg = 1.0 - pos
    Ws = W[:, order]
    new = np.r_[True, s[1:] != s[:-1]]  # first record of each group of equal scores
    group = np.cumsum(new) - 1
    ends = np.r_[np.flatnonzero(new)[1:], len(s)] - 1
    cum_end = np.cumsum(Ws * neg, axis=1)[:, ends]  # negatives scored <= each group's score
    in_group = np.diff(cum_end, axis=1, prepend=0.0)  # negatives tied with the group
    credit = (cum_end - in_group)[:, group] + 0.5 * in_group[:, group]  # negatives below + half the tied, per record
    P, N = Ws @ pos, Ws @ neg
    num = (Ws * pos * credit).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((P > 0) & (N > 0), num / (P * N), np.nan)


def _figures(task, s, W, per_class=False):
    """{figure: (B,) values} of Scored `s` on the resamples W; NaN where a figure is undefined."""
    if not task.several:
        tp, fp, fn = W @ (s.y * s.pred), W @ ((1 - s.y) * s.pred), W @ (s.y * (1 - s.pred))
        return {"f1": _f1(tp, fp, fn), "auc": _auc(W, s.y, s.prob),
                "accuracy": (W @ (s.y == s.pred).astype(np.float64)) / W.sum(axis=1)}
    y, pred = s.y, s.pred
    tp, fp, fn = W @ (y * pred), W @ ((1 - y) * pred), W @ (y * (1 - pred))  # (B, K)
    support = W @ y
    f1 = np.where(support > 0, _f1(tp, fp, fn), np.nan)  # a class without positives has no F1 (left out of the mean)
    auc = np.stack([_auc(W, y[:, k], s.prob[:, k]) for k in range(y.shape[1])], axis=1)
    with warnings.catch_warnings():  # np.nanmean of an all-NaN row warns; its NaN is what we want
        warnings.simplefilter("ignore", RuntimeWarning)
        out = {"macro_f1": np.where(np.isnan(f1).all(axis=1), 0.0, np.nanmean(f1, axis=1)),
               "micro_f1": _f1(tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1)),
               "macro_auc": np.nanmean(auc, axis=1)}
    if per_class:
        for k in range(y.shape[1]):
            out[f"f1/{k}"], out[f"auc/{k}"] = f1[:, k], auc[:, k]
    return out


def resample_counts(n, n_resamples=N_RESAMPLES, seed=SEED):
    """The bootstrap resamples as record counts, in chunks of (b, n): row r says how often each of the n records was
    drawn (n draws with replacement). The same (n, n_resamples, seed) give the same resamples."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, CELLS_PER_CHUNK // max(n, 1)))
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(b, n)) + n * np.arange(b)[:, None]
        yield np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def _resampled(task, scored, seed, n_resamples, per_class=False):
    """{figure: (n_resamples,) values} of each Scored in `scored`, all on the same resamples of their records."""
    n = len(scored[0].names)
    if n == 0:
        raise ValueError("no test record has a truth: nothing to resample")
    parts = [[] for _ in scored]
    for W in resample_counts(n, n_resamples, seed):
        for part, s in zip(parts, scored):
            part.append(_figures(task, s, W, per_class))
    return [{k: np.concatenate([p[k] for p in part]) for k in part[0]} for part in parts]


def _ci(samples):
    """(2.5th, 97.5th percentile of the defined samples, number undefined); None when none is defined."""
    ok = samples[~np.isnan(samples)]
    if not len(ok):
        return None, len(samples)
    lo, hi = np.percentile(ok, [2.5, 97.5])
    return [float(lo), float(hi)], int(len(samples) - len(ok))


def _value(report, key, task):
    if "/" in key:
        kind, k = key.split("/")
        return report["per_class"][int(k)][kind]
    return report[key]


def _figure(value, samples):
    ci, undefined = _ci(samples)
    out = {"value": None if value is None else float(value), "ci95": None if value is None else ci}
    if undefined:
        out["n_undefined"] = undefined
    return out


# -- the protocol's functions ----------------------------------------------------------------------------------------
def test_figures(task, truth_path, names, answers, probs, seed=SEED, n_resamples=N_RESAMPLES, per_class=False):
    """{figure: {"value": v, "ci95": [low, high]}} for the task's headline figures (`headline`) of one
    configuration's `answers` and `probs` (one per name in `names`) against `truth_path`; "n_undefined" beside a
    figure counts the resamples where it was undefined (left out). Task 2 with `per_class`: also "per_class", one
    {"name", "support", "f1": {...}, "auc": {...}} per class. The values are task.score's; an undefined value
    (None) has no CI."""
    s = align(task, truth_path, names, answers, probs)
    samples = _resampled(task, [s], seed, n_resamples, per_class and task.several)[0]
    out = {k: _figure(_value(s.report, k, task), samples[k]) for k in headline(task)}
    if per_class and task.several:
        out["per_class"] = [{"name": r["name"], "support": r["support"],
                             "f1": _figure(r["f1"], samples[f"f1/{k}"]), "auc": _figure(r["auc"], samples[f"auc/{k}"])}
                            for k, r in enumerate(s.report["per_class"])]
    return out


test_figures.__test__ = False  # not a pytest test, though its name starts with test_


def mean_figure(values, seed=SEED, n_resamples=N_RESAMPLES):
    """{"value": the mean, "ci95": [low, high], "n"} of per-item values (one per record or page, e.g. a digitised
    page's SNR): the percentile bootstrap of the mean, the items resampled with replacement as `resample_counts`
    draws them. Values that are not finite are left out (and `n` counts those kept); without any, value None."""
    x = np.asarray(values, np.float64).ravel()
    x = x[np.isfinite(x)]
    if not len(x):
        return {"value": None, "ci95": None, "n": 0}
    means = np.concatenate([W @ x / len(x) for W in resample_counts(len(x), n_resamples, seed)])
    return {"value": float(x.mean()), "ci95": _ci(means)[0], "n": int(len(x))}


def paired_differences(task, truth_path, names, a, b, metrics=None, seed=SEED, n_resamples=N_RESAMPLES):
    """Configuration a = (answers_a, probs_a) minus b = (answers_b, probs_b), both over the same `names`, on each of
    `metrics` (default: the headline figures; Task 2 also "f1/<k>", "auc/<k>" of class index k, 0-based):
    {metric: {"a", "b", "diff", "ci95": [low, high], "p_a_not_better"}},
    the CI from the paired bootstrap (the same resampled records for both), p_a_not_better the share of resamples
    where the difference is <= 0. None values where a figure is undefined on the test records."""
    metrics = tuple(metrics or headline(task))
    sa, sb = align(task, truth_path, names, *a), align(task, truth_path, names, *b)
    pa, pb = _resampled(task, [sa, sb], seed, n_resamples, per_class=any("/" in m for m in metrics))
    out = {}
    for m in metrics:
        va, vb = _value(sa.report, m, task), _value(sb.report, m, task)
        d = pa[m] - pb[m]
        ok = d[~np.isnan(d)]
        defined = va is not None and vb is not None and len(ok) > 0
        ci, undefined = _ci(d)
        out[m] = {"a": va, "b": vb, "diff": float(va - vb) if defined else None, "ci95": ci if defined else None,
                  "p_a_not_better": float(np.mean(ok <= 0)) if defined else None}
        if undefined:
            out[m]["n_undefined"] = undefined
    return out


def paired_difference(task, truth_path, names, a, b, metric, seed=SEED, n_resamples=N_RESAMPLES):
    """`paired_differences` for one metric: {"a", "b", "diff", "ci95": [low, high], "p_a_not_better"}."""
    return paired_differences(task, truth_path, names, a, b, (metric,), seed, n_resamples)[metric]


# -- one predict.py run's predictions ---------------------------------------------------------------------------------
def read_predictions(task, report_path):
    """(names, answers, probabilities) of one predict.py run, from its report: the answer CSV it wrote (every test
    record) and predict_report_probabilities.csv (the fusion's rows when several models were fused, else the
    model's); a record no model could read (answered with the fallback) gets its answer as probability, as
    predict.py scores it."""
    import json
    from pathlib import Path

    from utils.ecg.io import CSV_ENCODING

    report = json.loads(Path(report_path).read_text())
    answer = Path(report["answer"])
    if not answer.is_absolute() and not answer.is_file():
        answer = Path(__file__).resolve().parents[1] / answer  # predict.py ran in the repository
    ref = task.read_truth(answer)  # an answer file is in the label file's format
    names, answers = list(ref), list(ref.values())
    table = pd.read_csv(report["probabilities"], dtype={"name": str, "model": str}, keep_default_na=False,
                        encoding=CSV_ENCODING)
    models = table["model"].unique()
    rows = table[table["model"] == ("fusion" if "fusion" in models else models[0])] if len(models) else table
    if len(models) > 1 and "fusion" not in models:
        raise ValueError(f"{report['probabilities']}: several models and no fusion rows")
    p = task.table_probs(rows[task.prob_columns()].to_numpy(np.float64))
    have = dict(zip(rows["name"], p))
    probs = [have[n] if n in have else task.as_probs(a) for n, a in zip(names, answers)]
    return names, answers, probs


def report_figures(task, truth_path, report_path, per_class=True, seed=SEED, n_resamples=N_RESAMPLES):
    """`test_figures` of one predict.py run (its report), per class too for Task 2."""
    return test_figures(task, truth_path, *read_predictions(task, report_path), seed=seed, n_resamples=n_resamples,
                        per_class=per_class)


def report_differences(task, truth_path, report_a, report_b, metrics=None, seed=SEED, n_resamples=N_RESAMPLES):
    """`paired_differences` of two predict.py runs (their reports) on the same test records: run a minus run b."""
    na, *a = read_predictions(task, report_a)
    nb, *b = read_predictions(task, report_b)
    if sorted(na) != sorted(nb):
        raise ValueError(f"{report_a} and {report_b} answer different test records: a paired comparison needs the same")
    order = {n: i for i, n in enumerate(nb)}
    b = [[v[order[n]] for n in na] for v in b]
    return paired_differences(task, truth_path, na, tuple(a), tuple(b), metrics, seed, n_resamples)


# -- choosing on the development records, comparing on the test records ----------------------------------------------
def choose(development, metric):
    """The name whose development-record figure (`development`: {name: {metric: value}}, validation or out-of-fold)
    is highest; None when none has it. The test fold never chooses."""
    have = {k: v[metric] for k, v in development.items() if v and v.get(metric) is not None}
    return max(have, key=have.get) if have else None


def compare(task, truth_path, reports, pairs, metrics=None, seed=SEED, n_resamples=N_RESAMPLES):
    """Test figures with CIs of each predict.py run in `reports` ({name: report path}) and the paired differences
    of each (a, b) in `pairs`: {"figures": {name: test_figures}, "differences": {a: {b: {metric: difference}}}}."""
    figures = {k: report_figures(task, truth_path, r, seed=seed, n_resamples=n_resamples) for k, r in reports.items()}
    diffs = {}
    for x, y in pairs:
        diffs.setdefault(x, {})[y] = report_differences(task, truth_path, reports[x], reports[y], metrics, seed,
                                                        n_resamples)
    return {"figures": figures, "differences": diffs}


def difference_lines(differences, metrics, note=None):
    """Printed lines per (a, b) pair: "a - b:", then one line per metric "f1 +0.0100 [-0.020, +0.041], p(not
    better) 0.27 (CI includes 0)". `note(a, b)` may add a text after the names."""
    lines = []
    for x, per in differences.items():
        for y, d in per.items():
            lines.append(f"  {x} - {y}{note(x, y) if note else ''}:")
            lines += [f"      {m:<10} {fmt_diff(d[m])}" for m in metrics]
    return lines


# -- printing and JSON --------------------------------------------------------------------------------------------------
def fmt_ci(fig, digits=4, ci_digits=2):
    """"0.9368 [0.89, 0.97]" of a {"value", "ci95"} figure ("n/a" when undefined)."""
    v = fig["value"]
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    ci = fig.get("ci95")
    return f"{v:.{digits}f}" + (f" [{ci[0]:.{ci_digits}f}, {ci[1]:.{ci_digits}f}]" if ci else "")


def fmt_diff(d, digits=4, ci_digits=3):
    """"+0.0123 [-0.021, 0.046], p(not better) 0.24" of a paired difference ("n/a" when undefined)."""
    if d["diff"] is None:
        return "n/a"
    lo, hi = d["ci95"]
    finding = "" if lo > 0 or hi < 0 else " (CI includes 0)"
    return (f"{d['diff']:+.{digits}f} [{lo:+.{ci_digits}f}, {hi:+.{ci_digits}f}], p(not better) "
            f"{d['p_a_not_better']:.2f}{finding}")


def with_ci(metrics, figs):
    """A copy of a predict report's `metrics` with "ci95": {figure: [low, high]} beside the values (and, for Task 2
    with per-class figures, "f1_ci95"/"auc_ci95" in each per_class row); every existing key kept as it is."""
    out = dict(metrics)
    out["ci95"] = {k: v["ci95"] for k, v in figs.items() if k != "per_class"}
    if "per_class" in figs and "per_class" in metrics:
        out["per_class"] = [{**r, "f1_ci95": f["f1"]["ci95"], "auc_ci95": f["auc"]["ci95"]}
                            for r, f in zip(metrics["per_class"], figs["per_class"])]
    return out


def bootstrap_info(seed=SEED, n_resamples=N_RESAMPLES):
    """What the JSON says about how its CIs were made."""
    return {"method": "percentile bootstrap over test records (paired for differences)", "ci": 0.95,
            "n_resamples": n_resamples, "seed": seed, "implementation": "bench/protocol.py (numpy)"}


def per_class_ci_lines(figs):
    """Task 2's per-class table with CIs."""
    rows = [f"  {k + 1:>2} {r['name']:<22} {r['support']:>7}  {fmt_ci(r['f1'], 3):<19} {fmt_ci(r['auc'], 3)}"
            for k, r in enumerate(figs["per_class"])]
    return ["  class                     support  F1 [95% CI]         AUC [95% CI]", *rows]
