"""The engines benchmark: the software CPU engine (unicorn) against its peers.

Three parts, each with its baselines measured in the same run. Within a part, runs are
interleaved round-robin (run 1 of every row, then run 2 ...) after one warm-up round that is
not counted, so drifts in the host's speed hit every row alike. A row whose tool or engine is
missing stays in its table, saying why; a row whose run goes wrong says that instead of a time.

1. compute: instructions per second on the guest program `compute N` (SHA-256 and CRC-32
   over N MiB of generated data; ring 3, a static Linux-ABI binary):
     vmm-unicorn   Machine(accel="unicorn") in this process, creation to exit
     raw-unicorn   the same ELF in a bare Uc(UC_ARCH_X86, UC_MODE_64): its PT_LOAD segments
                   in flat memory (no paging, ring 0), a psABI stack (argc, argv, envp,
                   auxv), and its system calls (write, brk, exit_group; `strace` shows no
                   others) answered by a UC_HOOK_INSN syscall hook; emu_start to exit
     qemu-tcg      qemu-system-x86_64 -M microvm -accel tcg with the same kernel and program,
                   process spawn to exit
     vmm-kvm       Machine(accel="kvm"): ring 3 runs natively (the reference)
     host          `compute N` as a host process: the floor
   Each run of a row is a pair: `compute N`, then `compute 0` (which only prints its usage
   error and exits 2: the same boot, load and exit with no work), and the row's time is the
   difference, so start-up is not counted; both are reported. The instruction count is taken
   once, on the host process (the same binary and instruction stream), with
   `perf stat -e instructions:u` where the PMU is visible and `valgrind --tool=callgrind`
   otherwise, as count(N) - count(0). Inside a VM the guest kernel adds a little: it zeroes
   the program's brk memory with a ring-3 `rep stosq` (N MiB / 8 iterations) and handles
   the few system calls, about 0.2% more.
2. port I/O: `out %al,%dx` round trips per second to the 16550's scratch register, the guest
   of vmm/bench/exits.py (real mode, a counted loop, then hlt):
     vmm-unicorn   UnicornEngine.run() with the PortBus and the real Uart16550
     bare-hook     the same code in a bare Uc(UC_MODE_16), a UC_HOOK_INSN OUT hook doing
                   nothing, installed with the binding's hook_add
     bare-raw      the same with a raw ctypes callback (no binding wrapper), as the engine
                   installs its own
3. hello: whole-VM time of `hello` on each engine: Machine in this process (creation to
   exit) and `vmm run` (process launch to exit), with QEMU (TCG and KVM) as the peers;
   the rows and their timing are vmm/bench/startup.py's.

Goals (from the issue): compute on vmm-unicorn at least 50% of QEMU TCG's instructions per
second; port I/O through the VMM at least 50% of the bare hook loop.

    vmm bench engines [--runs 5] [--count MIB] [--json PATH]
"""
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from .. import layout, paths
from ..errors import InputError, UsageError, VmmError
from . import startup
from .harness import (FAILED, OK, Row, RunFailed, Unavailable, describe_machine, engine_unavailable, interleave,
                      progress_printer, ratio, report, require_guest, status_text, summary, table)
from .process import build_spawner, run_process, which

COMPUTE = "compute"
DEFAULT_MIB = 4                 # about 0.9 s on vmm-unicorn, 0.3 s on QEMU TCG here
DEFAULT_RUNS = 5
DEFAULT_PIO_COUNT = 200_000     # about 0.3 s through the VMM on unicorn
RUN_TIMEOUT = 300.0             # seconds for one run before it is a failure
BASELINE_ARG = "0"              # `compute 0`: usage error, status 2, no work
BASELINE_STATUS = 2
QEMU_STATUS = startup.QEMU_SUCCESS     # isa-debug-exit: (status << 1) | 1
PAGE = layout.PAGE_SIZE


# --- formatting ------------------------------------------------------------------------------------

def ms(seconds) -> str:
    return "" if seconds is None else f"{seconds * 1000:.1f}"


def pct(value) -> str:
    return "" if value is None else f"{value:.1%}"


