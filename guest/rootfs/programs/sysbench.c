/* sysbench: the system-call benchmark's guest program (vmm bench syscalls; no .expect: it
 * prints timings).  `sysbench MODE N`, MODE getppid (the system-call round trip) or pread
 * (a 4 KiB pread64 of a root file system file: the kernel's file path and the copy), runs N
 * calls and prints "sysbench MODE calls=N ns=T" (CLOCK_MONOTONIC around the loop).  N = 0
 * runs none: the benchmark counts the kernel instructions of N calls as the difference
 * from that. */
#include <fcntl.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "common.h"

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        printf("usage: sysbench getppid|pread N\n");
        return 2;
    }
    long n = atol(argv[2]);
    static char buf[4096];
    int fd = open("/data/pattern.bin", O_RDONLY);
    if (fd < 0)
        return 3;
    uint64_t start = now_ns();
    if (strcmp(argv[1], "getppid") == 0) {
        for (long i = 0; i < n; i++)
            syscall(SYS_getppid);
    } else if (strcmp(argv[1], "pread") == 0) {
        for (long i = 0; i < n; i++)
            if (pread(fd, buf, sizeof buf, 0) != sizeof buf)
                return 4;
    } else {
        return 2;
    }
    uint64_t end = now_ns();
    printf("sysbench %s calls=%ld ns=%llu\n", argv[1], n, (unsigned long long)(end - start));
    return 0;
}
