"""Each model's snapshot state (devices/state.py): what save_state() gives, load_state() takes
back into a fresh model, which then saves the same and behaves the same; a damaged state is
refused with the field named. And the KVM translation (engines/kvm_platform.py): the neutral
platform state written into KVM's in-kernel irqchip, PIT and local APIC reads back the same."""
import json

import pytest

from vmm.arch.x86 import cpu_snapshot
from vmm.devices import i8042, ioapic, lapic, pic, pit, rtc, uart
from vmm.devices.state import StateError
from vmm.devices.virtio import MmioTransport, VirtioConsole
from vmm.devices.virtio import mmio as m
from vmm.memory import GuestMemory


def round_trip(make, model):
    """A fresh model loaded with `model`'s state saves the same (and it is plain JSON)."""
    state = json.loads(json.dumps(model.save_state()))
    other = make()
    other.load_state(state)
    assert other.save_state() == model.save_state()
    return other


def test_uart_keeps_registers_and_both_fifos():
    out = []
    device = uart.Uart16550(output=out.append)
    device.write(uart.LCR, 1, 0x83)
    device.write(uart.RBR_THR_DLL, 1, 0x01)      # divisor 1 under DLAB
    device.write(uart.LCR, 1, 0x03)
    device.write(uart.IER_DLM, 1, uart.IER_RDA)
    device.feed(bytes(range(40)))                # 16 in the FIFO, 24 waiting
    copy = round_trip(uart.Uart16550, device)
    assert copy.divisor == 1 and copy.pending_input() == 40
    assert [copy.read(uart.RBR_THR_DLL, 1) for _ in range(40)] == list(range(40))


def test_pic_pair_keeps_programming_and_requests():
    chips = pic.DualPic()
    for chip, base, icw3 in ((chips.master, 0x20, 4), (chips.slave, 0x28, 2)):
        for value in (0x11, base, icw3, 0x01):
            chip.write(pic.COMMAND if value == 0x11 else pic.DATA, 1, value)
    chips.master.write(pic.DATA, 1, 0xFA)
    chips.set_irq(0, True)
    copy = pic.DualPic()
    for name in ("master", "slave"):
        getattr(copy, name).load_state(json.loads(json.dumps(getattr(chips, name).save_state())))
    assert copy.master.save_state() == chips.master.save_state()
    assert copy.acknowledge() == chips.acknowledge() == 0x20


def test_pit_channel_keeps_its_phase_as_elapsed_clocks():
    now = [10_000_000_000]
    timer = pit.Pit8254(now_ns=lambda: now[0])
    timer.write(pit.CONTROL, 1, 0x34)            # channel 0, LSB/MSB, mode 2
    timer.write(0, 1, 11932 & 0xFF)
    timer.write(0, 1, 11932 >> 8)
    now[0] += 3_000_000                          # 3 ms: a third of the way through a period
    state = json.loads(json.dumps(timer.save_state()))
    later = [99_000_000_000]                     # another clock altogether
    copy = pit.Pit8254(now_ns=lambda: later[0])
    copy.load_state(state)
    assert copy.channels[0].count(later[0]) == timer.channels[0].count(now[0])
    clock_ns = 1e9 / 1_193_182                   # the phase is kept to one input clock
    assert abs((copy.next_deadline_ns() - later[0]) - (timer.next_deadline_ns() - now[0])) < clock_ns


def test_local_apic_timer_keeps_its_remaining_time():
    now = [5_000_000_000]
    apic = lapic.LocalApic(now_ns=lambda: now[0])
    apic.write(lapic.SVR, 4, lapic.SVR_ENABLE | 0xFF)
    apic.write(lapic.LVT_TIMER, 4, 0x40)         # one-shot, vector 0x40
    apic.write(lapic.TIMER_DIVIDE, 4, 0b1011)    # divide by 1
    apic.write(lapic.TIMER_INITIAL, 4, 1_000_000)    # 1 ms at 1 GHz
    now[0] += 250_000
    state = json.loads(json.dumps(apic.save_state()))
    assert state["timer_remaining_ns"] == 750_000
    later = [77_000_000_000]
    copy = lapic.LocalApic(now_ns=lambda: later[0])
    copy.load_state(state)
    assert copy.next_deadline_ns() == later[0] + 750_000
    assert copy.read(lapic.TIMER_CURRENT, 4) == apic.read(lapic.TIMER_CURRENT, 4)


def test_ioapic_keeps_entries_and_line_levels():
    delivered = []
    device = ioapic.IoApic(lambda vector, level: delivered.append(vector))
    device.write(ioapic.IOREGSEL, 4, ioapic.REG_REDIRECTION + 8)
    device.write(ioapic.IOWIN, 4, 0x31 | ioapic.LEVEL_TRIGGERED)
    device.set_irq(4, True)
    copy = round_trip(lambda: ioapic.IoApic(lambda v, l: None), device)
    assert copy.levels[4] and copy.entries[4] & ioapic.REMOTE_IRR


def test_rtc_i8042_keep_their_bytes():
    clock = rtc.CmosRtc(now=lambda: 1_700_000_000.0)
    clock.write(rtc.INDEX, 1, 0x40)
    clock.write(rtc.DATA, 1, 0x5A)
    copy = round_trip(lambda: rtc.CmosRtc(now=lambda: 1_700_000_000.0), clock)
    copy.write(rtc.INDEX, 1, 0x40)
    assert copy.read(rtc.DATA, 1) == 0x5A
    controller = i8042.I8042(control=None)
    controller.write(i8042.COMMAND, 1, i8042.CMD_SELF_TEST)
    assert round_trip(lambda: i8042.I8042(control=None), controller).read(i8042.DATA, 1) == i8042.SELF_TEST_PASSED


