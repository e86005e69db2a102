/* console: one line through /dev/hvc0 (the virtio console's port 0) and one
 * through stdout (the UART).  Our VMM sends both to the same output, in
 * order.  Exits 0 if every call returned what it should. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include "guestdev.h"

int main(void)
{
    require_tiny_kernel("console");
    static const char line[] = "hello from hvc0\n";
    int fd = openat(AT_FDCWD, "/dev/hvc0", O_WRONLY, 0);
    if (fd < 0) {
        printf("console: open /dev/hvc0: %s\n", err_name(fd));
        return 1;
    }
    long r1 = write(fd, line, sizeof line - 1);
    printf("hello from ttyS0\n");
    long r2 = write(fd, NULL, 5);
    long r3 = read(fd, (void *)line, 1);
    long r4 = pwrite64(fd, line, 1, 0);
    printf("console: write %ld, NULL %s, read %s, pwrite64 %s\n", r1, err_name(r2), err_name(r3), err_name(r4));
    close(fd);
    int ok = r1 == sizeof line - 1 && r2 == -EFAULT && r3 == -EBADF && r4 == -ESPIPE;
    printf("console %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
