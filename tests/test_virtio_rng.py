"""virtio-rng (virtio 1.2 5.4): writable buffers come back full of host randomness."""
from virtio_driver import Driver
from vmm.devices.virtio import mmio as m
from vmm.devices.virtio import rng as r
from vmm.devices.virtio.rng import VirtioRng


def test_identity_and_one_queue():
    drv = Driver(VirtioRng())
    assert drv.read(m.DEVICE_ID) == 4
    drv.write(m.QUEUE_SEL, 0)
    assert drv.read(m.QUEUE_NUM_MAX) > 0
    drv.write(m.QUEUE_SEL, 1)
    assert drv.read(m.QUEUE_NUM_MAX) == 0


def test_buffers_are_filled_and_differ():
    drv = Driver(VirtioRng()).start()
    q = drv.queues[0]
    results = []
    for _ in range(4):
        used, writable = q.submit(in_=[64])
        assert used[0][1] == 64
        results.append(drv.memory.read(writable[0][0], 64))
    assert len(set(results)) == 4
    assert all(len(set(data)) > 8 for data in results)     # not a constant fill
    assert drv.read(m.INTERRUPT_STATUS) == m.INT_USED_BUFFER


def test_several_buffers_and_readable_ones_ignored():
    drv = Driver(VirtioRng()).start()
    used, writable = drv.queues[0].submit([b"ignored"], [16, 16])
    assert used[0][1] == 32
    assert drv.memory.read(writable[0][0], 16) != drv.memory.read(writable[1][0], 16)


def test_huge_buffer_gets_a_bounded_amount():
    drv = Driver(VirtioRng(), mem_size=1 << 21).start()
    used, writable = drv.queues[0].submit(in_=[r.MAX_BYTES_PER_REQUEST + 4096])
    assert used[0][1] == r.MAX_BYTES_PER_REQUEST
