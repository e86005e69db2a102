"""KVM's in-kernel interrupt platform in the engine-neutral format of a snapshot: the same
dicts the software engine's models save (devices/pic.py, pit.py, lapic.py, ioapic.py, gathered
by pc_platform.py), read from and written to KVM_GET/SET_IRQCHIP, KVM_GET/SET_PIT2 and
KVM_GET/SET_LAPIC. So a snapshot taken on one engine loads on the other.

Where KVM's model and ours differ, the translation keeps what the guest can observe:
- 8259A: KVM's last_irr, priority_add, init_state and ELCR are our lines, highest, init step
  and level mask; KVM has no single mode and no ICW3 (always the PC's cascade).
- 8254: KVM keeps the time its count was loaded; we keep input clocks elapsed since then.
  KVM_SET_PIT2 reloads every count at once, so on KVM channel 0's period restarts at the
  restore (the phase within one period, at most 10 ms for the tiny kernel's 100 Hz, is lost).
- Local APIC: the timer's remaining time is TMCCT (KVM_GET_LAPIC fills it in) at the 1 GHz
  bus both engines use (arch/x86/cpuid.py CRYSTAL_HZ); KVM_SET_LAPIC restarts the timer from
  it. A one-shot timer that already fired is written with TMICT = 0, because KVM would fire
  it again on the restore; a guest that reads TMICT back then sees 0.
- IOAPIC: KVM's irr is our line levels, for level-triggered pins (KVM re-delivers what irr
  holds when it is set; an edge-triggered pin's edge was delivered when it came).
"""
import time

from .. import layout
from ..arch.x86 import apic as A
from ..arch.x86.cpuid import CRYSTAL_HZ
from ..kvm import constants as kc

NS_PER_S = 1_000_000_000
PIT_MODE_UNSET = 0xFF                 # KVM's channel mode before the first control word
RW_LSB, RW_MSB, RW_WORD0, RW_WORD1 = 1, 2, 3, 4   # KVM's read_state / write_state / count_latched
PIC_CASCADE_ICW3 = {True: 1 << layout.PIC_CASCADE_IRQ, False: layout.PIC_CASCADE_IRQ}
LEVEL_TRIGGERED = 1 << 15             # in an IOAPIC redirection entry


# --- 8259A -----------------------------------------------------------------------------------------
def pic_to_neutral(p, master: bool) -> dict:
    return {"lines": p.last_irr, "irr": p.irr, "isr": p.isr, "imr": p.imr, "vector_base": p.irq_base,
            "level_mask": p.elcr, "highest": p.priority_add & 7, "auto_eoi": bool(p.auto_eoi),
            "rotate_in_aeoi": bool(p.rotate_on_auto_eoi), "special_mask": bool(p.special_mask),
            "special_fully_nested": bool(p.special_fully_nested_mode), "read_isr": bool(p.read_reg_select),
            "poll": bool(p.poll), "single": False, "icw3": PIC_CASCADE_ICW3[master], "int_out": False,
            "icw4_needed": bool(p.init4), "init_step": p.init_state}


def pic_from_neutral(p, state: dict, master: bool) -> None:
    """Into KVM's state `p` (read from KVM first, which keeps its ELCR mask). KVM's PIT
    pulses IRQ 0 on each tick and leaves it low, where our PIT holds it high between edges:
    the master's IRQ 0 line goes in low, else KVM's next tick would be no edge, never be
    acknowledged, and (re-injection waits for the acknowledge) be the last one."""
    p.last_irr, p.irr, p.isr, p.imr = (state[k] & 0xFF for k in ("lines", "irr", "isr", "imr"))
    if master:
        p.last_irr &= ~(1 << layout.PIT_IRQ)
    p.irq_base, p.priority_add, p.init_state = state["vector_base"] & 0xF8, state["highest"] & 7, state["init_step"] & 3
    p.elcr = state["level_mask"] & p.elcr_mask
    p.auto_eoi, p.rotate_on_auto_eoi = int(state["auto_eoi"]), int(state["rotate_in_aeoi"])
    p.special_mask, p.special_fully_nested_mode = int(state["special_mask"]), int(state["special_fully_nested"])
    p.read_reg_select, p.poll, p.init4 = int(state["read_isr"]), int(state["poll"]), int(state["icw4_needed"])


