"""Stats: KVM's binary statistics of a VM or vCPU (KVM_GET_STATS_FD, Linux 5.14+).

The file holds a header, one descriptor per statistic (flags, size, offset and name) and
the values, u64s the kernel updates in place. Reading a value is one pread(2) at its
offset: no ioctl and no vCPU lock, so another thread can watch a running vCPU (the engine's
watchdog reads a vCPU's `blocking` and `halt_exits` this way). The statistics' names are
in Documentation/virt/kvm/api.rst and the kernel's *_stats_desc arrays.
"""
import ctypes
import os

from . import ioctl_numbers as r
from .ioctl import FdOwner, ioctl
from .structs import KvmStatsDesc, KvmStatsHeader

_U64 = 8


class Stats(FdOwner):
    """The statistics of the VM or vCPU whose fd is given (the fd stays the caller's)."""

    def __init__(self, fd: int):
        self.fd = ioctl(fd, r.KVM_GET_STATS_FD, 0, "KVM_GET_STATS_FD")
        try:
            header = KvmStatsHeader.from_buffer_copy(os.pread(self.fd, ctypes.sizeof(KvmStatsHeader), 0))
            desc_size = ctypes.sizeof(KvmStatsDesc) + header.name_size
            table = os.pread(self.fd, desc_size * header.num_desc, header.desc_offset)
            self.offsets = {}           # name -> (file offset of the first value, number of values)
            for i in range(header.num_desc):
                entry = table[i * desc_size:(i + 1) * desc_size]
                desc = KvmStatsDesc.from_buffer_copy(entry)
                name = entry[ctypes.sizeof(KvmStatsDesc):].split(b"\0", 1)[0].decode()
                self.offsets[name] = (header.data_offset + desc.offset, desc.size)
        except BaseException:
            self.close()
            raise

    def __contains__(self, name: str) -> bool:
        return name in self.offsets

    def read(self, name: str) -> int:
        """The current value of a one-value statistic (KeyError if this KVM lacks it)."""
        offset, _ = self.offsets[name]
        return int.from_bytes(os.pread(self.fd, _U64, offset), "little")

    def reader(self, *names):
        """A function returning the current values of `names` (adjacent ones are read with
        one pread), for a caller that polls."""
        spans = [self.offsets[name][0] for name in names]
        start, end = min(spans), max(spans) + _U64
        fd, pread = self.fd, os.pread
        if end - start <= 64 * _U64:
            indexes = [(offset - start) // _U64 for offset in spans]

            def read_all():
                words = memoryview(pread(fd, end - start, start)).cast("Q")
                return tuple(words[i] for i in indexes)
            return read_all
        return lambda: tuple(int.from_bytes(pread(fd, _U64, offset), "little") for offset in spans)

    def as_dict(self) -> dict:
        """{name: value} of every one-value statistic (histograms are left out)."""
        return {name: self.read(name) for name, (_, size) in self.offsets.items() if size == 1}

