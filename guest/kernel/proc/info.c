/*
 * What a process may ask about the system: uname, sysinfo, getrandom,
 * getrusage, sched_yield, sched_getaffinity/setaffinity, getcpu.
 */
#include "clock.h"
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/task.h"

long sys_uname(uint64_t buf)
{
    /* "Linux" and a Linux-like release: glibc refuses to start on a kernel
     * it thinks older than 3.2 ("FATAL: kernel too old"). */
    static const char fields[6][20] = {
        "Linux", "(none)", "6.1.0-tinykernel", "#1", "x86_64", "(none)",
    };
    char u[6 * UTSNAME_LEN];
    memset(u, 0, sizeof u);
    for (int i = 0; i < 6; i++)
        memcpy(u + UTSNAME_LEN * i, fields[i], strlen(fields[i]));
    return copy_to_user(buf, u, sizeof u);
}

long sys_sysinfo(uint64_t buf)
{
    uint64_t sec, nsec, info[14] = { 0 };   /* struct sysinfo, 112 bytes */
    clock_now(&sec, &nsec);
    info[0] = sec;                          /* uptime; loads[3] stay 0 */
    info[4] = pages_total() * PAGE_SIZE;    /* totalram */
    info[5] = pages_free() * PAGE_SIZE;     /* freeram */
    info[10] = 1;                           /* procs (a u16) */
    info[13] = 1;                           /* mem_unit (a u32) */
    return copy_to_user(buf, info, sizeof info);
}

long sys_getrandom(uint64_t buf, uint64_t count, uint64_t flags)
{
    if (flags & ~(uint64_t)(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE))
        return -EINVAL;
    if ((flags & (GRND_RANDOM | GRND_INSECURE)) == (GRND_RANDOM | GRND_INSECURE))
        return -EINVAL;
    return random_read(buf, MIN(count, 0x1ffffffull));    /* Linux's cap: 32 MiB - 1 */
}

long sys_getrusage(uint64_t who, uint64_t buf)
{
    if ((int)who != 0 && (int)who != -1 && (int)who != 1)   /* SELF, CHILDREN, THREAD */
        return -EINVAL;
    uint64_t ru[18] = { 0 };                /* struct rusage: 144 bytes */
    if ((int)who != -1) {
        uint64_t sec, nsec;
        clock_now(&sec, &nsec);
        ru[0] = sec;                        /* ru_utime: the one task ran all the time */
        ru[1] = nsec / 1000;
    }
    return copy_to_user(buf, ru, sizeof ru);
}

long sys_sched_yield(void)
{
    schedule();                         /* to the back of the run queue, if anyone waits */
    return 0;
}

long sys_sched_getaffinity(uint64_t pid, uint64_t len, uint64_t mask)
{
    if (pid && (int)pid != current->pid)
        return -ESRCH;
    if (len < 8 || len % 8)
        return -EINVAL;
    uint64_t one = 1;                       /* CPU 0 only */
    return copy_to_user(mask, &one, 8) < 0 ? -EFAULT : 8;
}

long sys_sched_setaffinity(uint64_t pid, uint64_t len, uint64_t mask)
{
    if (pid && (int)pid != current->pid)
        return -ESRCH;
    uint64_t m = 0;
    if (len && copy_from_user(&m, mask, MIN(len, 8)) < 0)
        return -EFAULT;
    return m & 1 ? 0 : -EINVAL;
}

long sys_getcpu(uint64_t cpu, uint64_t node)
{
    static const uint32_t zero = 0;
    if ((cpu && copy_to_user(cpu, &zero, 4)) || (node && copy_to_user(node, &zero, 4)))
        return -EFAULT;
    return 0;
}
