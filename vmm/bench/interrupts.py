"""The interrupts benchmark: what a sleeping guest costs the host, and how many timer
interrupts per second reach a guest.

Both run IrqGuest, a tiny 64-bit guest that programs the PC's 8259A pair and 8254 PIT, then
waits in `sti; hlt` for IRQ 0 and counts each one in memory (and EOIs it):
- sleep_cost: the PIT ticks at `hz` and the guest stops itself (debug-exit port) after
  `seconds` worth of ticks; the host CPU time of this process (user + sys, getrusage) over
  the wall time is the cost of a sleeping guest, in percent of one core. On KVM the CPU time
  of KVM's PIT kernel thread (kvm-pit/<pid>) is shown beside it; it is not ours in rusage.
- delivery: the PIT is programmed at each rate for `seconds`; the count the guest kept,
  against rate x elapsed, says how many interrupts were delivered. KVM runs a periodic PIT
  no faster than its min_timer_period_us allows (200 us by default: 5 kHz), and re-injects
  ticks the guest had not yet acknowledged, one after each EOI.

Engines: `engine` names one of ENGINE_SETUP: KVM, whose PIC and PIT are in the kernel, and
unicorn, which creates the same PIC pair and PIT from vmm/devices on the port bus it is
given. The tables get one row per engine.

    python -m vmm.bench.interrupts [--engine kvm --engine unicorn] [--sleep 2] [--rates 1000,2000,5000,10000] [--seconds 1]
"""
import argparse
import os
import resource
import struct
import time
from contextlib import contextmanager
from dataclasses import dataclass

from .. import layout
from ..arch.x86.cpu_state import CpuState
from ..arch.x86.long_mode import KERNEL_CODE64, KERNEL_DATA, long_mode_state, write_gdt, write_identity_map
from ..devices.bus import MmioBus, PortBus
from ..devices.debug_exit import DebugExit
from ..memory import GuestMemory
from ..outcome import DEBUG_EXIT, TIMEOUT, RunControl
from .harness import OK, UNAVAILABLE, Row, Unavailable, interleave, table

MEM_SIZE = 2 * layout.MiB
GDT = 0x800                     # null, 64-bit code, data
IDT = 0x2000                    # 48 interrupt gates of 16 bytes (vectors 0-0x2F)
COUNTER = 0x3000                # the dword the handler increments
STACK_TOP = 0x8000
PML4 = 0x9000                   # page tables identity-mapping the first 2 MiB (PDPT, PD after it)
CODE = 0x1_0000                 # the guest's code; its handler follows
KERNEL_CS, KERNEL_DS = 0x08, 0x10
GDT_ENTRIES = (0, KERNEL_CODE64, KERNEL_DATA)
MASTER_VECTOR = 0x20            # ICW2 of the master PIC: IRQ n is vector 0x20 + n
SLAVE_VECTOR = 0x28
VECTORS = SLAVE_VECTOR + 8
PIT_CONTROL_PORT = layout.PIT_PORT + 3
PIT_RATE_GENERATOR = 0x34       # channel 0, LSB then MSB, mode 2, binary
KVM_MIN_TIMER_PERIOD = "/sys/module/kvm/parameters/min_timer_period_us"


def _out_imm(port: int, value: int) -> bytes:
    return bytes([0xB0, value, 0xE6, port])     # mov $value, %al; out %al, $port


def _abs32(address: int) -> bytes:
    return b"\x04\x25" + struct.pack("<I", address)  # ModRM+SIB of an absolute [disp32] (not RIP-relative)


