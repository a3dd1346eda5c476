"""A pytest plugin (tests/conftest.py loads it): a pytest-xdist worker's fork children die with the worker.

A test past its time limit ends its worker with os._exit. A child the worker had forked without exec (a DataLoader
or multiprocessing worker) holds the worker's pipe to the xdist controller open, so the controller never learns
the worker is gone and the run waits for CI's own limit: this is how a hung test became a silent 90-minute CI.
With this plugin every such child gets SIGKILL when the worker ends; the controller then reports the crash and
names the test."""
import os

from utils.runtime import die_with_parent


def pytest_configure(config):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    worker = os.getpid()

    def arm():
        if os.getppid() == worker:  # a child of the worker itself, not of one of its children
            die_with_parent(worker)
    os.register_at_fork(after_in_child=arm)
