"""Step 2 of 3: train a model: by default fine-tune an ImageNet-pretrained ResNet50 on the rendered ECG pictures.

    python train.py [--task 1|2] [--arch resnet50] --dataset-dir DATASET_DIR --output-dir OUT_DIR [--iters N] [--batch-size B]
                    [--image-size S] [--pretrained auto|none|PATH] [--num-workers W] [--eval-interval N]
                    [--save-interval N] [--resume auto|DIR] [--overwrite] [--seed S]
    python train.py --arch resnet1d --data-dir RAW_DIR --output-dir OUT_DIR [--task 1|2] [--iters N] [--val-fold K]
                    [--crop-seconds 2.5] [--tta-stride-seconds 1.25 --tta-agg mean|max]
                    (or --arch xresnet1d18 | xresnet1d34 | xresnet1d50 | xresnet1d101 | inception1d)

--arch picks the model family (models/families.py): resnet18/34/50/101 read process.py's pictures (DATASET_DIR);
the signal family (resnet1d, xresnet1d18/34/50/101, inception1d) reads the MAT records themselves (DATA_DIR),
trains on random crops of --crop-seconds and validates (and predict.py predicts) on the whole record or, with
--tta-stride-seconds, on sliding windows of the crop's length whose probabilities are aggregated (--tta-agg).
Every constant below is a flag (IMAGE_SIZE -> --image-size), grouped by who reads it: every family, the networks'
training loop, one family (models/families.py reads its own: options(cfg)), or the run's control.
Multi-GPU (or 2 CPU processes, gloo):
    python -m paddle.distributed.launch --nproc_per_node 2 train.py ...
Several machines: the same command on each, with its own --rank (0 on the machine at HOST):
    python -m paddle.distributed.launch --nnodes 2 --master HOST:PORT --rank R --nproc_per_node G train.py ...
"""
from utils.runtime import configure_cpu_threads

configure_cpu_threads()  # before paddle is imported

import random  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from models.families import Sources, get_family  # noqa: E402
from utils.artifacts import BEST_DIR, IMPORTANCE_FILE, ModelCard  # noqa: E402
from utils.config import parse_config, script_constants  # noqa: E402
from utils.ecg.gain import AMPLITUDES as AMPLITUDE_VIEWS  # noqa: E402
from utils.errors import ConfigError, ECGDataError  # noqa: E402
from utils.inputs.loading import close_all  # noqa: E402
from utils.inputs.signals import AGGREGATIONS, card_windows  # noqa: E402
from utils.runtime import get_logger, run_script, select_device, worker_count  # noqa: E402
from utils.scoring.plots import plot_importance  # noqa: E402
from utils.scoring.tasks import get_task  # noqa: E402
from utils.training.engine import Network, build_loaders, build_optimizer, build_scheduler, setup_amp, train  # noqa: E402
from utils.training.losses import build_loss  # noqa: E402
from utils.training.mixup import build_mix  # noqa: E402
from utils.training.progress import VDLWriter  # noqa: E402
from utils.training.runs import Run, begin, begin_or_resume, new_state, refit_allowed, run_signature  # noqa: E402
from utils.training.sampling import split_records  # noqa: E402

