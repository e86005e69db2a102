"""The commands on an existing container: start, state, kill, delete, pause, resume, list, ps.

start   the init blocks writing the exec FIFO; opening it for reading here releases it, then the
        FIFO is removed ("running" from then on) and the poststart hooks run. If the init died
        before (a hook, a signal), or is alive and does not answer, the wait says so instead of
        hanging.
kill    one signal to the init, or with --all to every process of the container's cgroup; a
        SIGKILL to a paused container also thaws it, or its processes could not die.
delete  a stopped container, or any with --force (SIGKILL to all its processes first; runc
        also deletes a created one without --force, the runtime-spec forbids it and so does this):
        the cgroup directories are removed, the poststop hooks run (failures are warnings), and
        ROOT/ID goes.
"""
import json
import os
import select
import signal
import time

from . import hooks, spec as spec_module
from .errors import ConfigError, NoSuchContainer, SetupFailed, UsageError, VmmError, WrongState
from .state import alive, remove_dir

STOP_TIMEOUT = 10.0         # seconds for a killed container's processes to be gone
START_TIMEOUT = 30.0        # seconds for a live init to open its end of the exec FIFO
POLL = 0.05


def _signal_number(name) -> int:
    text = str(name).upper()
    if text.isdigit():
        number = int(text)
        if not 0 < number < signal.NSIG:
            raise UsageError(f"invalid signal {name!r}")
        return number
    text = text if text.startswith("SIG") else "SIG" + text
    try:
        return int(signal.Signals[text])
    except KeyError:
        raise UsageError(f"invalid signal {name!r}") from None


def start(runtime, container_id: str) -> None:
    container = runtime.state.load(container_id)
    with container.locked():
        status = container.status()
        if status != "created":
            raise WrongState(f"cannot start container {container_id}: it is {status}, not created")
        config = spec_module.from_json(_saved_config(container), container.data["bundle"])
        if config.process is None:
            raise ConfigError(f"cannot start container {container_id}: its config.json has no process")
        _release_init(container)
        try:
            state = dict(container.state(), status="running", pid=container.pid)   # as runc: the program
            hooks.run(config.hooks["poststart"], "poststart", state)                   # may be done already
        except SetupFailed:
            _kill_all(container, signal.SIGKILL)
            raise


def _release_init(container) -> None:
    fd = os.open(container.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + START_TIMEOUT
        while not poller.poll(POLL * 1000):
            if not alive(container.pid, container.data.get("start_time")):
                raise SetupFailed(f"container {container.id}'s init died before it could be started")
            if time.monotonic() > deadline:         # alive but not answering (stopped, frozen)
                raise SetupFailed(f"container {container.id}'s init did not take the start within "
                                  f"{START_TIMEOUT:.0f} s (is it stopped or frozen?)")
        data = os.read(fd, 1)
        if data != b"0":
            raise SetupFailed(f"container {container.id}'s init closed the exec FIFO without starting")
    finally:
        os.close(fd)
        try:
            os.unlink(container.fifo)
        except FileNotFoundError:
            pass


def _saved_config(container) -> dict:
    with open(container.config_path()) as file:
        return json.load(file)


def state(runtime, container_id: str) -> dict:
    return runtime.state.load(container_id).state()


def kill(runtime, container_id: str, signal_name="SIGTERM", all_processes=False) -> None:
    container = runtime.state.load(container_id)
    number = _signal_number(signal_name)
    status = container.status()
    if status not in ("created", "running", "paused", "creating"):
        raise WrongState(f"cannot kill container {container_id}: it is {status}")
    if all_processes and container.cgroup is not None:
        _kill_all(container, number)
        return
    try:
        os.kill(container.pid, number)
    except ProcessLookupError:
        raise WrongState(f"cannot kill container {container_id}: its process is gone") from None
    if number == signal.SIGKILL and status == "paused":
        container.cgroup.freeze(False)


def _kill_all(container, number: int) -> None:
    cgroup = container.cgroup
    if cgroup is None:
        return
    cgroup.signal_all(number)
    if number == signal.SIGKILL and cgroup.frozen():
        cgroup.freeze(False)


def delete(runtime, container_id: str, force=False) -> None:
    try:
        container = runtime.state.load(container_id)
    except NoSuchContainer:
        leftover = os.path.join(runtime.state.path, container_id)
        if force and os.path.isdir(leftover):      # an aborted create: a folder without state.json
            remove_dir(leftover)
        if force:
            return
        raise
    with container.locked():
        status = container.status()
        if status != "stopped" and not force:
            raise WrongState(f"cannot delete container {container_id}: it is {status}, not stopped "
                             "(kill it first, or use --force)")
        if status != "stopped":
            try:
                os.kill(container.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _kill_all(container, signal.SIGKILL)
            _wait_gone(container)
        container.release_host_mounts()
        cgroup = container.cgroup
        if cgroup is not None:
            try:
                cgroup.remove()
            except VmmError as error:
                runtime.log.warning(str(error))
        try:
            config = spec_module.from_json(_saved_config(container), container.data["bundle"])
            poststop = config.hooks["poststop"]
        except (OSError, ValueError, VmmError):
            poststop = []
        state = dict(container.state(), status="stopped")
        state.pop("pid", None)
        hooks.run_all_warning(poststop, "poststop", state, runtime.log.warning)
        remove_dir(container.dir)


def _wait_gone(container) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT
    while alive(container.pid, container.data.get("start_time")):
        if time.monotonic() > deadline:
            raise VmmError(f"container {container.id}'s process {container.pid} did not die within "
                           f"{STOP_TIMEOUT:.0f} s of SIGKILL")
        try:
            os.waitpid(container.pid, os.WNOHANG)   # our own child when `run` deletes
        except ChildProcessError:
            pass
        time.sleep(POLL)


def pause(runtime, container_id: str, freeze: bool) -> None:
    container = runtime.state.load(container_id)
    status = container.status()
    wanted = "running" if freeze else "paused"
    if status != wanted:
        raise WrongState(f"cannot {'pause' if freeze else 'resume'} container {container_id}: it is {status}")
    container.cgroup.freeze(freeze)


def listing(runtime) -> list:
    return [container.listing() for container in runtime.state.all()]


def processes(runtime, container_id: str) -> list:
    container = runtime.state.load(container_id)
    if container.status() == "stopped":
        raise WrongState(f"container {container_id} is stopped: it has no processes")
    return container.cgroup.pids() if container.cgroup is not None else [container.pid]
