/* Process times in clock ticks (sysconf(_SC_CLK_TCK) = 100 on Linux x86-64). */
#ifndef LIBC_SYS_TIMES_H
#define LIBC_SYS_TIMES_H

#define CLK_TCK 100     /* Linux's USER_HZ: the unit of clock_t */

typedef long clock_t;

struct tms {
    clock_t tms_utime;
    clock_t tms_stime;
    clock_t tms_cutime;
    clock_t tms_cstime;
};

/* Clock ticks since an arbitrary point in the past (only differences mean
 * anything); fills *buf if it is not NULL. A negative result in -4095..-1
 * is -errno (-EFAULT); the raw system call cannot tell it from a tick count
 * there, which Linux avoids by never returning such counts. */
clock_t times(struct tms *buf);

#endif
