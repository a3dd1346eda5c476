"""Step 3 of 3: predict every test record with the best model (or a fusion of models) and write answer.csv
(+ answer.zip to submit).

    python predict.py [--task 1|2] --data-dir RAW_DIR --dataset-dir DATASET_DIR --model DIR [DIR ...] --out ANSWER_CSV
                      [--weights W1,W2,...] [--truth FILE] [--export DIR] [--printouts DIR]
    python predict.py --images PICTURES_DIR --model DIR [DIR ...] --out ANSWER_CSV [--printouts DIR] [--digitized DIR]

The test records are the MAT files in RAW_DIR/val/: each gets exactly one row, sorted by name. Each --model reads
its own input (a picture model the pictures in DATASET_DIR/val, a signal model the records themselves) with its
own preprocessing; several models are fused: the mean of their probabilities (weighted with --weights), or with
--weights auto a logistic regression stacked on their out-of-fold logits, decided with thresholds tuned on the
members' out-of-fold validation predictions (utils/scoring/fusion.py). A record no model
could read gets the training set's most frequent answer, with a warning and a line in the report. --model may
also be a directory written by --export (Paddle Inference). A Task 2 model also writes the Task 1 answer
(abnormal = anything but "normal" alone) as ANSWER_CSV with _task1 before the extension. --printouts DIR also
draws every test record as an electrocardiograph prints it, with its measurements and the answer (and, with
--truth, the true labels and a mark where the answer is wrong), and DIR/index.html (utils/report/).

--images answers pictures of printed ECGs (scans, photos) instead: each PNG/JPEG is digitised (utils/paper/, as
tools/digitize.py does) into --digitized DIR/val/<picture stem>.mat (DIR/val/digitize.csv says how each was read),
and those records are answered by any model; a picture model reads them drawn with its own settings. Every
picture gets one row; one not read (not an ECG page, a layout not read) gets the fallback answer and its reason.
Where paper did not print a lead the record holds NaN, filled before any model reads it (utils/ecg/gaps.py).
--printouts then also draws each record as read beside its picture (<name>_paper.jpg).
"""
from utils.runtime import configure_cpu_threads

configure_cpu_threads()  # before paddle is imported

import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from models.families import family_of, list_test_records  # noqa: E402
from models.inference import export_model, predict_member  # noqa: E402
from utils.artifacts import ModelCard, write_answer_files  # noqa: E402
from utils.atomic import atomic_path, resolve_dir, write_text  # noqa: E402
from utils.config import parse_config, script_constants  # noqa: E402
from utils.errors import CheckpointError, ConfigError  # noqa: E402
from utils.runtime import get_logger, run_script, select_device  # noqa: E402
from utils.scoring.fusion import Fusion, parse_weights  # noqa: E402
from utils.scoring.metrics import fmt  # noqa: E402
from utils.scoring.plots import plot_per_class  # noqa: E402
from utils.report.pages import PDF_MODES  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402

# -- configuration (every constant is also a flag: MODEL -> --model) -----------------------------------------
TASK = 1  # 1: answer.csv holds name,tag | 2: header-less rows name,i1,i2,... (the model must be of this task)
DATA_DIR = "dataset/sample"  # raw competition layout: the test records are DATA_DIR/val/*.mat
DATASET_DIR = "dataset"  # pictures from process.py: DATASET_DIR/val/<name>.png (picture models)
MODEL = ["output/best_model"]  # one or more model directories (from train.py or --export); several are fused
WEIGHTS = ""  # fusion: one weight per --model, comma-separated (default: equal), or auto (stacking on out-of-fold logits)
OUT = "answer.csv"  # answer.zip is written beside it
BATCH_SIZE = 16
NUM_WORKERS = 2
PREP_WORKERS = 0  # processes that preprocess or measure test records not yet cached (signal, features); 0: one per core
LOADER_TIMEOUT = 300.0  # seconds the DataLoader may wait for one batch before prediction stops with an error naming it
TRUTH = ""  # optional labels of the test records (the task's format): prints and saves the scores
REPORT = ""  # default: predict_report.json beside the model directory (output/predict_report.json)
EXPORT = ""  # also save a static inference model (paddle.jit.save) to this directory
DEVICE = "auto"
TENSORRT = False  # exported models on GPU: use TensorRT
PRINTOUTS = ""  # also draw a printed page per test record (ECG, measurements, answer) and index.html in this folder
PRINTOUT_WORKERS = 0  # printouts: processes drawing pages (0: every core)
PRINTOUT_PDF = "each"  # printouts: a PDF per record (each), one printouts.pdf (all) or PNG only (none)
IMAGES = ""  # pictures of printed ECGs (PNG, JPEG) to answer instead of DATA_DIR/val: each is digitised, then answered
DIGITIZED = ""  # --images: where the records read from them go (default: beside OUT, <OUT stem>_digitized)
# ------------------------------------------------------------------------------------------------------------


