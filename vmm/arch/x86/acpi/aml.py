"""A small AML encoder: the few terms a DSDT describing fixed devices needs (ACPI 6.5,
chapter 20 "ACPI Machine Language Specification", and 6.4 "Resource Data Types").

Each function returns the encoded bytes, so a definition block reads like its ASL:

    scope("\\_SB_", device("COM1", name("_HID", eisa_id("PNP0501")), ...))

cloud-hypervisor's acpi_tables/src/aml.rs and Firecracker's acpi-tables crate encode the same
terms; tests/test_acpi.py checks our output by disassembling it with iasl.
"""
import struct

ZERO_OP, ONE_OP, ONES_OP = 0x00, 0x01, 0xFF
BYTE_PREFIX, WORD_PREFIX, DWORD_PREFIX, STRING_PREFIX, QWORD_PREFIX = 0x0A, 0x0B, 0x0C, 0x0D, 0x0E
NAME_OP, SCOPE_OP, BUFFER_OP, PACKAGE_OP, METHOD_OP, RETURN_OP = 0x08, 0x10, 0x11, 0x12, 0x14, 0xA4
EXT_OP_PREFIX, DEVICE_OP = 0x5B, 0x82
ROOT_CHAR, DUAL_NAME_PREFIX, MULTI_NAME_PREFIX = 0x5C, 0x2E, 0x2F
# Resource descriptors (6.4.2 small, 6.4.3 large)
IO_PORT_DESCRIPTOR = 0x47
IRQ_NO_FLAGS_DESCRIPTOR = 0x22
END_TAG = 0x79
MEMORY32_FIXED_DESCRIPTOR = 0x86
EXTENDED_INTERRUPT_DESCRIPTOR = 0x89


def pkg_length(payload_length: int) -> bytes:
    """PkgLength (20.2.4): counts itself. One byte up to 63; else 2-4 bytes, the first holding
    the count of following bytes in bits 7:6 and the low nibble of the length."""
    for extra in range(4):
        total = payload_length + 1 + extra
        if extra == 0 and total < 0x40:
            return bytes([total])
        if extra and total < 1 << (4 + 8 * extra):
            rest = total >> 4
            return bytes([extra << 6 | total & 0xF]) + rest.to_bytes(extra, "little")
    raise ValueError(f"AML package of {payload_length} bytes is too long")


def name_seg(segment: str) -> bytes:
    """A 4-character NameSeg, padded with '_' (the ASL compiler pads the same way)."""
    if not 1 <= len(segment) <= 4 or not (segment[0].isupper() or segment[0] == "_"):
        raise ValueError(f"bad AML name segment {segment!r}")
    return segment.ljust(4, "_").encode("ascii")


def name_string(path: str) -> bytes:
    """`\\_SB_.COM1`, `_HID`, ...: a root prefix, then one, two (DualNamePrefix) or more
    (MultiNamePrefix) segments."""
    prefix = b""
    if path.startswith("\\"):
        prefix, path = bytes([ROOT_CHAR]), path[1:]
    segments = [name_seg(s) for s in path.split(".")] if path else []
    if not segments:
        return prefix + b"\0"
    if len(segments) == 1:
        return prefix + segments[0]
    if len(segments) == 2:
        return prefix + bytes([DUAL_NAME_PREFIX]) + b"".join(segments)
    return prefix + bytes([MULTI_NAME_PREFIX, len(segments)]) + b"".join(segments)


def integer(value: int) -> bytes:
    """The shortest encoding: Zero, One, Ones, or a Byte/Word/DWord/QWord constant."""
    if value == 0:
        return bytes([ZERO_OP])
    if value == 1:
        return bytes([ONE_OP])
    for prefix, size in ((BYTE_PREFIX, 1), (WORD_PREFIX, 2), (DWORD_PREFIX, 4), (QWORD_PREFIX, 8)):
        if value < 1 << (8 * size):
            return bytes([prefix]) + value.to_bytes(size, "little")
    raise ValueError(f"AML integer {value:#x} is wider than 64 bits")


def string(text: str) -> bytes:
    return bytes([STRING_PREFIX]) + text.encode("ascii") + b"\0"


def eisa_id(text: str) -> bytes:
    """EISAID("PNP0501"): three letters in 5 bits each and four hex digits, as a DWord
    in big-endian nibble order (ASL compiler rules, 19.6.35)."""
    if len(text) != 7 or not text[:3].isalpha() or not text[:3].isupper():
        raise ValueError(f"bad EISA id {text!r}")
    letters = [ord(c) - 0x40 for c in text[:3]]
    value = (letters[0] << 26 | letters[1] << 21 | letters[2] << 16 | int(text[3:], 16))
    return integer(struct.unpack("<I", struct.pack(">I", value))[0])


def name(path: str, value: bytes) -> bytes:
    return bytes([NAME_OP]) + name_string(path) + value


def scope(path: str, *terms: bytes) -> bytes:
    body = name_string(path) + b"".join(terms)
    return bytes([SCOPE_OP]) + pkg_length(len(body)) + body


def device(path: str, *terms: bytes) -> bytes:
    body = name_string(path) + b"".join(terms)
    return bytes([EXT_OP_PREFIX, DEVICE_OP]) + pkg_length(len(body)) + body


def package(*elements: bytes) -> bytes:
    body = bytes([len(elements)]) + b"".join(elements)
    return bytes([PACKAGE_OP]) + pkg_length(len(body)) + body


def buffer(data: bytes) -> bytes:
    body = integer(len(data)) + data
    return bytes([BUFFER_OP]) + pkg_length(len(body)) + body


def method(path: str, args: int, *terms: bytes) -> bytes:
    """A not-serialized method with `args` arguments (0-7)."""
    body = name_string(path) + bytes([args & 7]) + b"".join(terms)
    return bytes([METHOD_OP]) + pkg_length(len(body)) + body


def return_(value: bytes) -> bytes:
    return bytes([RETURN_OP]) + value


# --- resource templates ---------------------------------------------------------------------
def io_port(base: int, length: int) -> bytes:
    """IO(Decode16, base, base, 1, length): a fixed range of I/O ports."""
    return struct.pack("<BBHHBB", IO_PORT_DESCRIPTOR, 1, base, base, 1, length)


def irq_no_flags(irq: int) -> bytes:
    """IRQNoFlags(){irq}: an ISA IRQ, edge-triggered, active high."""
    return struct.pack("<BH", IRQ_NO_FLAGS_DESCRIPTOR, 1 << irq)


def memory32_fixed(base: int, length: int, writable: bool = True) -> bytes:
    return struct.pack("<BHBII", MEMORY32_FIXED_DESCRIPTOR, 9, int(writable), base, length)


def interrupt(gsi: int, level: bool = True, active_low: bool = False, shared: bool = False) -> bytes:
    """Interrupt(ResourceConsumer, Level|Edge, ActiveHigh|ActiveLow, Exclusive|Shared){gsi}."""
    flags = 1 | (0 if level else 1 << 1) | (1 << 2 if active_low else 0) | (1 << 3 if shared else 0)
    return struct.pack("<BHBBI", EXTENDED_INTERRUPT_DESCRIPTOR, 6, flags, 1, gsi)


def resource_template(*descriptors: bytes) -> bytes:
    """ResourceTemplate(){...}: a buffer of descriptors closed by an End Tag whose checksum
    byte is 0 ("treated as if the checksum operation yielded zero", 6.4.2.9)."""
    return buffer(b"".join(descriptors) + bytes([END_TAG, 0]))
