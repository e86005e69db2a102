/* Shared by the root file system's test programs, built twice: with glibc
 * (gcc -static) and with musl (musl-gcc -static).  Their output must be the
 * same byte for byte in the VM, as a host process and in a container, and
 * for both C libraries: so they print only what Linux fixes (no addresses,
 * times or host details), name errors by their symbol (strerror's words
 * differ between the libraries), and write to stdout only (a tty in the VM,
 * a pipe elsewhere: stderr would interleave differently). */
#ifndef COMMON_H
#define COMMON_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

static int failures;

#define UNUSED __attribute__((unused))

static UNUSED const char *errname(int e)
{
    static const struct { int n; const char *name; } names[] = {
        { EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EINTR, "EINTR" }, { EIO, "EIO" },
        { ENXIO, "ENXIO" }, { EBADF, "EBADF" }, { EAGAIN, "EAGAIN" }, { ENOMEM, "ENOMEM" },
        { EACCES, "EACCES" }, { EFAULT, "EFAULT" }, { EBUSY, "EBUSY" }, { EEXIST, "EEXIST" },
        { EXDEV, "EXDEV" }, { ENOTDIR, "ENOTDIR" }, { EISDIR, "EISDIR" }, { EINVAL, "EINVAL" },
        { EMFILE, "EMFILE" }, { ENOTTY, "ENOTTY" }, { EFBIG, "EFBIG" }, { ENOSPC, "ENOSPC" },
        { ESPIPE, "ESPIPE" }, { EROFS, "EROFS" }, { ERANGE, "ERANGE" }, { ENAMETOOLONG, "ENAMETOOLONG" },
        { ESRCH, "ESRCH" }, { ECHILD, "ECHILD" }, { ENOSYS, "ENOSYS" }, { ENOTEMPTY, "ENOTEMPTY" }, { ELOOP, "ELOOP" }, { EOVERFLOW, "EOVERFLOW" },
        { ETIMEDOUT, "ETIMEDOUT" },
    };
    static char other[16];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].n == e)
            return names[i].name;
    snprintf(other, sizeof other, "errno %d", e);
    return other;
}

/* Our kernel: the only place where MemFree (/proc/meminfo) is the program's alone.  On a
 * host, and in a container, which shares its kernel, every other process moves it. */
static UNUSED int our_kernel(void)
{
    struct utsname u;
    return uname(&u) == 0 && strstr(u.release, "-tinykernel") != NULL;
}

/* "ok WHAT", or "FAIL WHAT" and a count for the exit status. */
static UNUSED void check(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
    if (!ok)
        failures++;
}

/* A call that must fail with errno `expected`. */
static UNUSED void check_error(long r, int expected, const char *what)
{
    int got = errno;
    printf("%s %s: %s\n", r == -1 && got == expected ? "ok" : "FAIL", what,
           r == -1 ? errname(got) : "succeeded");
    if (r != -1 || got != expected)
        failures++;
}

/* handler (or SIG_IGN, SIG_DFL) for sig, with sa_flags flags. */
static UNUSED void install(int sig, void (*handler)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigaction(sig, &sa, NULL);
}

/* An SA_SIGINFO handler for sig. */
static UNUSED void handle_info(int sig, void (*handler)(int, siginfo_t *, void *))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(sig, &sa, NULL);
}

static UNUSED int finish(const char *program)
{
    if (failures)
        printf("%s: %d checks failed\n", program, failures);
    else
        printf("%s: all ok\n", program);
    return failures != 0;
}

#endif
