"""A seeded fuzz test, bounded in cases (each run also by --timeout): corrupted kernels,
programs and firmware images, and hostile command-line values. Every `vmm run` must end with
a documented status (README's table, or the guest's own when the guest ran), never 70 (an
internal error is a bug), never a traceback, and with one line on stderr for a VMM error.

The same SEED gives the same cases; a failure names its case, which reproduces it alone:
    .venv/bin/python -m pytest tests/test_fuzz_inputs.py -k 'case_17'
Corrupted snapshots for `vmm restore`: tests/test_fuzz_snapshots.py.
"""
import os
import random
import subprocess
import sys

import pytest

from vmm import errors, paths

SEED = 20261204
CASES = 72
GUEST_TIMEOUT = "2"             # seconds a corrupted guest may run (it may loop for ever)
BOUND = 120                     # seconds: a hang of the VMM itself fails the case
VMM_ERRORS = {int(status) for status, _ in errors.EXIT_STATUSES if status.isdigit()} - {1}
REPORTED_ENDINGS = (errors.GuestCrashed.exit_status, errors.GuestTimeout.exit_status)

NASTY = ["", " ", "-1", "0", "00", "nan", "inf", "-inf", "1e309", "99999999999999999999999", "0x10", "64Q",
         "K", "1K", "64M", "3G", "4G", " 64M", "64M,ro", ",ro", "ro", "file:", "file:/nonexistent/dir/x",
         "/dev/zero", "/dev/null", "/proc/self/mem", "/", "..", "../../../../etc/passwd", "127.0.0.1:99999",
         "1:2:3", "[::1]:0", "localhost:-5", "x" * 5000, "Ω≈ç√", os.fsdecode(b"\xff\xfe"), "--", "-",
         "console=ttyS0 " * 400, "a\tb", "\\n"]
OPTIONS = ["--mem", "--timeout", "--cmdline", "--accel", "--serial", "--disk", "--gdb", "--trace-limit",
           "--idle", "--bios", "--initrd", "KERNEL", "--", "--trace", "--trace-exits"]


def mutate(rnd: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    kind = rnd.choice(["flip", "truncate", "header", "zero", "extreme", "splice"])
    if kind == "flip":
        for _ in range(rnd.randint(1, 64)):
            data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
    elif kind == "truncate":
        del data[rnd.randrange(len(data)):]
    elif kind == "header":                  # the first 256 bytes: ELF and program headers, boot magic
        for _ in range(rnd.randint(1, 8)):
            data[rnd.randrange(min(256, len(data)))] = rnd.randrange(256)
    elif kind == "zero":
        start, length = rnd.randrange(len(data)), rnd.randint(1, 4096)
        data[start:start + length] = bytes(len(data[start:start + length]))
    elif kind == "extreme":                 # a 4- or 8-byte field set to 0, all ones, or a sign bit
        width = rnd.choice([4, 8])
        at = rnd.randrange(0, max(1, min(len(data), 128) - width))
        data[at:at + width] = rnd.choice([bytes(width), b"\xff" * width, b"\x00" * (width - 1) + b"\x80"])
    else:
        start = rnd.randrange(len(data))
        chunk = data[start:start + rnd.randint(1, 512)]
        at = rnd.randrange(len(data))
        data[at:at] = chunk
    return bytes(data)


def case_arguments(rnd: random.Random, index: int, folder) -> list:
    """The `vmm run` arguments of fuzz case `index` (files written into `folder`)."""
    target = rnd.choice(["kernel", "program", "firmware", "options", "options"])
    if target == "kernel":
        corrupt = folder / "kernel"
        corrupt.write_bytes(mutate(rnd, paths.DEFAULT_KERNEL.read_bytes()))
        return [str(corrupt), "--initrd", "hello"]
    if target == "program":
        corrupt = folder / "program"
        corrupt.write_bytes(mutate(rnd, paths.program_path(rnd.choice(["hello", "args", "faults"])).read_bytes()))
        return ["--initrd", str(corrupt)]
    if target == "firmware":
        corrupt = folder / "firmware.bin"
        corrupt.write_bytes(mutate(rnd, paths.DEFAULT_FIRMWARE.read_bytes()))
        return ["--bios", str(corrupt)]
    args = []
    for _ in range(rnd.randint(1, 3)):
        option, value = rnd.choice(OPTIONS), rnd.choice(NASTY)
        if option == "KERNEL":
            args.insert(0, value)
        elif option == "--":
            args += ["--", value]
        else:
            args[:0] = [option, value]
    return args


def cases():
    rnd = random.Random(SEED)
    return [(index, rnd.getrandbits(64)) for index in range(CASES)]


@pytest.mark.parametrize("index, seed", cases(), ids=[f"case_{i}" for i in range(CASES)])
def test_fuzzed_run_ends_as_documented(index, seed, tmp_path, kernel_path):
    args = case_arguments(random.Random(seed), index, tmp_path)
    if "--" in args:                        # the program's arguments go last
        cut = args.index("--")
        args = args[:cut] + args[cut + 2:] + args[cut:cut + 2]
    command = [sys.executable, "-m", "vmm", "run", "--serial", "none", "--timeout", GUEST_TIMEOUT, *args]
    proc = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL, timeout=BOUND,
                          cwd=str(tmp_path), env=dict(os.environ, VMM_GUEST_BUILD=str(paths.GUEST_BUILD)))
    assert_documented_ending(proc, f"case {index}: {command[3:]!r}")


def assert_documented_ending(proc, case: str):
    """A finished run or restore ended as README's table says: no traceback, never 70, one
    line for a VMM error, the report line for a crash or timeout, silence otherwise."""
    err = proc.stderr.decode(errors="replace")
    lines = err.strip().splitlines()
    where = f"{case}: status {proc.returncode}\n{err[-1500:]}"
    assert "Traceback" not in err, where
    assert proc.returncode != errors.VmmError.exit_status, where        # 70: an internal error is a bug
    if lines and lines[0].startswith("vmm: error:"):
        assert proc.returncode in VMM_ERRORS and len(lines) == 1, where
    elif proc.returncode in REPORTED_ENDINGS:
        assert lines and lines[0].startswith(("vmm: guest crashed", "vmm: guest timed out")), where
    else:                                   # the guest ran and chose its status; the VMM said nothing
        assert 0 <= proc.returncode <= 255 and not lines, where
