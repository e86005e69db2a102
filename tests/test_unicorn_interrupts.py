"""The unicorn engine's PC interrupt platform: its own 8259A pair and 8254 PIT on the port bus,
irq lines driven from other threads, delivery between translated blocks, the STI / MOV SS
interrupt shadow, HLT as a sleep, and what a sleeping guest costs the host.

The guests are assembled at test time (GNU as, like tests/test_unicorn_engine.py, whose
helpers they share). Each programs both PICs the standard way (vectors 0x20 and 0x28, cascade
on IRQ 2, edge-triggered) and has one stub per IRQ vector that logs (vector, interrupted RIP),
counts, EOIs (not for a spurious IRQ 7 / 15, which it recognises by the ISR bit, as Linux
does), and stops the VM through the debug-exit port when the count reaches STOP_AT.
"""
import resource
import struct
import threading
import time

import pytest

# (Importing it also skips this module where unicorn or GNU binutils are missing.)
from test_unicorn_engine import (CODE, EXIT_PORT, IDT, Vm, assemble, idt_gate, long_mode_state,
                                 write_long_mode_tables)
from vmm import layout
from vmm.engines.base import DEBUG_EXIT, HALT, SHUTDOWN, TIMEOUT, Outcome
from vmm.errors import VmmError

COUNT, STOP_AT, LOG_PTR = 0x30000, 0x30008, 0x30010
LOG = 0x31000                   # (vector, interrupted RIP) per interrupt, 16 bytes each
FIRST_VECTOR, LAST_VECTOR = 0x20, 0x2F
ALL_MASKED = 0xFF

PIC_SETUP = """
    mov qword ptr [{log_ptr}], {log}
    mov al, 0x11                    # ICW1: edge, cascade, ICW4 follows
    out 0x20, al
    out 0xa0, al
    mov al, 0x20                    # ICW2: vector bases
    out 0x21, al
    mov al, 0x28
    out 0xa1, al
    mov al, 4                       # ICW3: the slave on IRQ 2
    out 0x21, al
    mov al, 2
    out 0xa1, al
    mov al, 1                       # ICW4: 8086 mode, normal EOI
    out 0x21, al
    out 0xa1, al
    mov al, {master_mask}           # OCW1
    out 0x21, al
    mov al, {slave_mask}
    out 0xa1, al
    cli
    hlt                             # start() runs the guest up to here
"""

HANDLERS = "\n".join(f".balign 16\nirq_{v:#x}:\n    push {v}\n    jmp common" for v in range(FIRST_VECTOR, LAST_VECTOR + 1)) + """
common:
    push rax
    push rbx
    mov rbx, [{log_ptr}]
    mov rax, [rsp + 16]             # the vector
    mov [rbx], rax
    mov rax, [rsp + 24]             # the interrupted RIP
    mov [rbx + 8], rax
    add rbx, 16
    mov [{log_ptr}], rbx
    inc qword ptr [{count}]
    mov rax, [rsp + 16]
    cmp al, 0x27
    je master_ir7
    cmp al, 0x2f
    je slave_ir7
    cmp al, 0x28
    jb eoi_master
eoi_both:
    mov al, 0x20
    out 0xa0, al
eoi_master:
    mov al, 0x20
    out 0x20, al
done:
    mov rax, [{count}]
    cmp rax, [{stop_at}]
    jne 1f
    out {exit_port}, al             # status: the count's low byte
1:
    pop rbx
    pop rax
    add rsp, 8
    iretq
master_ir7:                         # a real IRQ 7 has its ISR bit set; a spurious one not
    mov al, 0x0b
    out 0x20, al
    in al, 0x20
    test al, 0x80
    jnz eoi_master
    jmp done
slave_ir7:                          # spurious on the slave: master IR2 is still in service
    mov al, 0x0b
    out 0xa0, al
    in al, 0xa0
    test al, 0x80
    jnz eoi_both
    jmp eoi_master
"""

