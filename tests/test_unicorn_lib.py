"""engines/unicorn_lib.py: libunicorn's C API without the Python binding. Its constants are
the package's own, and its Uc does what the binding's does for the calls the engine makes."""
import pytest

unicorn = pytest.importorskip("unicorn")
from unicorn import x86_const                                   # noqa: E402

from vmm.engines import unicorn_lib as lib                      # noqa: E402
from vmm.engines.unicorn_lib import Uc, UcError                 # noqa: E402


def test_every_constant_is_the_packages_own():
    names = [name for name in dir(lib) if name.startswith("UC_") and name != "UC_API_MAJOR"]
    assert len(names) > 60
    for name in names:
        source = x86_const if hasattr(x86_const, name) else unicorn
        assert getattr(lib, name) == getattr(source, name), name
    for i in range(8):
        assert lib.UC_X86_REG_R8 + i == getattr(x86_const, f"UC_X86_REG_R{8 + i}")
    for i in range(16):
        assert lib.UC_X86_REG_XMM0 + i == getattr(x86_const, f"UC_X86_REG_XMM{i}")


def test_the_library_is_the_packages_and_its_version_is_2():
    assert lib.version()[0] == 2 == int(unicorn.__version__.split(".")[0])
    assert lib.LIBRARY_PATH.endswith("unicorn/lib/libunicorn.so.2")


def compare(action):
    """Run action(uc) on our Uc and on the binding's, with the same results."""
    ours, theirs = Uc(lib.UC_ARCH_X86, lib.UC_MODE_64), unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
    try:
        return action(ours), action(theirs)
    finally:
        ours.close()


def test_registers_msrs_and_tables_read_back_as_the_binding_reads_them():
    def action(uc):
        uc.mem_map(0, 0x10000)
        uc.mem_write(0x1000, b"\x48\x8d\x04\x18\xf4")            # lea rax, [rax+rbx]; hlt
        uc.reg_write(lib.UC_X86_REG_RAX, 0x1122_3344_5566_7788)
        uc.reg_write(lib.UC_X86_REG_RBX, -1)
        uc.reg_write(lib.UC_X86_REG_GDTR, (0, 0x7000, 0x37, 0))
        uc.reg_write(lib.UC_X86_REG_TR, (0x40, 0xA000, 0x67, 0x8B00))
        uc.msr_write(0xC000_0102, 0xDEAD_BEEF)                   # IA32_KERNEL_GS_BASE
        uc.emu_start(0x1000, 0x1005)
        return (uc.reg_read(lib.UC_X86_REG_RAX), uc.reg_read(lib.UC_X86_REG_RIP), uc.reg_read(lib.UC_X86_REG_EAX),
                uc.reg_read(lib.UC_X86_REG_GDTR)[1:3], uc.reg_read(lib.UC_X86_REG_TR),
                uc.msr_read(0xC000_0102), uc.reg_read(lib.UC_X86_REG_FPCW), uc.reg_read(lib.UC_X86_REG_XMM0),
                bytes(uc.mem_read(0x1000, 5)))
    ours, theirs = compare(action)
    assert ours == theirs
    assert ours[0] == 0x1122_3344_5566_7787


def test_x87_registers_and_whole_xmm_registers_write_and_read_as_the_bindings():
    """What a snapshot saves and loads (engines/unicorn_snapshot.py)."""
    def action(uc):
        uc.reg_write(lib.UC_X86_REG_FP0 + 3, (0x8000_0000_0000_0001, 0x3FFF))
        uc.reg_write(lib.UC_X86_REG_XMM0 + 5, 0x0123_4567_89AB_CDEF_FEDC_BA98_7654_3210)
        uc.reg_write(lib.UC_X86_REG_FOP, 0x123)
        return (uc.reg_read(lib.UC_X86_REG_FP0 + 3), uc.reg_read(lib.UC_X86_REG_XMM0 + 5),
                uc.reg_read(lib.UC_X86_REG_FOP), uc.reg_read(lib.UC_X86_REG_FPTAG))
    ours, theirs = compare(action)
    assert ours == theirs
    assert ours[:2] == ((0x8000_0000_0000_0001, 0x3FFF), 0x0123_4567_89AB_CDEF_FEDC_BA98_7654_3210)


def test_contexts_round_trip_and_are_as_large_as_the_bindings():
    def action(uc):
        uc.reg_write(lib.UC_X86_REG_RCX, 42)
        saved = uc.context_save()
        uc.reg_write(lib.UC_X86_REG_RCX, 7)
        uc.context_restore(saved)
        blob = bytes(saved)
        return uc.reg_read(lib.UC_X86_REG_RCX), len(blob), blob.find((42).to_bytes(8, "little")) >= 0
    ours, theirs = compare(action)
    assert ours == theirs == (42, ours[1], True)


def test_errors_name_the_problem():
    uc = Uc(lib.UC_ARCH_X86, lib.UC_MODE_64)
    try:
        uc.ctl_set_cpu_model(lib.UC_CPU_X86_HASWELL)              # (before anything initialises the CPU)
        with pytest.raises(UcError) as raised:
            uc.mem_map(0x1001, 0x1000)                            # not page-aligned
        assert raised.value.errno == unicorn.UC_ERR_ARG and "argument" in str(raised.value).lower()
        uc.ctl_exits_enabled(True)
        uc.ctl_flush_tb()
        uc.ctl_flush_tlb()
    finally:
        uc.close()
        uc.close()                                              # twice is harmless


def test_the_remembered_layout_is_what_calibration_finds_now():
    from vmm.engines import unicorn_layout
    assert unicorn_layout.layout() == unicorn_layout.calibrate()
