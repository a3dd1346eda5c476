"""Process set-up shared by train.py and predict.py: CPU threads, device choice, logging; `run_stage`, a script
run as one step of a job (tools/run_sample.py, the benches); and `die_with_parent`, which DataLoader workers (and
the test suite's forked children) use to end with the process that made them.

`configure_cpu_threads` must run before paddle is imported: the OpenMP/MKL runtime reads these at start-up.
"""
import logging
import os
import re
import sys
import threading
import time
import warnings

from tqdm import tqdm

from .errors import ConfigError, PipelineError


def configure_cpu_threads():
    """Use every core (Paddle's CPU kernels default to one thread) and, on AMD, MKL's fast code path.

    Values already set in the environment win. Under paddle.distributed.launch the cores are shared by the ranks
    of this machine.
    """
    os.environ.setdefault("OMP_NUM_THREADS", str(cores_per_rank()))
    try:
        with open("/proc/cpuinfo") as f:
            amd = "AuthenticAMD" in f.read(4096)
    except OSError:
        amd = False
    if amd:
        os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")  # MKL otherwise takes its slow path on AMD CPUs
    load_before_paddle()
    import_paddle_quietly()


# Third-party notices a user can do nothing about, filtered once at start-up (docs/development.md lists them).
QUIET_WARNINGS = (
    "No ccache found",  # Paddle's C++-extension builder, at every `import paddle`
    "When training, we now always track global mean and variance",  # Paddle's BatchNorm, once per epoch
)
QUIET_STDERR = (  # printed by `import paddle` whenever OMP_NUM_THREADS > 1, which configure_cpu_threads asks for
    "WARNING: OMP_NUM_THREADS set to",
    "PLEASE USE OMP_NUM_THREADS WISELY",
)


class _DropLines:
    """A stand-in for a text stream that passes on every line but those starting with `prefixes`."""

    def __init__(self, stream, prefixes):
        self.stream, self.prefixes, self.pending = stream, prefixes, ""

    def write(self, text):
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            if not line.startswith(self.prefixes):
                self.stream.write(line + "\n")
        return len(text)

    def flush(self):
        if self.pending:
            self.stream.write(self.pending)
            self.pending = ""
        self.stream.flush()

    def __getattr__(self, name):  # fileno, isatty, encoding...: the real stream's (a logging handler may keep us)
        return getattr(self.stream, name)


def import_paddle_quietly():
    """Filter QUIET_WARNINGS for this process (and the DataLoader workers it forks), and import paddle with the
    QUIET_STDERR lines dropped. Anything else paddle prints still shows."""
    for text in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(text))
    import importlib.util

    if "paddle" in sys.modules or importlib.util.find_spec("paddle") is None:
        return  # imported already, or not installed (a tool that needs no Paddle): nothing to quieten
    real, sys.stderr = sys.stderr, _DropLines(sys.stderr, QUIET_STDERR)
    try:
        import paddle  # noqa: F401
    finally:
        sys.stderr.flush()
        sys.stderr = real


def local_ranks():
    """(this process's rank on its machine, ranks on this machine) under paddle.distributed.launch, else (0, 1).
    With --nnodes, PADDLE_TRAINERS_NUM counts the ranks of every machine: the cores here are shared by this
    machine's only (PADDLE_LOCAL_SIZE)."""
    env = os.environ
    size = int(env.get("PADDLE_LOCAL_SIZE") or env.get("PADDLE_TRAINERS_NUM") or 1)
    rank = int(env.get("PADDLE_LOCAL_RANK") or env.get("PADDLE_RANK_IN_NODE") or env.get("PADDLE_TRAINER_ID") or 0)
    return min(max(rank, 0), max(size, 1) - 1), max(size, 1)