def existing_model_dir(model_dir):
    """The model directory, or the one error every --model gets when it is not there, whatever its position."""
    model_dir = resolve_dir(model_dir)
    if not model_dir.is_dir():
        raise CheckpointError(f"{model_dir}: model directory not found (train.py writes output/best_model)")
    return model_dir


def load_card(model_dir, task):
    """(model directory, its card), for a model made for this task (a clear error for the other task's model)."""
    model_dir = existing_model_dir(model_dir)
    card = ModelCard.read(model_dir)
    if card.task != task.number or card.num_classes != task.num_outputs:
        raise CheckpointError(f"{model_dir}: a Task {card.task} model ({card.num_classes} outputs), but this run is "
                              f"--task {task.number} ({task.num_outputs} outputs); pass --task {card.task} or a Task "
                              f"{task.number} model")
    return model_dir, card


def check_same_task(model_dirs):
    """Fused models must answer the same task: name each member's when they do not."""
    tasks = {str(d): ModelCard.read(d).task for d in model_dirs}
    if len(set(tasks.values())) > 1:
        raise CheckpointError(f"{', '.join(tasks)}: cannot fuse models of different tasks ("
                              + ", ".join(f"{d}: Task {t}" for d, t in tasks.items()) + ")")


def plan_fusion(text, members, task, log):
    """The Fusion of several members (None for one model, whose own thresholds decide)."""
    if len(members) == 1:
        if text not in ("", "auto"):
            parse_weights(text, 1)  # still a bad flag when it cannot be read
        return None
    return Fusion(text, [d for d, _ in members], [card.arch for _, card in members], task, log)


def score(task, cfg, names, probs, thresholds, fallback):
    """Answers from probabilities (fallback where there are none) and, with --truth, their scores."""
    decided = dict(zip(probs, task.decide(np.array([probs[n] for n in probs]), thresholds))) if probs else {}
    answers = [decided.get(n, fallback) for n in names]  # one answer per test record, by construction
    if not cfg["TRUTH"]:
        return answers, None, []
    scores = [probs[n] if n in probs else task.as_probs(a) for n, a in zip(names, answers)]  # fallback: its answer
    m, lines, unmatched = task.score(cfg["TRUTH"], names, answers, scores)
    return answers, m, lines + ([f"warning: {unmatched} records of {cfg['TRUTH']} are not among the test records"] if unmatched else [])


