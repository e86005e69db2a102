"""8259A behaviour, against the Intel datasheet, as register sequences with expected reads."""
import pytest

from vmm.devices import pic as p
from vmm.devices.pic import DualPic, Pic8259

MASTER_BASE, SLAVE_BASE = 0x20, 0x28
READ_IRR, READ_ISR, POLL = 0x0A, 0x0B, 0x0C         # OCW3
EOI, ROTATE_EOI = 0x20, 0xA0                          # OCW2 non-specific
SPECIFIC_EOI, ROTATE_SPECIFIC_EOI, SET_PRIORITY = 0x60, 0xE0, 0xC0   # OCW2 | level
ROTATE_AEOI_SET, ROTATE_AEOI_CLEAR = 0x80, 0x00


def make(icw1=0x11, icw4=0x01):
    """A pair initialised as Linux and PC BIOSes do it (init_8259A): ICW1 0x11 (edge,
    cascade, ICW4 needed), ICW2 0x20/0x28, ICW3 4/2, ICW4 1 (8086 mode)."""
    intr = []
    pics = DualPic(on_intr=intr.append)
    for chip, base, icw3 in ((pics.master, MASTER_BASE, 0x04), (pics.slave, SLAVE_BASE, 0x02)):
        chip.write(p.COMMAND, 1, icw1)
        chip.write(p.DATA, 1, base)
        chip.write(p.DATA, 1, icw3)
        if icw1 & p.ICW1_IC4:
            chip.write(p.DATA, 1, icw4)
    return pics, intr


def isr(chip):
    chip.write(p.COMMAND, 1, READ_ISR)
    value = chip.read(p.COMMAND, 1)
    chip.write(p.COMMAND, 1, READ_IRR)
    return value


def irr(chip):
    return chip.read(p.COMMAND, 1)          # IRR is the default read after init


def pulse(pics, line):
    pics.set_irq(line, True)
    pics.set_irq(line, False)


def test_init_sequence_leaves_everything_unmasked_and_idle():
    pics, intr = make()
    assert pics.master.read(p.DATA, 1) == 0 and pics.slave.read(p.DATA, 1) == 0
    assert (irr(pics.master), isr(pics.master)) == (0, 0)
    assert not pics.pending() and intr == []


def test_icw2_low_bits_are_ignored():
    pics = DualPic()
    pics.master.write(p.COMMAND, 1, 0x13)   # single, ICW4 needed: no ICW3
    pics.master.write(p.DATA, 1, 0x47)
    pics.master.write(p.DATA, 1, 0x01)
    pics.set_irq(1, True)
    assert pics.acknowledge() == 0x41


def test_interrupt_is_raised_acknowledged_and_ended():
    pics, intr = make()
    pics.set_irq(0, True)
    assert pics.pending() and intr == [True]
    assert irr(pics.master) == 0x01
    assert pics.acknowledge() == MASTER_BASE
    assert not pics.pending() and intr == [True, False]
    assert (irr(pics.master), isr(pics.master)) == (0x00, 0x01)
    pics.master.write(p.COMMAND, 1, EOI)
    assert isr(pics.master) == 0


def test_imr_masks_but_the_request_stays_in_irr():
    pics, _ = make()
    pics.master.write(p.DATA, 1, 0xFF)
    assert pics.master.read(p.DATA, 1) == 0xFF
    pics.set_irq(4, True)
    assert not pics.pending() and irr(pics.master) == 0x10
    pics.master.write(p.DATA, 1, 0xEF)      # unmask IRQ 4
    assert pics.pending()
    assert pics.acknowledge() == MASTER_BASE + 4


def test_fixed_priority_and_nesting():
    pics, _ = make()
    pics.set_irq(5, True)
    pics.set_irq(3, True)
    assert pics.acknowledge() == MASTER_BASE + 3        # lower IR number wins
    assert not pics.pending()                           # IR5 waits behind IR3 in service
    pics.set_irq(1, True)
    assert pics.pending()                               # a higher one nests
    assert pics.acknowledge() == MASTER_BASE + 1
    assert isr(pics.master) == 0x0A
    pics.master.write(p.COMMAND, 1, EOI)                # ends IR1, the highest in service
    assert isr(pics.master) == 0x08 and not pics.pending()
    pics.master.write(p.COMMAND, 1, EOI)                # ends IR3
    assert pics.pending() and pics.acknowledge() == MASTER_BASE + 5


