"""Guest test programs: read what each expects (guest/programs/NAME.expect), run it in a VM
on one or more engines, and compare.

The .expect format: header lines `key: value` (status, args, stdin, qemu, linux; `#` starts
a comment), a line `---`, then the exact expected serial output up to the end of the file.
"""
import concurrent.futures
import os
from dataclasses import dataclass, field

from . import paths
from .config import MachineConfig
from .errors import ImageError, InputError
from .machine import ENGINES, Machine, engine_class, probe

# The one line the firmware prints before the kernel runs (firmware/main.c); the output after
# it must be the same as with the direct PVH boot.
FIRMWARE_BANNER = b"pyvmm firmware\n"
DEFAULT_TIMEOUT = 120.0      # seconds per program: generous, ring-0 code is emulated on nested KVM
ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "r": "\r", "0": "\0"}


@dataclass
class Expectation:
    name: str
    status: int
    output: bytes
    args: list = field(default_factory=list)
    stdin: bytes = b""
    skip: dict = field(default_factory=dict)    # runner ("qemu", "linux") -> reason
    requires: list = field(default_factory=list)    # engine features (Engine.missing_features)


def unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ESCAPES:
            out.append(ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_expectation(name: str, text: str) -> Expectation:
    lines = text.split("\n")
    if "---" not in lines:
        raise ImageError(f"{name}.expect has no '---' line before the expected output")
    cut = lines.index("---")
    body = "\n".join(lines[cut + 1:])
    fields = {}
    for line in lines[:cut]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, colon, value = stripped.partition(":")
        if not colon:
            raise ImageError(f"{name}.expect: cannot read header line {line!r}")
        key, value = key.strip(), value.strip()
        if key != "stdin":                  # stdin bytes may hold '#'; other values may end in a comment
            value = value.split(" #", 1)[0].strip()
        fields[key] = value
    if "status" not in fields:
        raise ImageError(f"{name}.expect has no 'status:' line")
    skip = {}
    for runner in ("qemu", "linux"):
        value = fields.get(runner, "")
        if value.startswith("skip"):
            skip[runner] = value[4:].strip() or "skipped"
    return Expectation(
        name=name, status=int(fields["status"]), output=body.encode(),
        args=fields.get("args", "").split(), stdin=unescape(fields.get("stdin", "")).encode(), skip=skip,
        requires=fields.get("requires", "").split())


def load_expectation(name: str) -> Expectation:
    path = paths.PROGRAMS_SOURCE / f"{name}.expect"
    try:
        return parse_expectation(name, path.read_text())
    except FileNotFoundError:
        raise InputError(f"no expectation file {path} for program {name}") from None


def all_programs() -> list:
    return sorted(p.stem for p in paths.PROGRAMS_SOURCE.glob("*.expect"))


@dataclass
class ProgramRun:
    name: str
    engine: str
    passed: bool
    problems: list
    serial: bytes
    status: int | None
    reason: str
    seconds: float
    skipped: str = ""           # why the program could not be judged on this engine


def run_program(name: str, accel: str, kernel: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                mem_size: int | None = None, firmware: str | None = None) -> ProgramRun:
    """Boot `name` on `accel` (through `firmware` if given) and check it against its .expect file."""
    expect = load_expectation(name)
    missing = engine_class(accel).missing_features() if accel in ENGINES else {}
    for feature in expect.requires:
        if feature in missing:
            return ProgramRun(name, accel, True, [], b"", None, "skipped", 0.0, skipped=missing[feature])
    config = MachineConfig(kernel=kernel or str(paths.DEFAULT_KERNEL), initrd=str(paths.program_path(name)),
                           program_args=expect.args, accel=accel, stdin=expect.stdin or None, timeout=timeout,
                           firmware=firmware)
    if mem_size:
        config.mem_size = mem_size
    with Machine(config) as vm:
        result = vm.run()
    problems = []
    serial = result.serial
    if firmware:
        if not serial.startswith(FIRMWARE_BANNER):
            problems.append(f"no firmware banner: output starts {serial[:60]!r}")
        serial = serial[len(FIRMWARE_BANNER):]
    if result.exit_status != expect.status:
        problems.append(f"exit status {result.exit_status} ({result.reason}: {result.detail}), expected {expect.status}")
    if serial != expect.output:
        problems.append(f"output {serial[-300:]!r}, expected {expect.output[-300:]!r}")
    return ProgramRun(name, result.engine, not problems, problems, serial, result.exit_status,
                      result.reason, result.stats["total_seconds"])


def available_engines() -> list:
    return [accel for accel in ("kvm", "unicorn") if probe(accel) is None]


def _run_safely(name, accel, timeout):
    try:
        return run_program(name, accel, timeout=timeout)
    except Exception as error:      # one broken program must not stop the others
        return ProgramRun(name, accel, False, [f"{type(error).__name__}: {error}"], b"", None, "error", 0.0)


def run_suite(names, accels, jobs=1, timeout=DEFAULT_TIMEOUT, report=print):
    """Run every program on every engine; with several engines, also require identical
    output and status across them. Returns (passed, failed)."""
    tasks = [(name, accel) for name in names for accel in accels]
    with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, jobs)) if jobs > 1 else _Inline() as pool:
        futures = [pool.submit(_run_safely, name, accel, timeout) for name, accel in tasks]
        runs = [f.result() for f in futures]
    passed = failed = skipped = 0
    for name in names:
        for run in runs:
            if run.name == name and run.skipped:
                skipped += 1
                report(f"SKIP {name} ({run.engine}): {run.skipped}")
        mine = [r for r in runs if r.name == name and not r.skipped]
        if not mine:
            continue
        problems = [f"[{r.engine}] {p}" for r in mine for p in r.problems]
        first = mine[0]
        for other in mine[1:]:
            if (other.serial, other.status) != (first.serial, first.status):
                problems.append(f"engines disagree: {first.engine} gave status {first.status}, "
                                f"{other.engine} gave status {other.status}"
                                + ("" if other.serial == first.serial else " and different output"))
        engines = ", ".join(f"{r.engine} {r.seconds:.2f}s" for r in mine)
        if problems:
            failed += 1
            report(f"FAIL {name} ({engines})")
            for problem in problems:
                report(f"     {problem}")
        else:
            passed += 1
            report(f"PASS {name} ({engines})")
    report(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return passed, failed


class _Inline:
    """A stand-in executor that runs tasks in this process, one after another."""
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        future = concurrent.futures.Future()
        future.set_result(fn(*args))
        return future


def default_jobs() -> int:
    return os.cpu_count() or 1
