"""A guest program as a plain host process, for the host runs the tests compare the VM with
(vmm/guest_tests.py, bench syscalls): chrooted into a root file system with /proc and
the host's /dev, in its own mount and PID namespaces, so that nothing it starts outlives it.

    python -m vmm.host_run ROOT PROGRAM [ARGS...]      (as root; use run() from Python)

This process makes the namespaces and forks the new PID namespace's init: a reaper, not the
program, because a PID 1 ignores every signal it has no handler for, which would change what
the program sees. The reaper mounts /proc, forks the program (PID 2, chrooted, with this
process's environment) and waits for it; when it ends, the reaper exits with its status (128 +
the signal for a signal), and the kernel kills whatever is left in the namespace: children the
program forked, daemons that left its session, stuck threads. A timeout kills this process, and
SIGINT, SIGTERM or SIGHUP end it; the reaper gets SIGKILL with it (the parent-death signal) and
the namespace goes the same way.
"""
import os
import signal
import subprocess
import sys

SETUP_FAILED = 125          # as a shell reports a command that could not be started


def run(root, argv, stdin: bytes | None = None, env=None, timeout: float | None = None):
    """(status, stdout and stderr merged) of ARGV chrooted in ROOT; subprocess.TimeoutExpired
    after `timeout` seconds, when everything it started is gone or going (SIGKILL)."""
    proc = subprocess.run([sys.executable, "-m", "vmm.host_run", str(root), *argv], input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=timeout)
    return proc.returncode, proc.stdout


def processes_in(root) -> list:
    """PIDs of the host's processes running a program from under ROOT (what a run left behind)."""
    root = os.path.realpath(root).rstrip("/") + "/"
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/exe").startswith(root):
                    found.append(int(name))
            except OSError:             # gone, or a kernel thread
                pass
    return found


def _status(wait_status: int) -> int:
    return 128 + os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else os.WEXITSTATUS(wait_status)


def _reaper(root: str, argv: list, parent_alive: int) -> int:
    """The namespace's init: mount /proc, start the program, wait for it. `parent_alive` is a
    pipe's read end whose write end only the parent holds: readable (at end of file) once the
    parent is gone (its PID is not visible from inside the namespace)."""
    import select

    from .container.paths_in_root import resolve
    from .host import container_calls as calls
    from .host.process import set_parent_death_signal
    set_parent_death_signal(signal.SIGKILL)
    if select.select([parent_alive], [], [], 0)[0]:     # the caller was killed before the line above
        return SETUP_FAILED
    calls.mount("proc", resolve(root, "/proc"), "proc", calls.MS_NOSUID | calls.MS_NODEV | calls.MS_NOEXEC)
    program = os.fork()
    if program == 0:
        try:
            os.chroot(root)
            os.chdir("/")
            os.execvpe(argv[0], argv, os.environ)      # PATH looked up inside ROOT
        except OSError as error:
            os.write(2, f"host_run: cannot run {argv[0]}: {error.strerror}\n".encode())
        os._exit(SETUP_FAILED)
    while True:
        pid, wait_status = os.waitpid(-1, 0)    # reaps orphans too, until the program ends
        if pid == program:
            return _status(wait_status)


def main(args) -> int:
    from .container.paths_in_root import resolve
    from .container.rootfs import make_mount_points
    from .host import container_calls as calls
    if len(args) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    root, argv = os.path.realpath(args[0]), args[1:]
    try:
        make_mount_points(root)
        calls.unshare(calls.CLONE_NEWNS | calls.CLONE_NEWPID)
        calls.mount(None, "/", None, calls.MS_REC | calls.MS_PRIVATE)
        calls.mount("/dev", resolve(root, "/dev"), None, calls.MS_BIND | calls.MS_REC)
    except Exception as error:          # noqa: BLE001 - one line, as for any bad input
        print(f"host_run: {error}", file=sys.stderr)
        return SETUP_FAILED
    parent_alive, parent_holds = os.pipe()
    reaper = os.fork()
    if reaper == 0:
        os.close(parent_holds)
        try:
            code = _reaper(root, argv, parent_alive)
        except BaseException as error:  # noqa: BLE001 - reported, and the namespace ends
            os.write(2, f"host_run: {error}\n".encode())
            code = SETUP_FAILED
        os._exit(code)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):     # quietly; the reaper follows
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, lambda signum, _frame: os._exit(128 + signum))
    _, wait_status = os.waitpid(reaper, 0)
    return _status(wait_status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
