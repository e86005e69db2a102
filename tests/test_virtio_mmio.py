"""The virtio-mmio v2 transport: registers, the status state machine, reset, interrupts,
configuration space, and what it does with accesses a driver must not make (virtio 1.2 4.2)."""
import pytest

from virtio_driver import Driver, Recorder
from vmm.devices.virtio import mmio as m
from vmm.devices.virtio.device import (VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC,
                                       VIRTIO_F_VERSION_1)

FULL = m.ACKNOWLEDGE | m.DRIVER | m.FEATURES_OK


def make(features=0, config=b""):
    return Driver(Recorder(features, config))


def test_identification_registers():
    drv = make()
    assert drv.read(m.MAGIC_VALUE) == 0x74726976
    assert drv.read(m.VERSION) == 2
    assert drv.read(m.DEVICE_ID) == Recorder.device_id
    assert drv.read(m.VENDOR_ID) == m.VENDOR


def test_device_features_are_selected_by_word():
    drv = make(features=1 << 3)
    drv.write(m.DEVICE_FEATURES_SEL, 0)
    assert drv.read(m.DEVICE_FEATURES) == (1 << 3) | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX
    drv.write(m.DEVICE_FEATURES_SEL, 1)
    assert drv.read(m.DEVICE_FEATURES) == VIRTIO_F_VERSION_1 >> 32
    drv.write(m.DEVICE_FEATURES_SEL, 2)
    assert drv.read(m.DEVICE_FEATURES) == 0


def test_status_follows_the_initialisation_sequence():
    drv = make()
    assert drv.status == 0
    assert drv.negotiate()
    assert drv.status == FULL
    assert drv.transport.features == drv.features
    drv.setup_queue(0)
    drv.driver_ok()
    assert drv.status == FULL | m.DRIVER_OK
    assert drv.device.activations == 1


def test_status_steps_out_of_order_are_ignored():
    drv = make()
    drv.write(m.STATUS, m.DRIVER)                       # DRIVER before ACKNOWLEDGE
    assert drv.status == 0
    drv.write(m.STATUS, m.ACKNOWLEDGE | m.DRIVER_OK)    # DRIVER_OK before FEATURES_OK
    assert drv.status == m.ACKNOWLEDGE
    drv.write(m.STATUS, m.ACKNOWLEDGE | m.FEATURES_OK)  # FEATURES_OK before DRIVER
    assert drv.status == m.ACKNOWLEDGE
    assert drv.device.activations == 0


def test_driver_cannot_clear_status_bits_except_by_reset():
    drv = make()
    assert drv.negotiate()
    drv.write(m.STATUS, m.ACKNOWLEDGE)
    assert drv.status == FULL


def test_features_ok_refused_without_version_1():
    drv = make()
    assert not drv.negotiate(drop=VIRTIO_F_VERSION_1)
    assert drv.status == m.ACKNOWLEDGE | m.DRIVER
    drv.write(m.STATUS, drv.status | m.DRIVER_OK)       # no DRIVER_OK without FEATURES_OK
    assert not drv.status & m.DRIVER_OK
    drv.write(m.STATUS, drv.status | m.FAILED)          # what a driver does then
    assert drv.status & m.FAILED


def test_features_ok_refused_for_features_the_device_lacks():
    drv = make()
    assert not drv.negotiate(extra=1 << 34)             # VIRTIO_F_RING_PACKED: not offered
    assert drv.transport.features == 0


def test_driver_features_frozen_after_features_ok():
    drv = make()
    assert drv.negotiate(drop=VIRTIO_F_EVENT_IDX)
    drv.set_driver_features(drv.device_features())
    assert drv.transport.features == drv.features


def test_a_subset_of_features_is_accepted():
    drv = make()
    assert drv.negotiate(drop=VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC)
    assert drv.transport.features == VIRTIO_F_VERSION_1


def test_queue_registers():
    drv = make()
    drv.negotiate()
    drv.write(m.QUEUE_SEL, 0)
    assert drv.read(m.QUEUE_NUM_MAX) == 16
    drv.write(m.QUEUE_SEL, 1)
    assert drv.read(m.QUEUE_NUM_MAX) == 8
    drv.write(m.QUEUE_SEL, 2)                           # no such queue
    assert drv.read(m.QUEUE_NUM_MAX) == 0
    assert drv.read(m.QUEUE_READY) == 0
    drv.write(m.QUEUE_READY, 1)                         # ignored, no exception
    q = drv.setup_queue(1, 4)
    vq = drv.transport.queues[1]
    assert (vq.size, vq.desc_addr, vq.avail_addr, vq.used_addr) == (4, q.desc, q.avail, q.used)
    drv.write(m.QUEUE_SEL, 1)
    assert drv.read(m.QUEUE_READY) == 1
    # While ready, the size and addresses cannot change.
    drv.write(m.QUEUE_NUM, 2)
    drv.write(m.QUEUE_DESC_LOW, 0x2000)
    drv.write(m.QUEUE_DRIVER_HIGH, 1)
    assert (vq.size, vq.desc_addr, vq.avail_addr) == (4, q.desc, q.avail)
    drv.write(m.QUEUE_READY, 0)
    assert drv.read(m.QUEUE_READY) == 0


