"""Every DataLoader the project builds (training, validation, prediction, the tests' own), so that none can hang
for good or outlive its owner. `make_loader` returns a `Loader`, a paddle.io.DataLoader that:

- bounds each wait for a batch: after `timeout` seconds with no batch, or as soon as one of its workers has
  died, the workers are stopped and a `DataLoaderError` names the flag, the loader and its workers. Paddle's own
  `timeout` argument does not do this: it is only the interval at which Paddle's reader thread polls the
  workers' queue, and it waits on for as long as the workers look alive (set here to POLL_SECONDS);
- forks its workers only once the reader threads of earlier loaders have fully exited (`settle_reader_threads`:
  a worker forked while one of them was exiting deadlocked on a lock it inherited; the cause of the suite's hang);
- makes each worker die with the process that started it (Linux: PR_SET_PDEATHSIG, which fires when the thread that
  forked it ends: the loaders are iterated on the main thread; elsewhere a watcher thread).
  Paddle's worker checks its parent only between tasks, and its wait for the next task,
  `indices_queue.get(MP_STATUS_CHECK_INTERVAL)`, passes the interval as `block`, not `timeout`: an idle worker
  waits for ever, so after `kill -9` of a run its workers lived on;
- stops its workers on `close()` (or at the end of a `with` block): Paddle's persistent workers otherwise live as
  long as the process, since Paddle's reader thread keeps their iterator alive.
"""
import functools
import os
import threading
import time

from paddle.io import DataLoader

from ..errors import ConfigError, DataLoaderError
from ..runtime import die_with_parent

DEFAULT_TIMEOUT = 300.0  # seconds one batch may take: generous for a first batch on a busy CPU (--loader-timeout)
POLL_SECONDS = 0.5  # Paddle's `timeout`: how fast its reader thread notices a shutdown or a dead worker
JOIN_SECONDS = 2.0  # how long a stopped worker may take to exit before it is killed
SETTLE_SECONDS = 10.0  # longest wait for exiting reader threads before workers are forked anyway
TIMED_OUT = "timed out"


def make_loader(dataset, name, timeout=DEFAULT_TIMEOUT, flag="--loader-timeout", **kwargs):
    """A `Loader` called `name` (for its errors) over `dataset`; `kwargs` are paddle.io.DataLoader's
    (return_list defaults to True). `flag` is the setting that changes `timeout`, named in the error."""
    return Loader(dataset, name, timeout, flag, **kwargs)