@dataclass
class IrqGuest:
    """The guest: 64-bit long mode in ring 0 (identity-mapped, interrupts off, IDT at IDT;
    long mode because kvm_pvm emulates `iretq` but not a 32-bit `iret`). It initializes both
    PICs (edge-triggered, vectors 0x20 and 0x28, cascade on IRQ 2) with only `irq` unmasked,
    optionally starts PIT channel 0 at `pit_hz` (mode 2), then runs `sti; 1: hlt; jmp 1b`.
    The handler of `irq`:
        incl COUNTER
        [out %al, (%dx) of the count's low byte to `report_port`]
        [after `stop_after` interrupts: out $0 to the debug-exit port (stop="exit"),
         or `hlt` with interrupts off (stop="hlt")]
        EOI (to both PICs for a slave IRQ); iretq
    Vectors 0x27 and 0x2F (spurious IRQ 7 and 15) return at once; any other vector has no
    gate and triple-faults the guest."""
    irq: int = layout.PIT_IRQ
    pit_hz: int | None = None
    report_port: int | None = None
    stop_after: int | None = None
    stop: str = "exit"

    @property
    def vector(self) -> int:
        return (MASTER_VECTOR + self.irq) if self.irq < 8 else (SLAVE_VECTOR + self.irq - 8)

    @property
    def pit_divisor(self) -> int:
        return max(1, min(65536, round(layout.PIT_INPUT_HZ / self.pit_hz)))

    @property
    def pit_rate(self) -> float:
        """The rate the PIT really runs at (the divisor is a whole number)."""
        return layout.PIT_INPUT_HZ / self.pit_divisor

    def code(self) -> tuple:
        """(machine code at CODE, offset of the handler, offset of the spurious stub)."""
        master_mask = 0xFF & ~(1 << self.irq) if self.irq < 8 else 0xFF & ~(1 << layout.PIC_CASCADE_IRQ)
        slave_mask = 0xFF & ~(1 << (self.irq - 8)) if self.irq >= 8 else 0xFF
        main = (b"\xb0\x11\xe6\x20\xe6\xa0"             # ICW1 (edge, cascade, ICW4) to both PICs
                + _out_imm(0x21, MASTER_VECTOR)          # ICW2: vector bases
                + _out_imm(0xA1, SLAVE_VECTOR)
                + _out_imm(0x21, 1 << layout.PIC_CASCADE_IRQ)   # ICW3: the slave is on IRQ 2
                + _out_imm(0xA1, layout.PIC_CASCADE_IRQ)        # ICW3: the slave's id
                + b"\xb0\x01\xe6\x21\xe6\xa1"           # ICW4: 8086 mode, to both
                + _out_imm(0x21, master_mask)            # OCW1: masks
                + _out_imm(0xA1, slave_mask))
        if self.pit_hz:
            divisor = self.pit_divisor & 0xFFFF          # 65536 is written as 0
            main += (_out_imm(PIT_CONTROL_PORT, PIT_RATE_GENERATOR)
                     + _out_imm(layout.PIT_PORT, divisor & 0xFF)
                     + _out_imm(layout.PIT_PORT, divisor >> 8))
        main += b"\xfb\xf4\xeb\xfd"                      # sti; 1: hlt; jmp 1b
        handler = (b"\x50"                               # push %rax
                   + b"\xff" + _abs32(COUNTER))          # incl COUNTER
        if self.report_port is not None or self.stop_after is not None:
            handler += b"\x8b" + _abs32(COUNTER)         # mov COUNTER, %eax
        if self.report_port is not None:
            handler += (b"\x52"                          # push %rdx
                        + b"\x66\xba" + struct.pack("<H", self.report_port)     # mov $port, %dx
                        + b"\xee"                        # out %al, (%dx)
                        + b"\x5a")                       # pop %rdx
        if self.stop_after is not None:
            halt = (b"\xb0\x00\xe6" + bytes([layout.DEBUG_EXIT_PORT]) if self.stop == "exit"
                    else b"\xf4\xeb\xfd")                # out $0, debug-exit | 1: hlt; jmp 1b
            handler += (b"\x3d" + struct.pack("<I", self.stop_after)  # cmp $stop_after, %eax
                        + b"\x75" + bytes([len(halt)])  # jne 1f
                        + halt)                          # 1:
        handler += b"\xb0\x20"                           # mov $0x20, %al (non-specific EOI)
        if self.irq >= 8:
            handler += b"\xe6\xa0"                       # out %al, $0xa0
        handler += (b"\xe6\x20"                          # out %al, $0x20
                    + b"\x58"                            # pop %rax
                    + b"\x48\xcf")                       # iretq
        spurious = b"\x48\xcf"                           # iretq
        return main + handler + spurious, len(main), len(main) + len(handler)

    def load(self, memory) -> None:
        code, handler, spurious = self.code()
        memory.write(CODE, code)
        write_gdt(memory, GDT, GDT_ENTRIES)
        write_identity_map(memory, PML4, 2 * layout.MiB)
        memory.write(COUNTER, bytes(4))
        gates = [bytes(16)] * VECTORS
        gates[self.vector] = _interrupt_gate(CODE + handler)
        for vector in (MASTER_VECTOR + 7, SLAVE_VECTOR + 7):
            if vector != self.vector:
                gates[vector] = _interrupt_gate(CODE + spurious)
        memory.write(IDT, b"".join(gates))

    def state(self) -> CpuState:
        return long_mode_state(CODE, STACK_TOP, PML4, GDT, GDT_ENTRIES, KERNEL_CS, KERNEL_DS,
                               idt_base=IDT, idt_limit=VECTORS * 16 - 1)

    @staticmethod
    def count(memory) -> int:
        return int.from_bytes(memory.read(COUNTER, 4), "little")


