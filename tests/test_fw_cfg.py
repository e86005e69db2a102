"""The fw_cfg device through its registers, as firmware drives it (QEMU docs/specs/fw_cfg.rst),
then the firmware itself (firmware/build/firmware.bin) booted from its reset vector against
this device in a bare unicorn CPU: the PVH hand-over it builds, and each failure status."""
import shutil
import subprocess

import pytest

from elf_builder import elf64, pvh_note
from vmm import layout, paths
from vmm.arch.x86 import pvh
from vmm.devices import fw_cfg as fc
from vmm.devices.bus import PortBus
from vmm.devices.fw_cfg import FwCfg
from vmm.errors import ImageError, UsageError
from vmm.loader.elf import ElfImage
from vmm.loader.pvh import load_pvh
from vmm.memory import GuestMemory

MEM = 8 << 20
SEL, DATA, DMA = layout.FW_CFG_SELECTOR_PORT, layout.FW_CFG_DATA_PORT, layout.FW_CFG_DMA_PORT
CODE = b"\xf4" * 32
ACCESS = 0x1000                 # where the tests put their FWCfgDmaAccess
BUFFER = 0x2000


@pytest.fixture
def memory():
    with GuestMemory(MEM) as mem:
        yield mem


def kernel_image(entry=0x100010, bss=0x3000):
    return ElfImage(elf64([(0x100000, CODE, bss)], notes=pvh_note(entry)))


def on_bus(cfg):
    bus = PortBus()
    cfg.register(bus)
    return bus


def read_item(bus, key, n):
    """Select `key` and read `n` bytes through the data port, as `rep insb` does."""
    bus.write(SEL, 2, key)
    return bytes(bus.read(DATA, 1) for _ in range(n))


def read_u32(bus, key):
    return int.from_bytes(read_item(bus, key, 4), "little")


def directory(bus):
    bus.write(SEL, 2, fc.FILE_DIR)
    count = int.from_bytes(bytes(bus.read(DATA, 1) for _ in range(4)), "big")
    entries = []
    for _ in range(count):
        size, select, _, name = fc.FILE_ENTRY.unpack(bytes(bus.read(DATA, 1) for _ in range(64)))
        entries.append((name.rstrip(b"\0").decode(), select, size))
    return entries


def dma(bus, memory, control, length=0, address=BUFFER, key=None, high=0):
    """One DMA transfer as firmware starts it; returns the control word written back."""
    if key is not None:
        control |= fc.DMA_SELECT | key << 16
    memory.write(ACCESS, fc.DMA_ACCESS.pack(control, length, address))
    bus.write(DMA, 4, int.from_bytes(high.to_bytes(4, "big"), "little"))
    bus.write(DMA + 4, 4, int.from_bytes((ACCESS).to_bytes(4, "big"), "little"))
    return int.from_bytes(memory.read(ACCESS, 4), "big")


# --- the port interface ------------------------------------------------------------------

def test_signature_and_id(memory):
    assert read_item(on_bus(FwCfg(memory)), fc.SIGNATURE, 4) == b"QEMU"
    assert read_u32(on_bus(FwCfg(memory)), fc.ID) == fc.ID_TRADITIONAL | fc.ID_DMA
    assert read_u32(on_bus(FwCfg(memory, dma=False)), fc.ID) == fc.ID_TRADITIONAL
    assert read_u32(on_bus(FwCfg()), fc.ID) == fc.ID_TRADITIONAL     # no memory: no DMA


def test_selecting_again_rewinds_and_reads_past_the_end_give_zero():
    bus = on_bus(FwCfg())
    assert read_item(bus, fc.SIGNATURE, 2) == b"QE"
    assert read_item(bus, fc.SIGNATURE, 6) == b"QEMU\0\0"
    assert read_item(bus, 0x1234, 3) == b"\0\0\0"                    # no such item
    bus.write(SEL, 2, fc.SIGNATURE | fc.WRITE_CHANNEL)               # the write bit is ignored
    assert bus.read(DATA, 1) == ord("Q")
    assert bus.read(SEL, 1) == ord("E")                              # QEMU: both ports read data


def test_wrong_sized_accesses_neither_select_nor_read():
    bus = on_bus(FwCfg())
    bus.write(SEL, 2, fc.SIGNATURE)
    bus.write(SEL, 1, fc.ID)                                         # 8-bit: not a selection
    bus.write(DATA, 1, 0x55)                                         # data writes: ignored
    assert bus.read(DATA, 2) == 0xFFFF                               # only byte reads
    assert bus.read(DATA, 1) == ord("Q")


