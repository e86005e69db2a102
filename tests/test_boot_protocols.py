"""Kernel formats detected from contents, and the Linux and Multiboot boot protocols laid out
in guest memory: synthetic images broken on purpose, and Debian's own kernel."""
import struct

import pytest

from elf_builder import elf32, elf64, pvh_note
from vmm import layout, paths
from vmm.arch.x86 import boot_params as bp
from vmm.arch.x86.cpu_state import CR0_PG, EFER_LMA
from vmm.errors import ImageError, UsageError
from vmm.loader import multiboot as mb
from vmm.loader.bzimage import BzImage, load_bzimage
from vmm.loader.detect import BZIMAGE, MULTIBOOT, PVH, kernel_format
from vmm.memory import GuestMemory

LINUX_KERNEL = paths.GUEST_BUILD / "linux" / "vmlinuz"
MiB = 1 << 20


def bzimage(version=0x20F, xloadflags=bp.XLF_KERNEL_64, payload=b"\x90" * 4096, loadflags=bp.LOADED_HIGH,
            init_size=2 * MiB, truncate=0):
    """A minimal bzImage: one setup sector after the boot sector, then the payload."""
    setup = bytearray(1024)
    setup[bp.OFF_SETUP_SECTS] = 1
    struct.pack_into("<I", setup, 0x1F4, len(payload) // 16)          # syssize
    setup[bp.OFF_BOOT_FLAG:bp.OFF_BOOT_FLAG + 2] = b"\x55\xaa"
    setup[bp.OFF_JUMP:bp.OFF_JUMP + 2] = bytes([0xEB, 0x66])          # header ends at 0x268
    setup[bp.OFF_HEADER:bp.OFF_HEADER + 4] = b"HdrS"
    struct.pack_into("<H", setup, bp.OFF_VERSION, version)
    setup[bp.OFF_LOADFLAGS] = loadflags
    struct.pack_into("<I", setup, bp.OFF_INITRD_ADDR_MAX, 0x7FFF_FFFF)
    struct.pack_into("<I", setup, bp.OFF_KERNEL_ALIGNMENT, 0x20_0000)
    struct.pack_into("<H", setup, bp.OFF_XLOADFLAGS, xloadflags)
    struct.pack_into("<I", setup, bp.OFF_CMDLINE_SIZE, 255)
    struct.pack_into("<I", setup, bp.OFF_INIT_SIZE, init_size)
    image = bytes(setup) + payload
    return image[:len(image) - truncate]


def multiboot_aout(entry=0x100020, flags=mb.FLAG_ADDRESSES | mb.FLAG_MEMORY_INFO, bss=0x2000):
    """An a.out-kludge Multiboot kernel: the header first, loaded at 1 MiB."""
    header = struct.pack("<III", mb.HEADER_MAGIC, flags, -(mb.HEADER_MAGIC + flags) & 0xFFFF_FFFF)
    header += struct.pack("<IIIII", 0x100000, 0x100000, 0, 0x100000 + bss, entry)
    return header + b"\xf4" * 64


@pytest.fixture(scope="module")
def debian_kernel():
    if not LINUX_KERNEL.exists():
        pytest.fail(f"Debian's kernel is not unpacked ({LINUX_KERNEL}): run `make test`, which fetches it")
    return LINUX_KERNEL.read_bytes()


def test_formats_are_detected_from_contents(debian_kernel):
    assert kernel_format(debian_kernel) == BZIMAGE
    assert kernel_format(elf64([(0x100000, b"\xf4", 1)], notes=pvh_note(0x100000))) == PVH
    assert kernel_format(multiboot_aout()) == MULTIBOOT
    plain_elf = elf32([(0x100000, multiboot_aout(flags=0), 0x1000)])
    assert kernel_format(plain_elf) == MULTIBOOT               # ELF32 without a PVH note, with the header
    with pytest.raises(ImageError, match="PVH entry note"):
        kernel_format(elf64([(0x100000, b"\xf4", 1)]))
    with pytest.raises(ImageError, match="not a Linux bzImage, an ELF with a PVH entry note, or a Multiboot"):
        kernel_format(b"MZ" + bytes(9000))


def test_debian_kernel_is_laid_out_for_the_64_bit_entry(debian_kernel):
    image = BzImage(debian_kernel)
    assert image.header.version >= 0x20F and image.header.xloadflags & bp.XLF_KERNEL_64
    initrd = b"07070100" * 1000
    with GuestMemory(256 * MiB) as mem:
        state = load_bzimage(mem, image, initrd, "console=ttyS0 quiet", 0xE0000)
        assert state.rip == layout.BZIMAGE_LOAD_ADDR + 0x200 and state.regs["rsi"] == layout.ZERO_PAGE_START
        assert state.cs.selector == 0x10 and state.cs.l == 1 and state.ds.selector == 0x18
        assert state.cr0 & CR0_PG and state.efer & EFER_LMA and state.cr3 == layout.PML4_START
        zero = mem.read(layout.ZERO_PAGE_START, 4096)
        assert zero[0x202:0x206] == b"HdrS" and zero[bp.OFF_TYPE_OF_LOADER] == 0xFF
        cmdline = struct.unpack_from("<I", zero, bp.OFF_CMD_LINE_PTR)[0]
        assert mem.read(cmdline, 20) == b"console=ttyS0 quiet\0"
        ramdisk, size = struct.unpack_from("<II", zero, bp.OFF_RAMDISK_IMAGE)
        assert size == len(initrd) and ramdisk % 4096 == 0 and ramdisk + size <= 256 * MiB
        assert ramdisk >= image.memory_needed and mem.read(ramdisk, 16) == initrd[:16]
        assert struct.unpack_from("<Q", zero, bp.OFF_ACPI_RSDP_ADDR)[0] == 0xE0000
        entries = [bp.E820_ENTRY.unpack_from(zero, bp.OFF_E820_TABLE + 20 * i) for i in range(zero[bp.OFF_E820_ENTRIES])]
        assert entries[-1] == (MiB, 255 * MiB, 1)
        assert mem.read(layout.BZIMAGE_LOAD_ADDR, 64) == bytes(image.payload[:64])
        assert mem.read(0xFFFF0, 4) == b"\xb0\xfe\xe6\x64"     # a restart through the reset vector resets
        # the identity map: PML4[0] -> PDPT, PDPT[3] -> the fourth PD, whose last entry maps 4 GiB - 2 MiB
        assert mem.read_u64(layout.PML4_START) & ~0xFFF == layout.PDPT_START
        pd3 = mem.read_u64(layout.PDPT_START + 24) & ~0xFFF
        assert mem.read_u64(pd3 + 511 * 8) == (4 << 30) - 2 * MiB | 0x83


def test_debian_kernel_needs_more_memory_than_a_small_mem(debian_kernel):
    with GuestMemory(64 * MiB) as mem, pytest.raises(ImageError, match="MiB of RAM to decompress"):
        load_bzimage(mem, BzImage(debian_kernel), None, "", 0)


def test_initrd_larger_than_ram_allows(debian_kernel):
    with GuestMemory(96 * MiB) as mem, pytest.raises(ImageError, match="initrd of .* does not fit"):
        load_bzimage(mem, BzImage(debian_kernel), bytes(40 * MiB), "", 0)


@pytest.mark.parametrize("image,message", [
    (bzimage(version=0x205), "boot protocol 2.05; pyvmm needs 2.06"),
    (bzimage(xloadflags=0), "no 64-bit entry point"),
    (bzimage(loadflags=0), "zImage"),
    (bzimage(truncate=100), "truncated"),
    (bzimage()[:0x230], "truncated inside its bzImage setup header"),
])
def test_bad_bzimages_are_refused_in_one_line(image, message):
    with pytest.raises(ImageError, match=message) as info:
        BzImage(image)
    assert "\n" not in str(info.value)


def test_command_line_longer_than_the_kernel_takes():
    with GuestMemory(64 * MiB) as mem, pytest.raises(UsageError, match="at most 255"):
        load_bzimage(mem, BzImage(bzimage()), None, "x" * 300, 0)


def test_multiboot_aout_kludge_and_boot_information():
    image = mb.MultibootImage(multiboot_aout())
    module = b"module!" * 100
    with GuestMemory(32 * MiB) as mem:
        state = mb.load_multiboot(mem, image, module, "mbkernel arg")
        assert state.rip == 0x100020 and state.regs["rax"] == mb.BOOTLOADER_MAGIC
        assert state.regs["rbx"] == layout.MULTIBOOT_INFO_START and state.cs.db == 1
        info = mb.INFO.unpack(mem.read(layout.MULTIBOOT_INFO_START, mb.INFO.size))
        flags, lower, upper, _, cmdline, mods_count, mods_addr = info[:7]
        mmap_length, mmap_addr, loader_name = info[11], info[12], info[16]
        assert flags & (mb.INFO_MEMORY | mb.INFO_CMDLINE | mb.INFO_MODS | mb.INFO_MMAP)
        assert (lower, upper) == (639, 31 * 1024)
        assert mem.read(cmdline, 13) == b"mbkernel arg\0" and mem.read(loader_name, 6) == b"pyvmm\0"
        start, end, _, _ = mb.MODULE.unpack(mem.read(mods_addr, 16))
        assert mods_count == 1 and start % 4096 == 0 and mem.read(start, end - start) == module
        entries = [mb.MMAP_ENTRY.unpack(mem.read(mmap_addr + 24 * i, 24)) for i in range(mmap_length // 24)]
        assert entries[0] == (20, 0, layout.EBDA_START, 1) and entries[-1][1:] == (MiB, 31 * MiB, 1)
        assert mem.read(0x100000, 4) == struct.pack("<I", mb.HEADER_MAGIC)
        assert mem.read(0x100000 + 32 + 64, 16) == bytes(16)         # BSS zeroed


@pytest.mark.parametrize("data,message", [
    (b"\x90" * 9000, "no Multiboot header"),
    (multiboot_aout(flags=mb.FLAG_ADDRESSES | mb.FLAG_VIDEO_MODE), "video mode"),
    (multiboot_aout(flags=mb.FLAG_ADDRESSES | 1 << 5), "features pyvmm does not know"),
    (elf64([(0x100000, multiboot_aout(flags=0), 0x100)]), "ELF64"),
])
def test_bad_multiboot_kernels(data, message):
    with pytest.raises(ImageError, match=message):
        mb.MultibootImage(data)


def test_multiboot_segment_over_the_info_block_is_named():
    image = mb.MultibootImage(elf32([(0x6000, multiboot_aout(flags=0), 0x100)]))
    with GuestMemory(8 * MiB) as mem, pytest.raises(ImageError, match="overlaps the multiboot_info"):
        mb.load_multiboot(mem, image, None, "")
