"""musl's libc-test as guest programs (guest/libc-test/Makefile builds them): each test binary
run as a host process (chrooted in the same root file system) and in the VM on each engine;
a test passes when it exits 0. Used by tests/test_libc_test.py, and to print the counts:

    .venv/bin/python tests/libc_test_runs.py [kvm|unicorn ...]
"""
import os
import subprocess
import sys

from vmm import paths
from vmm.config import MachineConfig
from vmm.guest_tests import GUEST_ENV
from vmm.machine import Machine, probe

ROOT = paths.GUEST_BUILD / "libc-test-root"
TIMEOUT = 30.0          # a host process
VM_TIMEOUT = 300.0      # a VM: the slowest test takes ~2 s on unicorn, but these machines are shared


def tests() -> list:
    return sorted(os.listdir(ROOT / "bin")) if (ROOT / "bin").is_dir() else []


def on_host(name: str):
    """(passed, output) of the test as a chrooted host process."""
    try:
        proc = subprocess.run(["chroot", str(ROOT), f"/bin/{name}"], capture_output=True, timeout=TIMEOUT,
                              env=GUEST_ENV)
    except subprocess.TimeoutExpired:
        return False, b"timeout"
    return proc.returncode == 0, proc.stdout + proc.stderr


def in_vm(name: str, engine: str):
    config = MachineConfig(kernel=str(paths.DEFAULT_KERNEL), rootfs=str(ROOT), accel=engine,
                           program_args=[f"/bin/{name}"], timeout=VM_TIMEOUT)
    with Machine(config) as vm:
        result = vm.run()
    return result.exit_status == 0, result.serial + f"\n[{result.reason}, status {result.exit_status}]".encode()


def main(engines):
    names = tests()
    if not names:
        print(f"no libc-test binaries under {ROOT}: see guest/libc-test/Makefile")
        return 1
    rows = {"host": {}, **{e: {} for e in engines}}
    for name in names:
        rows["host"][name] = on_host(name)
        for engine in engines:
            rows[engine][name] = in_vm(name, engine)
    for where, results in rows.items():
        print(f"{where}: {sum(ok for ok, _ in results.values())} of {len(names)} pass")
    for engine in engines:
        differ = [n for n in names if rows["host"][n][0] and not rows[engine][n][0]]
        print(f"pass on the host, fail on {engine} ({len(differ)}): {' '.join(differ)}")
        for n in differ:
            print(f"  {n}: {rows[engine][n][1][-300:]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main([e for e in (sys.argv[1:] or ["kvm", "unicorn"]) if probe(e) is None]))
