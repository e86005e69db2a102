"""`vmm bench exits` measures what it says: the same PVH guest in a bare KVM_RUN loop and
through Machine, whose every exit reaches the real 16550A's transmitter."""
import pytest

from vmm.bench import exits
from vmm.devices.uart import Uart16550
from vmm.loader.elf import ElfImage
from vmm.loader.pvh import pvh_entry


def test_the_benchmark_kernel_is_a_pvh_elf_entered_at_its_code():
    image = ElfImage(exits.pvh_kernel(exits.guest_code(7)), "kernel")
    assert pvh_entry(image) == exits.ENTRY
    (segment,) = image.segments
    assert segment.paddr == exits.ENTRY and image.data[segment.offset:segment.offset + segment.filesz] == exits.guest_code(7)


def test_both_rows_run_the_same_number_of_exits_through_their_own_path(requires_kvm, monkeypatch):
    writes = []
    original = Uart16550.write

    def counted(self, offset, size, value):
        writes.append((offset, value))
        original(self, offset, size, value)
    monkeypatch.setattr(Uart16550, "write", counted)
    result = exits.run(runs=1, n_exits=300)
    assert [row["status"] for row in result["rows"]] == ["ok", "ok"], result["rows"]
    # The VMM row's exits went to the UART's transmit register (offset 0), one per exit, in
    # the measured run and the warm-up; the bare loop never reaches a device.
    assert writes == [(0, 0x55)] * 300 * 2
    assert result["ratio"] == pytest.approx(result["vmm"]["median"] / result["bare"]["median"])
    assert result["goal"]["met"] == (result["ratio"] >= exits.GOAL)
