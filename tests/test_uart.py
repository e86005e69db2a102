"""16550A register semantics, against the PC16550D datasheet."""
from vmm.devices import uart as u
from vmm.devices.uart import Uart16550


def make():
    out, irqs = [], []
    return Uart16550(output=out.append, irq=irqs.append), out, irqs


def test_idle_line_status_is_transmitter_empty():
    dev, _, _ = make()
    assert dev.read(u.LSR, 1) == u.LSR_THRE | u.LSR_TEMT


def test_transmit_goes_to_output_and_transmitter_stays_empty():
    dev, out, _ = make()
    for byte in b"hi\n":
        dev.write(u.RBR_THR_DLL, 1, byte)
    assert bytes(out) == b"hi\n"
    assert dev.read(u.LSR, 1) & (u.LSR_THRE | u.LSR_TEMT) == u.LSR_THRE | u.LSR_TEMT


def test_divisor_latch_is_banked_behind_dlab():
    dev, out, _ = make()
    dev.write(u.LCR, 1, u.LCR_DLAB | 0x03)
    dev.write(u.RBR_THR_DLL, 1, 0x01)           # DLL
    dev.write(u.IER_DLM, 1, 0x00)               # DLM: 115200 baud
    assert (dev.read(u.RBR_THR_DLL, 1), dev.read(u.IER_DLM, 1)) == (1, 0)
    assert out == []                            # a DLL write is not a transmitted byte
    dev.write(u.LCR, 1, 0x03)
    assert dev.read(u.IER_DLM, 1) == 0          # IER, not DLM, once DLAB is clear
    assert dev.divisor == 1


def test_receive_sets_data_ready_and_reads_in_order():
    dev, _, _ = make()
    assert not dev.read(u.LSR, 1) & u.LSR_DR
    dev.feed(b"ab")
    assert dev.read(u.LSR, 1) & u.LSR_DR
    assert dev.read(u.RBR_THR_DLL, 1) == ord("a")
    assert dev.read(u.RBR_THR_DLL, 1) == ord("b")
    assert not dev.read(u.LSR, 1) & u.LSR_DR


def test_host_input_beyond_the_fifo_waits_rather_than_being_lost():
    dev, _, _ = make()
    data = bytes(range(40))
    dev.feed(data)
    got = bytes(dev.read(u.RBR_THR_DLL, 1) for _ in range(40))
    assert got == data


def test_iir_reports_no_interrupt_and_fifo_state():
    dev, _, _ = make()
    assert dev.read(u.IIR_FCR, 1) == u.IIR_NONE
    dev.write(u.IIR_FCR, 1, u.FCR_ENABLE)
    assert dev.read(u.IIR_FCR, 1) == u.IIR_NONE | u.IIR_FIFO_ENABLED


def test_interrupt_priorities_and_irq_line():
    dev, _, irqs = make()
    dev.write(u.IER_DLM, 1, u.IER_THRE)         # enabling THRE while empty raises it at once
    assert irqs == [True]
    assert dev.read(u.IIR_FCR, 1) == u.IIR_THRE
    assert dev.read(u.IIR_FCR, 1) == u.IIR_NONE  # reading IIR acknowledged THRE
    assert irqs == [True, False]
    dev.write(u.IER_DLM, 1, u.IER_THRE | u.IER_RDA)
    dev.feed(b"x")
    assert dev.read(u.IIR_FCR, 1) == u.IIR_RDA  # received data outranks THRE
    dev.read(u.RBR_THR_DLL, 1)
    assert dev.read(u.IIR_FCR, 1) == u.IIR_NONE
    assert irqs[-1] is False


def test_loopback_mode_feeds_the_receiver_and_modem_lines():
    dev, out, _ = make()
    dev.write(u.MCR, 1, u.MCR_LOOP | u.MCR_RTS | u.MCR_DTR)
    dev.write(u.RBR_THR_DLL, 1, 0x5A)
    assert out == []
    assert dev.read(u.RBR_THR_DLL, 1) == 0x5A
    msr = dev.read(u.MSR, 1)
    assert msr & u.MSR_CTS and msr & u.MSR_DSR and not msr & u.MSR_DCD


def test_modem_status_idle_and_scratch_register():
    dev, _, _ = make()
    assert dev.read(u.MSR, 1) == u.MSR_DCD | u.MSR_DSR | u.MSR_CTS
    dev.write(u.SCR, 1, 0xA5)
    assert dev.read(u.SCR, 1) == 0xA5


def test_line_and_modem_status_registers_are_read_only():
    dev, _, _ = make()
    dev.write(u.LSR, 1, 0)
    dev.write(u.MSR, 1, 0)
    assert dev.read(u.LSR, 1) == u.LSR_THRE | u.LSR_TEMT
    assert dev.read(u.MSR, 1) == u.MSR_IDLE


def test_fifo_clear_drops_received_bytes():
    dev, _, _ = make()
    dev.write(u.MCR, 1, u.MCR_LOOP)
    dev.write(u.RBR_THR_DLL, 1, 1)
    dev.write(u.IIR_FCR, 1, u.FCR_ENABLE | u.FCR_CLEAR_RX)
    assert not dev.read(u.LSR, 1) & u.LSR_DR