# -- configuration: the original design's defaults (full size, meant for a GPU) -----------------------------
# common: every family
TASK = 1  # 1: normal/abnormal (F1) | 2: the 12 diagnoses, several per record (per-class F1)
ARCH = "resnet50"  # pictures: resnet18 | resnet34 | resnet50 | resnet101; raw signal: resnet1d | xresnet1d18 | xresnet1d34 | xresnet1d50 | xresnet1d101 | inception1d; measurements: features
DATASET_DIR = "dataset"  # pictures (picture models), written by process.py: train/*.png + trainreference.csv
DATA_DIR = "dataset/sample"  # raw records (signal family, features): train/*.mat + trainreference.csv
OUTPUT_DIR = "output"
NUM_FOLDS = 10  # stratified folds (never splitting a record_groups.csv group); one validates: 90/10 (original: 1440/160)
VAL_FOLD = 0  # which fold validates (k-fold: run 0..NUM_FOLDS-1)
SEED = 2021  # fixes the split, initial weights, sample order and every augmentation draw
SELECT_METRIC = "auto"  # best_model chosen by: auto = f1 (task 1) / macro_f1 (task 2); or auc / macro_auc (threshold-free)
PREP_WORKERS = 0  # processes that preprocess or measure records not yet cached (signal family, features); 0: one per core (of this rank)
# training loop: the networks (picture and signal families); a features model is fitted at once without them
BATCH_SIZE = 32
ITERS = 10000
LR = 0.001  # base learning rate
WARMUP_ITERS = 200  # LinearWarmup from 0 to LR ...
END_LR = 1e-8  # ... then PolynomialDecay to END_LR at the last iteration
POWER = 0.9
OPTIMIZER = "auto"  # auto: momentum for pictures (the original), adam for the signal family | momentum | adam
MOMENTUM = 0.9
WEIGHT_DECAY = 2e-4
MIXUP = 0.0  # mixup: train on blends of two records of a batch, lam ~ Beta(MIXUP, MIXUP), and the same blend of their losses; 0 = off
PRETRAINED = "auto"  # auto (ImageNet via Paddle's download/cache) | none | path/to/weights.pdparams
POS_WEIGHT = "sqrt"  # task 2: weight of each class's positives in the loss: none | sqrt | balanced (negatives/positives)
MAX_POS_WEIGHT = 10.0  # task 2: cap on that weight
AMP = False  # GPU only: automatic mixed precision (bf16 where supported, else fp16)
NUM_WORKERS = 4  # DataLoader worker processes
LOADER_TIMEOUT = 300.0  # seconds a DataLoader may wait for one batch before the run stops with an error naming it
LOG_ITERS = 10
EVAL_INTERVAL = 0  # iterations between evaluations; 0 = once per epoch
SAVE_INTERVAL = 1000  # iterations between checkpoints (and always at the last one)
KEEP_CHECKPOINTS = 3  # this run's latest checkpoints kept; other runs' are never touched
MAX_MINUTES = 0.0  # budget of training time (evaluations and checkpoints not counted): stop after the first evaluation past it, saving a checkpoint as at the last iteration; 0 = no limit
USE_VDL = False  # VisualDL scalars in OUTPUT_DIR/vdl (view: visualdl --logdir OUTPUT_DIR/vdl)
# picture family (PictureOptions)
IMAGE_SIZE = 640
# signal family (SignalOptions)
CROP_SECONDS = 8.0  # signal family: training crops (random, in seconds; > 0 and <= 10); the PTB-XL benchmark uses 2.5
TTA_STRIDE_SECONDS = 0.0  # signal family: 0 = validate/predict on the whole record; > 0 = on windows of CROP_SECONDS this far apart
TTA_AGG = "mean"  # signal family, with TTA_STRIDE_SECONDS: a record's probability is the mean | max of its windows'
# features family (FeaturesOptions, and the importance figure)
GAIN_AUGMENT = 0.0  # features: also train on every record as if recorded at gain 1-G and 1+G (other devices' calibration); 0 = off
AMPLITUDES = "absolute"  # features: amplitude measurements as measured | relative (divided by the record's median QRS amplitude: blind to gain) | both
IMPORTANCE_REPEATS = 5  # features: shuffles per measurement for the permutation-importance figure; 0 skips it
# run control: where a run starts from, what it may replace, where it runs
RESUME = ""  # auto (this run's latest compatible checkpoint in OUTPUT_DIR) | output/iter_N
OVERWRITE = False  # a new run may delete another run's checkpoints and best_model in OUTPUT_DIR
TRUST_PICKLE = False  # --resume an earlier version's checkpoint: its trainer.pkl is a pickle, which can run code (only your own)
DEVICE = "auto"  # auto | cpu | gpu | gpu:N
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Job:
    """One training run as main() builds it, handed whole to the path that trains it (train_network or
    fit_at_once): its settings {CONSTANT: value}, task, family and the family's options, the labelled records and
    their split, the card its best_model gets, the metric that chooses it, where it writes and its log."""

    cfg: dict
    task: object
    family: object
    options: object
    labelled: object
    train_df: object
    val_df: object
    card: ModelCard
    select: str
    out: Path
    log: object


