/*
 * Clocks from the TSC.  Its frequency comes from the hypervisor timing leaf
 * CPUID 0x40000010 (EAX = kHz; KVM/QEMU with vmware-cpuid-freq, and our VMM),
 * otherwise we assume 1 GHz.  There is no wall clock yet: CLOCK_REALTIME is
 * time since boot, like CLOCK_MONOTONIC.
 */
#include "clock.h"
#include "kernel.h"
#include "layout.h"
#include "uspace.h"
#include "x86.h"

#define NSEC_PER_SEC 1000000000ull

static uint64_t tsc_boot;
static uint64_t tsc_khz = TSC_KHZ_DEFAULT;

void clock_init(void)
{
    uint32_t a, b, c, d;
    tsc_boot = rdtsc();
    cpuid(1, &a, &b, &c, &d);
    if (!(c & CPUID_1_ECX_HYPERVISOR))
        return;         /* leaf 0x40000000 means nothing without a hypervisor */
    cpuid(CPUID_HV_BASE, &a, &b, &c, &d);
    if (a < CPUID_HV_TIMING)
        return;
    cpuid(CPUID_HV_TIMING, &a, &b, &c, &d);
    if (a)
        tsc_khz = a;
}

/* Nanoseconds since boot, split to avoid 64-bit overflow. */
static void now(uint64_t *sec, uint64_t *nsec)
{
    uint64_t ticks = rdtsc() - tsc_boot;
    uint64_t hz = tsc_khz * 1000;
    *sec = ticks / hz;
    *nsec = (ticks % hz) * 1000000 / tsc_khz;   /* < 2^32 * 10^6: fits */
}

long sys_clock_gettime(uint64_t clock, uint64_t tp)
{
    /* REALTIME 0, MONOTONIC 1, MONOTONIC_RAW 4, *_COARSE 5/6, BOOTTIME 7 */
    if (clock != 0 && clock != 1 && (clock < 4 || clock > 7))
        return -EINVAL;
    if (!user_ok(tp, 16, 1))
        return -EFAULT;
    uint64_t *ts = (uint64_t *)tp;
    now(&ts[0], &ts[1]);
    return 0;
}

long sys_gettimeofday(uint64_t tv, uint64_t tz)
{
    if (tz && !user_ok(tz, 8, 1))
        return -EFAULT;
    if (tz)
        *(uint64_t *)tz = 0;
    if (!tv)
        return 0;
    if (!user_ok(tv, 16, 1))
        return -EFAULT;
    uint64_t *t = (uint64_t *)tv;
    now(&t[0], &t[1]);
    t[1] /= 1000;
    return 0;
}

/* Busy-waits in ring 0 (no timer interrupt yet); nothing can interrupt it,
 * so *rem is never written. */
long sys_nanosleep(uint64_t req, uint64_t rem)
{
    (void)rem;
    if (!user_ok(req, 16, 0))
        return -EFAULT;
    const int64_t *ts = (const int64_t *)req;
    if (ts[0] < 0 || ts[1] < 0 || (uint64_t)ts[1] >= NSEC_PER_SEC)
        return -EINVAL;
    uint64_t sec = MIN((uint64_t)ts[0], 1000000ull);  /* keep the math in range */
    uint64_t ticks = sec * tsc_khz * 1000 + (uint64_t)ts[1] * tsc_khz / 1000000;
    uint64_t start = rdtsc();
    while (rdtsc() - start < ticks)
        ;
    return 0;
}