def test_queue_address_halves_combine_into_64_bits():
    drv = make()
    drv.negotiate()
    drv.write(m.QUEUE_SEL, 0)
    drv.write(m.QUEUE_DEVICE_LOW, 0x89AB_CDEF)
    drv.write(m.QUEUE_DEVICE_HIGH, 0x0123_4567)
    assert drv.transport.queues[0].used_addr == 0x0123_4567_89AB_CDEF


def test_write_only_registers_read_zero_and_read_only_ignore_writes():
    drv = make()
    for offset in (m.DEVICE_FEATURES_SEL, m.DRIVER_FEATURES, m.DRIVER_FEATURES_SEL, m.QUEUE_SEL,
                   m.QUEUE_NUM, m.QUEUE_NOTIFY, m.INTERRUPT_ACK, m.QUEUE_DESC_LOW, m.QUEUE_DESC_HIGH,
                   m.QUEUE_DRIVER_LOW, m.QUEUE_DEVICE_HIGH, m.SHM_SEL):
        drv.write(offset, 0x1234)
        assert drv.read(offset) == 0, hex(offset)
    for offset in (m.MAGIC_VALUE, m.VERSION, m.DEVICE_ID, m.VENDOR_ID, m.DEVICE_FEATURES,
                   m.QUEUE_NUM_MAX, m.INTERRUPT_STATUS, m.CONFIG_GENERATION):
        before = drv.read(offset)
        drv.write(offset, 0xFFFF_FFFF)
        assert drv.read(offset) == before, hex(offset)


def test_no_shared_memory_regions():
    drv = make()
    drv.write(m.SHM_SEL, 0)
    for offset in (m.SHM_LEN_LOW, m.SHM_LEN_HIGH, m.SHM_BASE_LOW, m.SHM_BASE_HIGH):
        assert drv.read(offset) == 0xFFFF_FFFF


@pytest.mark.parametrize("size", [1, 2, 8])
def test_control_registers_need_32_bit_accesses(size):
    drv = make()
    assert drv.transport.read(m.MAGIC_VALUE, size) == 0
    drv.transport.write(m.STATUS, size, m.ACKNOWLEDGE)
    assert drv.status == 0


def test_misaligned_and_undefined_offsets_are_harmless():
    drv = make()
    for offset in (0x001, 0x002, 0x018, 0x028, 0x03C, 0x040, 0x0C0, 0x0F8, 0x0FD):
        assert drv.transport.read(offset, 4) == 0
        drv.transport.write(offset, 4, 0xFFFF_FFFF)
    assert drv.status == 0 and drv.read(m.INTERRUPT_STATUS) == 0


def test_config_space_any_width_any_offset():
    config = bytes(range(1, 13))
    drv = make(config=config)
    base = m.CONFIG
    assert drv.transport.read(base, 1) == 1
    assert drv.transport.read(base + 1, 2) == 0x0302
    assert drv.transport.read(base + 3, 4) == 0x07060504
    assert drv.transport.read(base + 4, 8) == int.from_bytes(config[4:12], "little")
    assert drv.transport.read(base + 10, 4) == 0x0C0B        # past the end reads zero
    assert drv.transport.read(base + 0x800, 4) == 0
    drv.transport.write(base, 4, 0xFFFF_FFFF)                  # read-only: ignored
    assert drv.transport.read(base, 1) == 1


def test_config_generation_changes_with_config_and_signals_the_driver():
    drv = make()
    gen = drv.read(m.CONFIG_GENERATION)
    drv.transport.config_changed()
    assert drv.read(m.CONFIG_GENERATION) != gen
    assert drv.read(m.INTERRUPT_STATUS) == 0                  # no driver yet: no interrupt
    drv.start()
    drv.transport.config_changed()
    assert drv.read(m.INTERRUPT_STATUS) == m.INT_CONFIG_CHANGE
    assert drv.irq_level


def test_used_buffer_interrupt_is_raised_and_acknowledged():
    drv = make().start()
    used, _ = drv.queues[0].submit([b"hello"], [4])
    assert used and drv.irq_level
    assert drv.read(m.INTERRUPT_STATUS) == m.INT_USED_BUFFER
    drv.write(m.INTERRUPT_ACK, m.INT_USED_BUFFER)
    assert drv.read(m.INTERRUPT_STATUS) == 0
    assert drv.irqs == [True, False]


