"""Address buses: devices claim a range of I/O ports or MMIO addresses; exits ask the bus.

A device implements `read(offset, size) -> int` and `write(offset, size, value)`, with
`offset` relative to the start of its range (crosvm devices/src/bus.rs works the same way).
Accesses that no device claims never fail: reads return all-ones, as on a PC where nothing
drives the data lines, writes are dropped, and both are counted for --stats.
"""
import bisect

from ..arch.x86.io import ALL_ONES
from ..errors import UsageError


class PortBus:
    """The 16-bit I/O port space. Lookup is one dict access per port (the exit hot path)."""

    def __init__(self):
        self._by_port = {}              # port -> (device, base)
        self.unclaimed_reads = 0
        self.unclaimed_writes = 0

    def register(self, base: int, count: int, device) -> None:
        for port in range(base, base + count):
            if port in self._by_port:
                raise UsageError(f"I/O port {port:#x} is claimed twice")
            self._by_port[port] = (device, base)

    def device_at(self, port: int):
        """(device, base of its range) for a port, or None (for reports and statistics)."""
        return self._by_port.get(port)

    def read(self, port: int, size: int) -> int:
        entry = self._by_port.get(port)
        if entry is None:
            self.unclaimed_reads += 1
            return ALL_ONES[size]
        device, base = entry
        return device.read(port - base, size)

    def write(self, port: int, size: int, value: int) -> None:
        entry = self._by_port.get(port)
        if entry is None:
            self.unclaimed_writes += 1
            return
        device, base = entry
        device.write(port - base, size, value)


class MmioBus:
    """Guest-physical MMIO ranges, kept sorted for a bisect lookup."""

    def __init__(self):
        self._starts = []
        self._ranges = []               # (start, end, device), sorted by start
        self.unclaimed_reads = 0
        self.unclaimed_writes = 0

    def register(self, base: int, length: int, device) -> None:
        i = bisect.bisect_right(self._starts, base)
        if (i > 0 and self._ranges[i - 1][1] > base) or (i < len(self._starts) and self._starts[i] < base + length):
            raise UsageError(f"MMIO range {base:#x}+{length:#x} overlaps another device")
        self._starts.insert(i, base)
        self._ranges.insert(i, (base, base + length, device))

    def ranges(self):
        """(base, length, device) for every registered range, for engines that map them."""
        return [(start, end - start, device) for start, end, device in self._ranges]

    def device_at(self, addr: int):
        """(device, start of its range) for an address, or None (for reports and statistics)."""
        device, start = self._find(addr, 1)
        return None if device is None else (device, start)

    def _find(self, addr: int, size: int):
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0:
            start, end, device = self._ranges[i]
            if addr + size <= end:
                return device, start
        return None, 0

    def read(self, addr: int, size: int) -> int:
        device, start = self._find(addr, size)
        if device is None:
            self.unclaimed_reads += 1
            return ALL_ONES.get(size, (1 << (8 * size)) - 1)
        return device.read(addr - start, size)

    def write(self, addr: int, size: int, value: int) -> None:
        device, start = self._find(addr, size)
        if device is None:
            self.unclaimed_writes += 1
            return
        device.write(addr - start, size, value)
