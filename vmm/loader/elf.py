"""A strict ELF reader for kernel images (ELF64 or ELF32, x86), as QEMU accepts both.

It reads the program headers only: PT_LOAD segments to copy into guest RAM and PT_NOTE
segments to find the PVH entry point. Every malformed input raises ImageError with one
line saying what is wrong. Source: the System V ABI, "ELF header" and "Program header".
"""
import struct
from ..records import record

from ..errors import ImageError

ELF_MAGIC = b"\x7fELF"
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB = 1
EM_386, EM_X86_64 = 3, 62
ET_EXEC, ET_DYN = 2, 3
PT_LOAD, PT_INTERP, PT_NOTE = 1, 3, 4

# e_ident is 16 bytes; then the class-specific rest of the header.
EHDR = {ELFCLASS32: struct.Struct("<HHIIIIIHHHHHH"), ELFCLASS64: struct.Struct("<HHIQQQIHHHHHH")}
# (p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags) in each class's own order.
PHDR32 = struct.Struct("<IIIIIIII")       # type offset vaddr paddr filesz memsz flags align
PHDR64 = struct.Struct("<IIQQQQQQ")       # type flags offset vaddr paddr filesz memsz align
NOTE_HEADER = struct.Struct("<III")       # namesz descsz type


@record
class LoadSegment:
    """A PT_LOAD program header: `filesz` bytes of the file at `offset` go to memory at
    `paddr` (physical) / `vaddr` (virtual), zero-filled up to `memsz`."""
    paddr: int
    vaddr: int
    offset: int
    filesz: int
    memsz: int


@record
class Note:
    name: bytes
    type: int
    desc: bytes


class ElfImage:
    def __init__(self, data: bytes, what: str = "kernel"):
        self.data = data
        self.what = what
        if len(data) < 16 or data[:4] != ELF_MAGIC:
            self._fail("is not an ELF file (no \\x7fELF magic)")
        self.elf_class = data[4]
        if self.elf_class not in EHDR:
            self._fail(f"has an unknown ELF class {self.elf_class}")
        if data[5] != ELFDATA2LSB:
            self._fail("is not little-endian")
        header = EHDR[self.elf_class]
        if len(data) < 16 + header.size:
            self._fail("is truncated inside its ELF header")
        (self.elf_type, machine, _, self.entry, phoff, _, _, _, phentsize, phnum, _, _, _) = header.unpack_from(data, 16)
        expected_machine = EM_X86_64 if self.elf_class == ELFCLASS64 else EM_386
        if machine != expected_machine:
            self._fail(f"is for machine {machine}, not {'x86-64' if self.elf_class == ELFCLASS64 else 'i386'}")
        phdr = PHDR64 if self.elf_class == ELFCLASS64 else PHDR32
        if phnum == 0:
            self._fail("has no program headers")
        if phentsize < phdr.size or phoff + phnum * phentsize > len(data):
            self._fail("is truncated inside its program headers")
        self.segments = []
        self.notes = []
        self.interpreter = None             # PT_INTERP: the dynamic linker a program asks for
        for i in range(phnum):
            kind, offset, vaddr, paddr, filesz, memsz = self._phdr(phdr, phoff + i * phentsize)
            if kind not in (PT_LOAD, PT_NOTE, PT_INTERP):
                continue
            if offset + filesz > len(data):
                self._fail(f"is truncated: program header {i} points past the end of the file")
            if kind == PT_INTERP:
                self.interpreter = data[offset:offset + filesz].rstrip(b"\0").decode(errors="replace")
            elif kind == PT_LOAD:
                if memsz < filesz:
                    self._fail("has a segment whose memory size is smaller than its file size")
                if memsz:
                    self.segments.append(LoadSegment(paddr, vaddr, offset, filesz, memsz))
            else:
                self.notes.extend(self._parse_notes(data[offset:offset + filesz]))
        if not self.segments:
            self._fail("has no loadable segments")
        self._check_overlaps()

    def _phdr(self, phdr, at):
        """(type, offset, vaddr, paddr, filesz, memsz) of the program header at `at`."""
        if phdr is PHDR64:
            kind, _, offset, vaddr, paddr, filesz, memsz, _ = phdr.unpack_from(self.data, at)
        else:
            kind, offset, vaddr, paddr, filesz, memsz, _, _ = phdr.unpack_from(self.data, at)
        return kind, offset, vaddr, paddr, filesz, memsz

    def _fail(self, message: str):
        raise ImageError(f"{self.what} {message}")

    def _check_overlaps(self):
        ordered = sorted(self.segments, key=lambda s: s.paddr)
        for a, b in zip(ordered, ordered[1:]):
            if a.paddr + a.memsz > b.paddr:
                self._fail(f"has overlapping segments at {a.paddr:#x} and {b.paddr:#x}")

    def _parse_notes(self, blob: bytes):
        """ELF notes: 4-byte aligned name and descriptor (both classes use 4-byte alignment
        for the notes that matter here; Xen's and Linux's are)."""
        notes, at = [], 0
        while at + NOTE_HEADER.size <= len(blob):
            namesz, descsz, kind = NOTE_HEADER.unpack_from(blob, at)
            name_at = at + NOTE_HEADER.size
            desc_at = name_at + (namesz + 3 & ~3)
            end = desc_at + (descsz + 3 & ~3)
            if desc_at + descsz > len(blob):
                self._fail("has a truncated ELF note")
            notes.append(Note(blob[name_at:name_at + namesz].rstrip(b"\0"), kind, blob[desc_at:desc_at + descsz]))
            at = end
        return notes

    def note(self, name: bytes, kind: int):
        for note in self.notes:
            if note.name == name and note.type == kind:
                return note
        return None

    def extent(self):
        """(lowest paddr, highest paddr + memsz) of the loadable segments."""
        return (min(s.paddr for s in self.segments), max(s.paddr + s.memsz for s in self.segments))


SHDR64 = struct.Struct("<IIQQQQIIQQ")     # name type flags addr offset size link info addralign entsize
SYM64 = struct.Struct("<IBBHQQ")          # name info other shndx value size
SHT_SYMTAB = 2


def symbol_address(data: bytes, name: str) -> int | None:
    """The value of symbol `name` in an ELF64's .symtab (for tests that name an address by
    its label, such as fault.expect's faulting RIP), or None if there is no such symbol."""
    if data[:4] != ELF_MAGIC or len(data) < 64 or data[4] != ELFCLASS64:
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    if shentsize < SHDR64.size or shoff + shnum * shentsize > len(data):
        return None
    sections = [SHDR64.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
    wanted = name.encode()
    for _, kind, _, _, offset, size, link, _, _, _ in sections:
        if kind != SHT_SYMTAB or link >= shnum:
            continue
        strings_at, strings_size = sections[link][4], sections[link][5]
        for at in range(offset, min(offset + size, len(data)) - SYM64.size + 1, SYM64.size):
            name_at, _, _, _, value, _ = SYM64.unpack_from(data, at)
            start = strings_at + name_at
            end = data.find(b"\0", start, strings_at + strings_size)
            if end >= 0 and data[start:end] == wanted:
                return value
    return None
