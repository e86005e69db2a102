/* blk-ro: a read-only /dev/vda (--disk PATH,ro) that the harness filled
 * with disk_pattern(offset, 1).  Opening it for writing works (as on Linux
 * with a device that turned read-only), but a write fails with EIO: the
 * kernel still sends it, and the device refuses it.  Reads work, and the
 * pytest checks that the host file did not change.  Exits 0 if all went well. */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "guestdev.h"

#define SEED 1
#define SIZE (64 * 1024)

static uint8_t buf[SIZE];
static int failures;

static void report(int ok, const char *what)
{
    printf("blk-ro: %s%s\n", ok ? "" : "FAIL ", what);
    failures += !ok;
}

int main(void)
{
    require_tiny_kernel("blk-ro");
    int fd = openat(AT_FDCWD, "/dev/vda", O_RDWR, 0);
    if (fd < 0) {
        printf("blk-ro: open /dev/vda: %s\n", err_name(fd));
        return 1;
    }
    int ro = -1;
    long r = ioctl(fd, BLKROGET, &ro);
    report(r == 0 && ro == 1, "BLKROGET says read-only");

    fill_pattern(buf, 512, 0, SEED + 1);
    r = pwrite64(fd, buf, 512, 0);
    printf("write: %s\n", err_name(r));
    r = write(fd, buf, 512);
    printf("write at the position: %s\n", err_name(r));
    report(lseek(fd, 0, SEEK_CUR) == 0, "the position did not move");

    memset(buf, 0, SIZE);
    r = pread64(fd, buf, SIZE, 0);
    report(r == SIZE && check_pattern(buf, SIZE, 0, SEED) < 0, "read 64 KiB: the pattern is intact");
    r = fsync(fd);
    report(r == 0, "fsync");
    close(fd);
    printf("blk-ro: %s\n", failures ? "FAILED" : "all ok");
    return failures ? 1 : 0;
}
