"""Processes in the tiny kernel (issue 15a), beyond the procs program's .expect: Debian's busybox
sh running programs in loops, in the background and in subshells (fork + exec + wait at scale,
with the shell's job control on the console), and a fork bomb that meets the process limit
(EAGAIN) and ends normally instead of taking the VM down, and a process out of memory that is
killed with a report while its parent goes on. The helper programs are built here
with `gcc -static`, as tests/test_container.py builds its probes."""
import re
import shutil
import subprocess

import pytest

from conftest import engine_params
from vmm import Machine, MachineConfig, paths

ROOTFS = paths.GUEST_BUILD / "rootfs"

STATUS_C = r"""
#include <stdlib.h>
int main(int argc, char **argv) { return argc > 1 ? atoi(argv[1]) : 0; }
"""

# Forks children that wait in pause() until fork fails, then kills them all with kill(-1) (which
# spares the caller) and reaps them. TASK_MAX in guest/kernel/layout.h is 256 tasks.
FORKBOMB_C = r"""
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    int n = 0, err = 0;
    for (;;) {
        pid_t pid = fork();
        if (pid == 0) { for (;;) pause(); }
        if (pid < 0) { err = errno; break; }
        n++;
    }
    printf("fork failed: %s after %d children\n", err == EAGAIN ? "EAGAIN" : err == ENOMEM ? "ENOMEM" : "other", n);
    kill(-1, SIGKILL);
    int reaped = 0, status;
    while (wait(&status) > 0)
        reaped += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    printf("reaped %s\n", reaped == n ? "all" : "not all");
    pid_t again = fork();
    if (again == 0) _exit(3);
    waitpid(again, &status, 0);
    printf("fork works again: %d\n", WEXITSTATUS(status));
    return 0;
}
"""

# A child takes memory until there is none: the kernel kills it (SIGKILL, one report line), the
# parent goes on, and the free memory comes back.
HOG_C = r"""
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
static long mem_free(void) {
    char buf[4096];
    int fd = open("/proc/meminfo", O_RDONLY);
    long n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    char *p = strstr(buf, "MemFree:");
    return p ? strtol(p + 8, 0, 10) : -1;
}
int main(void) {
    int status;
    pid_t pid = fork();                 /* once: what the first fork sets up for good */
    if (pid == 0) _exit(0);
    waitpid(pid, &status, 0);
    long before = mem_free();
    pid = fork();
    if (pid == 0) {
        for (;;) {
            char *p = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) _exit(2);
            for (int i = 0; i < 1 << 20; i += 4096) p[i] = 1;
        }
    }
    waitpid(pid, &status, 0);
    printf("hog: %s\n", WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? "killed by SIGKILL" : "not killed");
    long after = mem_free();
    printf("memory back: %s\n", after - before > -1024 && after - before < 1024 ? "yes" : "no");
    return 0;
}
"""

SCRIPT = """\
i=0
while [ $i -lt 200 ]; do
  /bin/status $((i % 3)); s=$?
  [ $s -eq $((i % 3)) ] || echo "bad status $s at $i"
  i=$((i+1))
done
echo "loop $i"
/bin/status 4 & /bin/status 5 & wait; echo "waited $?"
/bin/status 9 & wait $!; echo "wait pid $?"
( /bin/status 6 ); echo "subshell $?"
/bin/status 7 && echo no || echo "and-or $?"
/bin/script.sh arg; echo "script $?"
echo done
"""


def build(tmp_path, name, source):
    (tmp_path / f"{name}.c").write_text(source)
    result = subprocess.run(["gcc", "-static", "-O2", "-o", str(tmp_path / name), str(tmp_path / f"{name}.c")],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"cannot build {name} with `gcc -static` (make test installs libc6-dev): {result.stderr[-300:]}")
    return tmp_path / name


@pytest.fixture
def root(tmp_path):
    """busybox, its sh, the script from the test root file system, and the two helpers."""
    if not ROOTFS.is_dir():
        pytest.fail(f"{ROOTFS} not built: `make test` builds it")
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "tmp").mkdir()
    for name in ("busybox", "script.sh"):
        shutil.copy(ROOTFS / "bin" / name, root / "bin" / name)
    (root / "bin" / "sh").symlink_to("busybox")
    shutil.copy(build(tmp_path, "status", STATUS_C), root / "bin" / "status")
    shutil.copy(build(tmp_path, "forkbomb", FORKBOMB_C), root / "bin" / "forkbomb")
    shutil.copy(build(tmp_path, "hog", HOG_C), root / "bin" / "hog")
    (root / "loop.sh").write_text(SCRIPT)
    return root


def boot(engine, kernel_path, root, args, stdin=None):
    config = MachineConfig(kernel=kernel_path, accel=engine, program_args=list(args), stdin=stdin, timeout=240,
                           rootfs=str(root))
    with Machine(config) as vm:
        return vm.run()


@pytest.mark.parametrize("engine", engine_params())
def test_busybox_sh_runs_programs_in_loops_background_and_subshells(engine, kernel_path, root):
    result = boot(engine, kernel_path, root, ["sh", "/loop.sh"])
    assert result.exit_status == 0, result.serial
    assert result.serial == (b"loop 200\nwaited 0\nwait pid 9\nsubshell 6\nand-or 7\n"
                             b"script: /bin/script.sh arg\nscript 3\ndone\n"), result.serial


@pytest.mark.parametrize("engine", engine_params())
def test_interactive_busybox_sh_has_job_control(engine, kernel_path, root):
    """On the console, as PID 1 and session leader: no "job control turned off", background
    jobs are reported, and `exit` ends the VM with the shell's status. The first job is waited
    for on its own line: an interactive ash reports a finished job at its next prompt and forgets
    it, after which `wait $!` says 127 (once in a full run, when the job ended first)."""
    result = boot(engine, kernel_path, root, ["sh"],
                  stdin=b"/bin/status 4 & wait $!; echo st=$?\n/bin/status 6 &\nwait\nexit 5\n")
    assert result.exit_status == 5, result.serial
    assert b"job control" not in result.serial and b"st=4" in result.serial, result.serial
    assert b"Done(6)" in result.serial, result.serial


@pytest.mark.parametrize("engine", engine_params())
def test_a_fork_bomb_meets_the_process_limit(engine, kernel_path, root):
    result = boot(engine, kernel_path, root, ["forkbomb"])
    assert result.exit_status == 0, result.serial
    assert result.serial == (b"fork failed: EAGAIN after 255 children\nreaped all\nfork works again: 3\n"), \
        result.serial


@pytest.mark.parametrize("engine", engine_params())
def test_a_process_out_of_memory_is_killed_and_the_vm_goes_on(engine, kernel_path, root):
    result = boot(engine, kernel_path, root, ["hog"])
    assert result.exit_status == 0, result.serial
    assert re.fullmatch(rb"fault: out of memory at cr2=0x[0-9a-f]+\nhog: killed by SIGKILL\nmemory back: yes\n",
                        result.serial), result.serial
