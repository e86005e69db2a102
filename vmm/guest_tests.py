"""Guest test programs: read what each expects (guest/programs/NAME.expect for the programs
built on the project's libc, guest/rootfs/programs/NAME.expect for those of the test root
file system), run it in a VM on one or more engines, and compare.

The .expect format: header lines `key: value` (status, args, stdin, disks, qemu, linux,
requires, restore-requires, rootfs, program, variants, unordered; `#` starts a comment), a line
`---`, then the exact expected serial output up to the end of the file.

`disks: 1M 64K,ro` gives the program scratch virtio disks (vda, vdb, ...), made for the run
and deleted after it: writable ones zero-filled, read-only ones filled with disk_pattern(),
which the run must leave unchanged.

`rootfs: rootfs` boots the root file system guest/build/rootfs (packed as an initramfs) and
runs `program:` in it (a path, or a name looked up in PATH; default /bin/NAME), with `args:`.
`variants: glibc musl` makes one test per variant, NAME/glibc running /bin/NAME-glibc and so
on, all expecting the same output. The same root file system also runs each program as a
host process (chrooted, with /proc and /dev) and in the container launcher: one image, run
as a VM and as a container. `unordered: yes` compares the output's lines in any order with
the .expect (a directory listing in the host file system's order), while the runs are still
compared with one another as they are.
"""
import os
import re
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import paths
from .config import DiskSpec, MachineConfig, parse_size
from .errors import ImageError, InputError, UsageError
from .loader.elf import symbol_address
from .machine import ENGINES, Machine, choose_engine, engine_class, probe
from .outcome import INTERRUPTED
from .scratch import scratch_folder
from .signals import Terminated
from .workers import run_forked

