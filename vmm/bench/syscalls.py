"""The system-call benchmark: what one call costs a program in the VM, beside the same static
binary as a host process and in the container launcher, and how many ring-0 instructions the tiny kernel spends on it.

Seven operations, timed by guest/rootfs/programs/sysbench.c inside the guest (CLOCK_MONOTONIC
around a loop, so boot is not counted):
  getppid   the system-call round trip (the kernel only reads a field)
  pread     a 4 KiB pread64 of a root file system file (/data/pattern.bin, offset 0)
  futex     a wake-up round trip between two threads (two FUTEX_WAKEs, two FUTEX_WAITs and two
            switches of thread; issue 15)
  thread    pthread_create and pthread_join of a thread that returns at once (issue 15)
  fork      fork, a child that _exits at once, waitpid (issue 15)
  exec      fork, the child execs the same program as `sysbench exit` (exits 0 at once), waitpid
  pipe      a round trip between two processes, one byte each way over two pipes (issue 15)
The slower ones run fewer times per run (CALL_DIVISOR).

Rows, interleaved round-robin (run 1 of every row, then run 2 ...) after a warm-up round:
  host          sysbench-musl as a host process, chrooted in the test root file system
  container     the same binary in the project's container launcher (run_container, forked
                from this process), on the same root file system
  vmm-kvm       the same binary in the VM on KVM (Machine API, in this process)
  vmm-unicorn   the same on the software engine
The table gives nanoseconds per call, min / median / max, and each row's median over the
host's.

Ring-0 instructions per call: the same program runs once with N calls and once with none,
under the instruction tracer (vmm/debug/trace.py: a unicorn code hook; on KVM single-stepping,
which on this machine's nested KVM sees ring 0 only); the difference in kernel-image
instructions over N. The timer tick is left out, from its entry to the iretq that ends it,
with the scheduler's work it does from user mode (single-stepping is slow, so ticks pile up in
proportion to time, not to calls: with only the tick's entry left out, a pipe round trip
counted 10,800 on KVM against 2,100 on unicorn). A rep-prefixed string instruction counts once,
and its iterations are given apart where the engine shows them (unicorn; this KVM steps a
whole rep instruction at once, but emulates every iteration). On KVM `syscall`
arrives as a #PF at the entry point (the kernel's SYSCALL_OR_TRAP path); on unicorn it takes
the architectural SYSCALL path: the two counts differ by those entry instructions.

    vmm bench syscalls [--runs N] [--count CALLS] [--json PATH]
"""
import os
import platform
import struct
import sys
import tempfile

from .. import host_run, paths
from ..config import MachineConfig
from ..errors import VmmError
from ..debug.trace import InstructionTracer, attach_tracer
from ..machine import Machine, probe
from .harness import (FAILED, OK, UNAVAILABLE, Row, RunFailed, Unavailable, interleave, progress_printer, ratio,
                      report, summary, table)

PROGRAM = "/bin/sysbench-musl"
MODES = ("getppid", "pread", "futex", "thread", "fork", "exec", "pipe")
LABELS = {"getppid": "getppid round trip", "pread": "4 KiB pread64 of a rootfs file",
          "futex": "futex wake-up round trip between two threads", "thread": "thread create + join",
          "fork": "fork + exit + wait", "exec": "fork + exec + wait",
          "pipe": "pipe ping-pong round trip between two processes"}
HEADINGS = {"getppid": "getppid", "pread": "pread 4K", "futex": "futex rtt", "thread": "thread",
            "fork": "fork+exit", "exec": "fork+exec", "pipe": "pipe rtt"}
# A few hundred ms each per run; a fork costs ~130 ms of emulated ring 0 on this machine's KVM.
CALL_DIVISOR = {"getppid": 1, "pread": 1, "futex": 4, "thread": 20, "fork": 400, "exec": 400, "pipe": 20}
ROOTFS = paths.GUEST_BUILD / "rootfs"
KERNEL_IMAGE = (0x10_0000, 0x20_0000)   # guest/kernel/layout.h: where ring-0 code lives
DEFAULT_RUNS = 5
DEFAULT_CALLS = {"kvm": 2000, "unicorn": 20000, "host": 200000, "container": 200000}   # per run
COUNTED_CALLS = 50               # (divided by CALL_DIVISOR too)
RUN_TIMEOUT = 300.0


