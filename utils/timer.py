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