IDLE = """
    sti
idle:
    hlt
    jmp idle
"""


def pit_rate_generator(hz: int) -> str:
    divisor = round(layout.PIT_INPUT_HZ / hz)
    return f"""
    mov al, 0x34                    # channel 0, LSB then MSB, mode 2, binary
    out 0x43, al
    mov al, {divisor & 0xFF}
    out 0x40, al
    mov al, {divisor >> 8}
    out 0x40, al
"""


def start(vm, body, master_mask=ALL_MASKED, slave_mask=ALL_MASKED, stop_at=0):
    """Load the guest (PIC set-up, then `body`, then the handlers), create the engine and run
    the set-up: the next run() starts `body`, and lines raised before it are seen as edges
    (ICW1 resets the PIC's edge detection: a line must rise after it). Returns the symbols.
    stop_at=0: the handlers never stop the VM."""
    fields = dict(log_ptr=LOG_PTR, log=LOG, count=COUNT, stop_at=STOP_AT, exit_port=EXIT_PORT,
                  master_mask=master_mask, slave_mask=slave_mask)
    source = PIC_SETUP.format(**fields) + body + HANDLERS.format(**fields)
    blob, symbols = assemble(source, CODE)
    vm.memory.write(CODE, blob)
    write_long_mode_tables(vm.memory)
    for vector in range(FIRST_VECTOR, LAST_VECTOR + 1):
        vm.memory.write(IDT + 16 * vector, idt_gate(symbols[f"irq_{vector:#x}"]))
    vm.memory.write(COUNT, struct.pack("<QQ", 0, stop_at))
    vm.start(long_mode_state(CODE))
    outcome = vm.run(5)
    assert outcome.reason == HALT, outcome.detail
    return symbols


def log(vm):
    """[(vector, interrupted RIP)] in the order the guest took them."""
    end = vm.memory.read_u64(LOG_PTR)
    entries = vm.memory.read(LOG, end - LOG) if end > LOG else b""
    return [struct.unpack_from("<QQ", entries, i) for i in range(0, len(entries), 16)]


def vectors(vm):
    return [vector for vector, _ in log(vm)]


def later(delay, *actions):
    """Run `actions` one after another on a thread, `delay` seconds apart."""
    def body():
        for action in actions:
            time.sleep(delay)
            action()
    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@pytest.fixture
def vm():
    machine = Vm()
    yield machine
    machine.close()


# --- the platform on the bus -----------------------------------------------------------------------

def test_pic_pit_and_port_b_are_on_the_port_bus(vm):
    start(vm, "cli\nhlt\n")
    for port in (0x20, 0x21, 0xA0, 0xA1, 0x40, 0x41, 0x42, 0x43, 0x61):
        assert vm.ports.device_at(port) is not None, hex(port)


def test_irq_line_checks_its_irq(vm):
    start(vm, "cli\nhlt\n")
    assert vm.engine.irq_line(15).irq == 15
    assert vm.engine.irq_line(23).irq == 23              # IOAPIC pins above the ISA IRQs
    for bad in (layout.PIC_CASCADE_IRQ, 24, -1):
        with pytest.raises(VmmError, match=f"GSI {bad}"):
            vm.engine.irq_line(bad)


def test_irq_line_after_close_does_nothing(vm):
    """A device thread that raises its line after the engine closed must not reach the stop
    switch, whose hook memory went with uc_close."""
    start(vm, "cli\nhlt\n", master_mask=ALL_MASKED & ~(1 << 4))     # IRQ 4 unmasked: a raise is INTR
    line = vm.engine.irq_line(4)
    switch = vm.engine._switch
    armed = []
    switch.arm = lambda: armed.append(True)
    line(True)                          # while open: INTR rises, the switch is thrown
    assert armed == [True]
    line(False)
    vm.engine.close()
    line(True)
    line.pulse()
    assert armed == [True]


