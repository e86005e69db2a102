"""The x86 Linux boot protocol: the bzImage setup header, the zero page (struct boot_params)
and the 64-bit entry state.

Sources: Documentation/arch/x86/boot.rst (the header fields, their offsets and the protocol
versions that introduced them; "64-bit Boot Protocol") and Documentation/arch/x86/zero-page.rst
(the zero page's layout). Firecracker, cloud-hypervisor and kvmtool enter Linux the same way.
"""
import struct

from ... import layout
from .cpu_state import (CR0_ET, CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME, RFLAGS_RESERVED_1,
                        TYPE_TSS_BUSY, CpuState, Segment, gdt_descriptor)

SECTOR = 512
SETUP_HEADER_OFFSET = 0x1F1            # hdr: the setup header, in the image and in boot_params
HDRS_MAGIC = b"HdrS"                   # at 0x202
BOOT_FLAG = 0xAA55                     # at 0x1FE
MIN_PROTOCOL = 0x206                   # 2.06: cmdline_size; we refuse anything older
DEFAULT_SETUP_SECTS = 4                # setup_sects == 0 means 4

# Offsets of the setup header fields used here (boot.rst, "The real-mode kernel header").
OFF_SETUP_SECTS = 0x1F1                # u8
OFF_BOOT_FLAG = 0x1FE                  # u16
OFF_JUMP = 0x200                       # u16 (its second byte + 0x202 is the header's end)
OFF_HEADER = 0x202                     # u32 "HdrS"
OFF_VERSION = 0x206                    # u16
OFF_TYPE_OF_LOADER = 0x210             # u8
OFF_LOADFLAGS = 0x211                  # u8
OFF_RAMDISK_IMAGE = 0x218              # u32
OFF_RAMDISK_SIZE = 0x21C               # u32
OFF_HEAP_END_PTR = 0x224               # u16
OFF_CMD_LINE_PTR = 0x228               # u32
OFF_INITRD_ADDR_MAX = 0x22C            # u32
OFF_KERNEL_ALIGNMENT = 0x230           # u32
OFF_RELOCATABLE = 0x234                # u8
OFF_XLOADFLAGS = 0x236                 # u16
OFF_CMDLINE_SIZE = 0x238               # u32
OFF_PREF_ADDRESS = 0x258               # u64
OFF_INIT_SIZE = 0x260                  # u32

LOADED_HIGH = 1 << 0                   # loadflags: the protected-mode code loads at 0x100000
CAN_USE_HEAP = 1 << 7
XLF_KERNEL_64 = 1 << 0                 # xloadflags: has the 64-bit entry at load address + 0x200
XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1
ENTRY_64_OFFSET = 0x200
TYPE_OF_LOADER_UNDEFINED = 0xFF        # "no assigned ID"

# struct boot_params (zero-page.rst)
ZERO_PAGE_SIZE = 0x1000
OFF_ACPI_RSDP_ADDR = 0x070             # u64
OFF_EXT_RAMDISK_IMAGE = 0x0C0          # u32: high 32 bits of ramdisk_image
OFF_EXT_RAMDISK_SIZE = 0x0C4
OFF_EXT_CMD_LINE_PTR = 0x0C8
OFF_E820_ENTRIES = 0x1E8               # u8
OFF_E820_TABLE = 0x2D0                 # struct boot_e820_entry[128]
E820_MAX_ENTRIES = 128
E820_ENTRY = struct.Struct("<QQI")     # addr, size, type (packed, 20 bytes)

# The 64-bit entry: "a GDT must be loaded with the descriptors for selectors __BOOT_CS(0x10) and
# __BOOT_DS(0x18); both descriptors must be 4G flat segment". Entries 0 and 1 are null; a TSS
# follows, because VMX refuses to enter a guest with a null TR.
BOOT_CS = 0x10
BOOT_DS = 0x18
BOOT_TR = 0x20
BOOT_GDT = (
    0,
    0,
    gdt_descriptor(0, 0xFFFFF, access=0x9B, flags=0xA),   # code: present, ring 0, exec/read; 4K gran, L=1
    gdt_descriptor(0, 0xFFFFF, access=0x93, flags=0xC),   # data: present, ring 0, read/write; 4K gran, 32-bit
    gdt_descriptor(0, 0x67, access=0x89, flags=0x0),      # 64-bit TSS (type 9), 104 bytes
    0,                                                    # (a 64-bit TSS descriptor is 16 bytes)
)


def boot_gdt_bytes() -> bytes:
    return b"".join(d.to_bytes(8, "little") for d in BOOT_GDT)


