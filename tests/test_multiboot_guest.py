"""A Multiboot 1 kernel built here with plain `gcc`/`ld` at 1 MiB (so its ELF headers sit in a
LOAD segment at 0xff000, which must not stop it): it prints what the multiboot_info says.
Run on every engine, and under QEMU's -kernel as the oracle."""
import subprocess
from pathlib import Path

import pytest

from conftest import engine_params
from vmm import Machine, MachineConfig
from vmm.loader.detect import MULTIBOOT, kernel_format
from vmm.loader.elf import ElfImage

SOURCE = Path(__file__).parent / "multiboot_kernel.S"
MODULE = b"module-bytes"
EXPECTED = (b"multiboot: magic ok\n"
            b"mem_lower=639 mem_upper=31744\n"
            b"mods_count=1\n"
            b"module: module-bytes\n"
            b"RAM entries in the memory map: 2\n")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    out = tmp_path_factory.mktemp("multiboot")
    subprocess.run(["gcc", "-m32", "-c", str(SOURCE), "-o", str(out / "mb.o")], check=True)
    subprocess.run(["ld", "-m", "elf_i386", "-Ttext=0x100000", "-e", "_start", "-o", str(out / "mb.elf"),
                    str(out / "mb.o")], check=True)
    (out / "module.txt").write_bytes(MODULE)
    return out / "mb.elf", out / "module.txt"


def test_plain_ld_puts_the_headers_below_one_mebibyte(kernel):
    elf = ElfImage((kernel[0]).read_bytes())
    assert min(s.paddr for s in elf.segments) == 0xFF000
    assert kernel_format(kernel[0].read_bytes()) == MULTIBOOT


@pytest.mark.parametrize("engine", engine_params())
def test_multiboot_kernel_sees_its_boot_information(engine, kernel):
    config = MachineConfig(kernel=str(kernel[0]), initrd=str(kernel[1]), cmdline="hello", mem_size="32M",
                           accel=engine, timeout=30)
    with Machine(config) as vm:
        result = vm.run()
    assert (result.reason, result.status) == ("debug-exit", 0), result.detail
    assert result.serial == EXPECTED


def test_qemu_reads_the_same_multiboot_information(kernel, qemu):
    """QEMU reserves the top 128 KiB of low RAM for itself, so its mem_upper is smaller:
    every other line must match."""
    run = subprocess.run([qemu, "-accel", "tcg", "-m", "32M", "-nodefaults", "-nographic", "-serial", "stdio",
                          "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-kernel", str(kernel[0]),
                          "-initrd", str(kernel[1]), "-append", "hello"], capture_output=True, timeout=60)
    assert run.returncode == 1                              # QEMU's (0 << 1) | 1
    output = run.stdout[run.stdout.index(b"multiboot:"):]
    theirs = [line for line in output.splitlines() if not line.startswith(b"mem_lower")]
    ours = [line for line in EXPECTED.splitlines() if not line.startswith(b"mem_lower")]
    assert theirs == ours