def test_pit_channel_2_counts_down_behind_port_0x61(vm):
    """Port 0x61 gates channel 2 and shows its OUT (bit 5), as a guest calibrating its TSC
    against the PIT expects: the count of 1193 (1 ms) ends after the loop polled a while."""
    body = """
    in al, 0x61
    and al, 0xfc
    or al, 1
    out 0x61, al
    mov al, 0xb0                    # channel 2, LSB then MSB, mode 0
    out 0x43, al
    mov al, 0xa9
    out 0x42, al
    mov al, 0x04
    out 0x42, al
    xor ecx, ecx
1:
    inc ecx
    in al, 0x61
    test al, 0x20
    jz 1b
    cli
    hlt
"""
    start(vm, body)
    started = time.monotonic()
    assert vm.run(5).reason == HALT
    assert time.monotonic() - started >= 0.001
    assert vm.engine.get_state().regs["rcx"] > 1


# --- the timer ---------------------------------------------------------------------------------------

def test_pit_ticks_reach_a_halted_guest_as_irq0(vm):
    symbols = start(vm, pit_rate_generator(1000) + IDLE, master_mask=0xFE, stop_at=50)
    guest_before = vm.engine.clock.ns()
    outcome = vm.run(10)
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, 50), outcome.detail
    assert vectors(vm) == [0x20] * 50
    assert vm.engine.clock.ns() - guest_before >= 49e6     # 50 ticks of 1 ms on the guest's clock
    # Every tick found the guest in its idle loop: at the HLT, or just after it.
    assert {rip for _, rip in log(vm)} <= {symbols["idle"], symbols["idle"] + 1}
    pic = vm.engine.platform.pic
    assert (pic.master.vector_base, pic.master.imr, pic.master.isr) == (0x20, 0xFE, 0)
    counts = vm.engine.exit_counts()
    assert counts["irq"] == 50 and counts["hlt"] >= 2


def test_pit_ticks_interrupt_a_busy_loop(vm):
    """No HLT: the ticks arrive between translated blocks of a loop that never exits."""
    body = pit_rate_generator(1000) + """
    sti
    xor ecx, ecx
spin:
    inc rcx
    jmp spin
"""
    symbols = start(vm, body, master_mask=0xFE, stop_at=20)
    outcome = vm.run(10)
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, 20), outcome.detail
    assert {rip for _, rip in log(vm)} <= {symbols["spin"], symbols["spin"] + 3}
    assert vm.engine.get_state().regs["rcx"] > 1000
    assert vm.engine.exit_counts()["hlt"] == 1      # start()'s


def test_hlt_with_interrupts_off_ends_the_run_while_the_timer_ticks(vm):
    """The guest takes 20 ticks (compared with interrupts off), then halts with IF=0 while the
    PIT goes on: the run ends there (it would otherwise run into the 10 s timeout). A 21st
    tick may come in the one instruction between a handler's iretq and the cli, when the host
    was late and the next tick is already due (once under load)."""
    body = pit_rate_generator(1000) + """
wait:
    cli
    cmp qword ptr [{count}], 20
    jae halt_here
    sti
    hlt                             # sti; hlt: sleep until the next tick, taken here
    jmp wait
halt_here:
    hlt
""".format(count=COUNT)
    symbols = start(vm, body, master_mask=0xFE)
    outcome = vm.run(10)
    assert outcome.reason == HALT and outcome.rip == symbols["halt_here"] + 1, outcome.detail
    assert len(log(vm)) == vm.memory.read_u64(COUNT) in (20, 21)


def test_a_sleeping_guest_costs_little_host_cpu(vm):
    """2 s in HLT, woken 100 times a second by the PIT (the guest kernel's rate): the engine
    sleeps between ticks. The real figure is about 4% of a core here (and 1% on KVM)."""
    start(vm, pit_rate_generator(100) + IDLE, master_mask=0xFE, stop_at=200)
    cpu, started = process_cpu(), time.monotonic()
    outcome = vm.run(10)
    cpu, elapsed = process_cpu() - cpu, time.monotonic() - started
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, 200), outcome.detail
    assert elapsed >= 1.95                          # 200 ticks of 10 ms, no faster
    # This process's own CPU time (other processes' load does not add to it): sleeping
    # costs a few percent of the 2 s (bench interrupts measures it); spinning would be 100%.
    assert cpu < 0.2 * 2.0, f"{cpu:.2f} s of CPU for 2 s of sleep"