def test_file_directory_is_sorted_big_endian_and_keys_follow_names():
    cfg = FwCfg()
    cfg.add_file("opt/zz", b"last")
    cfg.add_file("etc/e820", b"x" * 20)
    cfg.add_file("bootorder", b"")
    bus = on_bus(cfg)
    assert directory(bus) == [("bootorder", 0x20, 0), ("etc/e820", 0x21, 20), ("opt/zz", 0x22, 4)]
    assert read_item(bus, 0x22, 4) == b"last"
    with pytest.raises(ValueError):
        cfg.add_file("opt/zz", b"again")
    with pytest.raises(ValueError):
        cfg.add_file("n" * 56, b"")


def test_e820_file_is_the_direct_boot_memory_map(memory):
    cfg = FwCfg.for_pvh_boot(memory, kernel_image(), None, "")
    bus = on_bus(cfg)
    (name, key, size), = directory(bus)
    assert name == "etc/e820" and size % fc.E820_ENTRY.size == 0
    raw = read_item(bus, key, size)
    entries = [fc.E820_ENTRY.unpack_from(raw, at) for at in range(0, size, fc.E820_ENTRY.size)]
    assert entries == pvh.e820_map(MEM)


def test_pvh_kernel_items_are_laid_out_as_qemu_does(memory):
    kernel = kernel_image(entry=0x100010, bss=0x3000)
    module = b"\x7fELF" + b"M" * 5000
    bus = on_bus(FwCfg.for_pvh_boot(memory, kernel, module, "console=ttyS0 -- a"))
    # The ELF is already in RAM, BSS zeroed; the items describe it (hw/i386/x86.c).
    assert memory.read(0x100000, len(CODE)) == CODE
    assert memory.read(0x100000 + len(CODE), 0x3000 - len(CODE)) == bytes(0x3000 - len(CODE))
    assert read_u32(bus, fc.KERNEL_ENTRY) == 0x100010
    assert (read_u32(bus, fc.KERNEL_ADDR), read_u32(bus, fc.KERNEL_SIZE)) == (0x100000, 0x3000)
    assert read_item(bus, fc.KERNEL_DATA, 4) == bytes(4)             # QEMU gives no data for PVH
    assert read_u32(bus, fc.SETUP_SIZE) == fc.SETUP_HEADER_SIZE
    setup = read_item(bus, fc.SETUP_DATA, fc.SETUP_HEADER_SIZE)
    assert setup == kernel.data + bytes(fc.SETUP_HEADER_SIZE - len(kernel.data))
    assert read_u32(bus, fc.CMDLINE_SIZE) == 19
    assert read_item(bus, fc.CMDLINE_DATA, 19) == b"console=ttyS0 -- a\0"
    # The initrd goes where the direct boot puts module 0: the top of RAM, page-aligned.
    assert read_u32(bus, fc.INITRD_ADDR) == MEM - 0x2000
    assert read_u32(bus, fc.INITRD_SIZE) == len(module)
    assert read_item(bus, fc.INITRD_DATA, len(module) + 1) == module + b"\0"
    assert int.from_bytes(read_item(bus, fc.RAM_SIZE, 8), "little") == MEM


def test_no_initrd_means_no_initrd_items(memory):
    bus = on_bus(FwCfg.for_pvh_boot(memory, kernel_image(), None, ""))
    assert read_u32(bus, fc.INITRD_SIZE) == 0 and read_u32(bus, fc.INITRD_ADDR) == 0
    assert read_item(bus, fc.CMDLINE_DATA, 2) == b"\0\0"


def test_pvh_boot_refuses_what_cannot_boot(memory):
    with pytest.raises(ImageError, match="PVH entry"):
        FwCfg.for_pvh_boot(memory, ElfImage(elf64([(0x100000, CODE, 0x1000)])), None, "")
    with pytest.raises(ImageError, match="overlaps the firmware's stack"):
        FwCfg.for_pvh_boot(memory, ElfImage(elf64([(0x5800, CODE, 0x100)], notes=pvh_note(0x5800))), None, "")
    with pytest.raises(UsageError, match="too small"):
        FwCfg.for_pvh_boot(memory, kernel_image(), bytes(MEM), "")
    with pytest.raises(UsageError, match="command line"):
        FwCfg.for_pvh_boot(memory, kernel_image(), None, "x" * layout.CMDLINE_MAX_SIZE)