def test_specific_eoi_ends_the_named_level():
    pics, _ = make()
    pics.set_irq(3, True)
    pics.acknowledge()
    pics.set_irq(1, True)
    pics.acknowledge()
    assert isr(pics.master) == 0x0A
    pics.master.write(p.COMMAND, 1, SPECIFIC_EOI | 3)
    assert isr(pics.master) == 0x02


def test_automatic_eoi_sets_no_isr_bit():
    pics, _ = make(icw4=p.ICW4_8086 | p.ICW4_AEOI)
    pics.set_irq(5, True)
    assert pics.acknowledge() == MASTER_BASE + 5
    assert isr(pics.master) == 0
    pics.set_irq(6, True)                               # nothing in service blocks it
    assert pics.pending() and pics.acknowledge() == MASTER_BASE + 6


def test_ocw3_selects_irr_or_isr_and_a_plain_ocw3_keeps_the_choice():
    pics, _ = make()
    master = pics.master
    pics.set_irq(6, True)
    pics.set_irq(7, True)
    pics.acknowledge()
    master.write(p.COMMAND, 1, READ_ISR)
    assert master.read(p.COMMAND, 1) == 0x40
    master.write(p.COMMAND, 1, 0x08)                    # OCW3 with RR=0: no change
    assert master.read(p.COMMAND, 1) == 0x40
    master.write(p.COMMAND, 1, READ_IRR)
    assert master.read(p.COMMAND, 1) == 0x80
    assert master.read(p.DATA, 1) == 0                  # the data port always reads IMR


def test_poll_command_acknowledges_on_the_next_read():
    pics, _ = make()
    master = pics.master
    master.write(p.DATA, 1, 0xFF)                       # a polling guest masks everything...
    master.write(p.COMMAND, 1, POLL)
    assert master.read(p.COMMAND, 1) == 0               # ...no request: I bit clear
    master.write(p.DATA, 1, 0x00)
    pics.set_irq(6, True)
    master.write(p.COMMAND, 1, POLL)
    assert master.read(p.COMMAND, 1) == p.POLL_INTERRUPT | 6
    assert isr(master) == 0x40 and irr(master) == 0     # the read was the INTA
    assert master.read(p.COMMAND, 1) == 0               # the poll is good for one read
    master.write(p.COMMAND, 1, POLL)
    assert master.read(p.DATA, 1) == 0                  # either port; nothing left


def test_cascade_delivers_slave_vectors_through_master_ir2():
    pics, _ = make()
    pics.set_irq(10, True)
    assert irr(pics.slave) == 0x04 and irr(pics.master) == 0x04
    assert pics.pending()
    assert pics.acknowledge() == SLAVE_BASE + 2
    assert isr(pics.slave) == 0x04 and isr(pics.master) == 0x04
    pics.set_irq(9, True)                               # higher on the slave, but master
    assert not pics.pending()                           # IR2 is in service
    pics.slave.write(p.COMMAND, 1, EOI)
    assert not pics.pending()
    pics.master.write(p.COMMAND, 1, EOI)
    assert pics.pending() and pics.acknowledge() == SLAVE_BASE + 1


def test_special_fully_nested_mode_lets_a_higher_slave_request_through():
    pics, _ = make()
    pics.master.write(p.COMMAND, 1, 0x11)
    pics.master.write(p.DATA, 1, MASTER_BASE)
    pics.master.write(p.DATA, 1, 0x04)
    pics.master.write(p.DATA, 1, p.ICW4_8086 | p.ICW4_SFNM)
    pics.set_irq(10, True)
    assert pics.acknowledge() == SLAVE_BASE + 2
    pics.set_irq(9, True)
    assert pics.pending() and pics.acknowledge() == SLAVE_BASE + 1


