import pytest

from vmm.errors import GuestMemoryError
from vmm.memory import GuestMemory


def test_reads_and_writes_within_bounds():
    with GuestMemory(1 << 20) as mem:
        mem.write(0x1000, b"abc")
        assert mem.read(0x1000, 3) == b"abc"
        view = mem.view(0xFFFFC, 4)
        view[:] = b"\x01\x02\x03\x04"
        assert mem.read_u32(0xFFFFC) == 0x04030201
        assert mem.host_address != 0


@pytest.mark.parametrize("gpa,length", [(-1, 1), (1 << 20, 1), ((1 << 20) - 3, 4), (0, (1 << 20) + 1), (5, -1)])
def test_accesses_outside_ram_are_refused(gpa, length):
    with GuestMemory(1 << 20) as mem:
        with pytest.raises(GuestMemoryError):
            mem.read(gpa, length)
        with pytest.raises(GuestMemoryError):
            mem.view(gpa, length)
        assert not mem.contains(gpa, length)


def test_write_listeners_hear_host_writes():
    heard = []
    with GuestMemory(1 << 20) as mem:
        mem.on_write(lambda gpa, n: heard.append((gpa, n)))
        mem.write(0x2000, b"xyz")
        mem.view(0x3000, 16)[:4] = b"dma!"
        mem.wrote(0x3000, 4)
    assert heard == [(0x2000, 3), (0x3000, 4)]


def test_size_must_be_whole_pages_and_close_is_idempotent():
    with pytest.raises(ValueError):
        GuestMemory(4097)
    mem = GuestMemory(8192)
    mem.close()
    mem.close()