# --- DMA ------------------------------------------------------------------------------------

def test_dma_register_reads_its_signature(memory):
    bus = on_bus(FwCfg(memory))
    raw = bus.read(DMA, 4).to_bytes(4, "little") + bus.read(DMA + 4, 4).to_bytes(4, "little")
    assert raw == fc.DMA_SIGNATURE
    assert on_bus(FwCfg(memory, dma=False)).read(DMA, 4) == 0xFFFF_FFFF     # no DMA: unclaimed


def test_dma_select_skip_and_read(memory):
    cfg = FwCfg(memory)
    cfg.add_bytes(0x30, bytes(range(200)))
    bus = on_bus(cfg)
    writes = []
    memory.on_write(lambda gpa, n: writes.append((gpa, n)))
    assert dma(bus, memory, fc.DMA_SKIP, 10, key=0x30) == 0
    assert dma(bus, memory, fc.DMA_READ, 5) == 0
    assert memory.read(BUFFER, 5) == bytes(range(10, 15))
    assert (BUFFER, 5) in writes and (ACCESS, 4) in writes              # the engines hear of it
    assert bus.read(DATA, 1) == 15                                      # DMA and port share the offset
    assert dma(bus, memory, 0, key=fc.SIGNATURE) == 0                   # select only
    assert bus.read(DATA, 1) == ord("Q")


def test_dma_read_past_the_end_fills_zeros(memory):
    bus = on_bus(FwCfg(memory))
    memory.write(BUFFER, b"\xaa" * 8)
    assert dma(bus, memory, fc.DMA_READ, 8, key=fc.SIGNATURE) == 0
    assert memory.read(BUFFER, 8) == b"QEMU\0\0\0\0"
    assert dma(bus, memory, fc.DMA_READ, 4, key=0x1234) == 0            # no such item: zeros
    assert memory.read(BUFFER, 4) == bytes(4)


def test_dma_bad_addresses_set_the_error_bit(memory):
    bus = on_bus(FwCfg(memory))
    assert dma(bus, memory, fc.DMA_READ, 4, address=MEM - 2, key=fc.SIGNATURE) & fc.DMA_ERROR
    assert dma(bus, memory, fc.DMA_READ, 4, address=1 << 40, key=fc.SIGNATURE) & fc.DMA_ERROR
    # A FWCfgDmaAccess outside RAM: nothing to read, nowhere to report, no exception.
    bus.write(DMA, 4, 0x0100_0000)                                      # high half = 1: 4 GiB up
    bus.write(DMA + 4, 4, 0)
    bus.write(DMA + 4, 4, int.from_bytes((MEM - 4).to_bytes(4, "big"), "little"))
    assert memory.read(MEM - 4, 4) == fc.DMA_ERROR.to_bytes(4, "big")  # its control word is RAM


def test_dma_write_is_refused(memory):
    bus = on_bus(FwCfg(memory))
    memory.write(BUFFER, b"ABCD")
    assert dma(bus, memory, fc.DMA_WRITE, 4, key=fc.SIGNATURE) & fc.DMA_ERROR
    assert read_item(bus, fc.SIGNATURE, 4) == b"QEMU"
    assert dma(bus, memory, fc.DMA_WRITE, 0, key=fc.SIGNATURE) == 0    # nothing to write: no error


def test_dma_high_half_write_does_not_start_a_transfer(memory):
    bus = on_bus(FwCfg(memory))
    memory.write(ACCESS, fc.DMA_ACCESS.pack(fc.DMA_READ | fc.DMA_SELECT, 4, BUFFER))
    bus.write(DMA, 4, 0)
    assert memory.read(BUFFER, 4) == bytes(4)
    bus.write(DMA + 4, 4, int.from_bytes(ACCESS.to_bytes(4, "big"), "little"))
    assert memory.read(BUFFER, 4) == b"QEMU"


# --- the firmware, from its reset vector, against this device ------------------------------

FIRMWARE_DIR = paths.REPO_ROOT / "firmware"
FIRMWARE = FIRMWARE_DIR / "build" / "firmware.bin"


@pytest.fixture(scope="module")
def firmware():
    """firmware.bin, built if need be (make is a no-op when it is up to date)."""
    if shutil.which("make") and shutil.which("gcc"):
        subprocess.run(["make", "-s", "-C", str(FIRMWARE_DIR)], check=True, capture_output=True)
    if not FIRMWARE.exists():
        pytest.fail(f"{FIRMWARE} is not built and cannot be: run `make -C firmware`")
    data = FIRMWARE.read_bytes()
    assert len(data) % layout.FIRMWARE_SIZE_UNIT == 0 and len(data) <= layout.FIRMWARE_MAX_SIZE
    return data


