/* blkbench: block-device throughput as a program sees it, on /dev/vda.
 *
 *   blkbench seqwrite MIB    MIB MiB in 1 MiB pwrite64 calls, then fsync
 *   blkbench seqread MIB     MIB MiB in 1 MiB pread64 calls
 *   blkbench randread COUNT  COUNT 4 KiB pread64 calls at random 4 KiB offsets
 *   blkbench check           a little of each, checked, for the test suite
 *
 * Sequential runs wrap around at the end of the disk.  Each measured mode
 * prints one line, read by vmm/bench/blk.py:
 *   blkbench MODE bytes=N ops=N ns=N
 * with the time from clock_gettime(CLOCK_MONOTONIC) around the calls (the
 * buffer is touched before, so no page fault is timed). */
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include "guestdev.h"

#define BLOCK (1024 * 1024)
#define SMALL 4096

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Returns the bytes moved, or -errno of the first failing call. */
static long long run(int fd, const char *mode, long n, long long size, uint8_t *buf, long long *ns)
{
    long long done = 0, t0 = now_ns(), off = 0;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int write_mode = strcmp(mode, "seqwrite") == 0, random = strcmp(mode, "randread") == 0;
    long len = random ? SMALL : BLOCK;
    for (long i = 0; i < n; i++) {
        if (random)
            off = (long long)(xorshift(&seed) % (uint64_t)(size / SMALL)) * SMALL;
        else if (off + len > size)
            off = 0;
        long r = write_mode ? pwrite64(fd, buf, len, off) : pread64(fd, buf, len, off);
        if (r != len)
            return r < 0 ? r : -EIO;
        done += len;
        off += len;
    }
    if (write_mode && fsync(fd) < 0)
        return -EIO;
    *ns = now_ns() - t0;
    return done;
}

/* Every block of the disk gets the same pattern, then reads of all kinds;
 * one last 4 KiB read from the middle of the second block is checked. */
static int check(int fd, long long size, uint8_t *buf)
{
    static const char *const modes[] = { "seqwrite", "seqread", "randread" };
    const long counts[] = { size / BLOCK, 2, 16 };
    fill_pattern(buf, BLOCK, 0, 3);
    for (int i = 0; i < 3; i++) {
        long long ns;
        long long r = run(fd, modes[i], counts[i], size, buf, &ns);
        printf("blkbench %s: %s\n", modes[i], r > 0 ? "ok" : err_name(r));
        if (r <= 0)
            return 1;
    }
    long r = pread64(fd, buf, SMALL, BLOCK + 5 * SMALL);
    int ok = r == SMALL && check_pattern(buf, SMALL, 5 * SMALL, 3) < 0;
    printf("blkbench data: %s\n", ok ? "ok" : "CORRUPT");
    return !ok;
}

int main(int argc, char **argv)
{
    require_tiny_kernel("blkbench");
    if (argc < 2 || (strcmp(argv[1], "check") != 0 && argc < 3)) {
        printf("usage: blkbench seqwrite|seqread MIB | randread COUNT | check\n");
        return 2;
    }
    int fd = openat(AT_FDCWD, "/dev/vda", O_RDWR, 0);
    long long size = fd < 0 ? fd : lseek(fd, 0, SEEK_END);
    if (size < BLOCK) {
        printf("blkbench: /dev/vda: %s\n", size < 0 ? err_name(size) : "smaller than 1 MiB");
        return 1;
    }
    size -= size % BLOCK;
    uint8_t *buf = malloc(BLOCK);
    memset(buf, 0xa5, BLOCK);
    if (strcmp(argv[1], "check") == 0)
        return check(fd, size, buf);
    long long ns;
    long long r = run(fd, argv[1], strtol(argv[2], NULL, 0), size, buf, &ns);
    if (r < 0) {
        printf("blkbench %s: %s\n", argv[1], err_name(r));
        return 1;
    }
    long ops = strcmp(argv[1], "randread") == 0 ? r / SMALL : r / BLOCK;
    printf("blkbench %s bytes=%lld ops=%ld ns=%lld\n", argv[1], r, ops, ns);
    return 0;
}