# The one line the firmware prints before the kernel runs (firmware/main.c); the output after
# it must be the same as with the direct PVH boot.
FIRMWARE_BANNER = b"pyvmm firmware\n"
DEFAULT_TIMEOUT = 120.0      # seconds per program: generous, ring-0 code is emulated on nested KVM
ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "r": "\r", "0": "\0"}
SYMBOL = re.compile(rb"\{symbol:([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Expectation:
    name: str
    status: int
    output: bytes
    args: list = field(default_factory=list)
    stdin: bytes = b""
    skip: dict = field(default_factory=dict)    # runner ("qemu", "linux") -> reason
    requires: list = field(default_factory=list)    # engine features (Engine.missing_features)
    restore_requires: list = field(default_factory=list)    # features a restore from a snapshot needs
    disks: list = field(default_factory=list)   # [DiskNeed]: scratch disks, vda first
    rootfs: str | None = None           # a directory under guest/build: the root file system
    program: str | None = None          # the program to run in it
    unordered: bool = False             # lines may come in any order (compare them sorted)

    def root(self):
        return paths.GUEST_BUILD / self.rootfs

    def argv(self) -> list:
        """What the root file system's kernel, host and container runs execute."""
        return [self.program, *self.args]

    def matches(self, output: bytes) -> bool:
        if self.unordered:
            return sorted(output.splitlines(keepends=True)) == sorted(self.output.splitlines(keepends=True))
        return output == self.output


# The environment the tiny kernel gives the first program (guest/kernel/main.c): the host and
# container runs of a root file system's program get the same.
GUEST_ENV = {"HOME": "/", "TERM": "linux", "PATH": "/bin:/usr/bin:/sbin:/usr/sbin"}


@dataclass
class DiskNeed:
    size: int
    read_only: bool = False


# The test pattern of guest/programs/guestdev.h: the byte at disk offset o is
# (o * 31 + (o >> 9) * 7 + seed) & 0xFF. Read-only scratch disks hold seed 1.
READ_ONLY_SEED = 1
SECTOR = 512


def disk_pattern(size: int, seed: int = READ_ONLY_SEED, offset: int = 0) -> bytes:
    """`size` bytes of the pattern from disk offset `offset` (both multiples of 512). Within
    a sector o * 31 steps through the same 512 bytes (512 * 31 is 0 mod 256), so each sector
    is one row shifted by a constant."""
    row = bytes(j * 31 & 0xFF for j in range(SECTOR))
    shifts = [bytes((x + c) & 0xFF for x in range(256)) for c in range(256)]
    first = offset // SECTOR
    return b"".join(row.translate(shifts[(sector * 7 + seed) & 0xFF])
                    for sector in range(first, first + size // SECTOR))


def parse_disks(name: str, text: str) -> list:
    needs = []
    for item in text.split():
        size_text, _, option = item.partition(",")
        try:
            size = parse_size(size_text)
        except UsageError as error:
            raise ImageError(f"{name}.expect: disks: {error}") from None
        if option not in ("", "ro") or size == 0 or size % SECTOR:
            raise ImageError(f"{name}.expect: disks: {item!r} is not SIZE or SIZE,ro with SIZE a "
                             "non-zero multiple of 512")
        needs.append(DiskNeed(size, read_only=option == "ro"))
    return needs


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


def parse_expectation(name: str, text: str, variant: str | None = None) -> Expectation:
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
    for runner in ("qemu", "linux", "container"):
        value = fields.get(runner, "")
        if value.startswith("skip"):
            skip[runner] = value[4:].strip() or "skipped"
    rootfs = fields.get("rootfs")
    if rootfs is not None and (not rootfs or "/" in rootfs or rootfs.startswith(".")):
        raise ImageError(f"{name}.expect: rootfs: {rootfs!r} is not a directory name under guest/build")
    variants = fields.get("variants", "").split()
    if variants and variant not in variants:
        raise InputError(f"{name}.expect has the variants {', '.join(variants)}: run one as {name}/VARIANT")
    if variant and variant not in variants:
        raise InputError(f"{name}.expect has no variant {variant!r}")
    program = fields.get("program") or (f"/bin/{name}-{variant}" if variant else f"/bin/{name}")
    return Expectation(
        name=f"{name}/{variant}" if variant else name, status=int(fields["status"]), output=body.encode(),
        args=fields.get("args", "").split(), stdin=unescape(fields.get("stdin", "")).encode(), skip=skip,
        requires=fields.get("requires", "").split(), restore_requires=fields.get("restore-requires", "").split(),
        disks=parse_disks(name, fields.get("disks", "")),
        rootfs=rootfs, program=program if rootfs else None, unordered=fields.get("unordered") == "yes")


def expectation_file(base: str):
    for directory in paths.EXPECT_DIRECTORIES:
        path = directory / f"{base}.expect"
        if path.exists():
            return path
    return None


def load_expectation(name: str) -> Expectation:
    """NAME, or NAME/VARIANT for a program built in variants."""
    base, _, variant = name.partition("/")
    path = expectation_file(base)
    if path is None:
        raise InputError(f"no expectation file {base}.expect for program {name} in "
                         + " or ".join(str(d) for d in paths.EXPECT_DIRECTORIES))
    expect = parse_expectation(base, path.read_text(), variant or None)
    if not expect.rootfs:
        expect.output = resolve_symbols(paths.program_path(name), expect.output)
    return expect


def resolve_symbols(program, output: bytes) -> bytes:
    """{symbol:NAME} in the expected output becomes the address of NAME in the built `program`
    (hex, as the kernel prints it): what depends on the compiler is looked up, not pinned."""
    def address(match):
        symbol = match.group(1).decode()
        with open(program, "rb") as file:
            value = symbol_address(file.read(), symbol)
        if value is None:
            raise ImageError(f"{os.path.basename(program)}.expect names {{symbol:{symbol}}}, which the built program "
                             "does not define")
        return hex(value).encode()
    return SYMBOL.sub(address, output)


def all_programs(directories=None) -> list:
    """Every test: one per .expect file, one per variant for those built in variants; from
    `directories` (default: the guest programs' and the test root file system's)."""
    names = []
    for directory in directories or paths.EXPECT_DIRECTORIES:
        for path in directory.glob("*.expect"):
            variants = next((line.partition(":")[2].split() for line in path.read_text().split("\n---\n")[0].splitlines()
                             if line.startswith("variants:")), [])
            names += [f"{path.stem}/{v}" for v in variants] or [path.stem]
    return sorted(names)


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
    detail: str = ""            # how the run ended, in words (RunResult.detail)
    cpu_report: str = ""        # the registers and code, if the guest crashed or timed out


@contextmanager
def scratch_disks(needs):
    """Disk images for `needs` in a scratch folder (vmm/scratch.py), as [DiskSpec]; deleted
    afterwards, also after a signal."""
    with scratch_folder("disks") as folder:
        specs = []
        for index, need in enumerate(needs):
            path = os.path.join(folder, f"vd{chr(ord('a') + index)}.img")
            with open(path, "wb") as f:
                if need.read_only:
                    f.write(disk_pattern(need.size))
                else:
                    f.truncate(need.size)
            specs.append(DiskSpec(path, read_only=need.read_only))
        yield specs


def _changed_read_only_disks(specs) -> list:
    problems = []
    for index, spec in enumerate(specs):
        if spec.read_only:
            with open(spec.path, "rb") as f:
                data = f.read()
            if data != disk_pattern(len(data)):
                problems.append(f"read-only disk vd{chr(ord('a') + index)} changed")
    return problems


def run_program(name: str, accel: str, kernel: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                mem_size: int | None = None, firmware: str | None = None, inspect_disks=None) -> ProgramRun:
    """Boot the built program `name` on `accel` (through `firmware` if given) and check it
    against its .expect file. `inspect_disks(paths)`, if given, sees the scratch disks' files
    after the run."""
    return run_expectation(load_expectation(name), str(paths.program_path(name)), accel, kernel=kernel,
                           timeout=timeout, mem_size=mem_size, firmware=firmware, inspect_disks=inspect_disks)


def judging_engine(accel: str):
    """The engine class that runs `accel`: for "auto", the one it chooses here (so that `vmm
    test` skips exactly what the suite skips), else None for an unknown name."""
    if accel == "auto":
        return choose_engine(accel)[0]
    return engine_class(accel) if accel in ENGINES else None


def missing_requirement(expect: Expectation, accel: str) -> str | None:
    """Why engine `accel` cannot judge this program (a feature it `requires:` is missing), or None."""
    if not expect.requires:
        return None
    engine = judging_engine(accel)
    missing = engine.missing_features() if engine is not None else {}
    return next((missing[feature] for feature in expect.requires if feature in missing), None)


def run_expectation(expect: Expectation, program: str, accel: str, kernel: str | None = None,
                    timeout: float = DEFAULT_TIMEOUT, mem_size: int | None = None, firmware: str | None = None,
                    inspect_disks=None) -> ProgramRun:
    """Boot `program` with the tiny kernel (or `kernel`) and check the run against `expect`."""
    skipped = missing_requirement(expect, accel)
    if skipped:
        engine = judging_engine(accel)
        return ProgramRun(expect.name, engine.name if engine is not None else accel, True, [], b"", None,
                          "skipped", 0.0, skipped=skipped)
    with scratch_disks(expect.disks) as disks:
        boot = {"rootfs": str(expect.root()), "program_args": expect.argv()} if expect.rootfs else \
            {"initrd": program, "program_args": expect.args}
        config = MachineConfig(kernel=kernel or str(paths.DEFAULT_KERNEL), accel=accel, stdin=expect.stdin or None,
                               timeout=timeout, firmware=firmware, disks=disks, **boot)
        if mem_size:
            config.mem_size = mem_size
        with Machine(config) as vm:
            result = vm.run()
        problems = _changed_read_only_disks(disks)
        if inspect_disks is not None:
            inspect_disks([disk.path for disk in disks])
    serial = result.serial
    if firmware:
        if not serial.startswith(FIRMWARE_BANNER):
            problems.append(f"no firmware banner: output starts {serial[:60]!r}")
        serial = serial[len(FIRMWARE_BANNER):]
    if result.exit_status != expect.status:
        problems.append(f"exit status {result.exit_status} ({result.reason}: {result.detail}), expected {expect.status}")
    if not expect.matches(serial):
        problems.append(f"output {serial[-300:]!r}, expected {expect.output[-300:]!r}")
    return ProgramRun(expect.name, result.engine, not problems, problems, serial, result.exit_status,
                      result.reason, result.stats["total_seconds"], detail=result.detail,
                      cpu_report=result.cpu_report)


@dataclass
class ProcessRun:
    """A root file system's program run outside the VM: as a host process, in a container."""
    status: int | None
    output: bytes
    skipped: str = ""               # why it could not run here


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def run_on_host(expect: Expectation, timeout: float = DEFAULT_TIMEOUT) -> ProcessRun:
    """The program as a plain host process, chrooted into the root file system, with /proc and
    the host's /dev (mount points made as the container launcher makes them), the guest's
    environment, stdout and stderr merged as on the serial port; in its own mount and PID
    namespaces, so that nothing it starts outlives it (vmm/host_run.py). Needs root."""
    if os.geteuid() != 0:
        return ProcessRun(None, b"", "a host process in the root file system needs root (chroot, mounts)")
    from . import host_run
    status, output = host_run.run(expect.root(), expect.argv(), stdin=expect.stdin, env=GUEST_ENV,
                                  timeout=timeout)
    return ProcessRun(_exit_status(status), output)


def run_in_container(expect: Expectation) -> ProcessRun:
    """The program in the project's container launcher, on the same root file system."""
    from .container import probe, run_container
    reason = probe()
    if reason is not None:
        return ProcessRun(None, b"", f"containers unavailable here: {reason}")
    root = expect.root()
    if os.statvfs(root).f_flag & os.ST_RDONLY:     # the VM writes to its RAM copy; a container to the folder
        return ProcessRun(None, b"", f"{root} is on a read-only file system here (as in `make test-nested`, "
                                     "which mounts the host read-only): the container could not write to it")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as feed:
        feed.write(expect.stdin)
        feed.seek(0)
        status = run_container(root, expect.argv(), env=GUEST_ENV, stdin=feed, stdout=out, stderr=out)
        out.seek(0)
        return ProcessRun(status, out.read())


def available_engines() -> list:
    return [accel for accel in ("kvm", "unicorn") if probe(accel) is None]


def _run_safely(name, accel, timeout):
    try:
        run = run_program(name, accel, timeout=timeout)
    except Terminated:
        raise                       # a signal ends the whole suite (after cleanup)
    except Exception as error:      # one broken program must not stop the others
        return ProgramRun(name, accel, False, [f"{type(error).__name__}: {error}"], b"", None, "error", 0.0)
    if run.reason == INTERRUPTED:
        raise KeyboardInterrupt     # Ctrl-C stopped the VM: it stops the suite too
    return run


def run_suite(names, accels, jobs=1, timeout=DEFAULT_TIMEOUT, report=print):
    """Run every program on every engine; with several engines, also require identical
    output and status across them. Reports `N passed, N failed, N skipped` (a program
    counts once: skipped when no engine could judge it). Returns (passed, failed, skipped)."""
    tasks = [(name, accel, timeout) for name in names for accel in accels]
    if jobs > 1:
        runs = run_forked(_run_safely, tasks, jobs)
    else:
        runs = [_run_safely(*task) for task in tasks]
    passed = failed = skipped = 0
    for name in names:
        for run in runs:
            if run.name == name and run.skipped:
                report(f"SKIP {name} ({run.engine}: {run.skipped})")
        mine = [r for r in runs if r.name == name and not r.skipped]
        if not mine:
            skipped += 1
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
    report(f"{passed} passed, {failed} failed, {skipped} skipped")
    return passed, failed, skipped


def default_jobs() -> int:
    return os.cpu_count() or 1
