"""VisualDL scalars for `--use-vdl`, under the tags PaddleSeg users know (Train/loss, Evaluate/<metric>).

Scalars are written from the run's history records. A resumed run deletes the log of the run it continues and
replays its checkpoint's history into a fresh one, so the curves carry on from the checkpoint with no gap and
no second copy of the iterations the killed run logged after it.
"""
from pathlib import Path

TRAIN_SCALARS = ("loss", "lr", "batch_cost", "reader_cost", "ips")


class VDLWriter:
    def __init__(self, logdir, history):
        from visualdl import LogWriter

        logdir = Path(logdir)
        for old in logdir.glob("vdlrecords.*.log"):
            old.unlink()
        self.writer = LogWriter(logdir=str(logdir))
        for rec in history.get("train", []):
            self.train(rec)
        for rec in history.get("eval", []):
            self.eval(rec)

    def train(self, rec):
        for key in TRAIN_SCALARS:
            if rec.get(key) is not None:
                self.writer.add_scalar(f"Train/{key}", float(rec[key]), rec["iter"])

    def eval(self, rec):
        for key, value in rec.items():
            if key != "iter" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"Evaluate/{key}", float(value), rec["iter"])

    def close(self):
        self.writer.close()
