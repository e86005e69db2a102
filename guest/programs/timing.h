/* timing.h: what the timer programs (sleep, ticks) share: a monotonic clock in
 * nanoseconds and a check that prints "<program> ok <what>" or
 * "<program> FAIL <what> (a, b)" and counts the failures. Only the FAIL line
 * carries numbers, so passing output never depends on timing. */
#ifndef TIMING_H
#define TIMING_H

#include <stdio.h>
#include <time.h>

#define MS 1000000LL            /* ns */

static int failures;

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void check_in(const char *program, int ok, const char *what, long long a, long long b)
{
    if (ok) {
        printf("%s ok %s\n", program, what);
    } else {
        printf("%s FAIL %s (%lld, %lld)\n", program, what, a, b);
        failures++;
    }
}

#endif
