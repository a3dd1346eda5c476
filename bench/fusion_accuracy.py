"""Fusion on real patients: k folds of each member family trained on PTB-XL, each family's folds fused, then all
members fused; every one scored on the same unseen test patients.

    python bench/fusion_accuracy.py [--src PTBXL_DIR] [--test-fold 8] [--members best|resnet1d,features[,resnet50]] [--task 1|2]
                                    [--num-folds 3] [--picture-folds 1] [--external RAW_DIR] [--work-dir DIR] [--json PATH]

Each member family trains with tools/train_kfold.py on the same seeded --num-folds split of the training folds
(the benches' CPU-sized configurations, bench/common.py). A picture model costs ~10x a signal model here, so picture
members train only the first --picture-folds folds. predict.py then scores each family (its folds fused) and the
fusion of every member, with thresholds tuned on out-of-fold predictions (a record is fused over the members that
validated it), once with the plain mean and once with --weights auto (fitted on out-of-fold predictions). Prints
one table: a row per member family and two for the fusion (F1/AUC for Task 1, macro F1/AUC for Task 2, each with
its 95% bootstrap CI over the test patients; the out-of-fold AUC; train minutes), then the paired differences
on the same test patients (bench/protocol.py) of each fusion minus each member and of the best member minus each
other member, the best member chosen by its out-of-fold AUC (the development records, never the test fold), and
the row the out-of-fold AUC would choose;
--json writes every figure (each row's "ci95" beside its values, "differences", "best_member").

--members best is the recommended configuration (BEST in bench/common.py, the one README names): the measurements
member features alone, its --num-folds folds averaged (the "fusion (mean)" row, the same predictions as its member
row). --members fusion is the recipe it replaced: resnet1d and features fused by stacking (predict.py --weights
auto: the "fusion (weights auto)" row). The JSON records the members a recipe expands to and "recipe": its name.
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.runtime import configure_cpu_threads  # noqa: E402

configure_cpu_threads()  # before paddle is imported: the scripts we start inherit the environment

from bench import common, protocol  # noqa: E402
from utils.scoring.metrics import fmt  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402


def run_external(a, dirs, every, work, times):
    """The same rows on an external converted set (its val/ records): {row: predict report}."""
    ext = Path(a.external).resolve()
    truth = common.truth_of(ext, a.task)
    ds, out = work / "external_dataset", work / "output"
    if any(common.is_picture(m) for m in dirs):
        common.stage("process external", ["process.py", "--data-dir", ext, "--out-dir", ds, "--size",
                                          common.IMAGE_SIZE], times)

    def predict(name, models, *extra):
        return common.predict(f"external_{name}", models, a.task, ext, ds, out, times, truth, *extra)

    reps = {arch: predict(arch, d) for arch, d in dirs.items()}
    reps["fusion"] = predict("fusion", every)
    if len(dirs) > 1:
        reps["fusion_auto"] = predict("fusion_auto", every, "--weights", "auto")
    return reps, truth


def out_of_fold(rep, kfold_dir=None):
    """A row's figures on the development records: a member's from its k-fold run (kfold_summary.json: every
    record validated by a fold, thresholds tuned on them), a fusion's cross-fitted ones (predict report)."""
    if kfold_dir is not None:
        summary = common.kfold_summary(kfold_dir)
        return summary["out_of_fold"] if summary is not None else None
    f = rep.get("fusion", {})
    return f.get("out_of_fold_crossfit") or f.get("out_of_fold")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default=str(ROOT.parent / "shared" / "data" / "ptbxl"))
    p.add_argument("--test-fold", type=int, default=8)
    p.add_argument("--members", default="resnet1d,resnet50", help="comma-separated --arch of each member family, or a recipe: best (BEST: the recommended configuration) | fusion (resnet1d + features stacked)")
    p.add_argument("--task", type=int, default=1, choices=(1, 2))
    p.add_argument("--num-folds", type=int, default=3)
    p.add_argument("--picture-folds", type=int, default=1, help="folds a picture member trains (CPU cost)")
    p.add_argument("--external", default=None, metavar="RAW_DIR", help="also score every row on this converted set")
    p.add_argument("--work-dir", default=None)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    members, recipe = common.members_of(p, a.members)
    work = Path(a.work_dir or tempfile.mkdtemp(prefix="fusion_accuracy_")).resolve()
    raw, ds, out = work / "raw", work / "dataset", work / "output"
    times = {}
    common.convert_ptbxl(a.src, raw, a.test_fold, times)
    if any(common.is_picture(m) for m in members):
        common.stage("process", ["process.py", "--data-dir", raw, "--out-dir", ds, "--size", common.IMAGE_SIZE], times)
    truth = common.truth_of(raw, a.task)

    def predict(name, models, *extra):
        return common.predict(name, models, a.task, raw, ds, out, times, truth, *extra)

    dirs = {}
    for arch in members:
        k = min(a.picture_folds, a.num_folds) if common.is_picture(arch) else a.num_folds
        folds = ",".join(map(str, range(k)))
        common.stage(f"train {arch}", ["tools/train_kfold.py", "--num-folds", a.num_folds, "--folds", folds,
                                       "--output-dir", out / arch, "--", *common.train_flags(arch, a.task, raw, ds)],
                     times)
        dirs[arch] = common.fold_models(out / arch, range(k))
    rows = {f"{arch} ({len(d)} fold{'s' * (len(d) > 1)})": (predict(arch, d), times[f"train {arch}"])
            for arch, d in dirs.items()}
    every = [m for d in dirs.values() for m in d]
    train_all = sum(times[f"train {m}"] for m in members)
    rows["fusion (mean)"] = (predict("fusion", every), train_all)
    if len(members) > 1:
        rows["fusion (weights auto)"] = (predict("fusion_auto", every, "--weights", "auto"), train_all)
    external, ext_truth = run_external(a, dirs, every, work, times) if a.external else ({}, None)

    task = get_task(a.task)
    keys = task.select_metrics  # the F1 and the AUC
    sel = keys[1]  # chooses on the development records: the threshold-free AUC
    member_rows = [f"{arch} ({len(d)} fold{'s' * (len(d) > 1)})" for arch, d in dirs.items()]
    fusion_rows = [k for k in rows if k not in member_rows]
    oof = {name: out_of_fold(rep, out / arch if name in member_rows else None)
           for (name, (rep, _)), arch in zip(rows.items(), [*dirs, *[None] * len(fusion_rows)])}
    best = protocol.choose({k: oof[k] for k in member_rows}, sel)
    chosen = protocol.choose(oof, sel)
    pairs = [(f, m) for f in fusion_rows for m in sorted(member_rows, key=lambda m: m != best)]
    pairs += [(best, m) for m in member_rows if best and m != best]  # the best member against the others
    cmp = protocol.compare(task, truth, {k: rep["report_path"] for k, (rep, _) in rows.items()}, pairs)
    ext_rows = dict(zip(rows, external.values())) if external else {}
    ext_cmp = (protocol.compare(task, ext_truth, {k: r["report_path"] for k, r in ext_rows.items()},
                                [(f, best) for f in fusion_rows] if best else []) if external else None)

    ext_keys = tuple(f"ext_{k}" for k in keys) if external else ()
    print(f"\n=== PTB-XL fusion, Task {a.task}: test fold {a.test_fold} "
          f"({rows['fusion (mean)'][0]['metrics']['n']} unseen patients), {a.num_folds}-fold split of the rest, CPU {os.cpu_count()} cores")
    print(f"{'member':<28} " + " ".join(f"{k:>20}" for k in keys + ext_keys) + f" {'oof ' + sel:>14} {'train min':>10}")
    table = {}
    for name, (rep, secs) in rows.items():
        m, figs = rep["metrics"], cmp["figures"][name]
        table[name] = {**{k: m[k] for k in keys}, "train_minutes": secs / 60, "oof": rep.get("fusion", {}).get("out_of_fold"),
                       "weights": rep.get("fusion", {}).get("fitted"), "ci95": {k: figs[k]["ci95"] for k in keys},
                       "out_of_fold": oof[name]}
        cells = [protocol.fmt_ci(figs[k]) for k in keys]
        if external:
            ext_figs = ext_cmp["figures"][name]
            table[name].update({f"ext_{k}": ext_rows[name]["metrics"][k] for k in keys})
            table[name]["ext_ci95"] = {k: ext_figs[k]["ci95"] for k in keys}
            cells += [protocol.fmt_ci(ext_figs[k]) for k in keys]
        o = oof[name][sel] if oof[name] else None
        print(f"{name:<28} " + " ".join(f"{c:>20}" for c in cells) + f" {fmt(o):>14} {secs / 60:>10.1f}")
    if external:
        print(f"ext_*: {a.external} ({next(iter(external.values()))['metrics']['n']} records of other hospitals, same models and thresholds)")
    print(f"oof {sel}: out-of-fold on the development records (a member: its k-fold run, thresholds tuned on them; a "
          f"fusion: cross-fitted); best member by it: {best}; the row it chooses: {chosen}")
    print(f"paired differences on the {rows['fusion (mean)'][0]['metrics']['n']} test patients (a minus b; "
          f"p(not better): share of resamples where a is not better):")
    mark = lambda x, y: " (best member by out-of-fold)" if y == best else ""  # noqa: E731
    print("\n".join(protocol.difference_lines(cmp["differences"], keys, mark)))
    if external and ext_cmp["differences"]:
        print("on the external records:")
        print("\n".join(protocol.difference_lines(ext_cmp["differences"], keys, mark)))
    print(protocol.HOW_TO_READ)
    print(protocol.PROTOCOL)
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + f", total {sum(times.values()) / 60:.1f} min")
    if a.json:
        Path(a.json).write_text(json.dumps({"task": a.task, "src": a.src, "test_fold": a.test_fold, "members": members,
                                            "recipe": recipe,
                                            **({"recipe_row": common.recipe_row(recipe)} if recipe else {}),
                                            "num_folds": a.num_folds, "picture_folds": a.picture_folds,
                                            "configs": {m: common.train_flags(m, a.task, "RAW", "DATASET")
                                                        for m in members},
                                            "table": table, "reports": {k: r for k, (r, _) in rows.items()},
                                            "best_member": {"name": best, "by": f"out-of-fold {sel}"},
                                            "chosen_by_out_of_fold": {"name": chosen, "by": f"out-of-fold {sel}"},
                                            "figures": cmp["figures"], "differences": cmp["differences"],
                                            **({"external_figures": ext_cmp["figures"],
                                                "external_differences": ext_cmp["differences"]} if external else {}),
                                            "bootstrap": protocol.bootstrap_info(), "seconds": times},
                                           indent=2, default=str) + "\n")
        print(f"figures: {a.json}")


if __name__ == "__main__":
    main()
