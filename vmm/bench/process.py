"""Starting processes for the benchmarks: timing them from spawn to reaping, their peak RSS,
and this process's own RSS. The helpers that find the tools the rows start are here too.
"""
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .harness import RunFailed, Unavailable

RUN_TIMEOUT = 120.0                             # seconds for one run before it is a failure


# A child of this process starts with this process's memory counted in its ru_maxrss: a
# vfork()ed child shares our mm until execve, a fork()ed one copies its counters, and execve
# records the old mm's high-water mark. Every process row would then report at least this
# Python process's RSS. So processes are started by a tiny static C spawner, built once per
# benchmark with the machine's gcc: it posix_spawns the command, wait4s it and reports the
# child's start and end times (CLOCK_MONOTONIC, the clock of time.monotonic_ns) and rusage on
# fd 3. Its own start-up is not timed, and its children inherit only its few hundred KiB.
# Without gcc, processes are spawned directly and RSS is not reported.

SPAWNER_C = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;
static volatile pid_t child;

static void forward(int sig) { if (child > 0) kill(child, SIGKILL); _exit(128 + sig); }

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {          /* spawner PROGRAM [ARGS...]: report on fd 3 */
    posix_spawn_file_actions_t actions;
    struct rusage usage;
    int status, err;
    pid_t pid;
    if (argc < 2) return 64;
    signal(SIGTERM, forward);
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addclose(&actions, 3);
    long long start = now();
    err = posix_spawn(&pid, argv[1], &actions, NULL, argv + 1, environ);
    if (err) { dprintf(3, "error %d\n", err); return 127; }
    child = pid;
    if (wait4(pid, &status, 0, &usage) < 0) { dprintf(3, "error wait4\n"); return 70; }
    long long end = now();
    dprintf(3, "ok %lld %lld %d %ld\n", start, end, status, usage.ru_maxrss);
    return 0;
}
"""


def build_spawner(directory: Path) -> str | None:
    """Compile the spawner into DIRECTORY (static if possible); None without a working gcc."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        return None
    source, binary = directory / "spawner.c", directory / "spawner"
    source.write_text(SPAWNER_C)
    for extra in (["-static"], []):
        result = subprocess.run([gcc, "-O2", *extra, "-o", str(binary), str(source)], capture_output=True)
        if result.returncode == 0:
            return str(binary)
    return None


class Launched:
    """A process started by spawn(): its stdout is a pipe, stderr a temporary file."""

    def __init__(self, argv, pid, stdout_fd, report_fd, stderr_file, started):
        self.argv, self.pid, self.stdout_fd, self.report_fd = argv, pid, stdout_fd, report_fd
        self.stderr_file = stderr_file
        self.started = started      # monotonic ns: the spawn (by the spawner if there is one)
        self.ended = None           # monotonic ns: after wait4
        self.output = bytearray()
        self.status = None          # exit status (negative: killed by that signal)
        self.maxrss_kib = None

    @property
    def seconds(self) -> float:
        return (self.ended - self.started) / 1e9

    def stderr(self) -> str:
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode(errors="replace")

    def stderr_line(self) -> str:
        lines = [line for line in self.stderr().splitlines() if line.strip()]
        return lines[-1].strip() if lines else "(no stderr)"


def spawn(argv, env=None, spawner=None) -> Launched:
    """Start argv (argv[0] an absolute path), stdin /dev/null, stdout a pipe, through `spawner`
    (see above) if given."""
    read_fd, write_fd = os.pipe()
    report_read = report_write = None
    stderr_file = tempfile.TemporaryFile()
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, write_fd, 1),
               (os.POSIX_SPAWN_DUP2, stderr_file.fileno(), 2)]
    if spawner:
        report_read, report_write = os.pipe()
        actions.append((os.POSIX_SPAWN_DUP2, report_write, 3))
        argv_spawned = [spawner, *argv]
    else:
        argv_spawned = list(argv)
    try:
        started = time.monotonic_ns()
        pid = os.posix_spawn(argv_spawned[0], argv_spawned, os.environ if env is None else env,
                             file_actions=actions)
    except OSError as error:
        for fd in (read_fd, report_read):
            if fd is not None:
                os.close(fd)
        stderr_file.close()
        raise Unavailable(f"cannot start {argv_spawned[0]}: {error.strerror}") from None
    finally:
        for fd in (write_fd, devnull, report_write):
            if fd is not None:
                os.close(fd)
    return Launched(list(argv), pid, read_fd, report_read, stderr_file, started)