def main(argv=None):
    cfg = parse_config(script_constants(globals()), argv, description=__doc__.split("\n")[0], source_file=__file__,
                       choices={"PRINTOUT_PDF": PDF_MODES})
    log = get_logger()
    t0 = time.time()
    task = get_task(cfg["TASK"])
    device = select_device(cfg["DEVICE"], log)
    dirs = [existing_model_dir(d) for d in ([cfg["MODEL"]] if isinstance(cfg["MODEL"], str) else cfg["MODEL"])]
    if len(dirs) > 1:
        check_same_task(dirs)
    members = [load_card(d, task) for d in dirs]
    fusion = plan_fusion(cfg["WEIGHTS"], members, task, log)
    if cfg["EXPORT"] and len(members) > 1:
        raise ConfigError("--export saves one model: pass a single --model")
    paper = read_images(cfg, members, log) if cfg["IMAGES"] else None  # points DATA_DIR (and DATASET_DIR) at them
    names = paper["names"] if paper else list_test_records(cfg["DATA_DIR"])

    results = []
    for model_dir, card in members:
        probs, missing, model = predict_member(model_dir, card, task, cfg, names, device, log)
        if paper:  # a picture not read has no record: say why, not "record file not found"
            missing.update({n: why for n, why in paper["not_read"].items() if n in missing})
        results.append({"dir": model_dir, "card": card, "probs": probs, "missing": missing})
        if cfg["EXPORT"]:
            if model is None:
                raise CheckpointError(f"{model_dir}: --export needs a train.py network model directory (not an "
                                      f"exported one, nor a features model, which has no network)")
            export_model(model, cfg["EXPORT"], family_of(card).input_spec(card.input), card)
            log.info(f"exported static inference model to {cfg['EXPORT']}")

    fallback = members[0][1].fallback_answer
    if fusion is None:
        thresholds, tuned_on, probs = members[0][1].thresholds, members[0][1].tuned_on, results[0]["probs"]
    else:
        thresholds, tuned_on = fusion.thresholds, fusion.report["tuned_on"]
        probs = fusion.fuse([r["probs"] for r in results], names)
    answers, metrics, lines = score(task, cfg, names, probs, thresholds, fallback)
    missing = {n: why_missing(n, results) for n in names if n not in probs}
    for n, why in missing.items():
        log.warning(f"{n}: {why} -> answered with the training set's most frequent answer {fallback}")
    report = {"task": task.number, "model": str(members[0][0]), "models": [str(d) for d, _ in members],
              "thresholds": thresholds, "tuned_on": tuned_on, "n_records": len(names), "n_predicted": len(probs), "answer": str(cfg["OUT"]),
              **write_answer_files(task.answer_files(names, answers, cfg["OUT"])),
              "fallback": [{"name": n, "reason": r, "answer": fallback} for n, r in missing.items()]}
    if fusion is not None:
        report["fusion"] = fusion.report
    if paper:
        report["images"] = {"folder": str(cfg["IMAGES"]), "digitized": str(cfg["DATA_DIR"]), "n_read": len(names) -
                            len(paper["not_read"]), "not_read": paper["not_read"]}
    titles = member_titles(members)
    if cfg["PRINTOUTS"]:
        report["printouts"] = str(draw_printouts(cfg, task, names, answers, probs, thresholds, results, titles,
                                                 missing, fusion, log, paper["images"] if paper else None))

    report_path = Path(cfg["REPORT"]) if cfg["REPORT"] else members[0][0].parent / "predict_report.json"
    if metrics is not None:
        for line in lines:
            log.info(line)
        report["metrics"] = metrics
        if "per_class" in metrics:
            fig = report_path.with_name(report_path.stem + "_per_class.png")
            plot_per_class(metrics["per_class"], fig, f"test ({metrics['n']} records)")
            report["per_class_figure"] = str(fig)
        if len(results) > 1:
            report["members"] = score_members(task, cfg, names, results, titles, metrics, log)
    report["probabilities"] = str(write_probabilities(task, report_path, names, results, probs))
    report["seconds"] = round(time.time() - t0, 2)
    write_text(report_path, json.dumps(report, indent=2, allow_nan=False) + "\n")
    zips = ", ".join(v for k, v in report.items() if k.endswith("zip"))
    log.info(f"wrote {cfg['OUT']} ({len(answers)} rows) and {zips}; report {report_path}")
    return report


def why_missing(name, results):
    """Why no model answered `name`: each model's reason, or the one reason when they all give it."""
    reasons = [(r["dir"], r["missing"][name]) for r in results if name in r["missing"]]
    if len({why for _, why in reasons}) == 1:
        return reasons[0][1] if len(results) > 1 else f"{reasons[0][0].name}: {reasons[0][1]}"
    return "; ".join(f"{d}: {why}" for d, why in reasons)


# Significant digits of the probabilities CSV: benches score test rows from it, and at 6 digits probabilities closer
# than that became ties, moving an AUC away from the report's own (seen with a features model fitted on 30 records)
PROB_DIGITS = 9


def write_probabilities(task, report_path, names, results, fused):
    """Every model's probabilities per test record (and the fusion's), beside the report: model, name, p_<class>."""
    tables = [task.prob_table(list(r["probs"]), [r["probs"][n] for n in r["probs"]], model=str(r["dir"])) for r in results]
    if len(results) > 1:
        tables.append(task.prob_table(list(fused), [fused[n] for n in fused], model="fusion"))
    path = report_path.with_name(report_path.stem + "_probabilities.csv")
    with atomic_path(path) as tmp:
        pd.concat(tables, ignore_index=True).to_csv(tmp, index=False, float_format=f"%.{PROB_DIGITS}g")
    return path


def member_titles(members):
    """How tables and printouts name each model: its family and validation fold ("features (fold 0)"), with its
    directory's parent folder added where two would read alike ("resnet50 (fold 0, kfold_a)")."""
    titles = [card.display_name for _, card in members]
    return [f"{title[:-1]}, {d.parent.name})" if titles.count(title) > 1 and title.endswith(")")
            else f"{title} ({d.parent.name})" if titles.count(title) > 1 else title
            for title, (d, _) in zip(titles, members)]


