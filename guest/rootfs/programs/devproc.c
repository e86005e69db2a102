/* devproc: the device files and /proc entries programs read: /dev/null,
 * /dev/zero, /dev/full, /dev/urandom, /proc/self/exe, /proc/self/cmdline,
 * /proc/self/maps, /proc/cpuinfo, /proc/meminfo, /proc/self/comm.  It prints
 * only what is the same on any Linux: the checks, not the contents. */
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>
#include "common.h"

/* A whole small file into buf (NUL-terminated); its length or -1. */
static long slurp(const char *path, char *buf, long size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    long n = 0, r;
    while (n < size - 1 && (r = read(fd, buf + n, size - 1 - n)) > 0)
        n += r;
    close(fd);
    buf[n] = 0;
    return n;
}

static int has_line_starting(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, prefix, n) == 0)
            return 1;
    return 0;
}

static char text[1 << 16];

int main(int argc, char **argv)
{
    (void)argc;
    char buf[256];
    int fd = open("/dev/null", O_RDWR);
    check(fd >= 0 && write(fd, "x", 1) == 1 && read(fd, buf, sizeof buf) == 0, "/dev/null takes writes, reads empty");
    close(fd);
    memset(buf, 1, sizeof buf);
    fd = open("/dev/zero", O_RDONLY);
    int zero = read(fd, buf, sizeof buf) == sizeof buf;
    for (size_t i = 0; i < sizeof buf && zero; i++)
        zero = buf[i] == 0;
    check(zero, "/dev/zero reads zeroes");
    close(fd);
    fd = open("/dev/full", O_WRONLY);
    check_error(write(fd, "x", 1), ENOSPC, "/dev/full");
    close(fd);
    fd = open("/dev/urandom", O_RDONLY);
    unsigned char r1[32] = { 0 }, r2[32] = { 0 };
    check(read(fd, r1, 32) == 32 && read(fd, r2, 32) == 32 && memcmp(r1, r2, 32) != 0,
          "/dev/urandom: two different 32-byte reads");
    close(fd);

    long n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n >= 0)
        buf[n] = 0;
    check(n > 0 && strcmp(buf, argv[0]) == 0, "/proc/self/exe names this program");
    n = slurp("/proc/self/cmdline", text, sizeof text);
    check(n == (long)strlen(argv[0]) + 1 && strcmp(text, argv[0]) == 0, "/proc/self/cmdline is argv");
    n = slurp("/proc/self/maps", text, sizeof text);
    check(n > 0 && strstr(text, "[stack]") && strstr(text, argv[0]), "/proc/self/maps shows the stack and the program");
    check(slurp("/proc/cpuinfo", text, sizeof text) > 0 && has_line_starting(text, "processor") &&
          has_line_starting(text, "flags"), "/proc/cpuinfo has processor and flags lines");
    check(slurp("/proc/meminfo", text, sizeof text) > 0 && has_line_starting(text, "MemTotal:") &&
          has_line_starting(text, "MemFree:"), "/proc/meminfo has MemTotal and MemFree");
    n = slurp("/proc/self/comm", text, sizeof text);
    const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    size_t len = strlen(base) < 15 ? strlen(base) : 15;
    check(n == (long)len + 1 && strncmp(text, base, len) == 0 && text[len] == '\n',
          "/proc/self/comm is the program's name");
    check(getpid() > 0 && getppid() >= 0, "getpid, getppid");
    return finish("devproc");
}