def collect(launched, timeout=RUN_TIMEOUT) -> None:
    """Read every process's stdout to its end, then reap each (status, rusage, end time).

    On the deadline, or on any exception (Ctrl-C), the processes not yet reaped are sent
    SIGTERM (the spawner then SIGKILLs its child) and SIGKILL, each by its own pid, and reaped.
    """
    deadline = time.monotonic() + timeout
    open_fds = {p.stdout_fd: p for p in launched}
    timed_out = False
    try:
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select(list(open_fds), [], [], left)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if chunk:
                    open_fds[fd].output += chunk
                else:
                    os.close(fd)
                    del open_fds[fd]
        if timed_out:
            _stop(launched)
        for process in launched:
            _reap(process)
    except BaseException:
        _stop(launched)
        for process in launched:
            if process.status is None:
                try:
                    os.waitpid(process.pid, 0)
                except ChildProcessError:
                    pass
                process.status = -signal.SIGKILL
        raise
    finally:
        for fd in open_fds:
            os.close(fd)
        for process in launched:
            if process.report_fd is not None:
                os.close(process.report_fd)
                process.report_fd = None
    if timed_out:
        raise RunFailed(f"{launched[0].argv[0]} did not finish within {timeout:.0f} s (killed)")


def _reap(process: Launched) -> None:
    _, status, usage = os.wait4(process.pid, 0)
    process.ended = time.monotonic_ns()
    process.status = os.waitstatus_to_exitcode(status)
    process.maxrss_kib = usage.ru_maxrss
    if process.report_fd is None:
        return
    with os.fdopen(process.report_fd, "rb") as reader:
        process.report_fd = None
        report = reader.read().decode(errors="replace").split()
    if report[:1] == ["ok"] and len(report) == 5:
        process.started, process.ended = int(report[1]), int(report[2])
        process.status = os.waitstatus_to_exitcode(int(report[3]))
        process.maxrss_kib = int(report[4])
    elif report[:1] == ["error"]:
        why = os.strerror(int(report[1])) if report[1].isdigit() else report[1]
        raise Unavailable(f"cannot start {process.argv[0]}: {why}")
    else:
        process.maxrss_kib = None           # the spawner died (killed at a timeout)


def _stop(launched) -> None:
    for process in launched:
        if process.status is None:
            for signum in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.kill(process.pid, signum)
                except ProcessLookupError:
                    pass
                if signum == signal.SIGTERM:
                    time.sleep(0.05)


def run_process(argv, env=None, spawner=None, timeout=RUN_TIMEOUT) -> Launched:
    process = spawn(argv, env, spawner)
    collect([process], timeout)
    return process


def vmm_command() -> list:
    """The `vmm` console script beside this interpreter (the venv's), else `python -m vmm`."""
    script = Path(sys.executable).parent / "vmm"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "vmm"]


def vmm_env() -> dict:
    env = dict(os.environ)
    env.pop("VMM_ACCEL", None)          # every row names its engine
    return env


def which(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise Unavailable(f"{name} is not installed (`make peers` installs it)")
    return path


def current_rss_kib() -> int:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def settle_memory() -> None:
    """Collect garbage and hand free heap back to the kernel, so that an RSS growth measured
    next is the growth of what runs next, not a release of what ran before."""
    import gc
    from ..host.process import malloc_trim
    gc.collect()
    try:
        malloc_trim()
    except OSError:                     # no C library here
        pass
