"""musl's libc-test in the VM: every test that passes as a chrooted host process passes in the
VM on each engine, except the known failures below (xfail, not strict: one that starts to pass
shows as XPASS). The binaries are not built by `make test`: their sources are not in this
repository and the test machines cannot fetch them (guest/libc-test/Makefile says how to build
them); without them this module skips, saying why. `tests/libc_test_runs.py` prints the counts."""
import pytest

from conftest import ENGINES, _probe
import libc_test_runs as runs

# Tests that need what the kernel does not have yet (issue 15: fork, pipes, threads, System V
# IPC, sockets): each fails with ENOSYS from the first such call.
NEEDS_ISSUE_15 = {
    "daemon-failure": "fork, pipe", "fflush-exit": "fork", "fgetwc-buffering": "pipe",
    "fscanf": "pipe", "ipc_msg": "System V IPC", "ipc_sem": "System V IPC", "ipc_shm": "System V IPC",
    "raise-race": "threads, fork", "sem_init": "threads", "socket": "sockets",
    "tls_init": "threads", "tls_local_exec": "threads",
}
NEEDS_ISSUE_15.update(dict.fromkeys((
    "pthread-robust-detach pthread_cancel pthread_cancel-sem_wait pthread_cond pthread_cond-smasher "
    "pthread_cond_wait-cancel_ignored pthread_exit-cancel pthread_exit-dtor pthread_mutex pthread_mutex_pi "
    "pthread_once-deadlock pthread_robust pthread_rwlock-ebusy pthread_tsd").split(), "threads"))
# Unicorn's x87 (QEMU TCG's softfloat) rounds some subnormal long double results differently
# from the hardware; musl's strtod family computes in long double.
UNICORN_X87 = {"strtod", "strtof", "strtold"}


def _params():
    names = runs.tests()
    if not names:
        return [pytest.param("", "", marks=pytest.mark.skip(
            reason=f"libc-test not built ({runs.ROOT}): see guest/libc-test/Makefile"), id="not-built")]
    params = []
    for engine in ENGINES:
        reason = _probe(engine)
        for name in names:
            marks = []
            if reason:
                marks.append(pytest.mark.skip(reason=f"{engine} unavailable: {reason}"))
            elif name in NEEDS_ISSUE_15:
                marks.append(pytest.mark.xfail(reason=f"needs {NEEDS_ISSUE_15[name]} (issue 15)", strict=False))
            elif engine == "unicorn" and name in UNICORN_X87:
                marks.append(pytest.mark.xfail(reason="TCG softfloat x87 rounding", strict=False))
            params.append(pytest.param(engine, name, marks=marks, id=f"{engine}-{name}"))
    return params


@pytest.mark.parametrize("engine,name", _params())
def test_libc_test(engine, name, kernel_path):
    passed, output = runs.on_host(name)
    if not passed:
        pytest.skip(f"fails as a host process too: {output[-200:]!r}")
    passed, serial = runs.in_vm(name, engine)
    assert passed, serial[-2000:].decode(errors="replace")
