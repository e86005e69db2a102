"""The import budget of a plain `vmm run`: the modules it loads stay within the lists below.

Start-up is measured against QEMU (`vmm bench startup`), and most of a run's Python start-up
was importing modules it never used (argparse, dataclasses, inspect, pathlib, re, the
debugger, the Linux loader, unicorn's Python binding...). A new import on this path must be
added here on purpose: a module that only some runs need is imported where it is used.
This is behaviour, not timing: the set of modules a `vmm run` of `hello` loads, on each engine,
as the `vmm` launcher starts it (python -I -S), beyond what the bare interpreter loads.
"""
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import engine_params
from vmm import paths

STDLIB = {
    "_bisect", "_collections", "_collections_abc", "_ctypes", "_functools", "_operator", "_stat", "_struct",
    "_weakrefset", "bisect", "collections", "contextlib", "ctypes", "ctypes._endian", "enum", "errno", "functools",
    "genericpath", "itertools", "keyword", "mmap", "operator", "os", "os.path", "posixpath", "reprlib", "signal",
    "stat", "struct", "termios", "threading", "types",
}
VMM = {
    "vmm", "vmm.arch", "vmm.arch.x86", "vmm.arch.x86.acpi", "vmm.arch.x86.acpi.aml", "vmm.arch.x86.acpi.tables",
    "vmm.arch.x86.boot_params", "vmm.arch.x86.cpu_state", "vmm.arch.x86.cpuid", "vmm.arch.x86.exceptions",
    "vmm.arch.x86.io", "vmm.arch.x86.msrs", "vmm.arch.x86.paging", "vmm.arch.x86.pvh", "vmm.board", "vmm.cli",
    "vmm.cli_options", "vmm.config", "vmm.debug", "vmm.debug.exits", "vmm.debug.session", "vmm.devices",
    "vmm.devices.acpi_pm", "vmm.devices.bus", "vmm.devices.debug_exit", "vmm.devices.i8042", "vmm.devices.irq",
    "vmm.devices.rtc", "vmm.devices.uart", "vmm.devices.virtio", "vmm.devices.virtio.console",
    "vmm.devices.virtio.device", "vmm.devices.virtio.mmio", "vmm.devices.virtio.queue", "vmm.devices.virtio.rng",
    "vmm.engines", "vmm.engines.base", "vmm.errors", "vmm.host", "vmm.host.libc", "vmm.layout", "vmm.loader",
    "vmm.loader.detect", "vmm.loader.elf", "vmm.loader.pvh", "vmm.machine", "vmm.memory", "vmm.outcome",
    "vmm.paths", "vmm.records", "vmm.serial_sink", "vmm.terminal",
    # issue 20: every input file checked before it is read (type, size), disk images locked,
    # programs checked before boot, every terminating signal handled, closed stdin/stdout refused
    "vmm.host.file_locks", "vmm.loader.program", "vmm.signals", "vmm.standard_streams", "vmm.user_files",
}
ENGINE = {
    "kvm": {
        "vmm.arch.x86.debug_registers", "vmm.engines.kvm", "vmm.engines.kvm_debug", "vmm.engines.kvm_features",
        "vmm.engines.kvm_halt",
        "vmm.engines.kvm_setup", "vmm.engines.kvm_state", "vmm.kvm", "vmm.kvm.constants", "vmm.kvm.ioctl",
        "vmm.kvm.ioctl_numbers", "vmm.kvm.kick", "vmm.kvm.stats", "vmm.kvm.structs", "vmm.kvm.system",
        "vmm.kvm.vcpu", "vmm.kvm.vm",
    },
    "unicorn": {
        "weakref", "vmm.arch.x86.apic", "vmm.devices.ioapic", "vmm.devices.lapic", "vmm.devices.pic", "vmm.devices.pit",
        "vmm.engines.guest_clock", "vmm.engines.host_timers", "vmm.engines.pc_platform", "vmm.engines.unicorn",
        "vmm.engines.unicorn_binding", "vmm.engines.unicorn_code_cache", "vmm.engines.unicorn_debug",
        "vmm.engines.unicorn_exits", "vmm.engines.unicorn_layout", "vmm.engines.unicorn_lib", "vmm.engines.unicorn_library",
        "vmm.engines.unicorn_state", "vmm.engines.x86_delivery", "vmm.host.facts", "vmm.host.timerfd",
    },
}
# What the list above keeps out, named for a clear failure message.
NEVER = {"argparse", "dataclasses", "inspect", "pathlib", "re", "typing", "unicorn", "capstone", "json",
         "vmm.cli_parser", "vmm.loader.bzimage", "vmm.loader.multiboot", "vmm.devices.fw_cfg",
         "vmm.devices.virtio.blk", "vmm.debug.report", "vmm.debug.disasm", "vmm.debug.gdbstub", "vmm.container",
         "vmm.bench"}

LIST_MODULES = """
import sys
sys.path[:0] = {path!r}
before = set(sys.modules)
from vmm import cli
status = cli.main({argv!r})
print(status, " ".join(sorted(set(sys.modules) - before)), file=sys.stderr)
"""


def modules_loaded(argv):
    """(exit status, the modules `vmm ARGV` loads beyond the bare interpreter's), run as the
    launcher runs it."""
    site_packages = [p for p in sys.path if p.endswith("site-packages")]
    code = LIST_MODULES.format(path=[str(paths.REPO_ROOT), *site_packages], argv=argv)
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, stdin=subprocess.DEVNULL,
                          timeout=120)
    status, _, names = proc.stderr.decode().strip().splitlines()[-1].partition(" ")
    return int(status), set(names.split())


@pytest.mark.parametrize("engine", engine_params())
def test_a_plain_run_imports_only_its_budget(engine):
    if not Path(paths.location("DEFAULT_KERNEL")).exists():
        pytest.fail("guest not built: run `make test`, which builds it")
    status, loaded = modules_loaded(["run", "--accel", engine, "--serial", "none"])
    assert status == 0
    assert loaded & NEVER == set()
    assert loaded - (STDLIB | VMM | ENGINE[engine]) == set(), "new imports on the `vmm run` path"
    assert {f"vmm.engines.{engine}", "vmm.machine"} <= loaded        # (the run was a run)


def test_help_and_errors_still_get_argparse():
    status, loaded = modules_loaded(["run", "--accel", "hvf"])
    assert status == 64 and "argparse" in loaded and "vmm.machine" not in loaded