class Loader:
    """A paddle.io.DataLoader with a deadline on every batch, workers that die with their parent, and `close()`.
    Iterate it like the DataLoader (`for x, y in loader`); `len(loader)` is the DataLoader's."""

    def __init__(self, dataset, name, timeout=DEFAULT_TIMEOUT, flag="--loader-timeout", **kwargs):
        if not timeout or timeout <= 0:
            raise ConfigError(f"{flag} {timeout}: a DataLoader needs a positive time limit (seconds)")
        self.name, self.timeout, self.flag = name, float(timeout), flag
        self.num_workers = kwargs.get("num_workers", 0)
        kwargs.setdefault("return_list", True)
        kwargs.setdefault("timeout", POLL_SECONDS)
        if self.num_workers > 0:
            kwargs["worker_init_fn"] = functools.partial(_worker_start, os.getpid(), kwargs.get("worker_init_fn"))
        self.loader = DataLoader(dataset, **kwargs)
        self._iterators = []  # Paddle iterators whose workers and reader thread may still run
        self._pid = os.getpid()  # only this process may stop them (a forked copy of this object may not)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self._iterators = [it for it in self._iterators if not getattr(it, "_shutdown", False)]
        reused = getattr(self.loader, "_iterator", None)  # a persistent loader's iterator, reset for each pass
        if reused is not None and (_dead_workers(reused) or not _reader_running(reused)):
            # Paddle's reset would wait for ever for the acknowledgements of workers that are gone
            raise self._fail(reused, _dead_workers(reused) or "its reader thread has stopped")
        if self.num_workers > 0 and reused is None:  # this pass forks workers
            settle_reader_threads()
        it = self._bounded(lambda: iter(self.loader), reused)
        if it not in self._iterators:
            self._iterators.append(it)
            _track_reader(it)
        return _Batches(self, it)

    def _bounded(self, call, it):
        """call(), interrupted when `timeout` seconds pass or a worker of `it` dies first: a blocked read of a batch
        is released by killing the iterator's queue, a persistent iterator's reset by ending its wait; then
        DataLoaderError."""
        lock, state = threading.Lock(), {"done": False, "problem": None}

        def fire(problem):  # in the watchdog thread
            with lock:
                if state["done"]:
                    return
                state["problem"] = problem
            if it is not None:
                _interrupt(it)

        key = object()
        _WATCHDOG.arm(key, self.timeout, fire, (lambda: _dead_workers(it)) if _workers(it) else None)
        try:
            result = call()
        except StopIteration:
            raise
        except Exception as e:
            problem = state["problem"] or _dead_workers(it)  # Paddle's own error for a dead worker names no loader
            if problem:
                raise self._fail(it, problem) from e
            raise
        finally:
            with lock:
                state["done"] = True
            _WATCHDOG.disarm(key)
        if state["problem"]:  # the watchdog fired as the call returned: the iterator is unusable now
            raise self._fail(it if it is not None else result, state["problem"])
        return result

    def _fail(self, it, problem):
        """Stop `it`; the error to raise: which loader, its workers (exited or not), what to change."""
        workers = _workers(it)
        if workers:
            pids = ", ".join(f"pid {w.pid}" + ("" if _alive(w) else " exited") for w in workers)
            who = f"{len(workers)} worker processes ({pids})"
            see = "; --num-workers 0 runs the dataset in this process, where its own error shows"
        else:
            who, see = "no worker processes", ""
        self._stop(it)
        if problem == TIMED_OUT:
            flag, problem = self.flag, (f"no batch in {self.timeout:g} s, stopped (a slow or busy machine needs a larger "
                                        f"{self.flag}){see}")
        else:
            flag, problem = "--num-workers", problem + f", stopped (killed from outside, e.g. out of memory, or crashed){see}"
        return DataLoaderError(f"{flag}: DataLoader '{self.name}' with {who}: {problem}")

    def _stop(self, it):
        if it is None:
            return
        _shutdown(it)
        if getattr(self.loader, "_iterator", None) is it:
            self.loader._iterator = None  # a persistent loader starts new workers next time
        if it in self._iterators:
            self._iterators.remove(it)

    def close(self):
        """Stop every worker and reader thread this loader started (persistent ones included). The loader may
        be iterated again afterwards (new workers)."""
        if os.getpid() != self._pid:
            return
        for it in list(self._iterators):
            self._stop(it)
        self._stop(getattr(self.loader, "_iterator", None))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit half the world may be gone
            pass


class _Batches:
    """One pass over a Loader: each batch is waited for with the loader's deadline."""

    def __init__(self, owner, it):
        self.owner, self.it = owner, it

    def __iter__(self):
        return self

    def __next__(self):
        return self.owner._bounded(lambda: next(self.it), self.it)

    def __len__(self):
        return len(self.owner)


def close_all(*loaders):
    """Close each loader (None skipped), all of them even when one fails; then raise the first failure."""
    errors = []
    for loader in loaders:
        try:
            if loader is not None:
                loader.close()
        except Exception as e:  # noqa: BLE001 - close the others first
            errors.append(e)
    if errors:
        raise errors[0]


# -- forking workers only when no reader thread is exiting --------------------------------------------------------

_READERS = []  # (thread, its iterator's done event) of every reader thread started here, until it is fully gone


def _track_reader(it):
    thread = getattr(it, "_thread", None)
    if thread is not None:
        _READERS.append((thread, it._thread_done_event))


def _task_exists(tid):
    return bool(tid) and os.path.exists(f"/proc/self/task/{tid}")


def settle_reader_threads(limit=SETTLE_SECONDS):
    """Wait until the reader threads of finished loaders are gone, down to their native thread-exit code.

    Paddle counts host memory per thread in a registry behind one reader-writer lock, which a thread takes for
    writing as it exits (a C++ thread_local destructor, which runs after Python has reported the thread
    finished and joined). A worker forked at that moment inherits the lock held by a thread that it does not
    have: the first new thread in the worker that allocates Paddle memory (the queue thread that sends each
    batch) waits for ever, and so does the loader. A single-process pass followed at once by a loader with
    workers hits that moment; a busy CPU that pre-empts the exiting thread widens it from microseconds to
    milliseconds. (/proc/self/task shows when a thread is really gone; elsewhere only the join is waited for.)"""
    deadline = time.monotonic() + limit
    keep = []
    for thread, done in _READERS:
        if thread.is_alive() and not done.is_set():
            keep.append((thread, done))  # running: it is not exiting now
            continue
        thread.join(JOIN_SECONDS)  # told to stop, it ends within POLL_SECONDS; one stuck in a dataset is let be
        while not thread.is_alive() and _task_exists(thread.native_id) and time.monotonic() < deadline:
            time.sleep(0.001)
    _READERS[:] = keep


