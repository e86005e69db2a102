/* Time: the TSC for clocks, the PIT tick for sleeping and times(). */
#ifndef CLOCK_H
#define CLOCK_H
#include <stdint.h>

#define NSEC_PER_SEC  1000000000ull
#define NSEC_PER_USEC 1000ull

void clock_init(void);              /* the TSC rate (CPUID leaf, or PIT channel 2) */
void clock_now(uint64_t *sec, uint64_t *nsec);   /* since boot (CLOCK_MONOTONIC) */
void clock_realtime(uint64_t *sec, uint64_t *nsec);  /* the wall clock: the RTC at first use, then the TSC */
uint64_t clock_tsc_khz(void);
uint64_t clock_ns(void);              /* nanoseconds since boot */
long sys_clock_gettime(uint64_t clock, uint64_t tp);
long sys_gettimeofday(uint64_t tv, uint64_t tz);
long sys_nanosleep(uint64_t req, uint64_t rem);
long sys_clock_nanosleep(uint64_t clock, uint64_t flags, uint64_t req, uint64_t rem);
long sys_times(uint64_t buf);
long sys_clock_getres(uint64_t clock, uint64_t res);
long sys_time(uint64_t t);

#endif
