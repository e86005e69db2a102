/* Edges of the process calls that the Linux Test Project found: execve with
 * an empty argv (Linux 5.18 on gives the program argv[0] = ""), wait4 of
 * INT_MIN (ESRCH: -INT_MIN names no process group), and /proc/sys/kernel's
 * pid_max and tainted, which its library reads. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static void empty_argv(void)
{
    char self[256] = { 0 };
    readlink("/proc/self/exe", self, sizeof self - 1);   /* this program (the parent's /proc entry) */
    pid_t pid = fork();
    if (pid == 0) {
        char *const none[] = { NULL };
        execve(self, none, none);
        _exit(127);
    }
    int status;
    check(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "execve with an empty argv: the program gets argc 1 and argv[0] \"\"");
}

static long read_number(const char *path)
{
    char buf[32] = { 0 };
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    long n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 ? strtol(buf, NULL, 10) : -1;
}

int main(int argc, char **argv)
{
    if (argc == 1 && argv[0][0] == 0)   /* run by empty_argv */
        return 0;
    if (argc == 0)
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    empty_argv();
    int status;
    struct rusage ru;
    check_error(wait4(INT_MIN, &status, 0, &ru), ESRCH, "wait4(INT_MIN)");
    check(read_number("/proc/sys/kernel/pid_max") > 300, "/proc/sys/kernel/pid_max is a pid limit");
    check(read_number("/proc/sys/kernel/tainted") >= 0, "/proc/sys/kernel/tainted reads as a number");
    return finish("procedge");
}
