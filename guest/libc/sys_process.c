/* Process system calls: getpid, uname, exit, exit_group. */
#include <sys/utsname.h>
#include <syscall.h>
#include <unistd.h>

pid_t getpid(void)
{
    return (pid_t)syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
}

int uname(struct utsname *buf)
{
    return (int)syscall6(SYS_uname, (long)buf, 0, 0, 0, 0, 0);
}

void _exit(int status)
{
    for (;;)
        syscall6(SYS_exit, status, 0, 0, 0, 0, 0);
}

void exit_group(int status)
{
    for (;;)
        syscall6(SYS_exit_group, status, 0, 0, 0, 0, 0);
}
