"""Load a Linux bzImage the way a 64-bit boot loader does (Documentation/arch/x86/boot.rst,
"64-bit Boot Protocol"): the protected-mode kernel at 1 MiB, the initrd as high as RAM and
the kernel's initrd_addr_max allow, the command line, the zero page with the E820 map and the
RSDP's address, a GDT with __BOOT_CS/__BOOT_DS, identity-mapped page tables, and the CPU in
long mode at the 64-bit entry point (load address + 0x200) with RSI = &boot_params.

The real-mode setup code is never run, as with Firecracker, cloud-hypervisor and kvmtool.
"""
from .. import layout
from ..arch.x86 import boot_params as bp
from ..arch.x86 import pvh
from ..arch.x86.identity_map import identity_tables
from ..errors import ImageError, UsageError
from .detect import is_bzimage

MIN_IMAGE = bp.OFF_INIT_SIZE + 4       # the header fields we read end here
# At the real-mode reset vector (layout.REAL_MODE_RESET_VECTOR), what a BIOS would do on a
# restart: reset the machine. mov al, 0xFE; out 0x64, al (the i8042's reset pulse); cli; hlt.
RESET_STUB = bytes([0xB0, 0xFE, 0xE6, 0x64, 0xFA, 0xF4])
OFF_SYSSIZE = 0x1F4                    # u32: the protected-mode code's size in 16-byte units


class BzImage:
    """A parsed bzImage; every malformed or unsupported image raises ImageError in one line."""

    def __init__(self, data: bytes):
        if len(data) < MIN_IMAGE or not is_bzimage(data):
            raise ImageError("kernel is truncated inside its bzImage setup header"
                             if is_bzimage(data) else "kernel is not a bzImage (no HdrS setup header)")
        self.data = data
        self.header = header = bp.SetupHeader(data)
        if header.version < bp.MIN_PROTOCOL:
            raise ImageError(f"kernel uses boot protocol {header.version_text()}; pyvmm needs 2.06 or newer "
                             "(Linux 2.6.22 and later)")
        if not header.xloadflags & bp.XLF_KERNEL_64:
            raise ImageError("kernel has no 64-bit entry point (XLF_KERNEL_64 is clear): "
                             "pyvmm boots only x86-64 bzImages")
        if not header.loadflags & bp.LOADED_HIGH:
            raise ImageError("kernel is a zImage (loaded below 1 MiB); pyvmm boots bzImages only")
        syssize = int.from_bytes(data[OFF_SYSSIZE:OFF_SYSSIZE + 4], "little") * 16
        end = header.setup_size + syssize
        if syssize == 0 or end > len(data):
            raise ImageError(f"kernel is truncated: the bzImage says {end} bytes, the file has {len(data)}")
        self.payload = memoryview(data)[header.setup_size:end]

    @property
    def memory_needed(self) -> int:
        """Where the kernel's footprint ends while it decompresses: init_size bytes from where
        it runs. A relocatable kernel decompresses at its load address rounded up to
        kernel_alignment, but never below pref_address (LOAD_PHYSICAL_ADDR, arch/x86/boot/
        compressed/head_64.S); a fixed one where it was loaded."""
        header, start = self.header, layout.BZIMAGE_LOAD_ADDR
        if header.relocatable:
            alignment = max(header.kernel_alignment, 1)
            start = max(-(-start // alignment) * alignment, header.pref_address)
        return max(start + header.init_size, layout.BZIMAGE_LOAD_ADDR + len(self.payload))


def initrd_address(memory_size: int, header: bp.SetupHeader, size: int, kernel_end: int) -> int:
    """As high as RAM and initrd_addr_max allow, page-aligned (QEMU hw/i386/x86.c does this),
    and above the kernel's decompression footprint."""
    top = min(memory_size, header.initrd_addr_max + 1)
    addr = (top - size) & ~(layout.PAGE_SIZE - 1)
    if size > top or addr < kernel_end:
        room = max(0, top - kernel_end)
        raise ImageError(f"initrd of {size >> 10} KiB does not fit: {room >> 10} KiB are free above the kernel "
                         f"below {top:#x} (raise --mem)")
    return addr


def load_bzimage(memory, image: BzImage, initrd: bytes | None, cmdline: str, rsdp_addr: int):
    """Write everything a 64-bit Linux entry expects into `memory`; return its CpuState."""
    header = image.header
    cmdline_bytes = cmdline.encode() + b"\0"
    if len(cmdline_bytes) - 1 > header.cmdline_size:
        raise UsageError(f"the kernel command line is {len(cmdline_bytes) - 1} bytes; this kernel takes "
                         f"at most {header.cmdline_size}")
    if len(cmdline_bytes) > layout.CMDLINE_MAX_SIZE:
        raise UsageError(f"the kernel command line is {len(cmdline_bytes)} bytes; the limit is {layout.CMDLINE_MAX_SIZE}")
    kernel_end = image.memory_needed
    if kernel_end > memory.size:
        raise ImageError(f"kernel needs at least {-(-kernel_end >> 20)} MiB of RAM to decompress itself "
                         f"(init_size {header.init_size >> 20} MiB), more than --mem {memory.size >> 20}M")
    initrd_placement = (0, 0)
    if initrd is not None:
        initrd_placement = (initrd_address(memory.size, header, len(initrd), kernel_end), len(initrd))
        memory.write(initrd_placement[0], initrd)
    memory.write(layout.BZIMAGE_LOAD_ADDR, image.payload)
    memory.write(layout.CMDLINE_START, cmdline_bytes)
    e820 = pvh.e820_map(memory.size)
    memory.write(layout.ZERO_PAGE_START, bp.zero_page(image.data, header, layout.CMDLINE_START,
                                                      initrd_placement, e820, rsdp_addr))
    memory.write(layout.BOOT_GDT_ADDR, bp.boot_gdt_bytes())
    memory.write(layout.REAL_MODE_RESET_VECTOR, RESET_STUB)
    for addr, table in identity_tables(layout.PML4_START, layout.PDPT_START, layout.PD_START, layout.PD_COUNT):
        memory.write(addr, table)
    return bp.entry_state_64(layout.BZIMAGE_LOAD_ADDR + bp.ENTRY_64_OFFSET, layout.ZERO_PAGE_START,
                             layout.PML4_START)
