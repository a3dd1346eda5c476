"""Timing helpers in the shape PaddleSeg users know (TimeAverager, ETA)."""


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