# --- 8254 ------------------------------------------------------------------------------------------
def pit_channel_to_neutral(c, now_ns: int) -> dict:
    mode = None if c.mode > 5 else c.mode
    n = c.count or 0x10000
    elapsed = max(0, now_ns - c.count_load_time) * layout.PIT_INPUT_HZ // NS_PER_S if mode is not None else 0
    if mode in (2, 3):
        edges = elapsed // n                     # every edge due by now was delivered
    else:
        edges = int(elapsed >= (n if mode in (0, 1) else n + 1))
    latched = []
    if c.count_latched == RW_WORD0:
        latched = [c.latched_count & 0xFF, c.latched_count >> 8]
    elif c.count_latched == RW_MSB:
        latched = [c.latched_count >> 8 & 0xFF]
    elif c.count_latched:
        latched = [c.latched_count & 0xFF]
    return {"mode": mode, "mode_bits": mode or 0, "access": c.rw_mode or RW_WORD0, "bcd": bool(c.bcd),
            "gate": bool(c.gate), "cr": n if mode is not None else None, "n": n, "loaded": mode is not None,
            "running": mode is not None and (bool(c.gate) or mode in (1, 5)), "null_count": False,
            "edges_seen": edges, "seq_start": 0, "edge_base": 0, "reload_at": None,
            "write_lsb": c.write_latch if c.write_state == RW_WORD1 else None, "msb_next": c.read_state == RW_WORD1,
            "latched": latched, "status": c.status if c.status_latched else None, "elapsed": elapsed}


def pit_channel_from_neutral(c, state: dict, now_ns: int) -> None:
    mode, access = state["mode"], state["access"] & 3
    c.mode = PIT_MODE_UNSET if mode is None else mode
    c.count = (state["n"] if state["loaded"] else state["cr"] or 0x10000) & 0x1FFFF
    c.count_load_time = now_ns - state["elapsed"] * NS_PER_S // layout.PIT_INPUT_HZ
    c.rw_mode, c.bcd, c.gate = access, int(state["bcd"]), int(state["gate"])
    word = RW_WORD1 if access == RW_WORD0 else access
    c.read_state = word if state["msb_next"] else access
    c.write_state, c.write_latch = (word, state["write_lsb"]) if state["write_lsb"] is not None else (access, 0)
    latched = state["latched"]
    c.count_latched, c.latched_count = 0, 0
    if len(latched) == 2:
        c.count_latched, c.latched_count = RW_WORD0, latched[0] | latched[1] << 8
    elif latched:
        msb = access == RW_MSB or access == RW_WORD0
        c.count_latched, c.latched_count = (RW_MSB, latched[0] << 8) if msb else (RW_LSB, latched[0])
    c.status_latched, c.status = (0, 0) if state["status"] is None else (1, state["status"])


def pit_to_neutral(pit2) -> dict:
    now = time.monotonic_ns()                    # the clock of count_load_time (ktime_get)
    channels = [pit_channel_to_neutral(c, now) for c in pit2.channels]
    return {"channels": channels, "line": channels[0]["mode"] in (2, 3, 4, 5), "lost_ticks": 0,
            "port_b": {"bits": int(channels[2]["gate"]), "refresh": False}}


def pit_from_neutral(pit2, state: dict) -> None:
    now = time.monotonic_ns()
    for c, channel in zip(pit2.channels, state["channels"]):
        pit_channel_from_neutral(c, channel, now)


# --- local APIC ------------------------------------------------------------------------------------
def _reg(page, offset: int) -> int:
    return int.from_bytes(bytes(page[offset:offset + 4]), "little")


def _set_reg(page, offset: int, value: int) -> None:
    page[offset:offset + 4] = list((value & 0xFFFF_FFFF).to_bytes(4, "little"))


def _divider(config: int) -> int:
    return A.DIVIDERS[(config & 3) | (config >> 1 & 4)]


def lapic_to_neutral(page, base_msr: int) -> dict:
    """From KVM_GET_LAPIC's page (TMCCT current) and IA32_APIC_BASE."""
    bits = {name: sum(_reg(page, base + 0x10 * i) << (32 * i) for i in range(8))
            for name, base in (("irr", A.IRR), ("isr", A.ISR), ("tmr", A.TMR))}
    divide = _reg(page, A.TIMER_DIVIDE) & 0b1011
    timer_mode = _reg(page, A.LVT_TIMER) >> A.TIMER_MODE_SHIFT & 3
    initial, current = _reg(page, A.TIMER_INITIAL), _reg(page, A.TIMER_CURRENT)
    remaining = None
    if timer_mode in (A.TIMER_ONE_SHOT, A.TIMER_PERIODIC) and initial and current:
        remaining = current * _divider(divide) * NS_PER_S // CRYSTAL_HZ
    return dict(bits, apic_id=_reg(page, A.ID) >> 24, base_msr=base_msr, tpr=_reg(page, A.TPR) & 0xFF,
                ldr=_reg(page, A.LDR), dfr=_reg(page, A.DFR), svr=_reg(page, A.SVR), esr=_reg(page, A.ESR),
                icr_low=_reg(page, A.ICR_LOW), icr_high=_reg(page, A.ICR_HIGH), divide_config=divide,
                timer_initial=initial, tsc_deadline=0, timer_remaining_ns=remaining,
                lvt={f"{r:#x}": _reg(page, r) for r in A.LVT_REGISTERS})


