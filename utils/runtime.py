"""Process set-up shared by train.py and predict.py: CPU threads, device choice, logging; and `die_with_parent`,
which DataLoader workers (and the test suite's forked children) use to end with the process that made them.

`configure_cpu_threads` must run before paddle is imported: the OpenMP/MKL runtime reads these at start-up.
"""
import logging
import os
import sys
import threading
import time

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


def get_logger(log_file=None, quiet=False):
    """The 'ecg' logger: INFO to stdout (and `log_file`); WARNING only when `quiet` (non-zero ranks)."""
    log = logging.getLogger("ecg")
    log.handlers.clear()
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    fmt = logging.Formatter("%(asctime)s [%(levelname)s] %(message)s", "%Y-%m-%d %H:%M:%S")
    h = logging.StreamHandler(sys.stdout)
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
