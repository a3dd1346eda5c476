"""What the competition's two tasks' labels and answers are, in one place: label files, outputs and their
probabilities, thresholds (tuned and applied by utils/scoring/thresholds.py), metrics, answer rules, answer files'
rows, and what an answer means to a reader. train.py, predict.py, the printouts and the benches ask `get_task(n)`.
No Paddle: the training losses are utils/training/losses.py's, the writing of answer files utils/artifacts.py's.

Task 1: normal (0) vs abnormal (1), scored by F1. Two outputs (softmax, the original design); the probability is
  P(abnormal), with one decision threshold tuned on validation.
Task 2: 12 diagnoses, several per record, scored by F1 per class. Twelve outputs (sigmoid), one threshold per
  class tuned on validation.
"""
import csv
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, softmax

from ..artifacts import task1_path
from ..ecg.io import CLASS_NAMES, CSV_ENCODING, TAG_NAMES, read_reference, read_reference_task2
from ..errors import CheckpointError, ConfigError
from . import thresholds as tuning
from .metrics import binary_report, fmt, multilabel_report

NORMAL = 0  # column of "normal" among the 12 Task 2 outputs (class index 1)


@dataclass
class Evaluation:
    """A task's scores of probabilities against labels: the model card's `metrics`, the run history's `record`, the
    `thresholds` tuned on them, and the log lines (`lines(loss)`, in PaddleSeg's [EVAL] form)."""

    n: int
    metrics: dict
    record: dict
    thresholds: object
    summary: str  # the [EVAL] line after "#Records: N[, loss: L], "
    notes: list = field(default_factory=list)  # further [EVAL] lines
    table: list = field(default_factory=list)  # a per-class table, printed as it is

    def lines(self, loss=None, prefix="[EVAL] "):
        loss_text = f", loss: {loss:.4f}" if loss is not None else ""
        return [f"{prefix}#Records: {self.n}{loss_text}, {self.summary}", *(prefix + n for n in self.notes), *self.table]


