/* Time from the TSC: clock_gettime, gettimeofday, nanosleep. */
#ifndef CLOCK_H
#define CLOCK_H
#include <stdint.h>

void clock_init(void);
long sys_clock_gettime(uint64_t clock, uint64_t tp);
long sys_gettimeofday(uint64_t tv, uint64_t tz);
long sys_nanosleep(uint64_t req, uint64_t rem);

#endif
