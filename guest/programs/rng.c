/* rng: 4 KiB from /dev/hwrng (virtio-rng in the guest), read in a loop as
 * the device may return less than asked.  Random bytes take nearly all 256
 * values and two reads differ; a constant or repeating source would not.
 * Exits 0 if so, 1 if not.  Only the environment's failures (no device, no
 * permission: open fails) also exit 0, with the reason, so that this runs
 * as a plain Linux process where /dev/hwrng may be missing. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SIZE 4096

static uint8_t buf[SIZE], again[16];

int main(void)
{
    int fd = openat(AT_FDCWD, "/dev/hwrng", O_RDONLY, 0);
    if (fd < 0) {
        printf("rng: open /dev/hwrng: %s\n", strerrorname_np(-fd));
        return 0;
    }
    long got = 0;
    while (got < SIZE) {
        long r = read(fd, buf + got, SIZE - got);
        if (r <= 0) {
            printf("rng: read: %ld\n", r);
            return 1;
        }
        got += r;
    }
    int seen[256] = {0}, distinct = 0;
    for (int i = 0; i < SIZE; i++)
        distinct += !seen[buf[i]]++;
    long r = read(fd, again, sizeof again);
    int differs = r == sizeof again && memcmp(again, buf, sizeof again) != 0;
    r = write(fd, buf, 1);
    printf("rng: write: %s\n", strerrorname_np(-r));
    r = openat(AT_FDCWD, "/dev/hwrng", O_RDWR, 0);
    printf("rng: open for writing: %s\n", strerrorname_np(-r));
    close(fd);
    /* 4096 random bytes miss a given value with probability e^-16. */
    printf("rng: %d bytes, %s values, %s\n", SIZE, distinct >= 250 ? "nearly all 256" : "too few",
           differs ? "the next read differs" : "the next read repeats");
    int ok = distinct >= 250 && differs;
    printf("rng %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
