/* Clocks and sleeping. Each call returns 0 or -errno. */
#ifndef LIBC_TIME_H
#define LIBC_TIME_H

#define CLOCK_REALTIME  0
#define CLOCK_MONOTONIC 1
#define CLOCK_BOOTTIME  7

#define TIMER_ABSTIME   1   /* clock_nanosleep: `req` is a time of the clock, not a duration */

typedef long time_t;

struct timespec {
    time_t tv_sec;
    long tv_nsec;
};

int clock_gettime(int clock_id, struct timespec *ts);
/* If interrupted, `rem` (may be NULL) receives the time left. */
int nanosleep(const struct timespec *req, struct timespec *rem);
/* Like nanosleep on clock `clock_id`; flags 0 or TIMER_ABSTIME. Returns 0 or
 * -errno (the raw system call; glibc would return +errno). */
int clock_nanosleep(int clock_id, int flags, const struct timespec *req, struct timespec *rem);

#endif