def score_members(task, cfg, names, results, titles, fused_metrics, log):
    """Each member scored alone (its own thresholds) beside the fusion: a table in the log, a list in the report."""
    rows = []
    for r, title in zip(results, titles):
        card = r["card"]
        _, m, _ = score(task, cfg, names, r["probs"], card.thresholds, card.fallback_answer)
        rows.append({"model": str(r["dir"]), "title": title, "arch": card.arch, "metrics": m})
    keys = task.headline
    width = max(len("fusion"), *(len(r["title"]) for r in rows))
    log.info(f"{'model':<{width}} " + " ".join(f"{k:>10}" for k in keys))
    for title, m in [(r["title"], r["metrics"]) for r in rows] + [("fusion", fused_metrics)]:
        log.info(f"{title:<{width}} " + " ".join(f"{fmt(m[k]):>10}" for k in keys))
    return rows


FUSION_TEXT = {"mean": "mean of {} models", "weights": "weighted mean of {} models", "stacking": "stacking of {} models"}


def read_images(cfg, members, log):
    """--images: every picture digitised into DIGITIZED/val (utils/paper/), which becomes DATA_DIR; for picture
    models, the records read are drawn with the model's own settings into DIGITIZED/pictures (DATASET_DIR). Returns
    {"names": one per picture, "not_read": {name: why}, "images": {name: picture}}."""
    from utils.inputs.pictures import PAPER_LAYOUT
    from utils.paper.folder import digitize_folder, find_pictures, render_records

    drawn = {json.dumps(card.input.get("render_config") or {}, sort_keys=True) for _, card in members
             if family_of(card).name == "picture"}
    if len(drawn) > 1:
        raise ConfigError("--images: the picture models were trained on pictures drawn with different settings; "
                          "fuse picture models drawn alike")
    if drawn and json.loads(next(iter(drawn))).get("layout") == PAPER_LAYOUT:
        raise ConfigError("--images: a picture model trained on paper pages (render_config layout "
                          f"{PAPER_LAYOUT!r}) reads the pages themselves, not records drawn again: give them as "
                          "--dataset-dir DIR/val/<name>.png with the pages' render_config.json")
    images = find_pictures(cfg["IMAGES"])
    work = Path(cfg["DIGITIZED"] or Path(cfg["OUT"]).with_name(Path(cfg["OUT"]).stem + "_digitized"))
    rows = digitize_folder(cfg["IMAGES"], work / "val", cfg["PREP_WORKERS"])
    not_read = {r["name"]: f"picture not read ({r['status']}: {r['error']})" for r in rows if r["status"] != "ok"}
    log.info(f"digitised {len(rows) - len(not_read)} of {len(rows)} pictures of {cfg['IMAGES']} into {work / 'val'} "
             f"(digitize.csv beside them)" + (f"; not read: {', '.join(not_read)}" if not_read else ""))
    cfg["DATA_DIR"] = str(work)
    if drawn:
        cfg["DATASET_DIR"] = str(work / "pictures")
        render_records(work / "val", work / "pictures", json.loads(drawn.pop()))
    first = {}
    for p in images:  # the picture each name was read from (the first of a name, as the digitiser reads)
        first.setdefault(p.stem, p)
    return {"names": [r["name"] for r in rows], "not_read": not_read, "images": first}


def draw_printouts(cfg, task, names, answers, probs, thresholds, results, titles, missing, fusion, log, images=None):
    """A printed page per test record with its answer (utils/report/), and the index; returns the index's path.
    A record no model could read still gets its page: the fallback answer, and why its record could not be read."""
    from utils.report.pages import Verdict, write_printouts

    t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64)).tolist()
    method = FUSION_TEXT.get(fusion.report.get("method"), "fusion of {} models").format(len(results)) if fusion else ""

    def member_probs(n):
        if len(results) == 1:
            return {}
        return {title: (np.atleast_1d(r["probs"][n]).astype(float).tolist() if n in r["probs"] else None)
                for title, r in zip(titles, results)}

    verdicts = {n: Verdict(task.number, a, np.atleast_1d(probs[n]).astype(float).tolist() if n in probs else None, t,
                           member_probs(n), missing.get(n), method) for n, a in zip(names, answers)}
    truth = task.read_truth(cfg["TRUTH"]) if cfg["TRUTH"] else None
    who = f"the {method}: " + ", ".join(titles) if fusion else titles[0]
    return write_printouts(cfg["PRINTOUTS"], {n: Path(cfg["DATA_DIR"]) / "val" / f"{n}.mat" for n in names}, verdicts,
                           truth, task.number, cfg["PRINTOUT_WORKERS"], cfg["PRINTOUT_PDF"],
                           f"answers of {who}", log=log.info, images=images)


if __name__ == "__main__":
    run_script(main)
