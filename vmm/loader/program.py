"""What the tiny kernel can run as its program (module 0), checked by the VMM before boot so
that a wrong file gets one sentence here instead of a panic in the guest.

The kernel's ELF loader (guest/kernel/elf.c) takes a static x86-64 executable: ELF64,
little-endian, EM_X86_64, ET_EXEC, no program interpreter. Change both together.
"""
from ..errors import ImageError
from .elf import ELF_MAGIC, ELFCLASS64, ET_DYN, ET_EXEC, ElfImage

EXPECTED = "the tiny kernel runs static x86-64 programs (ELF64, ET_EXEC: link with -static -no-pie)"


def check_program(data: bytes) -> ElfImage:
    """The program parsed, or ImageError saying what it is and what is expected."""
    if data[:4] != ELF_MAGIC:
        raise ImageError(f"program is not an ELF file (no \\x7fELF magic): {EXPECTED}")
    if len(data) > 4 and data[4] != ELFCLASS64:
        raise ImageError(f"program is a 32-bit ELF: {EXPECTED}")
    elf = ElfImage(data, "program")
    if elf.interpreter:
        raise ImageError(f"program is dynamically linked (it asks for {elf.interpreter}): {EXPECTED}")
    if elf.elf_type == ET_DYN:
        raise ImageError(f"program is position-independent (ET_DYN, a static-pie or a shared object): {EXPECTED}")
    if elf.elf_type != ET_EXEC:
        raise ImageError(f"program is not an executable (ELF type {elf.elf_type}): {EXPECTED}")
    return elf