def test_virtio_transport_keeps_a_ready_queue_and_pending_console_input():
    memory = GuestMemory(1 << 20)
    console = VirtioConsole()
    transport = MmioTransport(console, memory)
    transport.write(m.QUEUE_SEL, 4, 0)
    transport.write(m.QUEUE_NUM, 4, 16)
    for register, value in ((m.QUEUE_DESC_LOW, 0x1000), (m.QUEUE_DRIVER_LOW, 0x2000), (m.QUEUE_DEVICE_LOW, 0x3000)):
        transport.write(register, 4, value)
    transport.write(m.QUEUE_READY, 4, 1)
    console.feed(b"typed ahead")
    copy_console = VirtioConsole()
    copy = round_trip(lambda: MmioTransport(copy_console, memory), transport)
    assert copy.queues[0].ready and copy.read(m.QUEUE_READY, 4) == 1
    assert copy_console.pending_input() == len(b"typed ahead")


@pytest.mark.parametrize("field,value", [("irr", "many"), ("imr", None), ("auto_eoi", 1)])
def test_a_damaged_state_is_refused_naming_the_field(field, value):
    chip = pic.Pic8259(is_master=True)
    state = dict(chip.save_state(), **{field: value})
    with pytest.raises(StateError, match=field):
        pic.Pic8259(is_master=True).load_state(state)


def test_a_queue_saved_outside_ram_is_refused():
    memory = GuestMemory(1 << 20)
    transport = MmioTransport(VirtioConsole(), memory)
    state = transport.save_state()
    state["queues"][0].update(ready=True, desc_addr=1 << 30)
    with pytest.raises(StateError, match="outside RAM"):
        MmioTransport(VirtioConsole(), memory).load_state(state)


def test_fxsave_tags_convert_both_ways():
    full = 0b11_11_00_11_01_11_11_10             # regs 0 (special), 3 (zero) and 5 (valid) in use
    assert cpu_snapshot.abridged_tag(full) == 0b0010_1001
    assert cpu_snapshot.abridged_tag(cpu_snapshot.full_tag(0b0010_1001)) == 0b0010_1001


# --- KVM's in-kernel platform, through the neutral format ------------------------------------------
def test_kvm_platform_reads_back_what_it_was_given(requires_kvm):
    """The software engine's platform state written into a KVM VM and read back: every field
    KVM keeps comes back as it went in."""
    from vmm.engines import kvm_platform
    from vmm.kvm import Kvm
    from vmm.layout import KVM_TSS_ADDR
    now = [1_000_000_000]
    apic = lapic.LocalApic(now_ns=lambda: now[0])
    apic.write(lapic.SVR, 4, lapic.SVR_ENABLE | 0xFF)
    apic.write(lapic.TPR, 4, 0x20)
    apic.write(lapic.LVT_TIMER, 4, 0x45 | lapic.TIMER_PERIODIC << lapic.TIMER_MODE_SHIFT)
    apic.write(lapic.TIMER_DIVIDE, 4, 0b0011)    # divide by 16
    apic.write(lapic.TIMER_INITIAL, 4, 10_000_000)
    io = ioapic.IoApic(lambda vector, level: None)
    io.write(ioapic.IOREGSEL, 4, ioapic.REG_REDIRECTION + 2 * 9)
    io.write(ioapic.IOWIN, 4, 0x39 | ioapic.LEVEL_TRIGGERED)
    chips = pic.DualPic()
    for value in (0x11, 0x30, 4, 0x01):
        chips.master.write(pic.COMMAND if value == 0x11 else pic.DATA, 1, value)
    chips.master.write(pic.DATA, 1, 0xF8)
    timer = pit.Pit8254(now_ns=lambda: now[0])
    timer.write(pit.CONTROL, 1, 0x34)
    timer.write(0, 1, 0x9C)
    timer.write(0, 1, 0x2E)
    state = {"pic": {"master": chips.master.save_state(), "slave": chips.slave.save_state()},
             "pit": dict(timer.save_state(), port_b={"bits": 0, "refresh": False}),
             "lapic": apic.save_state(), "ioapic": io.save_state(), "pulsed": 0}
    with GuestMemory(1 << 20) as memory, Kvm() as kvm, kvm.create_vm() as vm:
        vm.set_tss_addr(KVM_TSS_ADDR)
        vm.set_user_memory_region(0, 0, memory.size, memory.host_address)
        vm.create_irqchip()
        vm.create_pit2()
        vcpu = vm.create_vcpu(0)
        kvm_platform.load(vm, vcpu, state)
        back = kvm_platform.save(vm, vcpu)
    master = back["pic"]["master"]
    assert (master["vector_base"], master["imr"], master["init_step"]) == (0x30, 0xF8, 0)
    assert back["ioapic"]["entries"][9] == io.entries[9]
    assert {k: back["lapic"][k] for k in ("svr", "tpr", "divide_config", "timer_initial", "lvt")} == \
        {k: state["lapic"][k] for k in ("svr", "tpr", "divide_config", "timer_initial", "lvt")}
    assert 0 < back["lapic"]["timer_remaining_ns"] <= 160_000_000
    channel = back["pit"]["channels"][0]
    assert (channel["mode"], channel["n"], channel["access"]) == (2, 0x2E9C, 3)
