"""The IOAPIC model: the redirection table through IOREGSEL/IOWIN, edge and level pins,
remote IRR and EOI (through the local APIC's broadcast and the EOI register)."""
from vmm.devices import ioapic as I


def make():
    delivered = []
    apic = I.IoApic(lambda vector, level: delivered.append((vector, level)))
    return apic, delivered


def program(apic, pin, low, high=0):
    apic.write(I.IOREGSEL, 4, I.REG_REDIRECTION + 2 * pin + 1)
    apic.write(I.IOWIN, 4, high)
    apic.write(I.IOREGSEL, 4, I.REG_REDIRECTION + 2 * pin)
    apic.write(I.IOWIN, 4, low)


def read(apic, register):
    apic.write(I.IOREGSEL, 4, register)
    return apic.read(I.IOWIN, 4)


def test_identification_registers():
    apic, _ = make()
    assert read(apic, I.REG_VERSION) == 0x20 | 23 << 16
    assert read(apic, I.REG_ID) == 0
    assert read(apic, I.REG_REDIRECTION) == I.MASKED      # every pin masked at reset


def test_edge_pin_delivers_on_rising_edges_only():
    apic, delivered = make()
    program(apic, 4, 0x24)
    apic.set_irq(4, True)
    apic.set_irq(4, True)                                 # still high: no new edge
    apic.set_irq(4, False)
    apic.set_irq(4, True)
    assert delivered == [(0x24, False), (0x24, False)]


def test_masked_edge_is_lost():
    apic, delivered = make()
    program(apic, 4, 0x24 | I.MASKED)
    apic.set_irq(4, True)
    program(apic, 4, 0x24)
    assert delivered == []


def test_level_pin_remote_irr_and_eoi():
    apic, delivered = make()
    program(apic, 5, 0x25 | I.LEVEL_TRIGGERED, 0 << 24)
    apic.set_irq(5, True)
    apic.set_irq(5, True)                                 # remote IRR set: no second delivery
    assert delivered == [(0x25, True)]
    assert read(apic, I.REG_REDIRECTION + 10) & I.REMOTE_IRR
    apic.end_of_interrupt(0x25)                           # still asserted: delivered again
    assert delivered == [(0x25, True)] * 2
    apic.set_irq(5, False)
    apic.end_of_interrupt(0x25)
    assert delivered == [(0x25, True)] * 2
    assert not read(apic, I.REG_REDIRECTION + 10) & I.REMOTE_IRR


def test_eoi_register_and_unmask_while_asserted():
    apic, delivered = make()
    program(apic, 9, 0x29 | I.LEVEL_TRIGGERED | I.MASKED)
    apic.set_irq(9, True)
    assert delivered == []
    program(apic, 9, 0x29 | I.LEVEL_TRIGGERED)            # unmasked with the line up: delivers
    assert delivered == [(0x29, True)]
    apic.write(I.EOI, 4, 0x29)
    assert delivered == [(0x29, True)] * 2


def test_read_only_bits_and_destination():
    apic, _ = make()
    program(apic, 3, 0x33 | I.REMOTE_IRR | I.DELIVERY_STATUS, 0xAB << 24)
    assert read(apic, I.REG_REDIRECTION + 6) == 0x33
    assert read(apic, I.REG_REDIRECTION + 7) == 0xAB << 24
    assert read(apic, I.REG_REDIRECTION + 2 * 24) == 0xFFFF_FFFF   # past the last pin


def test_nmi_and_extint_entries_are_not_delivered_as_vectors():
    apic, delivered = make()
    program(apic, 2, 0x700)                               # ExtINT
    apic.set_irq(2, True)
    assert delivered == []