def test_skipping_idle_time_runs_a_sleeping_guest_in_guest_time(vm):
    """With idle skipping on, the same 2 s of PIT ticks pass on the guest's clock, which
    jumps to each deadline while the vCPU halts, in a fraction of the wall time."""
    start(vm, pit_rate_generator(100) + IDLE, master_mask=0xFE, stop_at=200)
    vm.engine.skip_idle_time(True)
    guest_before = vm.engine.clock.ns()
    outcome = vm.run(10)
    guest = vm.engine.clock.ns() - guest_before
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, 200), outcome.detail
    assert vectors(vm) == [0x20] * 200
    assert guest >= 1.95e9, guest
    assert vm.engine.clock.lead_ns >= 1.9e9         # the guest's clock jumped ahead of the host's


def test_timeout_in_hlt_says_so_and_a_later_run_stays_halted(vm):
    start(vm, IDLE)
    outcome = vm.run(0.1)
    assert outcome.reason == TIMEOUT and outcome.detail.startswith("timed out in hlt (interrupts enabled)")
    assert vm.run(0.1).reason == TIMEOUT            # still halted: nothing ran
    assert vm.engine.exit_counts()["hlt"] == 2      # start()'s, and this one


# --- irq lines from other threads -------------------------------------------------------------------

def test_irq_line_from_another_thread_wakes_the_halted_guest(vm):
    symbols = start(vm, IDLE, master_mask=0xEF, stop_at=1)
    line = vm.engine.irq_line(layout.COM1_IRQ)
    thread = later(0.3, line.pulse)
    cpu, started = process_cpu(), time.monotonic()
    outcome = vm.run(10)
    cpu, elapsed = process_cpu() - cpu, time.monotonic() - started
    thread.join()
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, 1), outcome.detail
    assert log(vm) == [(0x24, symbols["idle"] + 1)]     # woke the HLT; returns after it
    assert elapsed >= 0.25                               # slept in HLT until the line rose
    assert cpu < 0.15                                    # this process's CPU: slept, did not spin


def test_a_raised_edge_line_must_fall_before_it_interrupts_again(vm):
    start(vm, IDLE, master_mask=0xEF)
    line = vm.engine.irq_line(layout.COM1_IRQ)
    thread = later(0.1, lambda: line(True), lambda: line(True), lambda: line(False), lambda: line(True))
    outcome = vm.run(0.8)
    thread.join()
    assert outcome.reason == TIMEOUT
    assert vectors(vm) == [0x24, 0x24]


def test_slave_irq_arrives_through_the_cascade(vm):
    start(vm, IDLE, master_mask=0xFB, slave_mask=0xF7, stop_at=1)
    thread = later(0.1, vm.engine.irq_line(11).pulse)
    outcome = vm.run(10)
    thread.join()
    assert outcome.reason == DEBUG_EXIT and vectors(vm) == [0x2B]
    slave = vm.engine.platform.pic.slave
    assert (slave.vector_base, slave.imr, slave.isr) == (0x28, 0xF7, 0)


def test_masked_lines_are_not_delivered(vm):
    start(vm, IDLE, master_mask=0xEF)
    thread = later(0.1, vm.engine.irq_line(3).pulse, lambda: vm.engine.irq_line(9)(True))
    assert vm.run(0.4).reason == TIMEOUT
    thread.join()
    assert log(vm) == []
    pic = vm.engine.platform.pic
    assert pic.slave.irr & (1 << 1) and not pic.pending()   # held back by the masks


