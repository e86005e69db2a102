/* syscalls: calls each system call the guest kernel implements and prints
 * "ok <what>" or "FAIL <what>" for each check, never a value that depends
 * on the host. Exits 0 if every check passed, 1 otherwise.
 *
 * Lines go to fd 1, except the one that checks fd 2. Nothing is buffered,
 * so the merged output keeps this order. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <syscall.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void check(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
    if (!ok)
        failures++;
}

static long long ns(const struct timespec *t)
{
    return t->tv_sec * 1000000000LL + t->tv_nsec;
}

static void check_write(void)
{
    static const char out[] = "write to fd 1\n";
    static const char err[] = "write to fd 2\n";

    check(write(STDOUT_FILENO, out, sizeof(out) - 1) == sizeof(out) - 1, "write stdout");
    check(write(STDERR_FILENO, err, sizeof(err) - 1) == sizeof(err) - 1, "write stderr");
}

static void check_uname(void)
{
    struct utsname u;

    memset(&u, 0xff, sizeof(u));
    int r = uname(&u);
    check(r == 0, "uname returns 0");
    check(r == 0 && strcmp(u.machine, "x86_64") == 0, "uname machine is x86_64");
    check(r == 0 && u.sysname[0] && strnlen(u.sysname, sizeof(u.sysname)) < sizeof(u.sysname),
          "uname sysname is a string");
}

static void check_clock(void)
{
    struct timespec t1, t2, t3;
    struct timespec one_ms = { 0, 1000000 };
    struct timespec bad = { 0, 1000000000 };

    int r1 = clock_gettime(CLOCK_MONOTONIC, &t1);
    int r2 = clock_gettime(CLOCK_MONOTONIC, &t2);
    check(r1 == 0 && r2 == 0, "clock_gettime monotonic returns 0");
    check(t1.tv_nsec >= 0 && t1.tv_nsec < 1000000000, "clock_gettime nanoseconds in range");
    check(ns(&t2) >= ns(&t1), "clock_gettime monotonic does not go back");

    check(nanosleep(&one_ms, NULL) == 0, "nanosleep 1 ms returns 0");
    clock_gettime(CLOCK_MONOTONIC, &t3);
    check(ns(&t3) - ns(&t2) >= 1000000, "nanosleep 1 ms takes at least 1 ms");
    check(nanosleep(&bad, NULL) == -EINVAL, "nanosleep bad tv_nsec -> EINVAL");
}

static void check_brk(void)
{
    const long grow = 64 * 1024;
    char *start = brk(0);
    char *end = brk(start + grow);

    check(start != NULL && (uintptr_t)start < (uintptr_t)-4096, "brk(0) gives the break");
    check(end == start + grow, "brk grows by 64 KiB");
    if (end != start + grow)
        return;

    for (long i = 0; i < grow; i++)
        start[i] = (char)(i * 31 + 7);
    long bad = 0;
    for (long i = 0; i < grow; i++)
        bad += start[i] != (char)(i * 31 + 7);
    check(bad == 0, "new brk memory reads back");
    check(brk(start) == start, "brk shrinks back");
}

static void check_errors(void)
{
    char buf[16];

    check(read(99, buf, sizeof(buf)) == -EBADF, "read bad fd -> EBADF");
    check(write(99, "x", 1) == -EBADF, "write bad fd -> EBADF");
    check(write(STDOUT_FILENO, (const void *)0x1000, 10) == -EFAULT, "write bad pointer -> EFAULT");
    check(syscall6(1000, 0, 0, 0, 0, 0, 0) == -ENOSYS, "unknown syscall -> ENOSYS");
}

static void on_usr1(int sig)
{
    (void)sig;
}

static void check_sigaction(void)
{
    struct sigaction act = { .sa_handler = on_usr1 };
    struct sigaction old;

    check(sigaction(SIGUSR1, &act, NULL) == 0, "rt_sigaction installs a handler");
    memset(&old, 0, sizeof(old));
    check(rt_sigaction(SIGUSR1, NULL, &old) == 0 && old.sa_handler == on_usr1
          && (old.sa_flags & SA_RESTORER) && old.sa_restorer == __restore_rt,
          "rt_sigaction reads the handler back");
    act.sa_handler = SIG_DFL;
    check(sigaction(SIGUSR1, &act, NULL) == 0, "rt_sigaction restores the default");
    act.sa_handler = on_usr1;
    check(sigaction(SIGKILL, &act, NULL) == -EINVAL, "rt_sigaction SIGKILL -> EINVAL");
}

int main(void)
{
    check_write();
    check(getpid() > 0, "getpid is positive");
    check_uname();
    check_clock();
    check_brk();
    check_errors();
    check_sigaction();

    if (failures) {
        printf("syscalls: %d checks failed\n", failures);
        return 1;
    }
    puts("syscalls: all ok");
    return 0;
}
