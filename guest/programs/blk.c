/* blk: the first virtio disk, /dev/vda, through the Linux calls a program
 * would use: its size (lseek, BLKGETSIZE64), its serial (sysfs), pwrite64 +
 * fsync + pread64 of a pattern, write/read at the file position, a buffer
 * that is not aligned in memory, a read cut short at the end of the disk.
 *
 * It writes disk_pattern(offset, 0x5a) to three regions; the pytest
 * (tests/test_virtio_guest.py) then checks the host file:
 *   A  4096 + 8 KiB          pwrite64 from static data
 *   B  65536 + 512 KiB       lseek + write from the heap
 *   C  size - 1536 + 1536    pwrite64 from a stack buffer at an odd address
 * Needs a 1 MiB disk (.expect: disks: 1M).  Exits 0 if all went well. */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "guestdev.h"

#define SEED 0x5a
#define A_OFF 4096
#define A_LEN 8192
#define B_OFF 65536
#define B_LEN (512 * 1024)
#define C_LEN 1536

static uint8_t a_out[A_LEN], a_in[A_LEN];
static int failures;

static void report(int ok, const char *what, long r)
{
    if (ok)
        printf("blk: %s\n", what);
    else
        printf("blk: FAIL %s (%s)\n", what, err_name(r));
    failures += !ok;
}

static void region_a(int fd)
{
    fill_pattern(a_out, A_LEN, A_OFF, SEED);
    long r = pwrite64(fd, a_out, A_LEN, A_OFF);
    report(r == A_LEN, "pwrite64 16 sectors at 4096", r);
    r = fsync(fd);
    report(r == 0, "fsync", r);
    r = pread64(fd, a_in, A_LEN, A_OFF);
    report(r == A_LEN && memcmp(a_in, a_out, A_LEN) == 0, "pread64 them back: match", r);
}

static void region_b(int fd)
{
    uint8_t *buf = malloc(B_LEN);
    fill_pattern(buf, B_LEN, B_OFF, SEED);
    long r = lseek(fd, B_OFF, SEEK_SET);
    report(r == B_OFF, "lseek to 65536", r);
    r = write(fd, buf, B_LEN);
    report(r == B_LEN, "write 512 KiB from the heap", r);
    r = lseek(fd, 0, SEEK_CUR);
    report(r == B_OFF + B_LEN, "the position moved on by 512 KiB", r);
    memset(buf, 0, B_LEN);
    lseek(fd, B_OFF, SEEK_SET);
    r = read(fd, buf, B_LEN);
    report(r == B_LEN && check_pattern(buf, B_LEN, B_OFF, SEED) < 0, "read them back: match", r);
    r = fdatasync(fd);
    report(r == 0, "fdatasync", r);
}

static void region_c(int fd, long size)
{
    /* An odd address whose three sectors straddle at least one page boundary. */
    uint8_t space[4096 + C_LEN + 1];
    uint8_t *buf = space + 4096 - ((uintptr_t)space % 4096) - 512 + 1;
    if (buf < space)
        buf += 4096;
    long off = size - C_LEN;
    fill_pattern(buf, C_LEN, off, SEED);
    long r = pwrite64(fd, buf, C_LEN, off);
    report(r == C_LEN, "pwrite64 from an unaligned stack buffer", r);
    memset(buf, 0, C_LEN);
    r = pread64(fd, buf, C_LEN, off);
    report(r == C_LEN && check_pattern(buf, C_LEN, off, SEED) < 0, "pread64 into it: match", r);
    r = pread64(fd, a_in, 2048, size - 512);
    report(r == 512, "pread64 across the end: 512 bytes", r);
    r = pread64(fd, a_in, 512, size);
    report(r == 0, "pread64 at the end: 0", r);
}

int main(void)
{
    require_tiny_kernel("blk");
    int fd = openat(AT_FDCWD, "/dev/vda", O_RDWR, 0);
    if (fd < 0) {
        printf("blk: open /dev/vda: %s\n", err_name(fd));
        return 1;
    }
    long size = lseek(fd, 0, SEEK_END);
    uint64_t size64 = 0;
    long r = ioctl(fd, BLKGETSIZE64, &size64);
    printf("blk: /dev/vda is %ld bytes\n", size);
    report(r == 0 && (long)size64 == size, "BLKGETSIZE64 agrees", r);

    char serial[32] = {0};
    int sfd = openat(AT_FDCWD, "/sys/block/vda/serial", O_RDONLY, 0);
    r = sfd < 0 ? sfd : read(sfd, serial, sizeof serial - 1);
    printf("blk: serial %s", r > 0 ? serial : "?\n");
    close(sfd);

    region_a(fd);
    region_b(fd);
    region_c(fd, size);
    r = close(fd);
    report(r == 0, "close", r);
    r = close(fd);
    report(r == -EBADF, "close again: EBADF", r);
    printf("blk: %s\n", failures ? "FAILED" : "all ok");
    return failures ? 1 : 0;
}