def cores_per_rank():
    """This machine's cores divided among its ranks (at least one)."""
    return max(1, (os.cpu_count() or 1) // local_ranks()[1])


def worker_count(requested):
    """Processes for a per-record stage: `requested`, or with 0 (the scripts' default) one per core of this rank."""
    if requested < 0:
        raise ConfigError(f"--prep-workers must be >= 0 (0: one per core), got {requested}")
    return requested or cores_per_rank()


def load_before_paddle():
    """Load LightGBM's native library before Paddle's: on Paddle 2.6, `import paddle` followed by `import lightgbm`
    crashes the process (a segmentation fault in zlib's inflateReset2, a clash of the libraries' bundled symbols)."""
    import importlib.util

    if importlib.util.find_spec("lightgbm") is not None:
        import lightgbm  # noqa: F401


def select_device(requested="auto", log=None):
    """'auto' -> the GPU when Paddle has CUDA and a GPU is present, else the CPU (with a one-line notice)."""
    import paddle

    has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if requested == "auto":
        device = "gpu" if has_gpu else "cpu"
        if device == "cpu" and log:
            log.info(f"device: CPU ({os.environ.get('OMP_NUM_THREADS', '1')} threads) - no CUDA GPU found")
    elif requested.startswith("gpu") and not has_gpu:
        raise ConfigError(f"--device {requested}: Paddle has no usable CUDA GPU here; use --device cpu")
    else:
        device = requested
    if device.startswith("gpu") and ":" not in device:
        device = f"gpu:{os.environ.get('FLAGS_selected_gpus', '0').split(',')[0]}"
    paddle.set_device(device)
    return device


class _BarSafeHandler(logging.StreamHandler):
    """Log lines on stdout written through tqdm, which lifts a progress bar (stderr) off the line first and draws
    it again below: a log line never lands in the middle of a bar."""

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # noqa: BLE001 - logging's own rule: a failed log line must not end the program
            self.handleError(record)


def get_logger(log_file=None, quiet=False):
    """The 'ecg' logger: INFO to stdout (and `log_file`); WARNING only when `quiet` (non-zero ranks)."""
    log = logging.getLogger("ecg")
    log.handlers.clear()
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    fmt = logging.Formatter("%(asctime)s [%(levelname)s] %(message)s", "%Y-%m-%d %H:%M:%S")
    h = _BarSafeHandler(sys.stdout)
    h.setFormatter(fmt)
    log.addHandler(h)
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        fh = logging.FileHandler(log_file)
        fh.setFormatter(fmt)
        log.addHandler(fh)
    return log


def run_script(main):
    """Run a script's main(): the project's own errors (bad data, model directory, weights or flags) end in one
    'error: <file>: <problem>' line and exit 1 (set ECG_DEBUG=1 for the traceback). Anything else, Paddle's
    errors included, is not understood here, so it keeps its traceback."""
    try:
        main()
    except PipelineError as e:
        if os.environ.get("ECG_DEBUG"):
            raise
        sys.exit(f"error: {e}")


def run_stage(name, args, cwd):
    """One step of a job: print `=== name: args`, run the script `args` (its path, then its flags) with this
    Python in a child process in `cwd`, its output passed through, and return (exit status, wall seconds, CPU
    seconds: user + system of the child and the processes it waited for). The caller decides what a failure means
    (tools/run_sample.py: one error line; the benches: an exception)."""
    import resource
    import subprocess

    print(f"\n=== {name}: {' '.join(map(str, args))}", flush=True)
    t, before = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    code = subprocess.run([sys.executable, *map(str, args)], cwd=cwd).returncode
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return code, time.time() - t, cpu


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid, forked_by_main_thread=True):
    """In a forked child: end it (SIGKILL) when `parent_pid`, its parent, ends; a parent already gone ends it now.

    Linux's PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process: it is used only
    when the fork came from the parent's main thread (whose end is the process's); otherwise, and where prctl is
    missing, a watcher thread polls the parent once a second."""
    import signal

    armed = False
    if forked_by_main_thread and sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()


def _watch_parent(parent_pid):
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)