def _interrupt_gate(offset: int) -> bytes:
    """A present ring-0 64-bit interrupt gate (IF cleared on entry) to KERNEL_CS:offset."""
    return struct.pack("<HHBBHII", offset & 0xFFFF, KERNEL_CS, 0, 0x8E, (offset >> 16) & 0xFFFF, offset >> 32, 0)


# --- engines: each entry gives an engine whose guest has the PC's PIC pair and PIT ----------------
def _kvm_engine(memory, ports, mmio, control):
    from ..arch.x86.cpuid import build_table
    from ..engines.kvm import KvmEngine
    return KvmEngine(memory, ports, mmio, control, build_table(KvmEngine.tsc_khz()))


def _unicorn_engine(memory, ports, mmio, control):
    """The software engine brings its own PIC pair and PIT (engines/unicorn.py PcPlatform)
    and registers them on `ports`."""
    from ..arch.x86.cpuid import build_table
    from ..engines.unicorn import UnicornEngine
    return UnicornEngine(memory, ports, mmio, control, build_table(UnicornEngine.tsc_khz()))


ENGINE_SETUP = {"kvm": _kvm_engine, "unicorn": _unicorn_engine}


def probe(engine: str) -> str | None:
    """None if `engine` can run this benchmark here, else why not."""
    if engine not in ENGINE_SETUP:
        return f"no interrupt set-up for engine {engine!r} (known: {', '.join(ENGINE_SETUP)})"
    from ..machine import probe as probe_engine
    return probe_engine(engine)


@contextmanager
def booted(engine: str, guest: IrqGuest, ports: PortBus | None = None):
    """(engine, memory, control) with `guest` loaded, the debug-exit port wired, closed after."""
    ports = ports if ports is not None else PortBus()
    control = RunControl()
    ports.register(layout.DEBUG_EXIT_PORT, layout.DEBUG_EXIT_PORT_COUNT, DebugExit(control))
    with GuestMemory(MEM_SIZE) as memory:
        guest.load(memory)
        vm = ENGINE_SETUP[engine](memory, ports, MmioBus(), control)
        try:
            vm.set_state(guest.state())
            yield vm, memory, control
        finally:
            vm.close()


class CpuMeter:
    """User + system CPU seconds of this process (all threads) and, on KVM, of its kvm-pit
    kernel thread, between start() and stop()."""

    def start(self):
        self._wall = time.monotonic()
        self._cpu = _process_cpu()
        self._kthread = _kvm_pit_cpu()
        return self

    def stop(self) -> dict:
        wall = time.monotonic() - self._wall
        cpu = _process_cpu() - self._cpu
        kthread = _kvm_pit_cpu()
        kthread = None if kthread is None or self._kthread is None else kthread - self._kthread
        return {"wall": wall, "cpu": cpu, "cpu_percent": 100 * cpu / wall if wall > 0 else 0.0,
                "kthread_cpu": kthread}


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _kvm_pit_cpu() -> float | None:
    """CPU seconds of the kvm-pit/<our pid> kernel threads, None if there are none."""
    name = f"kvm-pit/{os.getpid()}"
    total, found = 0.0, False
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        if comm == name:
            fields = stat[stat.rindex(")") + 2:].split()
            total += (int(fields[11]) + int(fields[12])) / ticks      # utime, stime
            found = True
    return total if found else None


# --- the measurements -------------------------------------------------------------------------------
def sleep_cost(engine: str = "kvm", seconds: float = 2.0, hz: int = 100) -> dict:
    """Host CPU of a guest that sleeps `seconds` in HLT, woken by a `hz` timer tick."""
    guest = IrqGuest(pit_hz=hz, stop_after=max(1, round(seconds * hz)))
    with booted(engine, guest) as (vm, memory, control):
        meter = CpuMeter().start()
        outcome = vm.run(seconds * 3 + 5)
        cost = meter.stop()
        ticks = guest.count(memory)
    if outcome.reason != DEBUG_EXIT:
        raise RuntimeError(f"sleeping guest: {outcome.reason} ({outcome.detail}) after {ticks} ticks")
    return dict(cost, engine=engine, hz=hz, ticks=ticks, exits=vm.exit_counts())


