/* Clocks and sleeping. Both calls return 0 or -errno. */
#ifndef LIBC_TIME_H
#define LIBC_TIME_H

#define CLOCK_REALTIME  0
#define CLOCK_MONOTONIC 1

typedef long time_t;

struct timespec {
    time_t tv_sec;
    long tv_nsec;
};

int clock_gettime(int clock_id, struct timespec *ts);
/* If interrupted, `rem` (may be NULL) receives the time left. */
int nanosleep(const struct timespec *req, struct timespec *rem);

#endif
