import pytest

from vmm.devices.bus import MmioBus, PortBus
from vmm.errors import UsageError


class Recorder:
    def __init__(self):
        self.log = []

    def read(self, offset, size):
        self.log.append(("r", offset, size))
        return 0x10 + offset

    def write(self, offset, size, value):
        self.log.append(("w", offset, size, value))


def test_port_bus_routes_with_offsets_and_counts_unclaimed():
    bus, dev = PortBus(), Recorder()
    bus.register(0x3F8, 8, dev)
    assert bus.read(0x3FD, 1) == 0x15
    bus.write(0x3F8, 1, 0x41)
    assert dev.log == [("r", 5, 1), ("w", 0, 1, 0x41)]
    assert bus.read(0x1234, 1) == 0xFF and bus.read(0x1234, 2) == 0xFFFF and bus.read(0x1234, 4) == 0xFFFFFFFF
    bus.write(0x1234, 4, 7)
    assert (bus.unclaimed_reads, bus.unclaimed_writes) == (3, 1)


def test_port_bus_refuses_double_claims():
    bus = PortBus()
    bus.register(0x60, 2, Recorder())
    with pytest.raises(UsageError):
        bus.register(0x61, 1, Recorder())


def test_mmio_bus_ranges_and_edges():
    bus, a, b = MmioBus(), Recorder(), Recorder()
    bus.register(0xD000_0000, 0x1000, a)
    bus.register(0xD000_2000, 0x1000, b)
    assert bus.read(0xD000_0FFC, 4) == 0x10 + 0xFFC
    bus.write(0xD000_2008, 4, 9)
    assert b.log == [("w", 8, 4, 9)]
    # straddling the end of a range, or in the gap, is unclaimed
    assert bus.read(0xD000_0FFE, 4) == 0xFFFFFFFF
    assert bus.read(0xD000_1000, 8) == (1 << 64) - 1
    assert bus.unclaimed_reads == 2
    with pytest.raises(UsageError):
        bus.register(0xD000_1800, 0x1000, Recorder())
