"""Part 1 of `vmm bench engines` (see engines.py): instructions per second on the guest
program `compute N`, on our unicorn engine, on bare unicorn, on QEMU TCG, on KVM and as a
host process; the instruction count comes from the host process (perf or callgrind).
"""
import os
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

from .. import layout, paths
from ..errors import InputError, VmmError
from ..scratch import make_folder
from . import startup
from .harness import (goal_text, OK, Row, RunFailed, Unavailable, engine_unavailable, interleave, pct, ratio,
                      require_guest, spread, status_text, summary, table, ms)
from .process import build_spawner, run_process, which

COMPUTE = "compute"
DEFAULT_MIB = 4                 # about 0.9 s on vmm-unicorn, 0.3 s on QEMU TCG here
DEFAULT_RUNS = 5
RUN_TIMEOUT = 300.0             # seconds for one run before it is a failure
BASELINE_ARG = "0"              # `compute 0`: usage error, status 2, no work
BASELINE_STATUS = 2
QEMU_STATUS = startup.QEMU_SUCCESS     # isa-debug-exit: (status << 1) | 1
PAGE = layout.PAGE_SIZE


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
    workdir = Path(make_folder("bench-engines"))
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
        # A net time <= 0 means the work is below the timing noise: no rate for that row
        # rather than a rate from the runs that happened to come out positive.
        below_noise = sum(1 for t in net if t <= 0)
        rates = [instructions / t for t in net] if instructions and net and not below_noise else []
        out.append({
            "name": row.name, "label": row.label, "status": entry["status"], "reason": entry["reason"],
            "gross_seconds": summary(s["gross"] for s in samples) if ok else None,
            "base_seconds": summary(s["base"] for s in samples) if ok else None,
            "net_seconds": summary(net) if ok else None,
            "instructions_per_second": summary(rates) if rates else None,
            "rate_note": (f"net time <= 0 in {below_noise} of {len(net)} runs: the work is below the timing "
                          "noise at this size (raise --count)") if below_noise else None,
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
    bare = by_name.get("vmm-unicorn", {}).get("ratio_to_raw_unicorn")
    return {"part": "compute", "program": COMPUTE, "mib": mib, "runs": runs, "warmup_rounds": warmup,
            "order": "interleaved round-robin", "instructions": instructions, "instruction_count": method,
            "instruction_count_note": count_note,
            "timing": ("Machine rows: creation to exit; raw-unicorn: emu_start to the exit system call; "
                       "process rows: spawn to wait4" + ("" if spawner else " (by this process: no spawner)")
                       + "; net = `compute N` - `compute 0`, paired per run"),
            "goal": {"what": "vmm-unicorn >= 50% of qemu-tcg instructions/s", "ratio": goal,
                     "met": None if goal is None else goal >= 0.5,
                     "note": None if goal is not None else "; ".join(
                         f"{name}: {by_name[name]['rate_note'] or by_name[name]['reason'] or 'no rate'}"
                         for name in ("vmm-unicorn", "qemu-tcg")
                         if name in by_name and by_name[name]["instructions_per_second"] is None)
                     or "instructions not counted"},
            "goal_vs_bare": {"what": "vmm-unicorn >= 90% of raw-unicorn instructions/s", "ratio": bare,
                             "met": None if bare is None else bare >= 0.9},
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
        rate = spread(row["instructions_per_second"], 1e-6, "{:,.0f}") or "n/a"
        if row["rate_note"]:
            notes.append(f"[{len(notes) + 1}] {row['label']}: {row['rate_note']}")
            rate = f"n/a [{len(notes)}]"
        body.append([row["label"], status, spread(row["net_seconds"], 1000), ms(row["gross_seconds"]["median"]),
                     ms(row["base_seconds"]["median"]), rate,
                     pct(row["ratio_to_qemu_tcg"]), pct(row["ratio_to_raw_unicorn"])])
    lines.append(table(headers, body, align="<<>>>>>>"))
    lines.extend(notes)
    lines.append(goal_text(result["goal"]))
    lines.append(goal_text(result["goal_vs_bare"]))
    return "\n".join(lines)
