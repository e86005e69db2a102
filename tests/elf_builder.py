"""Builds small synthetic ELF images for loader tests (good ones, then broken on purpose)."""
import struct

PT_LOAD, PT_NOTE = 1, 4


def pvh_note(entry: int) -> bytes:
    name = b"Xen\0"
    return struct.pack("<III", len(name), 4, 18) + name + struct.pack("<I", entry)


def elf64(segments, notes=b"", machine=62, entry=0x100000, elf_class=2):
    """segments: [(paddr, data, memsz)]; returns the image bytes."""
    ehsize, phentsize = 64, 56
    phdrs = [(PT_LOAD, paddr, data, memsz) for paddr, data, memsz in segments]
    if notes:
        phdrs.append((PT_NOTE, 0, notes, len(notes)))
    offset = ehsize + phentsize * len(phdrs)
    body, table = b"", b""
    for kind, paddr, data, memsz in phdrs:
        table += struct.pack("<IIQQQQQQ", kind, 7, offset + len(body), paddr, paddr, len(data), memsz, 8)
        body += data
    header = (b"\x7fELF" + bytes([elf_class, 1, 1]) + bytes(9)
              + struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, entry, ehsize, 0, 0, ehsize, phentsize,
                            len(phdrs), 64, 0, 0))
    return header + table + body


def elf32(segments, notes=b"", machine=3, entry=0x100000):
    ehsize, phentsize = 52, 32
    phdrs = [(PT_LOAD, paddr, data, memsz) for paddr, data, memsz in segments]
    if notes:
        phdrs.append((PT_NOTE, 0, notes, len(notes)))
    offset = ehsize + phentsize * len(phdrs)
    body, table = b"", b""
    for kind, paddr, data, memsz in phdrs:
        table += struct.pack("<IIIIIIII", kind, offset + len(body), paddr, paddr, len(data), memsz, 7, 4)
        body += data
    header = (b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)
              + struct.pack("<HHIIIIIHHHHHH", 2, machine, 1, entry, ehsize, 0, 0, ehsize, phentsize,
                            len(phdrs), 40, 0, 0))
    return header + table + body