def test_master_cascades_only_the_irs_named_in_icw3():
    pics, _ = make()
    pics.master.write(p.COMMAND, 1, 0x11)
    pics.master.write(p.DATA, 1, MASTER_BASE)
    pics.master.write(p.DATA, 1, 0x00)                  # no slaves
    pics.master.write(p.DATA, 1, 0x01)
    pics.set_irq(10, True)
    assert pics.acknowledge() == MASTER_BASE + 2        # the master answers for IR2 itself


def test_spurious_irq7_when_the_request_falls_before_inta():
    pics, intr = make()
    pics.set_irq(3, True)
    pics.set_irq(3, False)                              # gone before the CPU's INTA
    assert irr(pics.master) == 0
    assert pics.pending()                               # INT stays up until INTA
    assert pics.acknowledge() == MASTER_BASE + 7
    assert isr(pics.master) == 0                        # no ISR bit: no EOI is due
    assert intr == [True, False] and not pics.pending()


def test_spurious_irq7_when_masked_before_inta():
    pics, _ = make()
    pics.set_irq(4, True)
    pics.master.write(p.DATA, 1, 0x10)
    assert pics.acknowledge() == MASTER_BASE + 7
    assert irr(pics.master) == 0x10                     # still requested, still masked


def test_spurious_irq15_leaves_master_ir2_in_service():
    pics, _ = make()
    pics.set_irq(10, True)
    pics.set_irq(10, False)
    assert irr(pics.slave) == 0
    assert pics.acknowledge() == SLAVE_BASE + 7
    assert isr(pics.slave) == 0
    assert isr(pics.master) == 0x04                     # Linux EOIs the master for this
    pics.master.write(p.COMMAND, 1, EOI)
    assert isr(pics.master) == 0 and not pics.pending()


def test_edge_mode_needs_a_new_rising_edge():
    pics, _ = make()
    pics.set_irq(1, True)
    assert pics.acknowledge() == MASTER_BASE + 1
    pics.master.write(p.COMMAND, 1, EOI)
    assert not pics.pending() and irr(pics.master) == 0     # the line is still high
    pics.set_irq(1, True)                                   # high again: not an edge
    assert not pics.pending()
    pulse(pics, 1)
    pics.set_irq(1, True)
    assert pics.pending() and pics.acknowledge() == MASTER_BASE + 1


def test_level_mode_requests_for_as_long_as_the_line_is_high():
    pics, _ = make(icw1=0x19)                               # LTIM
    pics.set_irq(1, True)
    assert pics.acknowledge() == MASTER_BASE + 1
    assert irr(pics.master) == 0x02                         # not latched: follows the line
    pics.master.write(p.COMMAND, 1, EOI)
    assert pics.pending() and pics.acknowledge() == MASTER_BASE + 1
    pics.set_irq(1, False)              # datasheet: remove the request before the EOI...
    pics.master.write(p.COMMAND, 1, EOI)
    assert irr(pics.master) == 0 and isr(pics.master) == 0 and not pics.pending()
    pics.set_irq(1, True)
    pics.acknowledge()
    pics.master.write(p.COMMAND, 1, EOI)    # ...or it requests again at once
    pics.set_irq(1, False)
    assert pics.acknowledge() == MASTER_BASE + 7


def test_icw1_resets_the_edge_sense_a_high_line_must_rise_again():
    pics, _ = make()
    pics.master.write(p.DATA, 1, 0xFF)
    pics.set_irq(1, True)
    make_again = (0x11, MASTER_BASE, 0x04, 0x01)
    pics.master.write(p.COMMAND, 1, make_again[0])
    for value in make_again[1:]:
        pics.master.write(p.DATA, 1, value)
    assert pics.master.read(p.DATA, 1) == 0                 # ICW1 cleared IMR
    assert irr(pics.master) == 0 and not pics.pending()
    pulse(pics, 1)
    pics.set_irq(1, True)
    assert pics.pending()