def test_many_threads_driving_lines_at_once_leave_the_pic_consistent(vm):
    """Two threads pulse IRQ 3 and IRQ 4 as fast as they can while the guest takes and EOIs
    them: every interrupt is one of the two, nothing is left in service, and nothing broke."""
    start(vm, IDLE, master_mask=0xE7)
    lines = [vm.engine.irq_line(3), vm.engine.irq_line(4)]
    stop = threading.Event()

    def hammer(line):
        while not stop.is_set():
            line.pulse()
    threads = [threading.Thread(target=hammer, args=(line,), daemon=True) for line in lines]
    for thread in threads:
        thread.start()
    outcome = vm.run(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    assert outcome.reason == TIMEOUT, outcome.detail
    outcome = vm.run(0.2)                           # let the guest finish what it took
    assert outcome.detail.startswith("timed out in hlt"), outcome.detail
    seen = vectors(vm)
    assert len(seen) > 20 and set(seen) == {0x23, 0x24}
    pic = vm.engine.platform.pic
    assert pic.master.isr == 0 and not pic.pending()


# --- delivery points: IF, and the STI / MOV SS shadow --------------------------------------------------

def test_sti_hlt_with_an_interrupt_already_pending_runs_the_hlt_first(vm):
    """The classic idle idiom: an interrupt that became pending while IF=0 is taken after the
    HLT (STI's shadow covers it), so the handler returns past the HLT instead of into it."""
    body = """
    sti
halt_here:
    hlt
after_hlt:
    mov al, 0x55
    out {exit_port}, al
""".format(exit_port=EXIT_PORT)
    symbols = start(vm, body, master_mask=0xEF)
    vm.engine.irq_line(layout.COM1_IRQ)(True)        # pending before the guest runs
    outcome = vm.run(5)
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, 0x55), outcome.detail   # (not a timeout)
    assert log(vm) == [(0x24, symbols["after_hlt"])]


def test_sti_shadow_delays_delivery_by_one_instruction(vm):
    """The unmask raises INTR while IF=0; STI ends the block; the interrupt is taken after
    the one instruction that follows STI, not before it."""
    body = """
    mov al, 0xef
    out 0x21, al                    # unmask IRQ 4: INTR rises now
    sti
in_shadow:
    mov rbx, 1
after_shadow:
    cli
    mov al, 1
    out {exit_port}, al
""".format(exit_port=EXIT_PORT)
    symbols = start(vm, body)
    vm.engine.irq_line(layout.COM1_IRQ)(True)
    outcome = vm.run(5)
    assert outcome.reason == DEBUG_EXIT, outcome.detail
    assert log(vm) == [(0x24, symbols["after_shadow"])]


def test_mov_ss_shadow_delays_delivery_by_one_instruction(vm):
    body = """
    mov ax, 0x10
    sti
    mov bl, 0xef
    xchg al, bl
    out 0x21, al                    # unmask IRQ 4 with IF=1: INTR rises
    xchg al, bl
    mov ss, ax
in_shadow:
    mov rbx, 1
after_shadow:
    cli
    mov al, 1
    out {exit_port}, al
""".format(exit_port=EXIT_PORT)
    symbols = start(vm, body)
    vm.engine.irq_line(layout.COM1_IRQ)(True)
    outcome = vm.run(5)
    assert outcome.reason == DEBUG_EXIT, outcome.detail
    # Taken at the first block boundary after the OUT that is not in a shadow.
    assert log(vm) == [(0x24, symbols["after_shadow"])]


def test_pending_interrupt_waits_for_if_through_a_long_cli_section(vm):
    """IF=0 for 100000 loop iterations with INTR up: the interrupt is taken right after
    interrupts are enabled again (here by popf, which has no shadow), not before."""
    body = """
    mov ecx, 100000
1:
    dec ecx
    jnz 1b
    push 0x202
    popfq
after_popf:
    nop
    cli
    mov al, 1
    out {exit_port}, al
""".format(exit_port=EXIT_PORT)
    symbols = start(vm, body, master_mask=0xEF)
    vm.engine.irq_line(layout.COM1_IRQ)(True)
    outcome = vm.run(5)
    assert outcome.reason == DEBUG_EXIT, outcome.detail
    assert log(vm) == [(0x24, symbols["after_popf"])]
    assert vm.engine.get_state().regs["rcx"] == 0