def lapic_from_neutral(page, state: dict) -> None:
    """Into KVM's page (read from KVM first: the registers KVM derives stay KVM's)."""
    for name, base in (("irr", A.IRR), ("isr", A.ISR), ("tmr", A.TMR)):
        for i in range(8):
            _set_reg(page, base + 0x10 * i, state[name] >> (32 * i))
    for register, key in ((A.TPR, "tpr"), (A.LDR, "ldr"), (A.DFR, "dfr"), (A.SVR, "svr"), (A.ESR, "esr"),
                          (A.ICR_LOW, "icr_low"), (A.ICR_HIGH, "icr_high"), (A.TIMER_DIVIDE, "divide_config")):
        _set_reg(page, register, state[key])
    _set_reg(page, A.ID, state["apic_id"] << 24)
    for register in A.LVT_REGISTERS:
        _set_reg(page, register, state["lvt"][f"{register:#x}"])
    timer_mode = state["lvt"][f"{A.LVT_TIMER:#x}"] >> A.TIMER_MODE_SHIFT & 3
    remaining = state["timer_remaining_ns"]
    initial = state["timer_initial"]
    if remaining is None and timer_mode == A.TIMER_ONE_SHOT:
        initial = 0                              # fired already: KVM would fire it again
    current = 0 if remaining is None else remaining * CRYSTAL_HZ // (NS_PER_S * _divider(state["divide_config"]))
    _set_reg(page, A.TIMER_INITIAL, initial)
    _set_reg(page, A.TIMER_CURRENT, max(1, current) if remaining is not None else 0)


def lapic_timer(page) -> tuple:
    """(TMICT, TMCCT): what pausing keeps of the timer (kvm_snapshot.py)."""
    return _reg(page, A.TIMER_INITIAL), _reg(page, A.TIMER_CURRENT)


def set_lapic_timer(page, initial: int, current: int) -> None:
    _set_reg(page, A.TIMER_INITIAL, initial)
    _set_reg(page, A.TIMER_CURRENT, current)


# --- IOAPIC ----------------------------------------------------------------------------------------
def ioapic_to_neutral(io) -> dict:
    return {"apic_id": io.id, "select": io.ioregsel, "entries": list(io.redirtbl),
            "levels": [bool(io.irr >> pin & 1) for pin in range(layout.IOAPIC_PINS)]}


def ioapic_from_neutral(io, state: dict) -> None:
    io.id, io.ioregsel = state["apic_id"] & 0xF, state["select"] & 0xFF
    entries, levels = state["entries"], state["levels"]
    for pin in range(layout.IOAPIC_PINS):
        io.redirtbl[pin] = entries[pin]
    io.irr = sum(1 << pin for pin in range(layout.IOAPIC_PINS)
                 if levels[pin] and entries[pin] & LEVEL_TRIGGERED)


# --- the whole platform, on a KVM VM and its vCPU --------------------------------------------------
def save(vm, vcpu, lapic_page=None) -> dict:
    """The neutral platform state; `lapic_page` instead of reading KVM's (a paused VM's)."""
    master = vm.get_irqchip(kc.KVM_IRQCHIP_PIC_MASTER).chip.pic
    slave = vm.get_irqchip(kc.KVM_IRQCHIP_PIC_SLAVE).chip.pic
    page = lapic_page if lapic_page is not None else vcpu.get_lapic().regs
    base = vcpu.get_msrs([A.APIC_BASE_MSR])[A.APIC_BASE_MSR]
    return {"pic": {"master": pic_to_neutral(master, True), "slave": pic_to_neutral(slave, False)},
            "pit": pit_to_neutral(vm.get_pit2()), "lapic": lapic_to_neutral(page, base),
            "ioapic": ioapic_to_neutral(vm.get_irqchip(kc.KVM_IRQCHIP_IOAPIC).chip.ioapic), "pulsed": 0}


def load(vm, vcpu, state: dict) -> None:
    """The neutral platform state into KVM. Raises KeyError/TypeError on a malformed state
    (the caller has checked its shape with the models' own loaders first)."""
    for chip_id, key in ((kc.KVM_IRQCHIP_PIC_MASTER, "master"), (kc.KVM_IRQCHIP_PIC_SLAVE, "slave")):
        chip = vm.get_irqchip(chip_id)
        pic_from_neutral(chip.chip.pic, state["pic"][key], key == "master")
        vm.set_irqchip(chip)
    chip = vm.get_irqchip(kc.KVM_IRQCHIP_IOAPIC)
    ioapic_from_neutral(chip.chip.ioapic, state["ioapic"])
    vm.set_irqchip(chip)
    pit2 = vm.get_pit2()
    pit_from_neutral(pit2, state["pit"])
    vm.set_pit2(pit2)
    lapic = state["lapic"]
    vcpu.set_msrs([(A.APIC_BASE_MSR, lapic["base_msr"])])
    page = vcpu.get_lapic()
    lapic_from_neutral(page.regs, lapic)
    vcpu.set_lapic(page)