class SetupHeader:
    """The fields of a bzImage's setup header that a 64-bit boot loader needs."""

    def __init__(self, image: bytes):
        def u8(offset):
            return image[offset]

        def u16(offset):
            return int.from_bytes(image[offset:offset + 2], "little")

        def u32(offset):
            return int.from_bytes(image[offset:offset + 4], "little")

        self.setup_sects = u8(OFF_SETUP_SECTS) or DEFAULT_SETUP_SECTS
        self.boot_flag = u16(OFF_BOOT_FLAG)
        self.magic = bytes(image[OFF_HEADER:OFF_HEADER + 4])
        self.version = u16(OFF_VERSION)
        self.loadflags = u8(OFF_LOADFLAGS)
        self.initrd_addr_max = u32(OFF_INITRD_ADDR_MAX)
        self.kernel_alignment = u32(OFF_KERNEL_ALIGNMENT)
        self.relocatable = u8(OFF_RELOCATABLE)
        self.xloadflags = u16(OFF_XLOADFLAGS)
        self.cmdline_size = u32(OFF_CMDLINE_SIZE)
        self.pref_address = int.from_bytes(image[OFF_PREF_ADDRESS:OFF_PREF_ADDRESS + 8], "little")
        self.init_size = u32(OFF_INIT_SIZE)
        # The header runs from 0x1F1 to 0x202 + the jump's displacement byte (boot.rst: "the
        # end of the setup header can be calculated as 0x0202 + the byte value at offset 0x0201").
        self.end = OFF_HEADER + image[OFF_JUMP + 1]

    @property
    def setup_size(self) -> int:
        """Bytes of real-mode setup code before the protected-mode kernel in the file."""
        return (self.setup_sects + 1) * SECTOR

    def version_text(self) -> str:
        return f"{self.version >> 8}.{self.version & 0xFF:02d}"


def zero_page(image: bytes, header: SetupHeader, cmdline_addr: int, initrd, e820, rsdp_addr: int) -> bytes:
    """struct boot_params for a 64-bit entry: the image's setup header copied in (boot.rst,
    "64-bit Boot Protocol": "the setup header ... should be loaded into struct boot_params"),
    then the loader's fields: type_of_loader, the command line, the initrd (address, size),
    the E820 map and the RSDP's address."""
    page = bytearray(ZERO_PAGE_SIZE)
    page[SETUP_HEADER_OFFSET:header.end] = image[SETUP_HEADER_OFFSET:header.end]
    page[OFF_TYPE_OF_LOADER] = TYPE_OF_LOADER_UNDEFINED
    page[OFF_LOADFLAGS] = header.loadflags & ~CAN_USE_HEAP    # no real-mode heap: we skip the setup code
    struct.pack_into("<I", page, OFF_CMD_LINE_PTR, cmdline_addr & 0xFFFF_FFFF)
    struct.pack_into("<I", page, OFF_EXT_CMD_LINE_PTR, cmdline_addr >> 32)
    initrd_addr, initrd_size = initrd
    struct.pack_into("<II", page, OFF_RAMDISK_IMAGE, initrd_addr & 0xFFFF_FFFF, initrd_size & 0xFFFF_FFFF)
    struct.pack_into("<II", page, OFF_EXT_RAMDISK_IMAGE, initrd_addr >> 32, initrd_size >> 32)
    struct.pack_into("<Q", page, OFF_ACPI_RSDP_ADDR, rsdp_addr)
    if len(e820) > E820_MAX_ENTRIES:
        raise ValueError(f"{len(e820)} E820 entries do not fit the zero page's {E820_MAX_ENTRIES}")
    page[OFF_E820_ENTRIES] = len(e820)
    for i, (addr, size, kind) in enumerate(e820):
        E820_ENTRY.pack_into(page, OFF_E820_TABLE + i * E820_ENTRY.size, addr, size, kind)
    return bytes(page)


def entry_state_64(entry: int, zero_page_addr: int, pml4: int) -> CpuState:
    """The 64-bit entry (boot.rst): long mode with paging on and the identity map in CR3,
    CS = __BOOT_CS, data segments = __BOOT_DS, interrupts off, RSI = &boot_params."""
    code = Segment.from_descriptor(BOOT_CS, BOOT_GDT[2])
    data = Segment.from_descriptor(BOOT_DS, BOOT_GDT[3])
    tss = Segment.from_descriptor(BOOT_TR, BOOT_GDT[4])
    tss.type = TYPE_TSS_BUSY
    state = CpuState(
        rip=entry, rflags=RFLAGS_RESERVED_1,
        cs=code, ds=data, es=data, fs=data, gs=data, ss=data, tr=tss,
        gdt_base=layout.BOOT_GDT_ADDR, gdt_limit=len(BOOT_GDT) * 8 - 1,
        idt_base=0, idt_limit=0,
        cr0=CR0_PE | CR0_ET | CR0_PG, cr3=pml4, cr4=CR4_PAE, efer=EFER_LME | EFER_LMA,
    )
    state.regs["rsi"] = zero_page_addr
    return state