# -- Paddle's iterators (2.6 and 3.x): the private parts used here ------------------------------------------------

def _workers(it):
    return list(getattr(it, "_workers", None) or [])


def _reader_running(it):
    thread = getattr(it, "_thread", None)
    return thread is not None and thread.is_alive() and not it._thread_done_event.is_set()


def _alive(worker):
    """Whether a worker process still runs (from /proc on Linux: Process.is_alive() answers True for ever for a
    child that something else has reaped)."""
    try:
        with open(f"/proc/{worker.pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        return worker.is_alive()


def _dead_workers(it):
    """'worker pid N exited' for the iterator's workers that are gone, or None."""
    dead = [w.pid for w in _workers(it) if not _alive(w)]
    return f"worker {', '.join(f'pid {p}' for p in dead)} exited" if dead else None


def _interrupt(it):
    """From the watchdog thread: make the main thread's wait on `it` return or raise shortly."""
    try:
        it._exit_thread_unexpectedly()  # kills the blocking queue: a blocked read of a batch raises
    except Exception:  # noqa: BLE001 - best effort; the reset below still ends
        pass
    if getattr(it, "_resume_worker_cnt", 0) > 0:
        it._resume_worker_cnt = 0  # a persistent iterator's reset polls this count every 0.5 s


def _shutdown(it):
    """Stop the iterator's reader thread and workers; a worker that has not exited in JOIN_SECONDS is killed."""
    workers = _workers(it)
    if not workers:  # single process: its reader thread may be stuck in the dataset, so never join it
        try:
            it._exit_thread_unexpectedly()
        except Exception:  # noqa: BLE001
            pass
        it._shutdown = True  # also keeps Paddle's __del__ from joining a stuck thread
        return
    try:
        it._try_shutdown_all(JOIN_SECONDS)
    except Exception:  # noqa: BLE001 - the workers are killed below whatever happened
        pass
    for w in workers:
        if w.is_alive():
            w.kill()
        w.join(JOIN_SECONDS)
    it._shutdown = True


# -- the watchdog: one daemon thread per process fires a wait's callback at its deadline or when its check fails ----

class _Watchdog:
    CHECK_SECONDS = 2.0  # how often a long wait's check (dead workers) runs

    def __init__(self):
        self._cond = threading.Condition()
        self._waits = {}  # key -> [deadline, fire(problem), check() -> problem or None, time of the next check]
        self._thread, self._pid = None, None

    def arm(self, key, seconds, fire, check=None):
        with self._cond:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="loader-watchdog", daemon=True)
                self._thread.start()
            now = time.monotonic()
            self._waits[key] = [now + seconds, fire, check, now + self.CHECK_SECONDS if check else float("inf")]
            self._cond.notify()

    def disarm(self, key):
        with self._cond:
            self._waits.pop(key, None)

    def _run(self):
        while True:
            with self._cond:
                now = time.monotonic()
                due = {k: w for k, w in self._waits.items() if min(w[0], w[3]) <= now}
                if not due:
                    nxt = min((min(w[0], w[3]) for w in self._waits.values()), default=None)
                    self._cond.wait(None if nxt is None else nxt - now)
                    continue
            for key, (deadline, fire, check, _) in due.items():
                problem = check() if check else None
                if problem is None and deadline <= now:
                    problem = TIMED_OUT
                with self._cond:
                    if key not in self._waits:
                        continue
                    if problem is None:
                        self._waits[key][3] = time.monotonic() + self.CHECK_SECONDS
                        continue
                    del self._waits[key]
                fire(problem)


_WATCHDOG = _Watchdog()


# -- in each worker ---------------------------------------------------------------------------------------------

def _worker_start(parent_pid, user_init, worker_id):
    """worker_init_fn: end this worker when the process that started it ends, then run the caller's own."""
    die_with_parent(parent_pid)
    if user_init is not None:
        user_init(worker_id)
