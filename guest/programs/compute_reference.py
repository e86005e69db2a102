"""The host's answer for the guest program `compute` (guest/programs/compute.c).

compute fills N MiB with xorshift64 output (seed 88172645463325252, shifts
13/7/17, each value stored as 8 little-endian bytes) and prints the SHA-256
and CRC-32 of that buffer. expected_output(mib) returns the same text,
computed with hashlib and zlib, so a test can check the guest against it.

Run as a script to print the output:  python3 compute_reference.py [MiB]
"""
import hashlib
import struct
import sys
import zlib

SEED = 88172645463325252
MASK = (1 << 64) - 1
WORDS_PER_CHUNK = 1 << 17          # 1 MiB of 8-byte words


def xorshift64_bytes(mib: int):
    """Yields the guest's buffer in 1 MiB chunks."""
    x = SEED
    pack = struct.Struct("<%dQ" % WORDS_PER_CHUNK).pack
    for _ in range(mib):
        words = [0] * WORDS_PER_CHUNK
        for i in range(WORDS_PER_CHUNK):
            x ^= (x << 13) & MASK
            x ^= x >> 7
            x ^= (x << 17) & MASK
            words[i] = x
        yield pack(*words)


def expected_output(mib: int) -> str:
    """The exact stdout of `compute <mib>` (about 45 ms of host time per MiB)."""
    if not 1 <= mib <= 4096:
        raise ValueError("mib must be 1..4096")
    sha = hashlib.sha256()
    crc = 0
    for chunk in xorshift64_bytes(mib):
        sha.update(chunk)
        crc = zlib.crc32(chunk, crc)
    return "compute: %d MiB\nsha256 %s\ncrc32 %08x\n" % (mib, sha.hexdigest(), crc)


if __name__ == "__main__":
    sys.stdout.write(expected_output(int(sys.argv[1]) if len(sys.argv) > 1 else 4))
