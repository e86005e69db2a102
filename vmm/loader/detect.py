"""Which boot protocol a kernel file speaks, from its contents (as QEMU's -kernel decides):
a Linux bzImage ("HdrS" setup header), an ELF with a PVH entry note, or a Multiboot 1 kernel
(its header in the first 8 KiB). An ELF without a PVH note that is not Multiboot either is
refused with the PVH loader's own message.

The loaders themselves are imported by whoever loads that format: a run of a PVH kernel does
not load the Linux and Multiboot ones (start-up is benchmarked)."""
from ..arch.x86 import boot_params as bp
from ..errors import ImageError
from ..loader.elf import ELF_MAGIC, ElfImage
from .pvh import pvh_entry

BZIMAGE, PVH, MULTIBOOT = "bzimage", "pvh", "multiboot"


def is_bzimage(data: bytes) -> bool:
    """The boot sector signature and the "HdrS" magic (QEMU's -kernel tests the same)."""
    return (len(data) >= bp.OFF_HEADER + 4 and data[bp.OFF_BOOT_FLAG:bp.OFF_BOOT_FLAG + 2] == b"\x55\xaa"
            and data[bp.OFF_HEADER:bp.OFF_HEADER + 4] == bp.HDRS_MAGIC)


def is_multiboot(data: bytes) -> bool:
    from .multiboot import find_header
    return find_header(data) is not None


def kernel_format(data: bytes, what: str = "kernel") -> str:
    if is_bzimage(data):
        return BZIMAGE
    if data[:4] == ELF_MAGIC:
        elf = ElfImage(data, what)
        try:
            pvh_entry(elf)
            return PVH
        except ImageError:
            if is_multiboot(data):
                return MULTIBOOT
            raise
    if is_multiboot(data):
        return MULTIBOOT
    raise ImageError(f"{what} is not a Linux bzImage, an ELF with a PVH entry note, or a Multiboot kernel")
