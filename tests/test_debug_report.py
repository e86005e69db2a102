"""Crash reports (vmm/debug/report.py) and the disassembly around RIP (vmm/debug/disasm.py):
decoded in the CPU's mode, read through the page tables, and never raising."""
import pytest

from vmm.arch.x86.cpu_state import CpuState, Segment
from vmm.debug import disasm
from vmm.debug.exits import ExitRing, observe_buses
from vmm.debug.report import format_crash_report
from vmm.engines import kvm_features
from vmm.engines.base import DebugView
from vmm.memory import GuestMemory
from vmm.outcome import SHUTDOWN

from conftest import engine_params
from test_debug_support import ENTRY, STACK_TOP, long_mode_state, synthetic_vm, u64, write_long_mode_tables

# mov eax, 1 ; add eax, ebx ; push rax ; nop ; ud2 ; int3 ; ret   (64-bit)
CODE = bytes.fromhex("b801000000" "01d8" "50" "90" "0f0b" "cc" "c3")
UD2_AT = ENTRY + 9


def reader(memory):
    def read(address, length):
        if not memory.contains(address, 1):
            return b"", f"{address:#x}: outside RAM"
        length = min(length, memory.size - address)
        return memory.read(address, length), None
    return read


@pytest.fixture
def memory():
    with GuestMemory(4 << 20) as mem:
        yield mem


def test_around_marks_rip_and_resyncs_before_it(memory):
    memory.write(ENTRY, CODE)
    lines = disasm.around(reader(memory), UD2_AT, 64, before=4, after=3)
    text = "\n".join(lines)
    assert lines[0].endswith("mov eax, 1") and lines[0].startswith("   0x0000000000100000: b8 01 00 00 00")
    assert [line[58:] for line in lines[1:4]] == ["add eax, ebx", "push rax", "nop"]
    assert lines[4].startswith("=> 0x0000000000100009: 0f 0b") and lines[4].endswith("ud2")
    assert lines[5].endswith("int3") and lines[6].endswith("ret")
    assert text.count("=>") == 1


def test_the_same_bytes_decode_by_mode(memory):
    memory.write(0x1000, bytes.fromhex("b801000000"))
    read = reader(memory)
    assert disasm.around(read, 0x1000, 32, before=0, after=1)[0].endswith("mov eax, 1")
    assert disasm.around(read, 0x1000, 16, before=0, after=1)[0].endswith("mov ax, 1")
    assert disasm.around(read, 0x1000, 64, before=0, after=1)[0].endswith("mov eax, 1")


def test_unreadable_rip_is_text(memory):
    lines = disasm.around(reader(memory), 0x7FFF_FFFF, 64)
    assert lines == ["=> 0x000000007fffffff: <0x7fffffff: outside RAM>"]


def test_undecodable_bytes_are_shown(memory):
    memory.write(0x2000, b"\x0f\xff\xff\xff" + bytes(16))
    memory.write(0x3000, b"\x06\x90")                # push es: invalid in 64-bit mode
    lines = disasm.around(reader(memory), 0x3000, 64, before=0, after=2)
    assert lines == [disasm.format_line(0x3000, b"\x06\x90\x00\x00", "(bad)", "=> ")]
    assert lines[0].startswith("=> 0x0000000000003000: 06 90 00 00 ") and lines[0].endswith(" (bad)")
    assert disasm.around(reader(memory), 0x3000, 32, before=0, after=2)[0].endswith("push es")


def test_report_of_a_long_mode_state(memory):
    memory.write(ENTRY, CODE)
    write_long_mode_tables(memory)
    memory.write(STACK_TOP, u64(0x1122334455667788) + u64(0xAABB))
    state = long_mode_state(rip=UD2_AT)
    report = format_crash_report(DebugView(memory, state), ["pio-out    port=0x03f8 size=1 data=0x41"])
    assert "mode: long (64-bit)" in report
    assert "code at 0x0008:0x100009 (linear 0x100009, physical 0x100009; 64-bit, paging 4-level):" in report
    assert "=> 0x0000000000100009: 0f 0b" in report
    assert "stack at 0x0010:0x8000 (linear 0x8000):" in report
    assert "0x0000000000008000: 0x1122334455667788" in report
    assert "0x0000000000008008: 0x000000000000aabb" in report
    assert report.endswith("last 1 exits (oldest first):\n   pio-out    port=0x03f8 size=1 data=0x41")


def test_report_with_broken_page_tables_never_raises(memory):
    state = long_mode_state(rip=0x4000_0000)
    state.cr3 = 0x7FFF_F000                         # CR3 far outside RAM
    report = format_crash_report(DebugView(memory, state), None)
    assert "PML4E at 0x7ffff000 is outside RAM" in report
    assert "=> 0x0000000040000000: <0x40000000: PML4E at 0x7ffff000 is outside RAM>" in report
    assert "<0x8000: PML4E at 0x7ffff000 is outside RAM>" in report     # the stack line
    write_long_mode_tables(memory)
    state.cr3 = 0x9000
    report = format_crash_report(DebugView(memory, state), None)
    assert "not mapped (PDPTE 0x0" in report


def test_report_in_real_mode_uses_segment_bases(memory):
    memory.write(0xF_FFF0, bytes.fromhex("ea5be000f0"))                 # ljmp 0xf000:0xe05b
    state = CpuState(rip=0xFFF0, cs=Segment(selector=0xF000, base=0xF_0000), ss=Segment(selector=0x10, base=0x100))
    state.regs["rsp"] = 0x20
    memory.write(0x120, bytes.fromhex("3412"))
    report = format_crash_report(DebugView(memory, state))
    assert "mode: real" in report
    assert "(linear 0xffff0, physical 0xffff0; 16-bit, paging none)" in report
    assert "ljmp 0xf000:0xe05b" in report
    assert "0x0000000000000120: 0x1234" in report


def test_a_part_that_fails_does_not_hide_the_others(memory):
    class Broken:
        def lines(self):
            raise RuntimeError("ring exploded")
    state = long_mode_state()
    report = format_crash_report(DebugView(memory, state), Broken())
    assert "recent exits: (unavailable: RuntimeError: ring exploded)" in report
    assert "mode: long (64-bit)" in report


@pytest.mark.parametrize("engine_name", engine_params(kvm_features=(kvm_features.REGISTERS_AFTER_SHUTDOWN,)))
def test_report_of_a_real_triple_fault(engine_name):
    """ud2 with no IDT: a triple fault on both engines; the report shows the ud2 and the exits."""
    ring = ExitRing(4)
    code = b"\xe6\x80" + b"\xe6\x80" + b"\x0f\x0b"      # out 0x80, al (x2) ; ud2
    with synthetic_vm(engine_name, code, wrap_buses=lambda p, m: observe_buses(p, m, [ring])) as g:
        outcome = g.engine.run(10)
        assert outcome.reason == SHUTDOWN
        report = format_crash_report(g.engine.debug(), ring)
    assert "=> 0x0000000000100004: 0f 0b" in report and "ud2" in report
    assert "   0x0000000000100002: e6 80" in report
    assert "last 2 exits (oldest first):\n   #1 pio-out    port=0x0080 size=1" in report
