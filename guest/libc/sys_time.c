/* Time system calls: clock_gettime, nanosleep, clock_nanosleep (0 or -errno)
 * and times (clock ticks). */
#include <syscall.h>
#include <sys/times.h>
#include <time.h>

int clock_gettime(int clock_id, struct timespec *ts)
{
    return (int)syscall6(SYS_clock_gettime, clock_id, (long)ts, 0, 0, 0, 0);
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
    return (int)syscall6(SYS_nanosleep, (long)req, (long)rem, 0, 0, 0, 0);
}

int clock_nanosleep(int clock_id, int flags, const struct timespec *req, struct timespec *rem)
{
    return (int)syscall6(SYS_clock_nanosleep, clock_id, flags, (long)req, (long)rem, 0, 0);
}

clock_t times(struct tms *buf)
{
    return syscall6(SYS_times, (long)buf, 0, 0, 0, 0, 0);
}
