/* compute: a CPU and memory workload with a checkable answer.
 *
 * Fills N MiB (argv[1], default 4) with xorshift64 output from a fixed seed,
 * each 64-bit value stored little-endian, then prints the SHA-256 and the
 * CRC-32 of the buffer. compute_reference.py computes the same output on
 * the host with hashlib and zlib. */
#include <crc32.h>
#include <sha256.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MIB 4
#define MAX_MIB     4096
#define SEED        88172645463325252ULL    /* Marsaglia's example seed */

static void fill(uint64_t *words, size_t count)
{
    uint64_t x = SEED;

    for (size_t i = 0; i < count; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        words[i] = x;                       /* x86 stores little-endian */
    }
}

int main(int argc, char **argv)
{
    long mib = argc > 1 ? strtol(argv[1], NULL, 10) : DEFAULT_MIB;

    if (mib < 1 || mib > MAX_MIB) {
        printf("compute: size must be 1..%d MiB\n", MAX_MIB);
        return 2;
    }
    size_t bytes = (size_t)mib << 20;
    uint64_t *buf = malloc(bytes);
    if (!buf) {
        printf("compute: cannot allocate %ld MiB\n", mib);
        return 1;
    }
    fill(buf, bytes / sizeof(uint64_t));

    struct sha256 ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, buf, bytes);
    sha256_final(&ctx, digest);

    char hex[2 * SHA256_DIGEST_SIZE + 1];
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);

    printf("compute: %ld MiB\n", mib);
    printf("sha256 %s\n", hex);
    printf("crc32 %08x\n", crc32(0, buf, bytes));
    return 0;
}
