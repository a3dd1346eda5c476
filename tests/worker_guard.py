"""A pytest plugin (tests/conftest.py loads it): a pytest-xdist worker's fork children die with the worker.

A test past its time limit ends its worker with os._exit. A child the worker had forked without exec (a DataLoader
or multiprocessing worker) holds the worker's pipe to the xdist controller open, so the controller never learns
the worker is gone and the run waits for CI's own limit: this is how a hung test became a silent 90-minute CI.
With this plugin every such child is killed when the worker ends; the controller then reports the crash and names
the test. Not covered: a child's own bare-fork children (the project's loaders arm theirs against their parent).
"""
import os
import threading

from utils.runtime import die_with_parent


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller, or pytest without xdist
        return
    worker = os.getpid()
    forking = {}

    def before():
        forking.update(pid=os.getpid(), main=threading.current_thread() is threading.main_thread())

    def after_in_child():
        if forking.get("pid") == worker:  # forked by the worker itself, not by one of its children
            die_with_parent(worker, forking["main"])  # ends the child now if the worker is already gone
    os.register_at_fork(before=before, after_in_child=after_in_child)
