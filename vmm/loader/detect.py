"""Which boot protocol a kernel file speaks, from its contents (as QEMU's -kernel decides):
a Linux bzImage ("HdrS" setup header), an ELF with a PVH entry note, or a Multiboot 1 kernel
(its header in the first 8 KiB). An ELF without a PVH note that is not Multiboot either is
refused with the PVH loader's own message."""
from ..errors import ImageError
from ..loader.elf import ELF_MAGIC, ElfImage
from .bzimage import is_bzimage
from .multiboot import find_header
from .pvh import pvh_entry

BZIMAGE, PVH, MULTIBOOT = "bzimage", "pvh", "multiboot"


def kernel_format(data: bytes, what: str = "kernel") -> str:
    if is_bzimage(data):
        return BZIMAGE
    if data[:4] == ELF_MAGIC:
        elf = ElfImage(data, what)
        try:
            pvh_entry(elf)
            return PVH
        except ImageError:
            if find_header(data) is not None:
                return MULTIBOOT
            raise
    if find_header(data) is not None:
        return MULTIBOOT
    raise ImageError(f"{what} is not a Linux bzImage, an ELF with a PVH entry note, or a Multiboot kernel")
