"""x86 disassembly with capstone 5, for crash reports, traces and the gdb stub.

capstone is imported on first use (it costs start-up time a normal run need not pay); one
decoder per code size is built once and cached. Without capstone, instructions are shown
as bytes only.
"""
MAX_INSN = 15           # the longest x86 instruction, in bytes
BYTES_COLUMN = 10       # instruction bytes shown per line before "..."
BAD_BYTES = 4           # bytes shown where decoding failed (the length is unknown)

_decoders = {}
_missing = None         # why capstone is unavailable, once we know


def decoder(bits: int):
    """A capstone Cs for 16-, 32- or 64-bit code, or None without capstone."""
    global _missing
    cs = _decoders.get(bits)
    if cs is None and _missing is None:
        try:
            import capstone
        except ImportError as error:
            _missing = f"capstone not installed ({error})"
            return None
        mode = {16: capstone.CS_MODE_16, 32: capstone.CS_MODE_32, 64: capstone.CS_MODE_64}[bits]
        cs = _decoders[bits] = capstone.Cs(capstone.CS_ARCH_X86, mode)
    return cs


def decode(code: bytes, address: int, bits: int, count: int = 0):
    """[(address, size, text)] for the instructions at the start of `code`, stopping at the
    first byte sequence capstone cannot decode. Without capstone: []."""
    cs = decoder(bits)
    if cs is None:
        return []
    return [(a, size, f"{mnemonic} {ops}".rstrip())
            for a, size, mnemonic, ops in cs.disasm_lite(bytes(code), address, count)]


def decode_one(code: bytes, address: int, bits: int):
    """(size, text) of the instruction at the start of `code`, or (0, reason) when it does
    not decode (or capstone is missing)."""
    found = decode(code[:MAX_INSN], address, bits, 1)
    if found:
        return found[0][1], found[0][2]
    return 0, _missing or "(bad)"


def format_line(address: int, code: bytes, text: str, marker: str = "   ") -> str:
    """`=> 0x0000000000100041: 48 89 e5                        mov rbp, rsp`"""
    shown = code[:BYTES_COLUMN].hex(" ") + (" ..." if len(code) > BYTES_COLUMN else "")
    return f"{marker}{address:#018x}: {shown:<{3 * BYTES_COLUMN + 4}} {text}"


def around(read, rip: int, bits: int, before: int = 4, after: int = 8, back: int = 32) -> list:
    """Lines of disassembly around `rip`, the current one marked `=>`.

    `read(address, length) -> (bytes, error)` reads guest memory (partial bytes plus a
    reason on failure). Decoding backwards is ambiguous on x86, so the instructions before
    RIP come from decoding forward from each start point 1..`back` bytes earlier; the runs
    that land exactly on RIP vote (see _resync; x86 streams resynchronise within a few
    instructions, so most start points agree).
    """
    lines = []
    code, error = read(rip, MAX_INSN * after)
    prefix = _bytes_before(read, rip, back)
    for address, size, text in _resync(prefix, rip, bits, before) if prefix and before > 0 else []:
        offset = len(prefix) - (rip - address)
        lines.append(format_line(address, prefix[offset:offset + size], text))
    if not code:
        lines.append(f"=> {rip:#018x}: <{error}>")
        return lines
    decoded = decode(code, rip, bits, after)
    for i, (address, size, text) in enumerate(decoded):
        chunk = code[address - rip:address - rip + size]
        lines.append(format_line(address, chunk, text, "=> " if i == 0 else "   "))
    end = rip + sum(size for _, size, _ in decoded)
    if not decoded:
        reason = _missing or "(bad)"
        lines.append(format_line(rip, code[:BAD_BYTES], reason, "=> "))
    elif len(decoded) < after and end - rip < len(code):
        lines.append(format_line(end, code[end - rip:end - rip + BAD_BYTES], "(bad)"))
    elif len(decoded) < after and error:
        lines.append(f"   {end:#018x}: <{error}>")
    return lines


def _bytes_before(read, rip: int, back: int) -> bytes:
    """Up to `back` readable bytes that end at rip (only RIP's own page if the one before
    is not readable)."""
    for length in (back, min(back, rip & 0xFFF)):
        if length <= 0 or rip - length < 0:
            continue
        data, error = read(rip - length, length)
        if not error:
            return data
    return b""


def _resync(prefix: bytes, rip: int, bits: int, count: int) -> list:
    """The last `count` instructions before RIP. Every start point whose decoding lands
    exactly on RIP votes for its last `count` instructions; the most voted wins (ties: the
    longest run). Zero padding before code, for example, decodes two ways (`add [rax], al`
    pairs in step or out of step with the code); on a tie the tail starting nearest to RIP
    wins."""
    start = rip - len(prefix)
    votes = {}
    for skip in range(len(prefix)):
        address = start + skip
        run = decode(prefix[skip:], address, bits)
        if run and address + sum(size for _, size, _ in run) == rip:
            tail = tuple(run[-count:])
            votes[tail] = votes.get(tail, 0) + 1
    if not votes:
        return []
    # Most votes; on a tie, the tail that starts closest to RIP (fewer bytes it may misread).
    return list(max(votes, key=lambda tail: (votes[tail], tail[0][0])))