def spread(summary, scale=1.0, fmt="{:.1f}") -> str:
    """'median (min-max)' of a summary, scaled, or ''."""
    if summary is None:
        return ""
    return (f"{fmt.format(summary['median'] * scale)} ({fmt.format(summary['min'] * scale)}-"
            f"{fmt.format(summary['max'] * scale)})")


# --- part 1: compute ----------------------------------------------------------------------------

_instruction_cache = {}


def count_instructions(argv) -> tuple:
    """(user-mode instructions retired by the host process argv, how they were counted):
    `perf stat -e instructions:u` if the PMU is visible here, else callgrind's Ir count.
    Raises Unavailable if neither works."""
    program = Path(argv[0])
    key = (tuple(argv), program.stat().st_mtime_ns)
    if key in _instruction_cache:
        return _instruction_cache[key]
    tried = []
    perf = shutil.which("perf")
    if perf:
        proc = subprocess.run([perf, "stat", "-x", ",", "-e", "instructions:u", *argv],
                              capture_output=True, timeout=RUN_TIMEOUT)
        for line in proc.stderr.decode(errors="replace").splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[2].startswith("instructions"):
                if fields[0].isdigit() and proc.returncode in (0, BASELINE_STATUS):
                    _instruction_cache[key] = int(fields[0]), "perf stat -e instructions:u"
                    return _instruction_cache[key]
                tried.append(f"perf stat: {fields[0] or 'no count'}")
                break
        else:
            tried.append("perf stat: no instructions line")
    else:
        tried.append("perf is not installed")
    valgrind = shutil.which("valgrind")
    if valgrind:
        proc = subprocess.run([valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
                              capture_output=True, timeout=RUN_TIMEOUT * 4)
        match = re.search(rb"Collected\s*:\s*(\d+)", proc.stderr)
        if match:
            _instruction_cache[key] = int(match.group(1)), "valgrind --tool=callgrind (Ir)"
            return _instruction_cache[key]
        tried.append(f"callgrind: no count (status {proc.returncode})")
    else:
        tried.append("valgrind is not installed")
    raise Unavailable("cannot count instructions: " + "; ".join(tried))


class ComputeRow(Row):
    """measure(): {"gross": seconds of `compute N`, "base": seconds of `compute 0`}."""

    def measure(self, context):
        gross = self.run_program(context, context["mib_arg"], 0, context["expected"])
        base = self.run_program(context, BASELINE_ARG, BASELINE_STATUS, context["expected_base"])
        return {"gross": gross, "base": base}

    def run_program(self, context, arg, status, output) -> float:
        raise NotImplementedError


def check_run(what, status, output, expected_status, expected_output):
    if status != expected_status or output != expected_output:
        raise RunFailed(f"{what}: exit status {status} (expected {expected_status}), "
                        f"output {bytes(output)[:100]!r}" + ("" if output == expected_output else
                                                            f" (expected {expected_output[:60]!r}...)"))


class MachineCompute(ComputeRow):
    def __init__(self, name, label, accel):
        self.name, self.label, self.accel = name, label, accel

    def prepare(self, context):
        reason = engine_unavailable(self.accel)
        if reason is not None:
            raise Unavailable(reason)

    def run_program(self, context, arg, status, output):
        from ..config import MachineConfig
        from ..machine import Machine
        config = MachineConfig(kernel=str(paths.DEFAULT_KERNEL), initrd=str(context["program"]),
                               program_args=[arg], accel=self.accel, serial="none", timeout=RUN_TIMEOUT)
        started = time.perf_counter()
        try:
            vm = Machine(config)
        except VmmError as error:
            raise RunFailed(f"{self.name} `compute {arg}`: {error}") from None
        try:
            result = vm.run()
            seconds = time.perf_counter() - started
        finally:
            vm.close()
        if result.reason not in ("debug-exit", "halt"):
            raise RunFailed(f"{self.name} `compute {arg}`: {result.reason}: {result.detail}")
        check_run(f"{self.name} `compute {arg}`", result.exit_status, result.serial, status, output)
        return seconds


class ProcessCompute(ComputeRow):
    """A process row: timed by the spawner of bench/process.py (posix_spawn to wait4)."""
    exit_shift = False              # QEMU's isa-debug-exit: (status << 1) | 1

    def command(self, context, arg) -> list:
        raise NotImplementedError

    def run_program(self, context, arg, status, output):
        process = run_process(self.command(context, arg), None, context["spawner"], RUN_TIMEOUT)
        expected_status = (status << 1) | 1 if self.exit_shift else status
        check_run(f"{self.name} `compute {arg}`", process.status, bytes(process.output), expected_status, output)
        return process.seconds


class QemuCompute(ProcessCompute):
    exit_shift = True

    def __init__(self, name, label, accel):
        self.name, self.label, self.accel = name, label, accel

    def prepare(self, context):
        self.qemu = which("qemu-system-x86_64")
        if self.accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
            raise Unavailable("/dev/kvm is missing or not permitted")

    def command(self, context, arg):
        return [self.qemu, "-M", "microvm", "-accel", self.accel, "-nodefaults", "-no-user-config",
                "-display", "none", "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
                "-kernel", str(paths.DEFAULT_KERNEL), "-initrd", str(context["program"]),
                "-append", f"console=ttyS0 -- {arg}"]


class HostCompute(ProcessCompute):
    name, label = "host", "host process (the floor)"

    def command(self, context, arg):
        return [str(context["program"]), arg]


class RawUnicornCompute(ComputeRow):
    name, label = "raw-unicorn", "bare unicorn (flat, ring 0, syscall hook)"

    def prepare(self, context):
        try:
            import unicorn
        except ImportError as error:
            raise Unavailable(f"the unicorn Python package is not installed ({error})") from None
        if not unicorn.__version__.startswith("2."):
            raise Unavailable(f"unicorn {unicorn.__version__} is installed; this row needs unicorn 2.x")

    def run_program(self, context, arg, status, output):
        seconds, got_status, got_output = run_raw_unicorn(context["program"], [COMPUTE, arg])
        check_run(f"{self.name} `compute {arg}`", got_status, got_output, status, output)
        return seconds


# Where the bare run puts things (flat: virtual = physical, no page tables).
RAW_STACK_TOP = 0x7FFF_0000_0000
RAW_STACK_SIZE = 1 << 20
RAW_HEAP_SLACK = 2 << 20        # brk room beyond the program's own N MiB
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_ENTRY = 0, 3, 4, 5, 6, 9
SYS_WRITE, SYS_BRK, SYS_EXIT, SYS_EXIT_GROUP = 1, 12, 60, 231
ENOSYS, EBADF = 38, 9


def run_raw_unicorn(program, argv, heap_bytes=None) -> tuple:
    """Run a static x86-64 Linux ELF in a bare unicorn: (seconds from emu_start to the exit
    system call, exit status, bytes written to fds 1 and 2). Memory is GuestMemory mapped with
    mem_map_ptr, as the engine maps guest RAM. Only write, brk and exit/exit_group are
    answered; any other system call is a failure (RunFailed), since the run would not be the
    program's."""
    from unicorn import Uc, UcError, UC_ARCH_X86, UC_MODE_64, UC_PROT_ALL, UC_HOOK_INSN
    from unicorn import x86_const as x
    from ..engines.unicorn_binding import close_uc
    from ..loader.elf import ElfImage
    from ..memory import GuestMemory

    data = Path(program).read_bytes()
    elf = ElfImage(data, "program")
    low, high = elf.extent()
    low, high = low & ~(PAGE - 1), (high + PAGE - 1) & ~(PAGE - 1)
    if heap_bytes is None:
        mib = int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else 0
        heap_bytes = (mib << 20) + RAW_HEAP_SLACK
    image_size = high - low + heap_bytes
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.ctl_set_cpu_model(x.UC_CPU_X86_HASWELL)      # the engine's CPU model
    keep = []

    def map_ram(address, size):
        ram = GuestMemory(size)
        keep.append(ram)
        uc.mem_map_ptr(address, size, UC_PROT_ALL, ram.host_address)

    try:
        map_ram(low, image_size)
        for segment in elf.segments:
            uc.mem_write(segment.vaddr, data[segment.offset:segment.offset + segment.filesz])
        map_ram(RAW_STACK_TOP - RAW_STACK_SIZE, RAW_STACK_SIZE)
        # The psABI stack: argc, argv[], NULL, envp[] (empty), NULL, auxv pairs, AT_NULL.
        sp, pointers = RAW_STACK_TOP, []
        for arg in argv:
            blob = arg.encode() + b"\0"
            sp -= len(blob)
            uc.mem_write(sp, blob)
            pointers.append(sp)
        phoff, phentsize, phnum = struct.unpack_from("<Q", data, 32)[0], *struct.unpack_from("<HH", data, 54)
        auxv = [AT_PHDR, low + phoff, AT_PHENT, phentsize, AT_PHNUM, phnum,
                AT_PAGESZ, PAGE, AT_ENTRY, elf.entry, AT_NULL, 0]
        words = [len(argv), *pointers, 0, 0, *auxv]
        sp = (sp - 8 * len(words)) & ~0xF
        uc.mem_write(sp, struct.pack(f"<{len(words)}Q", *words))
        uc.reg_write(x.UC_X86_REG_RSP, sp)

        brk = {"start": high, "current": high, "limit": low + image_size}
        output, outcome = bytearray(), {}

        def on_syscall(uc_, _user_data):
            number = uc_.reg_read(x.UC_X86_REG_RAX)
            a0, a1, a2 = (uc_.reg_read(r) for r in (x.UC_X86_REG_RDI, x.UC_X86_REG_RSI, x.UC_X86_REG_RDX))
            if number == SYS_WRITE:
                if a0 in (1, 2):
                    output.extend(uc_.mem_read(a1, a2))
                    result = a2
                else:
                    result = -EBADF
            elif number == SYS_BRK:
                if brk["start"] <= a0 <= brk["limit"]:
                    brk["current"] = a0
                result = brk["current"]
            elif number in (SYS_EXIT, SYS_EXIT_GROUP):
                outcome.setdefault("status", a0 & 0xFF)
                outcome.setdefault("ended", time.perf_counter())
                uc_.emu_stop()
                result = 0
            else:
                outcome.setdefault("unexpected", number)
                uc_.emu_stop()
                result = -ENOSYS
            uc_.reg_write(x.UC_X86_REG_RAX, result & 0xFFFF_FFFF_FFFF_FFFF)

        uc.hook_add(UC_HOOK_INSN, on_syscall, None, 1, 0, x.UC_X86_INS_SYSCALL)
        started = time.perf_counter()
        try:
            uc.emu_start(elf.entry, 0, timeout=int(RUN_TIMEOUT * 1e6))
        except UcError as error:
            rip = uc.reg_read(x.UC_X86_REG_RIP)
            raise RunFailed(f"bare unicorn: {error} at rip={rip:#x}") from None
        if "unexpected" in outcome:
            raise RunFailed(f"bare unicorn: the program made system call {outcome['unexpected']}, "
                            "which this row does not emulate")
        if "status" not in outcome:
            raise RunFailed(f"bare unicorn: stopped without exiting, at rip={uc.reg_read(x.UC_X86_REG_RIP):#x}")
        return outcome["ended"] - started, outcome["status"], bytes(output)
    finally:
        close_uc(uc)                # before the memory it maps goes
        for ram in keep:
            ram.close()


def compute_rows() -> list:
    return [
        MachineCompute("vmm-unicorn", "vmm unicorn engine (Machine)", "unicorn"),
        RawUnicornCompute(),
        QemuCompute("qemu-tcg", "QEMU TCG (microvm, process)", "tcg"),
        MachineCompute("vmm-kvm", "vmm KVM engine (Machine; ring 3 native)", "kvm"),
        HostCompute(),
    ]


def run_compute(runs: int = DEFAULT_RUNS, mib: int = DEFAULT_MIB, warmup: int = 1, rows=None, progress=None) -> dict:
    program = paths.program_path(COMPUTE)
    require_guest(COMPUTE)
    rows = compute_rows() if rows is None else rows
    workdir = Path(tempfile.mkdtemp(prefix="pyvmm-bench-engines-"))
    try:
        expected = subprocess.run([str(program), str(mib)], capture_output=True, timeout=RUN_TIMEOUT)
        base = subprocess.run([str(program), BASELINE_ARG], capture_output=True, timeout=RUN_TIMEOUT)
        if expected.returncode != 0 or base.returncode != BASELINE_STATUS:
            raise InputError(f"{program} does not run as a host process here: `compute {mib}` / `compute 0` "
                             f"exited {expected.returncode} / {base.returncode}")
        context = {"program": program, "mib_arg": str(mib), "expected": expected.stdout,
                   "expected_base": base.stdout, "spawner": build_spawner(workdir)}
        try:
            count_n, method = count_instructions([str(program), str(mib)])
            count_0, _ = count_instructions([str(program), BASELINE_ARG])
            instructions, count_note = count_n - count_0, None
        except (Unavailable, OSError, subprocess.TimeoutExpired) as error:
            instructions, method, count_note = None, None, str(error)
        state = interleave(rows, runs, warmup, context, progress, part="compute")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return assemble_compute(rows, state, runs, warmup, mib, instructions, method, count_note,
                            spawner=context["spawner"] is not None)


def assemble_compute(rows, state, runs, warmup, mib, instructions, method, count_note, spawner=True) -> dict:
    out = []
    for row in rows:
        entry = state[row.name]
        ok = entry["status"] == OK and entry["samples"]
        samples = entry["samples"] if ok else []
        net = [s["gross"] - s["base"] for s in samples]
        rates = [instructions / t for t in net if t > 0] if instructions else []
        out.append({
            "name": row.name, "label": row.label, "status": entry["status"], "reason": entry["reason"],
            "gross_seconds": summary(s["gross"] for s in samples) if ok else None,
            "base_seconds": summary(s["base"] for s in samples) if ok else None,
            "net_seconds": summary(net) if ok else None,
            "instructions_per_second": summary(rates) if rates else None,
            "samples": samples,
        })
    by_name = {row["name"]: row for row in out}

    def median_rate(name):
        row = by_name.get(name)
        return row["instructions_per_second"]["median"] if row and row["instructions_per_second"] else None
    for row in out:
        rate = median_rate(row["name"])
        row["ratio_to_qemu_tcg"] = ratio(rate, median_rate("qemu-tcg"))
        row["ratio_to_raw_unicorn"] = ratio(rate, median_rate("raw-unicorn"))
        row["ratio_to_host"] = ratio(rate, median_rate("host"))
    goal = by_name.get("vmm-unicorn", {}).get("ratio_to_qemu_tcg")
    return {"part": "compute", "program": COMPUTE, "mib": mib, "runs": runs, "warmup_rounds": warmup,
            "order": "interleaved round-robin", "instructions": instructions, "instruction_count": method,
            "instruction_count_note": count_note,
            "timing": ("Machine rows: creation to exit; raw-unicorn: emu_start to the exit system call; "
                       "process rows: spawn to wait4" + ("" if spawner else " (by this process: no spawner)")
                       + "; net = `compute N` - `compute 0`, paired per run"),
            "goal": {"what": "vmm-unicorn >= 50% of qemu-tcg instructions/s", "ratio": goal,
                     "met": None if goal is None else goal >= 0.5},
            "rows": out}


def format_compute(result: dict) -> str:
    count = (f"{result['instructions'] / 1e6:,.1f} M instructions (count(N) - count(0), {result['instruction_count']})"
             if result["instructions"] else f"instructions not counted: {result['instruction_count_note']}")
    lines = [f"compute {result['mib']} MiB: instructions per second, {result['runs']} runs per row, "
             f"{result['order']}, after {result['warmup_rounds']} warm-up round(s)",
             f"{count}; time = `compute {result['mib']}` - `compute 0` (start-up), paired per run", ""]
    headers = ["row", "status", "net ms median (min-max)", "N ms", "0 ms", "M insn/s median (min-max)",
               "% of QEMU TCG", "% of bare unicorn"]
    body, notes = [], []
    for row in result["rows"]:
        status = status_text(row, notes)
        if row["status"] != OK:
            body.append([row["label"], status, "", "", "", "", "", ""])
            continue
        body.append([row["label"], status, spread(row["net_seconds"], 1000), ms(row["gross_seconds"]["median"]),
                     ms(row["base_seconds"]["median"]),
                     spread(row["instructions_per_second"], 1e-6, "{:,.0f}") or "n/a",
                     pct(row["ratio_to_qemu_tcg"]), pct(row["ratio_to_raw_unicorn"])])
    lines.append(table(headers, body, align="<<>>>>>>"))
    lines.extend(notes)
    goal = result["goal"]
    lines.append(f"goal: {goal['what']}: " + ("not measurable (a row is missing)" if goal["ratio"] is None else
                                              f"{goal['ratio']:.1%}, {'met' if goal['met'] else 'NOT met'}"))
    return "\n".join(lines)


# --- part 2: port I/O ---------------------------------------------------------------------------

PIO_MEM_SIZE = 64 * layout.KiB


def _pio_code():
    from . import exits
    return exits.CODE_ADDR, exits.GUEST_CODE, exits.SCRATCH_PORT


def bare_pio_loop(count: int, raw: bool = False) -> float:
    """Round trips per second of the exits guest in a bare 16-bit unicorn with an OUT hook
    that does nothing: the binding's hook_add, or (raw) a ctypes callback of our own."""
    from unicorn import Uc, UC_ARCH_X86, UC_MODE_16, UC_HOOK_INSN
    from ..engines.unicorn_binding import close_uc
    from unicorn import x86_const as x
    code_addr, code, port = _pio_code()
    uc = Uc(UC_ARCH_X86, UC_MODE_16)
    uc.mem_map(0, PIO_MEM_SIZE)
    uc.mem_write(code_addr, code)
    uc.reg_write(x.UC_X86_REG_CS, 0)
    uc.reg_write(x.UC_X86_REG_ECX, count)
    uc.reg_write(x.UC_X86_REG_EDX, port)
    uc.reg_write(x.UC_X86_REG_EAX, 0x55)
    hooks = None
    if raw:
        from ..engines.unicorn_binding import RawHooks

        def nothing(_uch, _port, _size, _value, _user_data):
            pass
        hooks = RawHooks(uc, on_error=print)
        hooks.insn("out", nothing)
    else:
        def nothing(_uc, _port, _size, _value, _user_data):
            pass
        uc.hook_add(UC_HOOK_INSN, nothing, None, 1, 0, x.UC_X86_INS_OUT)
    started = time.perf_counter()
    uc.emu_start(code_addr, 0)
    elapsed = time.perf_counter() - started
    ecx, ip = uc.reg_read(x.UC_X86_REG_ECX), uc.reg_read(x.UC_X86_REG_IP)
    close_uc(uc)
    if hooks is not None:
        hooks.release()             # (only after uc_close)
    if ecx != 0 or ip != code_addr + len(code):
        raise RunFailed(f"bare loop ended with ecx={ecx} at ip={ip:#x}, not after the hlt")
    return count / elapsed


def vmm_pio_loop(count: int) -> float:
    """Round trips per second of the same guest through UnicornEngine, the PortBus and the
    real Uart16550's scratch register."""
    from ..arch.x86.cpuid import build_table
    from ..devices.bus import MmioBus, PortBus
    from ..devices.uart import Uart16550
    from ..engines.base import HALT, RunControl
    from ..engines.unicorn import UnicornEngine
    from ..memory import GuestMemory
    from . import exits
    code_addr, code, _ = _pio_code()
    ports = PortBus()
    uart = Uart16550()
    ports.register(layout.COM1_PORT, layout.COM1_PORT_COUNT, uart)
    with GuestMemory(PIO_MEM_SIZE) as memory:
        memory.write(code_addr, code)
        engine = UnicornEngine(memory, ports, MmioBus(), RunControl(), build_table(UnicornEngine.tsc_khz()))
        try:
            engine.set_state(exits._guest_state(count))
            started = time.perf_counter()
            outcome = engine.run(RUN_TIMEOUT)
            elapsed = time.perf_counter() - started
            outs = engine.exit_counts().get("pio-out", 0)
        finally:
            engine.close()
    if outcome.reason != HALT or outs != count or uart.scr != 0x55:
        raise RunFailed(f"VMM loop: {outs} port writes (scratch {uart.scr:#x}), then {outcome}")
    return count / elapsed


class PioRow(Row):
    def __init__(self, name, label, loop):
        self.name, self.label, self.loop = name, label, loop

    def prepare(self, context):
        reason = engine_unavailable("unicorn")
        if reason is not None:
            raise Unavailable(reason)

    def measure(self, context):
        return {"rate": self.loop(context["count"])}


def pio_rows() -> list:
    return [
        PioRow("vmm-unicorn", "VMM: UnicornEngine + PortBus + Uart16550", vmm_pio_loop),
        PioRow("bare-hook", "bare unicorn, hook_add OUT hook doing nothing", lambda n: bare_pio_loop(n, raw=False)),
        PioRow("bare-raw", "bare unicorn, raw ctypes OUT callback doing nothing", lambda n: bare_pio_loop(n, raw=True)),
    ]


def run_pio(runs: int = DEFAULT_RUNS, count: int = DEFAULT_PIO_COUNT, warmup: int = 1, rows=None,
            progress=None) -> dict:
    rows = pio_rows() if rows is None else rows
    state = interleave(rows, runs, warmup, {"count": count}, progress, part="port I/O")
    out = []
    for row in rows:
        entry = state[row.name]
        ok = entry["status"] == OK and entry["samples"]
        out.append({"name": row.name, "label": row.label, "status": entry["status"], "reason": entry["reason"],
                    "rate": summary(s["rate"] for s in entry["samples"]) if ok else None,
                    "samples": entry["samples"] if ok else []})
    by_name = {row["name"]: row for row in out}

    def median(name):
        row = by_name.get(name)
        return row["rate"]["median"] if row and row["rate"] else None
    for row in out:
        row["ratio_to_bare_hook"] = ratio(median(row["name"]), median("bare-hook"))
        row["ratio_to_bare_raw"] = ratio(median(row["name"]), median("bare-raw"))
    goal = by_name.get("vmm-unicorn", {}).get("ratio_to_bare_hook")
    return {"part": "pio", "count": count, "runs": runs, "warmup_rounds": warmup, "order": "interleaved round-robin",
            "goal": {"what": "vmm-unicorn >= 50% of the bare hook loop", "ratio": goal,
                     "met": None if goal is None else goal >= 0.5},
            "rows": out}


def format_pio(result: dict) -> str:
    lines = [f"port-I/O round trips per second on unicorn ({result['runs']} runs of {result['count']:,} "
             f"`out` to COM1+7, {result['order']}, after {result['warmup_rounds']} warm-up round(s))", ""]
    headers = ["row", "status", "min /s", "median /s", "max /s", "% of bare hook", "% of bare raw"]
    body, notes = [], []
    for row in result["rows"]:
        status = status_text(row, notes)
        if row["status"] != OK:
            body.append([row["label"], status, "", "", "", "", ""])
            continue
        r = row["rate"]
        body.append([row["label"], status, f"{r['min']:,.0f}", f"{r['median']:,.0f}", f"{r['max']:,.0f}",
                     pct(row["ratio_to_bare_hook"]), pct(row["ratio_to_bare_raw"])])
    lines.append(table(headers, body, align="<<>>>>>"))
    lines.extend(notes)
    goal = result["goal"]
    lines.append(f"goal: {goal['what']}: " + ("not measurable (a row is missing)" if goal["ratio"] is None else
                                              f"{goal['ratio']:.1%}, {'met' if goal['met'] else 'NOT met'}"))
    return "\n".join(lines)


# --- part 3: hello, whole VM ---------------------------------------------------------------------

def hello_rows() -> list:
    return [
        startup.ApiRun("api-unicorn", "Machine, unicorn (in-process: create to exit)", "unicorn"),
        startup.ApiRun("api-kvm", "Machine, KVM (in-process: create to exit)", "kvm"),
        startup.VmmRun("vmm-unicorn", "vmm run --accel unicorn (launch to exit)", "unicorn"),
        startup.VmmRun("vmm-kvm", "vmm run --accel kvm (launch to exit)", "kvm"),
        startup.Qemu("qemu-tcg", "QEMU microvm TCG (launch to exit)", "tcg"),
        startup.Qemu("qemu-kvm", "QEMU microvm KVM (launch to exit)", "kvm"),
    ]


def run_hello(runs: int = DEFAULT_RUNS, warmup: int = 1, rows=None, progress=None) -> dict:
    def adapter(_part, round_number, warmup_, runs_):
        if progress:
            progress("hello", round_number, warmup_, runs_)
    result = startup.run(runs=runs, warmup=warmup, rows=hello_rows() if rows is None else rows, progress=adapter)
    out = []
    for row in result["rows"]:
        out.append({key: row[key] for key in ("name", "label", "kind", "command", "status", "reason",
                                                "seconds", "times")})
    by_name = {row["name"]: row for row in out}

    def median(name):
        row = by_name.get(name)
        return row["seconds"]["median"] if row and row["seconds"] else None
    for row in out:
        row["ratio_to_qemu_tcg"] = ratio(median(row["name"]), median("qemu-tcg"))
    return {"part": "hello", "program": startup.PROGRAM, "runs": runs, "warmup_rounds": warmup,
            "order": "interleaved round-robin", "process_timing": result["process_timing"],
            "unicorn_over_kvm": {"in_process": ratio(median("api-unicorn"), median("api-kvm")),
                                 "process": ratio(median("vmm-unicorn"), median("vmm-kvm"))},
            "rows": out}


def format_hello(result: dict) -> str:
    lines = [f"whole VM, `{result['program']}`: {result['runs']} runs per row, {result['order']}, after "
             f"{result['warmup_rounds']} warm-up round(s); processes timed {result['process_timing']}", ""]
    headers = ["row", "status", "min ms", "median ms", "max ms", "time / QEMU TCG"]
    body, notes = [], []
    for row in result["rows"]:
        status = status_text(row, notes)
        if row["status"] != OK:
            body.append([row["label"], status, "", "", "", ""])
            continue
        s = row["seconds"]
        body.append([row["label"], status, ms(s["min"]), ms(s["median"]), ms(s["max"]),
                     "" if row["ratio_to_qemu_tcg"] is None else f"{row['ratio_to_qemu_tcg']:.2f}x"])
    lines.append(table(headers, body, align="<<>>>>"))
    lines.extend(notes)
    ratios = result["unicorn_over_kvm"]
    lines.append("unicorn / KVM (medians): " + ", ".join(
        f"{what} {'n/a' if value is None else f'{value:.2f}x'}"
        for what, value in (("in-process", ratios["in_process"]), ("process", ratios["process"]))))
    return "\n".join(lines)


# --- the whole benchmark -----------------------------------------------------------------------

def run(runs: int = DEFAULT_RUNS, mib: int = DEFAULT_MIB, pio_count: int = DEFAULT_PIO_COUNT,
        warmup: int = 1, progress=None) -> dict:
    if runs < 1:
        raise UsageError("--runs must be at least 1")
    if not 1 <= mib <= 4096:
        raise UsageError("--count (MiB for `compute`) must be 1..4096")
    return {"benchmark": "engines", "machine": describe_machine(),
            "compute": run_compute(runs, mib, warmup, progress=progress),
            "pio": run_pio(runs, pio_count, warmup, progress=progress),
            "hello": run_hello(runs, warmup, progress=progress)}


def format_report(result: dict) -> str:
    machine = result["machine"]
    head = (f"{machine['cpu_model']}, {machine['cpus']} CPUs, Linux {machine['kernel']}, KVM: {machine['kvm']}; "
            f"unicorn {machine['versions']['unicorn']}; {machine['versions']['qemu'] or 'no QEMU'}")
    return "\n\n".join([head, format_compute(result["compute"]), format_pio(result["pio"]),
                        format_hello(result["hello"])])


def any_failed(result: dict) -> bool:
    return any(row["status"] == FAILED for part in ("compute", "pio", "hello") for row in result[part]["rows"])


def main(runs: int = DEFAULT_RUNS, mib: int = DEFAULT_MIB, json_path=None, pio_count: int = DEFAULT_PIO_COUNT) -> int:
    """Print the three tables (what `vmm bench engines` runs); write JSON if asked.
    Exit status 0, or 1 if a row failed (rows that are only unavailable do not count)."""
    result = run(runs, mib, pio_count, progress=progress_printer)
    return report(result, format_report(result), json_path, failed=any_failed(result))


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--mib", type=int, default=DEFAULT_MIB)
    parser.add_argument("--pio-count", type=int, default=DEFAULT_PIO_COUNT)
    parser.add_argument("--json", default=None)
    arguments = parser.parse_args()
    raise SystemExit(main(arguments.runs, arguments.mib, arguments.json, arguments.pio_count))
