/* Time system calls: clock_gettime and nanosleep (0 or -errno). */
#include <syscall.h>
#include <time.h>

int clock_gettime(int clock_id, struct timespec *ts)
{
    return (int)syscall6(SYS_clock_gettime, clock_id, (long)ts, 0, 0, 0, 0);
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
    return (int)syscall6(SYS_nanosleep, (long)req, (long)rem, 0, 0, 0, 0);
}
