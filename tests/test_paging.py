"""vmm/arch/x86/paging.py: the debugger's read-only page walk of every paging mode, on page tables
written by hand into a GuestMemory; failures are text, never exceptions."""
import pytest

from vmm.arch.x86 import paging as x86_paging
from vmm.arch.x86.cpu_state import CR0_PE, CR0_PG, CR4_PAE, CR4_PSE, EFER_LMA, EFER_LME, CpuState, Segment
from vmm.arch.x86.paging import Paging
from vmm.memory import GuestMemory

from test_debug_support import u32, u64

MiB = 1 << 20
RAM = 4 * MiB
P, RW, PS = 0x1, 0x2, 0x80


@pytest.fixture
def memory():
    with GuestMemory(RAM) as mem:
        yield mem


def long_mode(cr3):
    return Paging(CR0_PE | CR0_PG, cr3, CR4_PAE, EFER_LME | EFER_LMA)


def test_no_paging_is_identity_and_32_bit_outside_long_mode(memory):
    real = Paging(0, 0, 0, 0)
    assert real.mode() == "none"
    assert x86_paging.translate(real, memory, 0x1234).physical == 0x1234
    assert x86_paging.translate(real, memory, 0x1_0000_1234).physical == 0x1234


def test_four_level_4k_2m_and_1g_pages(memory):
    pml4, pdpt, pd, pt = 0x1000, 0x2000, 0x3000, 0x4000
    memory.write(pml4, u64(pdpt | P | RW))
    memory.write(pdpt + 8 * 0, u64(pd | P | RW))                    # 0-1 GiB: through a PD
    memory.write(pdpt + 8 * 1, u64((1 << 30) * 5 | P | PS))          # 1-2 GiB: a 1 GiB page at 5 GiB
    memory.write(pd + 8 * 0, u64(pt | P))                           # 0-2 MiB: 4 KiB pages
    memory.write(pd + 8 * 1, u64(0x20_0000 | P | PS))                # 2-4 MiB: a 2 MiB page
    memory.write(pt + 8 * 0x10, u64(0x30_5000 | P))                  # 0x10000 -> 0x305000
    paging = long_mode(pml4)
    assert paging.mode() == "4-level"
    assert x86_paging.translate(paging, memory, 0x10_123).physical == 0x30_5123
    assert x86_paging.translate(paging, memory, 0x23_4567).physical == 0x23_4567
    assert x86_paging.translate(paging, memory, (1 << 30) + 0x1234_5678).physical == 5 * (1 << 30) + 0x1234_5678


def test_four_level_failures_say_where(memory):
    pml4, pdpt = 0x1000, 0x2000
    memory.write(pml4, u64(pdpt | P))
    memory.write(pml4 + 8, u64(0x7000_0000 | P))                    # a PDPT far outside RAM
    paging = long_mode(pml4)
    missing = x86_paging.translate(paging, memory, 0x1000)
    assert not missing and missing.physical is None
    assert "not mapped" in missing.error and "PDPTE" in missing.error
    outside = x86_paging.translate(paging, memory, 1 << 39)
    assert "outside RAM" in outside.error and "PDPTE at 0x70000000" in outside.error
    assert "non-canonical" in x86_paging.translate(paging, memory, 0x0000_8000_0000_0000).error
    assert "outside RAM" in x86_paging.translate(long_mode(0x10_0000_0000), memory, 0).error


def test_pae_32_bit(memory):
    pdpt, pd, pt = 0x1000, 0x2000, 0x3000
    memory.write(pdpt + 8 * 3, u64(pd | P))                          # 3-4 GiB
    memory.write(pd + 8 * 0, u64(pt | P))
    memory.write(pd + 8 * 1, u64(0x20_0000 | P | PS))
    memory.write(pt + 8 * 2, u64(0x12_3000 | P))
    paging = Paging(CR0_PE | CR0_PG, pdpt, CR4_PAE, 0)
    assert paging.mode() == "PAE"
    assert x86_paging.translate(paging, memory, 0xC000_2ABC).physical == 0x12_3ABC
    assert x86_paging.translate(paging, memory, 0xC020_0010).physical == 0x20_0010
    assert "PDPTE" in x86_paging.translate(paging, memory, 0x1000).error


def test_32_bit_paging_with_4m_pages(memory):
    pd, pt = 0x1000, 0x2000
    memory.write(pd + 4 * 0, u32(pt | P))
    memory.write(pd + 4 * 1, u32(0x0000_0000 | P | PS))              # 4-8 MiB -> 4 MiB page at 0
    memory.write(pt + 4 * 5, u32(0x3F_F000 | P))
    paging = Paging(CR0_PE | CR0_PG, pd, CR4_PSE, 0)
    assert paging.mode() == "32-bit"
    assert x86_paging.translate(paging, memory, 0x5123).physical == 0x3F_F123
    assert x86_paging.translate(paging, memory, 0x40_1234).physical == 0x1234
    no_pse = Paging(CR0_PE | CR0_PG, pd, 0, 0)                      # without CR4.PSE, PS is ignored
    assert "PTE 0x0 at 0x0" in x86_paging.translate(no_pse, memory, 0x40_0000).error   # PDE read as a PT at 0
    assert "PTE" in x86_paging.translate(paging, memory, 0x6000).error


def test_five_level_is_reported_not_guessed(memory):
    paging = Paging(CR0_PE | CR0_PG, 0x1000, CR4_PAE | (1 << 12), EFER_LME | EFER_LMA)
    assert "5-level" in x86_paging.translate(paging, memory, 0).error