class Task(ABC):
    """What a task must say: its labels, outputs and loss, probabilities, thresholds, scores, answer rules and
    answer files. `num_outputs` is the network's head; `num_probs` the probabilities per record (`probs`),
    `prob_names` what each is the probability of."""

    number: int
    label_file: str  # the training labels in a data folder (train/ records)
    truth_file: str  # the test truth a converter writes beside them (val/ records), what predict.py --truth reads
    class_names: tuple
    num_outputs: int
    prob_names: tuple
    select_metrics: tuple  # the metrics that may choose best_model, the default first
    headline: tuple  # the scores of a side-by-side table
    auc_metric: str  # the threshold-free score a setting is chosen by (bench/protocol.py)

    @property
    def num_probs(self):
        return len(self.prob_names)

    # -- labels -------------------------------------------------------------------------------------------------
    @abstractmethod
    def read_labels(self, csv_path, data_dir=None, ext=".mat"):
        """DataFrame[name, y] of a label file, every listed record checked to have `data_dir/<name><ext>`."""

    @abstractmethod
    def label_array(self, ys):
        """Labels as one array (what the loss and the metrics take)."""

    @abstractmethod
    def describe(self, ys):
        """A short text of the label counts, for the log."""

    @abstractmethod
    def most_frequent(self, ys):
        """The answer of a record no model can read: the training set's most frequent one."""

    # -- model outputs (the loss of each task is utils/training/losses.py's) --------------------------------------
    @abstractmethod
    def probs(self, logits):
        """logits (N, num_outputs) numpy -> probabilities (N,) for one, (N, num_probs) for several."""

    @abstractmethod
    def logits(self, probs):
        """The inverse of `probs`: what a model that gives probabilities (features) returns, so it is used alike."""

    # -- evaluation and answers ---------------------------------------------------------------------------------
    @abstractmethod
    def evaluate(self, y, probs):
        """An Evaluation, with thresholds tuned on these records."""

    @abstractmethod
    def thresholds(self, y, probs):
        """Thresholds tuned on these records (utils/scoring/thresholds.py; untuned on too few)."""

    @abstractmethod
    def decide(self, probs, thresholds):
        """The answers (one per record) from probabilities."""

    @abstractmethod
    def as_probs(self, answer):
        """Scores standing in for the probabilities of a record answered without the model (for AUC)."""

    @abstractmethod
    def answer_rows(self, names, answers):
        """A function that writes this task's answer file (CSV) into an open file."""

    def answer_files(self, names, answers, out):
        """Every answer file this task's model gives: {report key of its zip: (CSV path, its answer_rows)}, which
        utils.artifacts.write_answer_files writes together with their zips."""
        return {"zip": (Path(out), self.answer_rows(names, answers))}

    @abstractmethod
    def score(self, truth_path, names, answers, probs):
        """Metrics of the answers against a truth file: (report, log lines, truth records not answered)."""

    def aligned(self, truth_path, names, answers, probs):
        """The records of `names` that the label file `truth_path` holds, as arrays: `align`."""
        return self.align(self.read_truth(truth_path), names, answers, probs)

    def align(self, truth, names, answers, probs):
        """The records of `names` that `truth` ({name: truth in answer form}) holds, as arrays in `names`' order:
        (indices kept, truth, answers, probabilities), truth and answers as the metrics take them (Task 1: tags;
        Task 2: 0/1 rows)."""
        keep = [i for i, n in enumerate(names) if n in truth]
        return (keep, self.answer_array([truth[names[i]] for i in keep]), self.answer_array([answers[i] for i in keep]),
                self.prob_array([probs[i] for i in keep]))

    @abstractmethod
    def answer_array(self, answers):
        """Answers (or truths in answer form) as one float array."""

    @abstractmethod
    def prob_array(self, probs):
        """Per-record probabilities as one float array."""

    # -- out-of-fold predictions (val_predictions.csv) ------------------------------------------------------------
    def prob_columns(self):
        return [f"p_{c.replace(' ', '_')}" for c in self.class_names]

    def output_probs(self, probs):
        """Probabilities as one column per class (Task 1: P(normal), P(abnormal))."""
        return np.asarray(probs, dtype=np.float64).reshape(len(probs), -1)

    def table_probs(self, p):
        """The inverse of `output_probs`."""
        return p

    def prob_table(self, names, probs, **columns):
        """DataFrame name, [columns], p_<class> per class."""
        probs = self.output_probs(probs)
        table = pd.DataFrame({"name": list(names), **columns})
        for k, col in enumerate(self.prob_columns()):
            table[col] = probs[:, k] if len(probs) else []
        return table

    def prediction_table(self, names, y, probs):
        """DataFrame name, truth, p_<class> per class: Task 1 truth is the tag, Task 2 the 1-based classes."""
        return self.prob_table(names, probs, truth=[self.truth_text(t) for t in y])

    def read_prediction_table(self, path):
        """val_predictions.csv -> (names, labels as label_array, probabilities as `probs` gives them)."""
        df = pd.read_csv(path, dtype={"name": str, "truth": str}, keep_default_na=False, encoding=CSV_ENCODING)
        cols = self.prob_columns()
        if "name" not in df or "truth" not in df or any(c not in df for c in cols):
            raise CheckpointError(f"{path}: not a Task {self.number} validation prediction table (needs name, truth, "
                                  f"{', '.join(cols)})")
        y = self.label_array([self.truth_value(t) for t in df["truth"]])
        return df["name"].tolist(), y, self.table_probs(df[cols].to_numpy(np.float64))

    # -- answers as a reader sees them (printouts, index pages) -----------------------------------------------
    several: bool  # several answers per record (a list of classes), or one

    @abstractmethod
    def answer_text(self, answer):
        """An answer (or a truth in answer form) as words."""

    @abstractmethod
    def answer_columns(self, answer):
        """The probability columns (indices into prob_names) an answer says yes to."""

    @abstractmethod
    def is_right(self, answer, truth):
        """Is the answer the truth, exactly?"""

    @abstractmethod
    def read_truth(self, path):
        """{name: the truth in answer form} of a label file in the task's format."""

    def prob_label(self, k):
        """How a table names probability column k."""
        return self.prob_names[k]

    @abstractmethod
    def truth_text(self, y):
        """One record's label as text (val_predictions.csv's truth column)."""

    @abstractmethod
    def truth_value(self, text):
        """The inverse of `truth_text`."""