def main(argv=None):
    cfg = parse_config(script_constants(globals()), argv, description=__doc__.split("\n")[0], source_file=__file__,
                       choices={"TTA_AGG": AGGREGATIONS, "AMPLITUDES": AMPLITUDE_VIEWS})
    family = get_family(cfg["ARCH"])
    options = family.options(cfg)  # its settings checked before any record is read
    world, rank = paddle.distributed.get_world_size(), paddle.distributed.get_rank()
    out = Path(cfg["OUTPUT_DIR"])
    log = get_logger(out / "train.log" if rank == 0 else None, quiet=rank != 0)
    device = select_device(cfg["DEVICE"], log)
    if world > 1:
        paddle.distributed.init_parallel_env()
    random.seed(cfg["SEED"])
    np.random.seed(cfg["SEED"] + rank)
    paddle.seed(cfg["SEED"])  # same initial weights on every rank

    task = get_task(cfg["TASK"])
    select = select_metric(cfg["SELECT_METRIC"], task)
    labelled, train_df, val_df = load_split(cfg, task, family, log)
    log.info(f"data (task {task.number}): {len(labelled.refs)} labelled records -> train {len(train_df)} "
             f"({task.describe(train_df['y'])}), validation {len(val_df)} ({task.describe(val_df['y'])}), "
             f"fold {cfg['VAL_FOLD']} of {cfg['NUM_FOLDS']}")
    card = ModelCard(task=task.number, arch=cfg["ARCH"], num_classes=task.num_outputs, input={}, thresholds=None,
                     fallback_answer=task.most_frequent(labelled.refs["y"]), class_names=list(task.class_names), config=cfg)
    job = Job(cfg, task, family, options, labelled, train_df, val_df, card, select, out, log)
    return train_network(job, world, rank, device) if family.iterative else fit_at_once(job)


def sources(cfg):
    """Where the families read their inputs (models/families.Sources) under these settings."""
    return Sources(Path(cfg["DATA_DIR"]), Path(cfg["DATASET_DIR"]), worker_count(cfg.get("PREP_WORKERS", 0)))


def load_split(cfg, task, family, log=None):
    """(the labelled records the family can read, training rows, validation rows) of the seeded folds. The folds
    are made over every record of the label file, a group (record_groups.csv beside it) never split, and only then
    are the records the family cannot read left out: the same folds for every family."""
    log = log or get_logger()
    labelled = family.labels(task, sources(cfg), log)
    if len(labelled.refs) == 0:
        raise ECGDataError(labelled.label_file, "the training set is empty (no labelled record can be read)")
    train_df, val_df = split_records(labelled.refs, task, cfg["NUM_FOLDS"], cfg["VAL_FOLD"], cfg["SEED"], labelled.label_file,
                                     listed=labelled.listed, log=log)
    return labelled, train_df, val_df


def select_metric(name, task):
    """The validation metric that chooses best_model."""
    name = task.select_metrics[0] if name == "auto" else name
    if name not in task.select_metrics:
        raise ConfigError(f"--select-metric {name}: task {task.number} offers {', '.join(('auto',) + task.select_metrics)}")
    return name


