/* Shared by the programs that use the guest kernel's virtio devices (blk,
 * blk-ro, console, virtio-evil, blkbench).
 *
 * They write to /dev/vda.  Run as plain Linux processes (the test suite does
 * that with every program), /dev/vda could be the host's own disk, so they
 * first make sure they run on the tiny guest kernel and otherwise exit 0
 * having touched nothing (their .expect files say `linux: skip`). */
#ifndef GUESTDEV_H
#define GUESTDEV_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

/* The tiny kernel says "Linux" (glibc would refuse to start otherwise) and
 * a release ending in "-tinykernel". */
static inline void require_tiny_kernel(const char *program)
{
    struct utsname u;
    static const char mark[] = "-tinykernel";
    size_t n = uname(&u) == 0 ? strlen(u.release) : 0;
    if (n < sizeof mark - 1 || strcmp(u.release + n - (sizeof mark - 1), mark) != 0) {
        printf("%s: not on the tiny guest kernel: nothing done\n", program);
        exit(0);
    }
}

/* "EIO" for -5; the number for anything unnamed; the value itself if >= 0. */
static inline const char *err_name(long r)
{
    static char buf[24];
    const char *name = r < 0 ? strerrorname_np((int)-r) : NULL;
    if (name)
        return name;
    snprintf(buf, sizeof buf, "%ld", r);
    return buf;
}

/* The byte at disk offset `offset` in the test patterns.  vmm/guest_tests.py
 * disk_pattern() computes the same: seed 1 fills the read-only disks the
 * harness makes; blk writes seed 0x5a. */
static inline uint8_t disk_pattern(uint64_t offset, uint8_t seed)
{
    return (uint8_t)(offset * 31 + (offset >> 9) * 7 + seed);
}

static inline void fill_pattern(uint8_t *buf, uint64_t len, uint64_t offset, uint8_t seed)
{
    for (uint64_t i = 0; i < len; i++)
        buf[i] = disk_pattern(offset + i, seed);
}

/* Index of the first byte that differs from the pattern, or -1. */
static inline long check_pattern(const uint8_t *buf, uint64_t len, uint64_t offset, uint8_t seed)
{
    for (uint64_t i = 0; i < len; i++)
        if (buf[i] != disk_pattern(offset + i, seed))
            return (long)i;
    return -1;
}

#endif