def delivery(engine: str = "kvm", hz: int = 1000, seconds: float = 1.0) -> dict:
    """Timer interrupts the guest counted in `seconds` with the PIT programmed at `hz`."""
    guest = IrqGuest(pit_hz=hz)
    with booted(engine, guest) as (vm, memory, control):
        meter = CpuMeter().start()
        outcome = vm.run(seconds)
        cost = meter.stop()
        delivered = guest.count(memory)
    if outcome.reason != TIMEOUT:
        raise RuntimeError(f"counting guest: {outcome.reason} ({outcome.detail}) after {delivered} interrupts")
    expected = guest.pit_rate * cost["wall"]
    return dict(cost, engine=engine, hz=hz, pit_rate=guest.pit_rate, expected=expected, delivered=delivered,
                ratio=delivered / expected if expected else 0.0)


def run(engine: str = "kvm", sleep_seconds: float = 2.0, rates=(1000, 2000, 5000, 10000),
        seconds: float = 1.0, sleep_hz: int = 100) -> dict:
    """{"engine", "sleep": sleep_cost(...), "delivery": [delivery(...) per rate], "notes"}."""
    result = {"engine": engine, "sleep": sleep_cost(engine, sleep_seconds, sleep_hz),
              "delivery": [delivery(engine, hz, seconds) for hz in rates], "notes": []}
    if engine == "kvm":
        try:
            with open(KVM_MIN_TIMER_PERIOD) as f:
                period = int(f.read())
            result["notes"].append(f"KVM runs a periodic PIT at most every {period} us "
                                   f"({1e6 / period:,.0f} Hz): kvm.min_timer_period_us")
        except (OSError, ValueError):
            pass
    return result


def format_table(results) -> str:
    """The tables for one result of run() or a list of them (one row per engine)."""
    if isinstance(results, dict):
        results = [results]
    sleep_rows = []
    for r in results:
        s = r["sleep"]
        kthread = "-" if s["kthread_cpu"] is None else f"{s['kthread_cpu'] * 1000:.0f}"
        sleep_rows.append([r["engine"], f"{s['wall']:.2f}", s["hz"], s["ticks"], f"{s['cpu_percent']:.2f}", kthread])
    delivery_rows = [[r["engine"], f"{d['pit_rate']:.0f}", f"{d['wall']:.2f}", f"{d['expected']:.0f}", d["delivered"],
                      f"{d['ratio']:.1%}", f"{d['cpu_percent']:.2f}"] for r in results for d in r["delivery"]]
    lines = ["guest sleeping in HLT, woken by the PIT: host CPU (user+sys of this process)",
             table(["engine", "sleep s", "tick Hz", "ticks", "CPU %", "kvm-pit ms"], sleep_rows), "",
             "timer interrupt delivery (PIT mode 2, the guest counts and EOIs each IRQ 0)",
             table(["engine", "rate Hz", "seconds", "expected", "delivered", "ratio", "CPU %"], delivery_rows)]
    for r in results:
        lines += [f"note ({r['engine']}): {note}" for note in r["notes"]]
    return "\n".join(lines)


class EngineRow(Row):
    """Both measurements on one engine (context: the sleep and delivery settings)."""

    def __init__(self, engine):
        self.name = self.label = engine

    def prepare(self, context):
        reason = probe(self.name)
        if reason is not None:
            raise Unavailable(reason)

    def measure(self, context):
        return run(self.name, **context)


def main(engine: str = "kvm", sleep_seconds: float = 2.0, rates=(1000, 2000, 5000, 10000),
         seconds: float = 1.0) -> int:
    """Print the tables (what `vmm bench interrupts` runs); 69 if no engine can run here."""
    rows = [EngineRow(name) for name in ([engine] if isinstance(engine, str) else engine)]
    context = {"sleep_seconds": sleep_seconds, "rates": rates, "seconds": seconds}
    state = interleave(rows, runs=1, warmup=0, context=context)
    results = []
    for row in rows:
        entry = state[row.name]
        if entry["status"] != OK:
            print(f"{row.name} {'unavailable' if entry['status'] == UNAVAILABLE else 'FAILED'}: {entry['reason']}")
            continue
        results += entry["samples"]
    if not results:
        return 69
    print(format_table(results))
    return 0


def _cli(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", action="append", help="kvm (default) or unicorn; repeat for several")
    parser.add_argument("--sleep", type=float, default=2.0, help="seconds the sleeping guest sleeps")
    parser.add_argument("--rates", default="1000,2000,5000,10000", help="PIT rates in Hz, comma-separated")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per delivery rate")
    args = parser.parse_args(argv)
    rates = tuple(int(r) for r in args.rates.split(",") if r)
    return main(args.engine or "kvm", args.sleep, rates, args.seconds)


if __name__ == "__main__":
    raise SystemExit(_cli())