class Boot:
    """A bare unicorn CPU: RAM, the firmware at 4 GiB and its shadow at 0xF0000, and the
    ports it uses. It starts at the reset vector and stops at `entry` or a debug-exit."""

    def __init__(self, firmware, memory, cfg):
        import unicorn
        from unicorn import x86_const as x86
        self.x86 = x86
        self.serial = bytearray()
        self.status = None
        self.bus = PortBus()
        if cfg is not None:
            cfg.register(self.bus)
        self.bus.register(layout.COM1_PORT, layout.COM1_PORT_COUNT, self._Com(self.serial))
        self.bus.register(layout.DEBUG_EXIT_PORT, layout.DEBUG_EXIT_PORT_COUNT, self._Exit(self))
        uc = self.uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_16)
        rom = unicorn.UC_PROT_READ | unicorn.UC_PROT_EXEC
        uc.mem_map_ptr(0, layout.BIOS_SHADOW_START, unicorn.UC_PROT_ALL, memory.host_address)
        high = layout.HIGH_MEMORY_START
        uc.mem_map_ptr(high, memory.size - high, unicorn.UC_PROT_ALL, memory.host_address + high)
        uc.mem_map(layout.BIOS_SHADOW_START, layout.BIOS_SHADOW_SIZE, rom)
        uc.mem_write(layout.BIOS_SHADOW_START, firmware[-layout.BIOS_SHADOW_SIZE:])
        uc.mem_map(layout.FIRMWARE_TOP - len(firmware), len(firmware), rom)
        uc.mem_write(layout.FIRMWARE_TOP - len(firmware), firmware)
        uc.hook_add(unicorn.UC_HOOK_INSN, lambda uc, port, size, _: self.bus.read(port, size),
                    None, 1, 0, x86.UC_X86_INS_IN)
        uc.hook_add(unicorn.UC_HOOK_INSN, lambda uc, port, size, value, _: self.bus.write(port, size, value),
                    None, 1, 0, x86.UC_X86_INS_OUT)
        # A 16-bit engine loads CS=F000 with base 0xF0000: the reset vector's shadow copy.
        uc.reg_write(x86.UC_X86_REG_CS, layout.RESET_VECTOR_CS)

    class _Com:
        def __init__(self, out):
            self.out = out

        def read(self, offset, size):
            return 0x60 if offset == 5 else 0          # LSR: transmitter empty

        def write(self, offset, size, value):
            if offset == 0:
                self.out.append(value)

    class _Exit:
        def __init__(self, boot):
            self.boot = boot

        def read(self, offset, size):
            return 0

        def write(self, offset, size, value):
            self.boot.status = value
            self.boot.uc.emu_stop()

    def run(self, entry=0x100010):
        self.uc.emu_start(layout.BIOS_SHADOW_START + layout.RESET_VECTOR_IP, entry, count=200_000)
        return self.uc.reg_read(self.x86.UC_X86_REG_EIP)

    def reg(self, name):
        return self.uc.reg_read(getattr(self.x86, f"UC_X86_REG_{name.upper()}"))


@pytest.mark.parametrize("use_dma", [True, False], ids=["dma", "ports"])
def test_firmware_hands_over_exactly_as_the_direct_pvh_boot(firmware, use_dma):
    kernel = kernel_image(entry=0x100010)
    module = b"\x7fELF" + bytes(range(256)) * 20
    cmdline = "console=ttyS0 -- one two"
    with GuestMemory(MEM) as mem, GuestMemory(MEM) as direct:
        boot = Boot(firmware, mem, FwCfg.for_pvh_boot(mem, kernel, module, cmdline, dma=use_dma))
        assert boot.run() == 0x100010, (boot.serial, boot.status)
        assert bytes(boot.serial) == b"pyvmm firmware\n" and boot.status is None
        state = load_pvh(direct, kernel, module, cmdline)
        assert boot.reg("ebx") == state.regs["rbx"] == layout.PVH_INFO_START
        assert [boot.reg(r) for r in ("eax", "ecx", "edx", "esi", "edi", "ebp", "esp")] == [0] * 7
        assert boot.reg("eflags") == state.rflags and boot.reg("cr0") == state.cr0
        assert boot.reg("cs") == pvh.BOOT_CS and boot.reg("ds") == boot.reg("ss") == pvh.BOOT_DS
        assert boot.reg("gdtr")[1:3] == (layout.BOOT_GDT_ADDR, 4 * 8 - 1)
        n = len(pvh.e820_map(MEM))
        for start, size in [(layout.PVH_INFO_START, pvh.START_INFO.size), (layout.PVH_MODLIST_START, 32),
                            (layout.PVH_MEMMAP_START, n * pvh.MEMMAP_ENTRY.size),
                            (layout.CMDLINE_START, len(cmdline) + 1), (MEM - 0x2000, len(module)),
                            (0x100000, 0x3000), (layout.BOOT_GDT_ADDR, 24)]:
            assert mem.read(start, size) == direct.read(start, size), hex(start)