def test_irq_follows_the_status_level_not_each_event():
    drv = make().start()
    drv.queues[0].submit([b"a"])
    drv.queues[0].submit([b"b"])
    assert drv.irqs == [True]
    assert drv.ack() == m.INT_USED_BUFFER
    assert drv.irqs == [True, False]


def test_reset_clears_status_interrupts_features_and_queues():
    drv = make().start()
    drv.queues[0].submit([b"x"])
    assert drv.read(m.INTERRUPT_STATUS)
    resets = drv.device.resets
    drv.write(m.STATUS, 0)
    assert drv.status == 0
    assert drv.read(m.INTERRUPT_STATUS) == 0 and not drv.irq_level
    assert drv.transport.features == 0
    for index in range(2):
        drv.write(m.QUEUE_SEL, index)
        assert drv.read(m.QUEUE_READY) == 0
    assert drv.device.resets == resets + 1
    # ...and the device comes up again from scratch.
    drv.start()
    used, _ = drv.queues[0].submit([b"y"])
    assert len(used) == 1


def test_notify_before_driver_ok_or_on_a_queue_not_ready_is_ignored():
    drv = make()
    assert drv.negotiate()
    q = drv.setup_queue(0)
    q.add([b"early"])
    q.notify()                                  # FEATURES_OK but not DRIVER_OK
    assert drv.device.chains == [] and q.used_idx() == 0
    drv.driver_ok()
    drv.write(m.QUEUE_NOTIFY, 1)                # queue 1 was never set up
    drv.write(m.QUEUE_NOTIFY, 7)                # no such queue
    drv.write(m.QUEUE_NOTIFY, 0xFFFF_FFFF)
    assert drv.device.chains == []
    q.notify()
    assert len(drv.device.chains) == 1


@pytest.mark.parametrize("size", [0, 3, 12, 32, 0x10000])
def test_queue_size_not_a_power_of_two_or_too_big_is_refused(size):
    drv = make()
    assert drv.negotiate()
    drv.setup_queue(0, size, desc=0x1000, avail=0x2000, used=0x3000)
    drv.write(m.QUEUE_SEL, 0)
    assert drv.read(m.QUEUE_READY) == 0
    assert drv.status & m.DEVICE_NEEDS_RESET
    assert "queue size" in drv.transport.error
    drv.driver_ok()                             # the driver learns at DRIVER_OK at the latest
    assert drv.read(m.INTERRUPT_STATUS) & m.INT_CONFIG_CHANGE


@pytest.mark.parametrize("area,addr", [
    ("desc", 0x1008),                           # descriptor table: 16-byte alignment
    ("avail", 0x1001),                          # available ring: 2
    ("used", 0x1002),                           # used ring: 4
    ("desc", (1 << 20) - 16),                   # runs past the end of RAM
    ("avail", 1 << 40),                         # outside RAM
    ("used", (1 << 64) - 4),                    # would wrap past 2^64
])
def test_ring_misaligned_or_outside_ram_is_refused(area, addr):
    drv = make()
    assert drv.negotiate()
    drv.setup_queue(0, 16, **{area: addr})
    drv.write(m.QUEUE_SEL, 0)
    assert drv.read(m.QUEUE_READY) == 0
    assert drv.status & m.DEVICE_NEEDS_RESET
    drv.driver_ok()
    drv.write(m.QUEUE_NOTIFY, 0)
    assert drv.device.chains == []
    drv.write(m.STATUS, 0)                      # reset recovers
    assert drv.status == 0 and drv.transport.error is None


def test_needs_reset_after_driver_ok_raises_config_interrupt_and_stops_the_device():
    drv = make().start()
    q = drv.queues[0]
    q.publish(200)                              # head index outside the queue
    q.notify()
    assert drv.status & m.DEVICE_NEEDS_RESET
    assert drv.read(m.INTERRUPT_STATUS) & m.INT_CONFIG_CHANGE
    q.add([b"later"])
    q.notify()
    assert drv.device.chains == []
    # Writing the status back (as Linux's virtio_add_status does) keeps the device's bit.
    drv.write(m.STATUS, drv.status | m.FAILED)
    assert drv.status & m.DEVICE_NEEDS_RESET and drv.status & m.FAILED


def test_every_register_read_never_raises_for_any_width():
    """Any offset, any width: a value that fits the access (what the bus hands the guest),
    never an exception; the registers still read what they hold."""
    drv = make(config=b"\x01\x02")
    for offset in range(0, 0x1000, 1):
        for size in (1, 2, 4, 8):
            value = drv.transport.read(offset, size)
            assert isinstance(value, int) and 0 <= value < 1 << (8 * size), (offset, size, value)
    assert drv.transport.read(m.MAGIC_VALUE, 4) == 0x74726976        # "virt"
    assert drv.transport.read(m.CONFIG, 1) == 1 and drv.transport.read(m.CONFIG + 1, 1) == 2