def test_rotate_on_non_specific_eoi_makes_the_served_level_lowest():
    pics, _ = make()
    pics.set_irq(3, True)
    assert pics.acknowledge() == MASTER_BASE + 3
    pics.master.write(p.COMMAND, 1, ROTATE_EOI)             # IR3 lowest, IR4 highest
    for line in (1, 3, 5):
        pulse(pics, line)
        pics.set_irq(line, True)
    assert pics.acknowledge() == MASTER_BASE + 5
    pics.master.write(p.COMMAND, 1, ROTATE_EOI)             # IR5 lowest: IR6, 7, 0, 1 ... first
    assert pics.acknowledge() == MASTER_BASE + 1
    pics.master.write(p.COMMAND, 1, ROTATE_EOI)
    assert pics.acknowledge() == MASTER_BASE + 3


def test_set_priority_and_rotate_on_specific_eoi():
    pics, _ = make()
    pics.master.write(p.COMMAND, 1, SET_PRIORITY | 4)       # IR4 lowest, IR5 highest
    for line in (0, 4, 6):
        pics.set_irq(line, True)
    assert pics.acknowledge() == MASTER_BASE + 6
    pics.master.write(p.COMMAND, 1, ROTATE_SPECIFIC_EOI | 0)    # IR0 lowest now
    assert isr(pics.master) == 0x40                         # IR6 is still in service
    pics.master.write(p.COMMAND, 1, SPECIFIC_EOI | 6)
    assert pics.acknowledge() == MASTER_BASE + 4            # IR1 highest: IR4 before IR0
    pics.master.write(p.COMMAND, 1, EOI)
    assert pics.acknowledge() == MASTER_BASE + 0


def test_rotate_in_automatic_eoi_mode():
    pics, _ = make(icw4=p.ICW4_8086 | p.ICW4_AEOI)
    pics.master.write(p.COMMAND, 1, ROTATE_AEOI_SET)
    for line in (1, 3):
        pics.set_irq(line, True)
    assert pics.acknowledge() == MASTER_BASE + 1            # then IR1 becomes lowest
    pulse(pics, 1)
    pics.set_irq(1, True)
    assert pics.acknowledge() == MASTER_BASE + 3
    pics.master.write(p.COMMAND, 1, ROTATE_AEOI_CLEAR)
    assert pics.acknowledge() == MASTER_BASE + 1


def test_special_mask_mode_enables_lower_levels():
    pics, _ = make()
    master = pics.master
    pics.set_irq(3, True)
    assert pics.acknowledge() == MASTER_BASE + 3
    pics.set_irq(5, True)
    assert not pics.pending()                               # blocked by IR3 in service
    master.write(p.DATA, 1, 0x08)                           # the IR3 handler masks itself...
    master.write(p.COMMAND, 1, 0x68)                        # ...and sets special mask mode
    assert pics.pending() and pics.acknowledge() == MASTER_BASE + 5
    master.write(p.COMMAND, 1, EOI)                         # non-specific: spares masked IR3
    assert isr(master) == 0x08
    master.write(p.COMMAND, 1, 0x48)                        # reset special mask mode
    master.write(p.COMMAND, 1, SPECIFIC_EOI | 3)
    assert isr(master) == 0


def test_nothing_is_signalled_during_initialization():
    pics = DualPic()
    pics.master.write(p.COMMAND, 1, 0x11)
    pics.set_irq(1, True)
    assert not pics.pending()
    for value in (MASTER_BASE, 0x04, 0x01):
        pics.master.write(p.DATA, 1, value)
    assert pics.pending() and pics.acknowledge() == MASTER_BASE + 1


def test_the_cascade_line_cannot_be_driven():
    pics, _ = make()
    with pytest.raises(ValueError):
        pics.set_irq(2, True)
    with pytest.raises(ValueError):
        pics.set_irq(16, True)


def test_a_single_chip_reports_its_int_output():
    levels = []
    chip = Pic8259(is_master=True, output=levels.append)
    chip.write(p.COMMAND, 1, 0x13)                          # single, ICW4 needed: no ICW3
    chip.write(p.DATA, 1, 0x08)
    chip.write(p.DATA, 1, 0x01)
    chip.set_input(0, True)
    assert levels == [True] and chip.int_out
    assert chip.intack() == 0 and levels == [True, False]