PVH_ITEMS = (fc.RAM_SIZE, fc.NB_CPUS, fc.KERNEL_ENTRY, fc.KERNEL_ADDR, fc.KERNEL_SIZE, fc.CMDLINE_SIZE,
             fc.CMDLINE_DATA, fc.SETUP_SIZE, fc.SETUP_DATA, fc.INITRD_ADDR, fc.INITRD_SIZE, fc.INITRD_DATA)


def custom_cfg(memory, drop=(), e820=None, **items):
    """A PVH boot's items, with some dropped or replaced (NAME=bytes), and etc/e820 replaced
    by `e820` [(addr, size, type)] (an empty list: no etc/e820 at all)."""
    full = FwCfg.for_pvh_boot(memory, kernel_image(), b"module", "")
    cfg = FwCfg(memory)
    for key in PVH_ITEMS:
        if key not in drop:
            cfg.add_bytes(key, full.item(key))
    for name, value in items.items():
        cfg.add_bytes(getattr(fc, name), value)
    e820 = pvh.e820_map(memory.size) if e820 is None else e820
    if e820:
        cfg.add_file("etc/e820", b"".join(fc.E820_ENTRY.pack(*entry) for entry in e820))
    return cfg


def le32(value):
    return value.to_bytes(4, "little")


FAILURES = [
    (0x72, "no kernel", dict(drop=[fc.KERNEL_SIZE])),
    (0x73, "not an x86 ELF", dict(SETUP_DATA=b"MZ" + bytes(8190))),
    (0x73, "not an x86 ELF", dict(drop=[fc.SETUP_SIZE])),                       # QEMU's multiboot path
    (0x74, "no PVH entry", dict(KERNEL_ENTRY=le32(0))),
    (0x76, "command line", dict(CMDLINE_SIZE=le32(layout.CMDLINE_MAX_SIZE + 1))),
    (0x77, "initrd", dict(INITRD_ADDR=le32(MEM - 2))),
    (0x77, "initrd", dict(INITRD_ADDR=le32(0x100000))),                          # on the kernel
    (0x78, "outside RAM", dict(KERNEL_ADDR=le32(MEM - 0x1000))),
]


@pytest.mark.parametrize("status, message, change", FAILURES, ids=[f"{s:#x}-{m}" for s, m, _ in FAILURES])
def test_firmware_failures_print_a_reason_and_exit_with_their_status(firmware, memory, status, message, change):
    boot = Boot(firmware, memory, custom_cfg(memory, **change))
    boot.run()
    assert boot.status == status
    assert bytes(boot.serial).startswith(b"pyvmm firmware\nfirmware: ")
    assert message in bytes(boot.serial).decode()


def test_firmware_without_fw_cfg_or_memory_map(firmware, memory):
    boot = Boot(firmware, memory, None)
    boot.run()
    assert boot.status == 0x71 and b"no fw_cfg" in boot.serial
    boot = Boot(firmware, memory, custom_cfg(memory, e820=[]))
    boot.run()
    assert boot.status == 0x75 and b"etc/e820" in boot.serial


def test_firmware_reports_a_dma_error(firmware, memory):
    # etc/e820 claims twice the RAM there is, and the initrd goes where there is none:
    # the firmware's own checks pass, the device's bounds check sets the ERROR bit.
    cfg = custom_cfg(memory, e820=[(0, 2 * MEM, pvh.E820_RAM)], INITRD_ADDR=le32(MEM + 0x1000))
    boot = Boot(firmware, memory, cfg)
    boot.run()
    assert boot.status == 0x79 and b"DMA" in boot.serial
