"""What a run shows while it trains, in the shape PaddleSeg users know: TimeAverager, ETA, the [TRAIN] log line,
and VisualDL scalars for `--use-vdl` (Train/loss, Evaluate/<metric>).

VisualDL scalars are written from the run's history records. A resumed run deletes the log of the run it continues
and replays its checkpoint's history into a fresh one, so the curves carry on from the checkpoint with no gap and
no second copy of the iterations the killed run logged after it.
"""
from pathlib import Path


class TimeAverager:
    def __init__(self):
        self.reset()

    def reset(self):
        self._cnt, self._total_time, self._total_samples = 0, 0.0, 0

    def record(self, usetime, num_samples=None):
        self._cnt += 1
        self._total_time += usetime
        if num_samples:
            self._total_samples += num_samples

    def get_average(self):
        return self._total_time / self._cnt if self._cnt else 0.0

    def get_ips_average(self):
        return self._total_samples / self._total_time if self._total_samples and self._total_time else 0.0


def calculate_eta(remaining_step, speed):
    remaining_time = max(0, int(remaining_step * speed))
    return f"{remaining_time // 3600:02d}:{remaining_time // 60 % 60:02d}:{remaining_time % 60:02d}"


class Progress:
    """The [TRAIN] log line in PaddleSeg's format: loss, batch and reader cost averaged since the last line, then
    recorded in the run's history (and VisualDL). The loss window lives in `state` so a resumed run logs the same."""

    def __init__(self, log, state, iters, vdl=None):
        self.log, self.state, self.iters, self.vdl = log, state, iters, vdl
        self.window = state.setdefault("loss_window", [0.0, 0])
        self.batch_cost, self.reader_cost = TimeAverager(), TimeAverager()

    def step(self, loss, batch_seconds, reader_seconds, num_samples):
        self.window[0] += loss
        self.window[1] += 1
        self.batch_cost.record(batch_seconds, num_samples=num_samples)
        self.reader_cost.record(reader_seconds)

    def report(self, it, epoch, lr):
        rec = {"iter": it, "loss": self.window[0] / self.window[1], "lr": lr, "batch_cost": self.batch_cost.get_average(),
               "reader_cost": self.reader_cost.get_average(), "ips": self.batch_cost.get_ips_average()}
        self.log.info(f"[TRAIN] epoch: {epoch + 1}, iter: {it}/{self.iters}, loss: {rec['loss']:.4f}, lr: {lr:.6f}, "
                      f"batch_cost: {rec['batch_cost']:.4f}, reader_cost: {rec['reader_cost']:.5f}, "
                      f"ips: {rec['ips']:.4f} samples/sec | ETA {calculate_eta(self.iters - it, rec['batch_cost'])}")
        self.state["history"]["train"].append(rec)
        if self.vdl:
            self.vdl.train(rec)
        self.window[:] = [0.0, 0]
        self.batch_cost.reset()
        self.reader_cost.reset()


TRAIN_SCALARS = ("loss", "lr", "batch_cost", "reader_cost", "ips")
RENAMED = {"threshold": "thresholds"}  # evaluation record keys of earlier versions -> today's


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
            key = RENAMED.get(key, key)  # a resumed run's older evaluations continue the same curve
            if key != "iter" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"Evaluate/{key}", float(value), rec["iter"])

    def close(self):
        self.writer.close()