def train_network(job, world, rank, device):
    """Build what the loop trains (the family's datasets, the loaders, the network, its LR schedule and optimizer,
    the task's loss, mixed precision) and the run (new, or resumed from a checkpoint), then train it for ITERS
    iterations (utils/training/engine.py: PaddleSeg's loop and log lines), evaluating and checkpointing as it goes."""
    cfg, task, family, card, out, log = job.cfg, job.task, job.family, job.card, job.out, job.log
    loss = build_loss(task, job.train_df["y"], cfg["POS_WEIGHT"], cfg["MAX_POS_WEIGHT"])
    mix = build_mix(cfg["MIXUP"])
    train_ds, val_ds, card.input = family.datasets(task, job.labelled, job.train_df, job.val_df, sources(cfg), job.options,
                                                   log)
    sampler, loader, val_loader = build_loaders(train_ds, val_ds, cfg["BATCH_SIZE"], cfg["SEED"], cfg["NUM_WORKERS"], world,
                                                cfg["LOADER_TIMEOUT"])
    try:  # the loaders' worker processes end with this function, whether it returns or raises
        model = family.build(cfg["ARCH"], task.num_outputs, cfg["PRETRAINED"])
        scheduler = build_scheduler(cfg["LR"], cfg["ITERS"], cfg["WARMUP_ITERS"], cfg["END_LR"], cfg["POWER"])
        optimizer = build_optimizer(family.optimizer if cfg["OPTIMIZER"] == "auto" else cfg["OPTIMIZER"], scheduler, model,
                                    cfg["MOMENTUM"], cfg["WEIGHT_DECAY"])
        amp_dtype, scaler = setup_amp(cfg["AMP"], device, log)
        state = begin_or_resume(cfg["RESUME"], cfg["OVERWRITE"], out, run_signature(cfg, world, job.train_df, job.val_df),
                                model, optimizer, scaler, log, cfg["TRUST_PICKLE"])
        run = Run(out, state, card, task, job.select, job.val_df["name"], log)
        vdl = VDLWriter(out / "vdl", state["history"]) if cfg["USE_VDL"] and rank == 0 else None
        windows = card_windows(card.input)  # validation runs the records as predict.py will
        net = Network(paddle.DataParallel(model) if world > 1 else model, optimizer, scheduler, loss, sampler, loader,
                      val_loader, windows, amp_dtype, scaler, mix)
        log.info(f"run {state['run_id']}: {cfg['ARCH']} ({family.name}), {cfg['ITERS']} iterations ({len(sampler)} per "
                 f"epoch), batch {cfg['BATCH_SIZE']} x {world} process(es), input {family.input_spec(card.input)[1:]}, "
                 f"device {device}, pretrained {cfg['PRETRAINED']}")
        train(net, run, cfg, world, rank, vdl)
    finally:
        close_all(loader, val_loader)

    if rank == 0:
        if vdl:
            vdl.close()
        run.finish(f"; VisualDL: visualdl --logdir {out / 'vdl'}" if vdl else "")
    return state


def fit_at_once(job):
    """Fit a model that needs no iterations (measurements + gradient boosting) and save it as best_model, with
    the same card, val_predictions.csv and finish as a network."""
    cfg, task, family, out, log = job.cfg, job.task, job.family, job.out, job.log
    signature = run_signature(cfg, 1, job.train_df, job.val_df)
    state = begin(out, new_state(signature), cfg["OVERWRITE"] or refit_allowed(cfg["RESUME"], out, signature, log), log)
    log.info(f"run {state['run_id']}: {cfg['ARCH']} ({family.name}), fitted at once: --iters, --lr, --batch-size and the "
             f"other loop settings do not apply")
    t0 = time.time()
    model, probs, job.card.input = family.fit(task, job.labelled, job.train_df, job.val_df, cfg["SEED"], job.options, log)
    state["train_seconds"] = time.time() - t0  # its evaluation record's time, as a network's
    job.card.extra["fit_seconds"] = round(state["train_seconds"], 1)
    labels = task.label_array(job.val_df["y"])
    tables = {}
    if cfg["IMPORTANCE_REPEATS"] > 0:
        tables[IMPORTANCE_FILE] = family.importance(model, task, job.labelled, job.val_df, labels, cfg["IMPORTANCE_REPEATS"])
    state["iter"] = 1
    run = Run(out, state, job.card, task, job.select, job.val_df["name"], log)
    run.evaluate(1, labels, probs, write=model.save, tables=tables)
    note = ""
    if IMPORTANCE_FILE in tables:
        plot_importance(tables[IMPORTANCE_FILE], out / BEST_DIR / "importance.png",
                        cfg["ARCH"], n_records=len(job.val_df))
        note = " (best_model/importance.png: the measurements that matter most per class)"
    run.finish(f" in {time.time() - t0:.0f} s" + note)
    return state


if __name__ == "__main__":
    run_script(main)