class Task1(Task):
    """Normal (0) vs abnormal (1), scored by F1: two softmax outputs, one probability P(abnormal)."""

    number, label_file, class_names, num_outputs = 1, "trainreference.csv", TAG_NAMES, 2
    truth_file = "val_reference.csv"
    prob_names = ("abnormal",)
    select_metrics = ("f1", "auc")
    headline = ("f1", "auc", "accuracy")
    auc_metric = "auc"

    def read_labels(self, csv_path, data_dir=None, ext=".mat"):
        refs = read_reference(csv_path, data_dir=data_dir, ext=ext)
        return pd.DataFrame({"name": refs["name"], "y": refs["tag"].astype(np.int64)})

    def label_array(self, ys):
        return np.asarray(list(ys), dtype=np.int64)

    def describe(self, ys):
        return f"{int(self.label_array(ys).sum())} abnormal"

    def most_frequent(self, ys):
        return int(np.bincount(self.label_array(ys), minlength=2).argmax())

    def probs(self, logits):
        return softmax(logits, axis=1)[:, 1]

    def logits(self, probs):
        p = np.clip(np.asarray(probs, dtype=np.float64).reshape(-1, 1), 1e-7, 1 - 1e-7)
        return np.hstack([np.log(1 - p), np.log(p)]).astype(np.float32)

    def thresholds(self, y, probs):
        """The F1-best threshold on P(abnormal) (utils/scoring/thresholds.py)."""
        return tuning.tune_binary(y, probs)

    def evaluate(self, y, probs):
        threshold = self.thresholds(y, probs)
        at_half, tuned = binary_report(y, probs, 0.5), binary_report(y, probs, threshold)
        at = (f"F1: {tuned['f1']:.4f} (threshold {threshold:.3f})" if tuning.enough(len(y))
              else f"({tuning.smoke_note(len(y))})")
        summary = f"acc: {at_half['accuracy']:.4f}, F1: {at_half['f1']:.4f} (threshold 0.5), {at}, AUC: {fmt(at_half['auc'])}"
        record = {"f1": tuned["f1"], "f1_at_0.5": at_half["f1"], "auc": at_half["auc"], "accuracy": at_half["accuracy"],
                  "thresholds": threshold}
        return Evaluation(len(y), {"at_0.5": at_half, "at_threshold": tuned}, record, threshold, summary,
                          [f"confusion (rows: true normal/abnormal, columns: predicted): {at_half['confusion']}"])

    def decide(self, probs, thresholds):
        return tuning.decide_binary(probs, thresholds)

    def as_probs(self, answer):
        return float(answer)

    def output_probs(self, probs):
        p = np.asarray(probs, dtype=np.float64).reshape(-1, 1)
        return np.hstack([1 - p, p])

    def table_probs(self, p):
        return p[:, 1]

    def truth_text(self, y):
        return str(int(y))

    several = False

    def answer_array(self, answers):
        return np.array([int(a) for a in answers], dtype=np.float64)

    def prob_array(self, probs):
        return np.array([float(p) for p in probs], dtype=np.float64)

    def answer_text(self, answer):
        return TAG_NAMES[int(answer)]

    def answer_columns(self, answer):
        return {0} if int(answer) == 1 else set()

    def is_right(self, answer, truth):
        return int(answer) == int(truth)

    def read_truth(self, path):
        refs = read_reference(path)
        return dict(zip(refs["name"], (int(t) for t in refs["tag"])))

    def prob_label(self, k):
        return "P(abnormal)"

    def truth_value(self, text):
        return int(text)

    def answer_rows(self, names, answers):
        def rows(f):
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["name", "tag"])
            w.writerows(zip(names, answers))
        return rows

    def score(self, truth_path, names, answers, probs):
        truth = self.read_truth(truth_path)
        keep, y, tags, prob = self.align(truth, names, answers, probs)
        m = binary_report(y, tags, 0.5)  # accuracy, F1 and confusion of the tags submitted
        del m["threshold"]
        m["auc"] = binary_report(y, prob)["auc"]
        lines = [f"test: {m['n']} records, accuracy {m['accuracy']:.4f}, F1 {m['f1']:.4f} (abnormal positive), "
                 f"ROC AUC {fmt(m['auc'])}",
                 f"test confusion (rows: true normal/abnormal, columns: predicted): {m['confusion']}"]
        return m, lines, len(truth) - len(keep)


