"""Calls run in forked worker processes, at most `jobs` at once (`vmm test -j N`), with the
signals handled as everywhere else (vmm/signals.py):

- each worker inherits the caller's handlers: a terminating signal raises Terminated in it,
  its call cleans up (scratch disks, the VM) and it exits with 128 + the signal's number;
- when the caller gets a terminating signal (or Ctrl-C), it sends the same signal to every
  worker still running and waits for them all before Terminated (or KeyboardInterrupt)
  goes on, so no worker is left behind;
- a worker's parent-death signal is SIGTERM: a caller killed with SIGKILL still ends its
  workers, which clean up after themselves.
Results and exceptions come back pickled through a pipe, one per worker.
"""
import os
import pickle
import select
import signal

from . import signals
from .errors import VmmError
from .host.process import set_parent_death_signal


class WorkerFailed(VmmError):
    """A worker died without a result (a crash, or a signal it did not handle)."""


def run_forked(function, calls, jobs: int) -> list:
    """[function(*args) for args in calls], computed `jobs` at a time in forked children, in
    order. An exception raised by a call is raised here (the first one, once all are done)."""
    pending = list(enumerate(calls))
    results = [None] * len(pending)
    running = {}                        # read end of the result pipe -> (pid, index, chunks)
    try:
        while pending or running:
            while pending and len(running) < jobs:
                index, args = pending.pop(0)
                read_fd, write_fd = os.pipe()
                pid = os.fork()
                if pid == 0:
                    os.close(read_fd)
                    _child(function, args, write_fd)        # never returns
                os.close(write_fd)
                running[read_fd] = (pid, index, [])
            ready, _, _ = select.select(list(running), [], [])
            for fd in ready:
                chunk = os.read(fd, 1 << 16)
                if chunk:
                    running[fd][2].append(chunk)
                    continue
                pid, index, chunks = running.pop(fd)
                os.close(fd)
                results[index] = _result(pid, b"".join(chunks))
    except BaseException as error:
        signum = error.signum if isinstance(error, signals.Terminated) else signal.SIGINT
        _stop_all(running, signum)
        raise
    for outcome in results:
        if outcome[0] == "error":
            raise outcome[1]
    return [value for _, value in results]


def _child(function, args, write_fd: int) -> None:
    """In the worker: run the call, send its result, exit. Never returns."""
    status = 0
    try:
        set_parent_death_signal(signal.SIGTERM)
        try:
            outcome = ("ok", function(*args))
        except signals.Terminated as terminated:
            status = terminated.exit_status
            outcome = None
        except KeyboardInterrupt:
            status = 128 + signal.SIGINT
            outcome = None
        except BaseException as error:      # noqa: BLE001 - any error goes back to the caller
            outcome = ("error", error)
        if outcome is not None:
            try:
                data = pickle.dumps(outcome)
            except Exception as error:      # noqa: BLE001 - an unpicklable result or exception
                data = pickle.dumps(("error", WorkerFailed(f"worker result cannot be sent: {error}")))
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view):]
    finally:
        os._exit(status)


def _result(pid: int, data: bytes):
    _, status = os.waitpid(pid, 0)
    if data:
        return pickle.loads(data)
    if os.WIFSIGNALED(status):
        why = f"was killed by {signals.signal_name(os.WTERMSIG(status))}"
    else:
        why = f"exited with status {os.WEXITSTATUS(status)}"
    return ("error", WorkerFailed(f"a worker process {why} without a result"))


def _stop_all(running: dict, signum: int) -> None:
    """Send `signum` to every worker still running, then wait for each (cleanup uninterrupted)."""
    with signals.blocked():
        for fd, (pid, _, _) in running.items():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        for fd, (pid, _, _) in running.items():
            os.close(fd)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        running.clear()
