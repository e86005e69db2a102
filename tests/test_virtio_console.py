"""virtio-console with one port (virtio 1.2 5.3): transmitq to the host's output, host input
through feed() into receiveq buffers, held until the driver posts some."""
import threading

from virtio_driver import Driver
from vmm.devices.virtio import console as c
from vmm.devices.virtio import mmio as m
from vmm.devices.virtio.console import VirtioConsole


def started():
    out = []
    drv = Driver(VirtioConsole(output=out.append)).start()
    return drv, drv.device, out, drv.queues[c.RECEIVEQ], drv.queues[c.TRANSMITQ]


def test_identity_queues_and_config():
    drv = Driver(VirtioConsole())
    assert drv.read(m.DEVICE_ID) == 3
    for index in (0, 1):
        drv.write(m.QUEUE_SEL, index)
        assert drv.read(m.QUEUE_NUM_MAX) > 0
    drv.write(m.QUEUE_SEL, 2)
    assert drv.read(m.QUEUE_NUM_MAX) == 0             # no MULTIPORT control queues
    assert drv.device_features() & c.VIRTIO_CONSOLE_F_EMERG_WRITE
    assert not drv.device_features() & 0b11           # neither F_SIZE nor F_MULTIPORT
    assert drv.transport.read(m.CONFIG + 4, 4) == 1   # max_nr_ports


def test_transmit_goes_to_output():
    drv, _, out, _, tx = started()
    used, _ = tx.submit([b"hello, ", b"world\n"])
    assert out == [b"hello, world\n"]
    assert used[0][1] == 0
    assert drv.read(m.INTERRUPT_STATUS) == m.INT_USED_BUFFER


def test_emergency_write():
    out = []
    drv = Driver(VirtioConsole(output=out.append))
    drv.transport.write(m.CONFIG + c.EMERG_WR_OFFSET, 4, ord("!"))
    assert out == [b"!"]


def test_input_waits_for_buffers_then_arrives_in_order():
    drv, dev, _, rx, _ = started()
    dev.feed(b"abc")
    dev.feed(b"defgh")
    assert dev.pending_input() == 8 and rx.used_idx() == 0
    _, first = rx.add(in_=[5])
    _, second = rx.add(in_=[16])
    rx.notify()
    used = rx.take_used()
    assert [n for _, n in used] == [5, 3]
    assert drv.memory.read(first[0][0], 5) == b"abcde"
    assert drv.memory.read(second[0][0], 3) == b"fgh"
    assert dev.pending_input() == 0
    assert drv.read(m.INTERRUPT_STATUS) == m.INT_USED_BUFFER


def test_input_fills_posted_buffers_at_once():
    drv, dev, _, rx, _ = started()
    _, buffers = rx.add(in_=[4, 4])
    rx.notify()                                     # nothing to deliver yet
    assert rx.used_idx() == 0
    dev.feed(b"xyz")
    assert rx.take_used()[0][1] == 3
    assert drv.memory.read(buffers[0][0], 3) == b"xyz"


def test_input_before_driver_ok_is_delivered_after():
    out = []
    drv = Driver(VirtioConsole(output=out.append))
    drv.device.feed(b"early")
    assert drv.negotiate()
    rx = drv.setup_queue(0)
    drv.setup_queue(1)
    _, buffers = rx.add(in_=[16])
    drv.device.feed(b"!")                           # DRIVER_OK not set: still held
    assert rx.used_idx() == 0
    drv.driver_ok()
    assert rx.take_used()[0][1] == 6
    assert drv.memory.read(buffers[0][0], 6) == b"early!"


def test_large_input_in_small_buffers_is_linear_and_complete():
    drv, dev, _, rx, _ = started()
    data = bytes(range(256)) * 400                  # 100 KiB in one feed
    dev.feed(data)
    got = bytearray()
    while dev.pending_input():
        heads = [rx.add(in_=[1024])[1] for _ in range(64)]
        rx.notify()
        used = rx.take_used()
        for (_, n), bufs in zip(used, heads):
            got += drv.memory.read(bufs[0][0], n)
    assert bytes(got) == data


def test_feed_from_another_thread():
    drv, dev, _, rx, _ = started()
    _, buffers = rx.add(in_=[3])
    worker = threading.Thread(target=dev.feed, args=(b"thr",))
    worker.start()
    worker.join()
    assert rx.take_used()[0][1] == 3 and drv.memory.read(buffers[0][0], 3) == b"thr"


def test_reset_keeps_host_input_for_the_next_driver():
    drv, dev, _, rx, _ = started()
    dev.feed(b"kept")
    drv.start()
    rx = drv.queues[c.RECEIVEQ]
    _, buffers = rx.add(in_=[8])
    rx.notify()
    assert drv.memory.read(buffers[0][0], 4) == b"kept"