def test_read_across_an_unmapped_page_returns_what_it_could(memory):
    pml4, pdpt, pd, pt = 0x1000, 0x2000, 0x3000, 0x4000
    memory.write(pml4, u64(pdpt | P))
    memory.write(pdpt, u64(pd | P))
    memory.write(pd, u64(pt | P))
    memory.write(pt + 8 * 0x10, u64(0x10_0000 | P))                  # 0x10000 mapped, 0x11000 not
    memory.write(0x10_0FFC, b"abcd")
    data, error = x86_paging.read(long_mode(pml4), memory, 0x10FFC, 8)
    assert data == b"abcd" and "0x11000" in error and "not mapped" in error
    assert x86_paging.write(long_mode(pml4), memory, 0x10FFE, b"XXXX") is not None
    assert memory.read(0x10_0FFC, 4) == b"abcd"                      # all or nothing
    assert x86_paging.write(long_mode(pml4), memory, 0x10FFC, b"wxyz") is None
    assert memory.read(0x10_0FFC, 4) == b"wxyz"


def test_physical_address_outside_ram(memory):
    pml4, pdpt, pd = 0x1000, 0x2000, 0x3000
    memory.write(pml4, u64(pdpt | P))
    memory.write(pdpt, u64(pd | P))
    memory.write(pd, u64(0x4000_0000 | P | PS))                      # a 2 MiB page at 1 GiB: no RAM
    data, error = x86_paging.read(long_mode(pml4), memory, 0x100, 4)
    assert data == b"" and "outside RAM" in error


def test_linear_address_by_mode():
    real = CpuState(cs=Segment(selector=0xF000, base=0xF0000))
    assert x86_paging.linear_address(real, real.cs, 0xFFF0) == 0xFFFF0
    flat32 = CpuState(cr0=CR0_PE, cs=Segment(base=0x1000, db=1), ds=Segment(base=0x10))
    assert x86_paging.linear_address(flat32, flat32.ds, 0xFFFF_FFF8) == 0x8     # wraps at 4 GiB
    long64 = CpuState(cr0=CR0_PE | CR0_PG, efer=EFER_LMA, cs=Segment(l=1), ds=Segment(base=0x5000),
                      fs=Segment(base=0x7000_0000_0000))
    assert x86_paging.linear_address(long64, long64.ds, 0x10) == 0x10           # no DS base in 64-bit mode
    assert x86_paging.linear_address(long64, long64.fs, 0x10) == 0x7000_0000_0010


# --- the access checks exception delivery makes (engines/x86_delivery.py) --------------------------
U, A, D, NX = 0x4, 0x20, 0x40, 1 << 63


def four_level_page(memory, leaf_flags, upper_flags=P | RW | U):
    """One 4 KiB page at linear 0x5000 -> physical 0x20_0000 with `leaf_flags` on its PTE."""
    pml4, pdpt, pd, pt = 0x1000, 0x2000, 0x3000, 0x4000
    memory.write(pml4, u64(pdpt | upper_flags))
    memory.write(pdpt, u64(pd | upper_flags))
    memory.write(pd, u64(pt | upper_flags))
    memory.write(pt + 8 * 5, u64(0x20_0000 | leaf_flags))
    return long_mode(pml4), pt + 8 * 5


def test_access_error_is_the_page_fault_error_code(memory):
    paging, _ = four_level_page(memory, P)                      # present, read-only, supervisor
    walked = x86_paging.walk(paging, memory, 0x5123)
    assert walked.physical == 0x20_0123
    assert x86_paging.access_error(walked, paging, write=False, user=False, fetch=False) is None
    assert x86_paging.access_error(walked, paging, write=False, user=True, fetch=False) == 0x4 | 0x1
    assert x86_paging.access_error(walked, paging, write=True, user=False, fetch=False) is None   # CR0.WP clear
    paging.cr0 |= 1 << 16                                       # CR0.WP: supervisor writes checked too
    assert x86_paging.access_error(walked, paging, write=True, user=False, fetch=False) == 0x2 | 0x1
    missing = x86_paging.walk(paging, memory, 0x6000)
    assert missing.fault == "not-present"
    assert x86_paging.access_error(missing, paging, write=True, user=True, fetch=False) == 0x2 | 0x4


def test_access_error_applies_no_execute_and_smep(memory):
    paging, _ = four_level_page(memory, P | U | NX)
    walked = x86_paging.walk(paging, memory, 0x5000)
    assert x86_paging.access_error(walked, paging, False, True, fetch=True) is None    # EFER.NXE clear
    paging.efer |= 1 << 11                                                            # EFER.NXE
    assert x86_paging.access_error(walked, paging, False, True, fetch=True) == 0x10 | 0x4 | 0x1
    smep = Paging(paging.cr0, paging.cr3, paging.cr4 | (1 << 20), EFER_LME | EFER_LMA)   # CR4.SMEP
    user_page = x86_paging.walk(smep, memory, 0x5000)
    assert x86_paging.access_error(user_page, smep, False, False, fetch=True) == 0x10 | 0x1


def test_an_entry_outside_ram_is_not_a_page_fault(memory):
    paging = long_mode(0x10_0000_0000)
    walked = x86_paging.walk(paging, memory, 0)
    assert walked.fault == "outside" and walked.where == 0x10_0000_0000 and walked.physical is None


def test_mark_accessed_sets_accessed_everywhere_and_dirty_on_the_leaf_for_a_write(memory):
    paging, pte = four_level_page(memory, P | RW)
    x86_paging.mark_accessed(x86_paging.walk(paging, memory, 0x5000), memory, write=False)
    assert memory.read_u64(pte) & (A | D) == A and memory.read_u64(0x1000) & (A | D) == A
    x86_paging.mark_accessed(x86_paging.walk(paging, memory, 0x5000), memory, write=True)
    assert memory.read_u64(pte) & (A | D) == A | D and memory.read_u64(0x1000) & D == 0
