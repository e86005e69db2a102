"""Exit observers (vmm/debug/exits.py): the ring of recent exits, the --trace-exits log and
the --stats histogram, fed by bus wrappers on both engines."""
import io

import pytest

from vmm import layout
from vmm.debug.exits import (MMIO_READ, MMIO_WRITE, PIO_IN, PIO_OUT, ExitHistogram, ExitRing,
                             ExitTraceWriter, ObservedMmioBus, ObservedPortBus, observe_buses)
from vmm.devices.bus import MmioBus, PortBus
from vmm.outcome import DEBUG_EXIT, Outcome

from conftest import engine_params
from test_debug_support import exit_with, synthetic_vm


class Scratch:
    def __init__(self):
        self.value = 0

    def read(self, offset, size):
        return self.value

    def write(self, offset, size, value):
        self.value = value


def test_ring_keeps_the_last_exits_oldest_first():
    ring = ExitRing(3)
    for port in range(5):
        ring.access(PIO_OUT, 0x3F8, 1, port)
    ring.other("hlt")
    assert ring.total == 6
    assert ring.lines() == ["#4 pio-out    port=0x03f8 size=1 data=0x03",
                            "#5 pio-out    port=0x03f8 size=1 data=0x04",
                            "#6 hlt"]
    assert ExitRing(4).lines() == []
    with pytest.raises(ValueError):
        ExitRing(0)


def test_no_observer_means_the_plain_buses():
    ports, mmio = PortBus(), MmioBus()
    assert observe_buses(ports, mmio, []) == (ports, mmio)
    assert observe_buses(ports, mmio, [None]) == (ports, mmio)


def test_wrappers_report_accesses_and_delegate_the_rest():
    ports, mmio = PortBus(), MmioBus()
    device = Scratch()
    ports.register(0x3F8, 8, device)
    mmio.register(0xD000_0000, 0x1000, device)
    ring = ExitRing(8)
    wrapped_ports, wrapped_mmio = observe_buses(ports, mmio, [ring])
    assert isinstance(wrapped_ports, ObservedPortBus) and isinstance(wrapped_mmio, ObservedMmioBus)
    wrapped_ports.write(0x3FF, 1, 0x5A)
    assert wrapped_ports.read(0x3FF, 1) == 0x5A
    assert wrapped_ports.read(0x60, 1) == 0xFF                      # unclaimed: all ones, counted
    wrapped_mmio.write(0xD000_0010, 4, 0x1234)
    assert wrapped_mmio.read(0xD000_0010, 4) == 0x1234
    assert wrapped_ports.unclaimed_reads == 1                       # the inner bus's counter
    assert wrapped_mmio.ranges() == mmio.ranges()
    assert wrapped_ports.device_at(0x3FA) == (device, 0x3F8)
    assert [entry[1:5] for entry in ring.entries()] == [
        (PIO_OUT, 0x3FF, 1, 0x5A), (PIO_IN, 0x3FF, 1, 0x5A), (PIO_IN, 0x60, 1, 0xFF),
        (MMIO_WRITE, 0xD000_0010, 4, 0x1234), (MMIO_READ, 0xD000_0010, 4, 0x1234)]


def test_several_observers_all_see_each_access():
    ring, histogram = ExitRing(4), ExitHistogram()
    ports, _ = observe_buses(PortBus(), MmioBus(), [ring, histogram])
    ports.write(0x80, 1, 1)
    ports.write(0x80, 1, 2)
    assert ring.total == 2 and histogram.as_dict() == {"pio-out": {0x80: 2}}


def test_histogram_names_the_device_behind_each_address():
    ports, mmio = PortBus(), MmioBus()
    ports.register(0x3F8, 8, Scratch())
    histogram = ExitHistogram()
    for _ in range(3):
        histogram.access(PIO_OUT, 0x3F8, 1, 0)
    histogram.access(PIO_IN, 0x3FD, 1, 0x60)
    histogram.access(MMIO_READ, 0xD000_0000, 4, 0)
    histogram.other("hlt")
    text = histogram.format(ports, mmio)
    lines = text.splitlines()
    assert lines[0] == "exits by port/address (top 4 of 4):"
    assert lines[1].split() == ["pio-out", "0x03f8", "3", "Scratch+0x0"]
    assert "Scratch+0x5" in text and "(unclaimed)" in text and "hlt" in text
    assert histogram.as_dict()["exit"] == {"hlt": 1}


def test_exit_trace_writer_times_each_exit_and_stops_at_its_limit():
    clock = iter([10.0, 10.5, 11.0, 11.25, 12.0]).__next__
    out = io.StringIO()
    out.close = lambda: None
    writer = ExitTraceWriter(out, limit=2, clock=clock)
    writer.access(PIO_OUT, 0xF4, 4, 0x2A)
    writer.other("hlt")
    writer.access(PIO_OUT, 0x3F8, 1, 0x41)                          # over the limit: not written
    writer.close(Outcome(DEBUG_EXIT, status=42, detail="guest wrote 0x2a"))
    lines = out.getvalue().splitlines()
    assert lines[1] == "    0.500000 pio-out    port=0x00f4 size=4 data=0x0000002a"
    assert lines[2] == "    1.000000 hlt"
    assert lines[3].startswith("# trace limit of 2 exits reached")
    assert lines[4] == "    1.250000 end        debug-exit: guest wrote 0x2a"
    assert len(lines) == 5


@pytest.mark.parametrize("engine_name", engine_params())
def test_engines_feed_the_observers_through_the_buses(engine_name):
    ring, histogram = ExitRing(8), ExitHistogram()
    code = (b"\xb0\x41\xe6\x80"          # mov al, 0x41 ; out 0x80, al
            + b"\xe4\x80"                # in al, 0x80
            + exit_with(5))
    with synthetic_vm(engine_name, code, wrap_buses=lambda p, m: observe_buses(p, m, [ring, histogram])) as g:
        g.ports.register(0x80, 1, Scratch())
        g.engine.debug().observe_exits(ring)   # KVM's slow path: non-I/O exits too (unicorn: none)
        outcome = g.engine.run(10)
    assert outcome.reason == DEBUG_EXIT and outcome.status == 5
    assert ring.lines() == ["#1 pio-out    port=0x0080 size=1 data=0x41",
                            "#2 pio-in     port=0x0080 size=1 data=0x41",
                            f"#3 pio-out    port={layout.DEBUG_EXIT_PORT:#06x} size=4 data=0x00000005"]
    assert histogram.as_dict() == {"pio-out": {0x80: 1, layout.DEBUG_EXIT_PORT: 1}, "pio-in": {0x80: 1}}


def test_kvm_reports_non_io_exits_to_its_observer(requires_kvm):
    ring = ExitRing(4)
    with synthetic_vm("kvm", b"\xe6\x80\xf4") as g:                 # out 0x80, al ; hlt
        g.engine.debug().observe_exits(ring)
        assert g.engine.run(10).reason == "halt"
    assert ring.lines() == ["#1 hlt"]                               # the port write went to the plain bus