class Task2(Task):
    """12 diagnoses, several per record, scored by F1 per class: 12 sigmoid outputs, one probability each."""

    number, label_file, class_names, num_outputs = 2, "trainreference_task2.csv", CLASS_NAMES, len(CLASS_NAMES)
    truth_file = "val_reference_task2.csv"
    prob_names = CLASS_NAMES
    select_metrics = ("macro_f1", "macro_auc")
    headline = ("macro_f1", "macro_auc", "micro_f1")
    auc_metric = "macro_auc"

    def read_labels(self, csv_path, data_dir=None, ext=".mat"):
        labels = read_reference_task2(csv_path, data_dir=data_dir, ext=ext)
        return pd.DataFrame({"name": list(labels), "y": [self.encode(c) for c in labels.values()]})

    def encode(self, classes):
        y = np.zeros(self.num_outputs, np.float32)
        y[np.asarray(classes, int) - 1] = 1
        return y

    def label_array(self, ys):
        ys = list(ys)
        return np.stack(ys).astype(np.float32) if ys else np.zeros((0, self.num_outputs), np.float32)

    def describe(self, ys):
        counts = self.label_array(ys).sum(0).astype(int)
        return "positives per class " + " ".join(map(str, counts))

    def most_frequent(self, ys):
        """The most frequent label set, as 1-based class indices."""
        sets = pd.Series([tuple(np.flatnonzero(y) + 1) for y in ys])
        return [int(c) for c in sets.value_counts().index[0]]

    def probs(self, logits):
        return expit(logits)

    def logits(self, probs):
        p = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1 - 1e-7)
        return np.log(p / (1 - p)).astype(np.float32)

    def thresholds(self, y, probs):
        """Per class, the F1-best threshold, "normal"'s tuned under the exclusivity rule (utils/scoring/thresholds.py)."""
        return tuning.tune_multilabel(y, probs, NORMAL)

    def evaluate(self, y, probs):
        thresholds = self.thresholds(y, probs)
        pred = self.indicator(self.decide(probs, thresholds))
        m = multilabel_report(y, probs, pred, self.class_names, thresholds)
        how = "tuned thresholds" if tuning.enough(len(y)) else tuning.smoke_note(len(y))
        summary = (f"macro F1: {m['macro_f1']:.4f}, micro F1: {m['micro_f1']:.4f} ({how}, answer rules), "
                   f"macro AUC: {fmt(m['macro_auc'])}")
        record = {"macro_f1": m["macro_f1"], "micro_f1": m["micro_f1"], "macro_auc": m["macro_auc"]}
        return Evaluation(len(y), m, record, thresholds, summary, table=per_class_lines(m))

    def decide(self, probs, thresholds):
        """The answer rules (utils/scoring/thresholds.py): the classes reaching their thresholds, else the one with
        the largest margin; "normal" only alone. Returns 1-based class lists."""
        return tuning.decide_multilabel(probs, thresholds, NORMAL)

    def as_probs(self, answer):
        return self.encode(answer)

    def truth_text(self, y):
        return " ".join(str(k + 1) for k in np.flatnonzero(np.asarray(y) > 0.5))

    def truth_value(self, text):
        return self.encode([int(k) for k in text.split()])

    several = True

    def answer_array(self, answers):
        return self.indicator(list(answers)).astype(np.float64)

    def prob_array(self, probs):
        K = self.num_outputs
        return np.stack([np.asarray(p, dtype=np.float64).reshape(K) for p in probs]) if len(probs) else np.zeros((0, K))

    def answer_text(self, answer):
        return ", ".join(CLASS_NAMES[int(k) - 1] for k in answer)

    def answer_columns(self, answer):
        return {int(k) - 1 for k in answer}

    def is_right(self, answer, truth):
        return sorted(set(map(int, answer))) == sorted(set(map(int, truth)))

    def read_truth(self, path):
        return {n: sorted(int(k) for k in c) for n, c in read_reference_task2(path).items()}

    def indicator(self, answers):
        return np.stack([self.encode(a) for a in answers]) if answers else np.zeros((0, self.num_outputs), np.float32)

    def answer_rows(self, names, answers):
        def rows(f):
            csv.writer(f, lineterminator="\n").writerows([name, *classes] for name, classes in zip(names, answers))
        return rows

    def answer_files(self, names, answers, out):
        """The Task 2 answer, and the Task 1 answer read from it (answer.csv -> answer_task1.csv)."""
        return {**super().answer_files(names, answers, out),
                "task1_zip": (task1_path(out), Task1().answer_rows(names, self.task1_answers(answers)))}

    def task1_answers(self, answers):
        """A Task 2 answer read as Task 1: abnormal unless the answer is "normal" alone."""
        return [0 if list(a) == [NORMAL + 1] else 1 for a in answers]

    def score(self, truth_path, names, answers, probs):
        truth = self.read_truth(truth_path)
        keep, y, pred, p = self.align(truth, names, answers, probs)
        m = multilabel_report(y, p, pred, self.class_names, None)
        lines = [f"test: {m['n']} records, macro F1 {m['macro_f1']:.4f}, micro F1 {m['micro_f1']:.4f}, "
                 f"macro AUC {fmt(m['macro_auc'])}", *per_class_lines(m)]
        return m, lines, len(truth) - len(keep)


def per_class_lines(m):
    rows = [f"  {r['index']:>2} {r['name']:<22} {r['support']:>7} {fmt(r['f1'])}  {fmt(r['auc'])}"
            + (f"  {r['threshold']:.3f}" if r.get("threshold") is not None else "") for r in m["per_class"]]
    return ["  class                     support   F1      AUC     threshold", *rows]


TASKS = {1: Task1, 2: Task2}


def get_task(number):
    if number not in TASKS:
        raise ConfigError(f"--task must be 1 or 2, got {number}")
    return TASKS[number]()