def calls_for(mode: str, calls: int) -> int:
    return max(1, calls // CALL_DIVISOR[mode])


def parse(output: bytes, mode: str) -> float:
    """ns per call from `sysbench MODE calls=N ns=T`."""
    for line in output.decode(errors="replace").splitlines():
        words = line.split()
        if len(words) == 4 and words[:2] == ["sysbench", mode]:
            fields = dict(word.split("=", 1) for word in words[2:])
            return int(fields["ns"]) / max(1, int(fields["calls"]))
    raise RunFailed(f"no result line for {mode}: {output[-200:]!r}")


class HostRow(Row):
    name = "host"

    def __init__(self, calls):
        self.calls = calls

    def prepare(self, context):
        if os.geteuid() != 0:
            raise Unavailable("not root: the host row runs the program chrooted in the root file system")

    def measure(self, context):
        result = {}
        for mode in MODES:
            status, output = host_run.run(ROOTFS, [PROGRAM, mode, str(calls_for(mode, self.calls))],
                                          timeout=RUN_TIMEOUT)
            if status:
                raise RunFailed(f"exit status {status}: {output[-200:]!r}")
            result[mode] = parse(output, mode)
        return result


class ContainerRow(Row):
    name = "container"

    def __init__(self, calls):
        self.calls = calls

    def prepare(self, context):
        from ..container import probe
        reason = probe()
        if reason is not None:
            raise Unavailable(f"containers unavailable: {reason}")

    def measure(self, context):
        from ..container import ContainerTerminated, ContainerUnavailable, run_container
        result = {}
        for mode in MODES:
            with tempfile.TemporaryFile() as out, open(os.devnull, "rb") as stdin:
                try:
                    status = run_container(ROOTFS, [PROGRAM, mode, str(calls_for(mode, self.calls))],
                                           stdin=stdin, stdout=out, stderr=out)
                except ContainerTerminated:
                    raise                   # a signal to this process ends the benchmark
                except ContainerUnavailable as error:
                    raise Unavailable(f"containers unavailable: {error}") from None
                except VmmError as error:   # e.g. a read-only root with no mount point for /proc
                    raise RunFailed(f"container launcher: {error}") from None
                out.seek(0)
                output = out.read()
            if status:
                raise RunFailed(f"exit status {status}: {output[-200:]!r}")
            result[mode] = parse(output, mode)
        return result


class VmRow(Row):
    def __init__(self, engine, calls):
        self.engine, self.calls, self.name = engine, calls, f"vmm-{engine}"

    def prepare(self, context):
        reason = probe(self.engine)
        if reason:
            raise Unavailable(reason)

    def measure(self, context):
        result = {}
        for mode in MODES:
            config = MachineConfig(kernel=str(paths.DEFAULT_KERNEL), rootfs=str(ROOTFS), accel=self.engine,
                                   program_args=[PROGRAM, mode, str(calls_for(mode, self.calls))],
                                   timeout=RUN_TIMEOUT)
            with Machine(config) as vm:
                run = vm.run()
            if run.exit_status != 0:
                raise RunFailed(f"{run.reason}: {run.detail}; {run.serial[-200:]!r}")
            result[mode] = parse(run.serial, mode)
        return result


def _elf_sections(data: bytes):
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    return [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]


def symbol_range(elf_path, name: str):
    """[start, end) of a symbol in an ELF64 file's symbol table, or None."""
    data = open(elf_path, "rb").read()
    sections = _elf_sections(data)
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind != 2:                   # SHT_SYMTAB
            continue
        strings = sections[link][4]
        for at in range(offset, offset + size, entsize):
            name_at, _, _, _, value, length = struct.unpack_from("<IBBHQQ", data, at)
            end = data.index(b"\0", strings + name_at)
            if data[strings + name_at:end] == name.encode():
                return value, value + max(length, 1)
    return None


IRETQ = b"\x48\xcf"                   # REX.W + IRET: every way out of the tiny kernel's traps


def iretq_addresses(elf_path) -> frozenset:
    """Addresses in executable sections where the bytes of an iretq are. A match inside another
    instruction is never executed as one, so it never ends a tick."""
    data = open(elf_path, "rb").read()
    found = set()
    for _, kind, flags, address, offset, size, _, _, _, _ in _elf_sections(data):
        if kind == 1 and flags & 0x4:   # SHT_PROGBITS, SHF_EXECINSTR
            at = data.find(IRETQ, offset, offset + size)
            while at >= 0:
                found.add(address + at - offset)
                at = data.find(IRETQ, at + 1, offset + size)
    return frozenset(found)


class TickFilter:
    """Tells a counter whether a kernel instruction belongs to a timer tick: from irq_timer
    (anywhere in it: KVM's single step may report its first instruction done) to the next
    iretq (the tick's own, or return_to_user's after the scheduler work it does)."""

    def __init__(self):
        self.entry = symbol_range(paths.DEFAULT_KERNEL, "irq_timer") or (0, 0)
        self.exits = iretq_addresses(paths.DEFAULT_KERNEL)
        self.inside = False

    def in_tick(self, address: int) -> bool:
        if self.entry[0] <= address < self.entry[1]:
            self.inside = True
        if not self.inside:
            return False
        if address in self.exits:
            self.inside = False
        return True


class Ring0Counter(InstructionTracer):
    """The tracer, writing nothing: counts the kernel image's instructions and the
    iterations of its rep-prefixed ones, outside the timer tick."""

    def __init__(self):
        super().__init__(open(os.devnull, "w"), limit=1 << 62)
        self.kernel = self.rep_iterations = 0
        self.ticks = TickFilter()

    def on_instruction(self, address, code, bits):
        inside = KERNEL_IMAGE[0] <= address < KERNEL_IMAGE[1] and not self.ticks.in_tick(address)
        if inside and address == self._last and self._repeat:
            self.rep_iterations += 1
        elif inside:
            self.kernel += 1
        return super().on_instruction(address, code, bits)


class UnicornRing0Counter:
    """On unicorn, a code hook on the kernel image only (the program's own instructions run
    without a call into Python); a rep iteration calls the hook again at the same address."""

    def __init__(self, engine):
        self.kernel = self.rep_iterations = 0
        self.ticks = TickFilter()
        self._last = None
        self._debug = engine.debug()
        self._handle = self._debug.code_hook(self.on_code, KERNEL_IMAGE[0], KERNEL_IMAGE[1] - 1)

    def on_code(self, address: int, size: int) -> None:
        if self.ticks.in_tick(address):
            return
        if address == self._last:
            self.rep_iterations += 1    # only string instructions run again in place
        else:
            self.kernel += 1
        self._last = address

    def detach(self) -> None:
        self._debug.remove_code_hook(self._handle)


def ring0_count(engine: str, mode: str, calls: int):
    """(instructions, rep iterations) of the kernel image for one run of `sysbench mode calls`."""
    config = MachineConfig(kernel=str(paths.DEFAULT_KERNEL), rootfs=str(ROOTFS), accel=engine,
                           program_args=[PROGRAM, mode, str(calls)], timeout=RUN_TIMEOUT)
    with Machine(config) as vm:
        if engine == "unicorn":
            counter = feed = UnicornRing0Counter(vm.engine)
        else:
            counter = Ring0Counter()
            feed = attach_tracer(vm.engine, counter)     # held until the run ends
        run = vm.run()
        feed.detach()
    if run.exit_status != 0:
        raise RunFailed(f"{run.reason}: {run.detail}")
    return counter.kernel, counter.rep_iterations


def per_call_instructions(engine: str, calls: int = COUNTED_CALLS) -> dict:
    """{mode: (instructions per call, rep iterations per call)} on `engine`."""
    result = {}
    for mode in MODES:
        n = calls_for(mode, calls)
        base, base_rep = ring0_count(engine, mode, 0)
        total, total_rep = ring0_count(engine, mode, n)
        result[mode] = ((total - base) / n, (total_rep - base_rep) / n)
    return result


def run(engines, runs: int = DEFAULT_RUNS, calls=None, progress=None, count_instructions: bool = True) -> dict:
    calls = calls or {}
    rows = [HostRow(calls.get("host", DEFAULT_CALLS["host"])),
            ContainerRow(calls.get("container", DEFAULT_CALLS["container"]))]
    rows += [VmRow(engine, calls.get(engine, DEFAULT_CALLS[engine])) for engine in engines]
    state = interleave(rows, runs, progress=progress)
    result = {"machine": platform.machine(), "runs": runs, "rows": {}, "ring0": {}}
    for row in rows:
        entry = state[row.name]
        samples = entry["samples"]
        result["rows"][row.name] = {
            "status": entry["status"], "reason": entry["reason"], "calls": row.calls,
            "ns_per_call": {mode: summary([s[mode] for s in samples]) for mode in MODES} if samples else {}}
    for engine in engines if count_instructions else ():
        if probe(engine) is None:
            if progress:
                print(f"  counting ring-0 instructions on {engine}", file=sys.stderr, flush=True)
            try:
                counts = per_call_instructions(engine)
            except RunFailed as error:
                result["ring0"][engine] = {"status": FAILED, "reason": str(error)}
                continue
            result["ring0"][engine] = {"status": OK, "calls": COUNTED_CALLS,
                                       **{mode: {"instructions": counts[mode][0], "rep_iterations": counts[mode][1]}
                                          for mode in MODES}}
        else:
            result["ring0"][engine] = {"status": UNAVAILABLE, "reason": probe(engine)}
    return result


def format_result(result: dict) -> str:
    lines = []
    host = result["rows"].get("host", {}).get("ns_per_call", {})
    for mode in MODES:
        rows = []
        for name, row in result["rows"].items():
            if row["status"] != OK:
                rows.append([name, f"({row['status']}: {row['reason']})", None, None, None])
                continue
            s = row["ns_per_call"][mode]
            factor = ratio(s["median"], host.get(mode, {}).get("median"))
            rows.append([name, f"{s['min']:,.0f}", f"{s['median']:,.0f}", f"{s['max']:,.0f}",
                         (f"{factor:,.1f}x" if factor < 10 else f"{factor:,.0f}x") if factor and name != "host" else None])
        lines += [f"{LABELS[mode]} (ns per call, {result['runs']} runs):",
                  table(["row", "min", "median", "max", "of host"], rows), ""]
    rows = []
    for engine, counts in result["ring0"].items():
        if counts["status"] != OK:
            rows.append([engine, f"({counts['status']}: {counts['reason']})"] + [None] * (2 * len(MODES) - 1))
            continue
        rows.append([engine] + [f"{counts[mode][key]:.0f}" for mode in MODES
                                for key in ("instructions", "rep_iterations")])
    lines += ["Ring-0 instructions per call (the kernel image; rep iterations apart):",
              table(["engine"] + [heading for mode in MODES for heading in (HEADINGS[mode], "+rep iter.")], rows)]
    return "\n".join(lines)


def main(engines, runs: int = DEFAULT_RUNS, count=None, json_path=None) -> int:
    calls = dict.fromkeys(DEFAULT_CALLS, count) if count else None
    if not ROOTFS.is_dir():
        print(f"vmm: error: {ROOTFS} is not built: run `make`")
        return 66
    result = run(engines, runs, calls, progress=progress_printer)
    failed = any(row["status"] == FAILED for row in result["rows"].values())
    return report(result, format_result(result), json_path, failed)