def test_stop_request_is_honoured_while_an_interrupt_waits_for_if(vm):
    start(vm, "cli\nspin:\njmp spin\n", master_mask=0xEF)
    vm.engine.irq_line(layout.COM1_IRQ)(True)
    thread = later(0.1, lambda: vm.control.request_stop(Outcome(DEBUG_EXIT, status=7)))
    outcome = vm.run(5)
    thread.join()
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, 7)     # the request, not the timeout
    assert log(vm) == []


def test_spurious_irq7_when_the_request_vanishes_before_the_acknowledge(vm):
    """IRQ 4 rises and falls while IF=0: the PIC's INT stays up and the acknowledge yields
    IR7's vector with IR7 not in service. The guest recognises it (no EOI) and carries on."""
    body = """
    sti
    nop
    cli
    mov al, 0x77
    out {exit_port}, al
""".format(exit_port=EXIT_PORT)
    start(vm, body, master_mask=0xEF)
    line = vm.engine.irq_line(layout.COM1_IRQ)
    line(True)
    line(False)
    outcome = vm.run(5)
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, 0x77), outcome.detail
    assert vectors(vm) == [0x27]
    pic = vm.engine.platform.pic
    assert pic.master.isr == 0 and not pic.pending()


def test_spurious_irq15_leaves_the_cascade_in_service_for_the_guest_to_eoi(vm):
    body = """
    sti
    nop
    cli
    mov al, 0x78
    out {exit_port}, al
""".format(exit_port=EXIT_PORT)
    start(vm, body, master_mask=0xFB, slave_mask=0xF7)
    line = vm.engine.irq_line(11)
    line(True)
    line(False)
    outcome = vm.run(5)
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, 0x78), outcome.detail
    assert vectors(vm) == [0x2F]
    assert vm.engine.platform.pic.master.isr == 0    # the guest's master EOI cleared IR2


def test_an_interrupt_with_no_gate_is_a_triple_fault(vm):
    """A vector the guest never set up (IDT limit covers it, gate not present): #NP, with no
    #NP handler either, #DF, then shutdown, reported as an outcome."""
    start(vm, IDLE, master_mask=0xEF)
    vm.memory.write(IDT + 16 * 0x24, bytes(16))
    vm.engine.irq_line(layout.COM1_IRQ)(True)
    outcome = vm.run(5)
    assert outcome.reason == SHUTDOWN and "triple fault" in outcome.detail


# --- the debugger's single step ---------------------------------------------------------------------
def test_a_debugger_step_holds_interrupts_back_until_it_is_done(vm):
    """As KVM's single step with KVM_GUESTDBG_BLOCKIRQ: a step goes to the next instruction,
    not into the handler of an interrupt that is pending; resuming then takes it."""
    from vmm.debug.target import SIGTRAP, DebugTarget
    body = """
    sti
    xor ecx, ecx
spin:
    inc rcx
    jmp spin
"""
    symbols = start(vm, body, master_mask=0xFF & ~(1 << 3))
    target = DebugTarget(vm.engine.debug())
    target.add_breakpoint(symbols["spin"])
    assert target.resume().signal == SIGTRAP and vectors(vm) == []
    target.clear_breakpoints()
    vm.engine.irq_line(3).pulse()                   # IRQ 3 is pending from now on
    for _ in range(6):
        assert target.step().signal == SIGTRAP
        assert target.read_state().rip in (symbols["spin"], symbols["spin"] + 3)
    assert vectors(vm) == []
    target.add_breakpoint(symbols["spin"])
    assert target.resume().signal == SIGTRAP        # the interrupt first, then the loop again
    assert vectors(vm) == [0x23]
    target.close()
