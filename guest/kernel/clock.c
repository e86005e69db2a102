/*
 * Clocks from the TSC, sleeping on the PIT tick.
 *
 * The TSC rate comes from the hypervisor timing leaf CPUID 0x40000010
 * (EAX = kHz; our VMM, and KVM/QEMU with vmware-cpuid-freq); without it
 * (QEMU by default, TCG, bare metal) it is measured against PIT channel 2 at
 * boot (pit.c), and only if that fails too is it assumed to be 1 GHz.  There
 * is no wall clock yet: CLOCK_REALTIME is time since boot, like
 * CLOCK_MONOTONIC.
 *
 * nanosleep/clock_nanosleep wait in cpu_idle() (HLT with interrupts on)
 * until the TSC passes the deadline: each PIT tick wakes the CPU to check,
 * so a sleep ends within one tick (1/PIT_HZ) after its deadline.
 */
#include "clock.h"
#include "irq.h"
#include "kernel.h"
#include "layout.h"
#include "pit.h"
#include "mm/mm.h"
#include "uapi.h"
#include "x86.h"

#define NSEC_PER_SEC 1000000000ull
#define MAX_SLEEP_SEC 1000000ull        /* keeps the TSC arithmetic in range */

_Static_assert(PIT_HZ % USER_HZ == 0, "times() assumes whole ticks per clock_t");

static uint64_t tsc_boot;
static uint64_t tsc_khz = TSC_KHZ_DEFAULT;

static uint64_t cpuid_tsc_khz(void)
{
    uint32_t a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    if (!(c & CPUID_1_ECX_HYPERVISOR))
        return 0;       /* leaf 0x40000000 means nothing without a hypervisor */
    cpuid(CPUID_HV_BASE, &a, &b, &c, &d);
    if (a < CPUID_HV_TIMING)
        return 0;
    cpuid(CPUID_HV_TIMING, &a, &b, &c, &d);
    return a;
}

void clock_init(void)
{
    tsc_boot = rdtsc();
    uint64_t khz = cpuid_tsc_khz();
    if (!khz)
        khz = pit_measure_tsc_khz();
    if (khz)
        tsc_khz = khz;
}

/* TSC cycles for a duration; sec <= MAX_SLEEP_SEC. */
static uint64_t tsc_cycles(uint64_t sec, uint64_t nsec)
{
    return sec * tsc_khz * 1000 + nsec * tsc_khz / 1000000;
}

/* Nanoseconds since boot, split to avoid 64-bit overflow. */
void clock_now(uint64_t *sec, uint64_t *nsec)
{
    uint64_t ticks = rdtsc() - tsc_boot;
    uint64_t hz = tsc_khz * 1000;
    *sec = ticks / hz;
    *nsec = (ticks % hz) * 1000000 / tsc_khz;   /* < 2^32 * 10^6: fits */
}

uint64_t clock_ns(void)
{
    uint64_t sec, nsec;
    clock_now(&sec, &nsec);
    return sec * NSEC_PER_SEC + nsec;
}

uint64_t clock_tsc_khz(void)
{
    return tsc_khz;
}

/* REALTIME 0, MONOTONIC 1, the CPU-time clocks 2 and 3 (one process on one
 * CPU that never waits for another: its time since boot), MONOTONIC_RAW 4,
 * *_COARSE 5/6, BOOTTIME 7. */
static int clock_known(uint64_t clock)
{
    return clock <= CLOCK_BOOTTIME;
}

long sys_clock_gettime(uint64_t clock, uint64_t tp)
{
    if (!clock_known(clock))
        return -EINVAL;
    if (!user_ok(tp, 16, 1))
        return -EFAULT;
    uint64_t *ts = (uint64_t *)tp;
    clock_now(&ts[0], &ts[1]);
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
    clock_now(&t[0], &t[1]);
    t[1] /= 1000;
    return 0;
}

long sys_clock_getres(uint64_t clock, uint64_t res)
{
    if (!clock_known(clock))
        return -EINVAL;
    static const uint64_t one_ns[2] = { 0, 1 };
    return res ? copy_to_user(res, one_ns, sizeof one_ns) : 0;
}

long sys_time(uint64_t t)
{
    uint64_t sec, nsec;
    clock_now(&sec, &nsec);
    if (t && copy_to_user(t, &sec, 8) < 0)
        return -EFAULT;
    return (long)sec;
}

/* Read a struct timespec; 0, -EFAULT or -EINVAL (negative or >= 1 s of ns). */
static long get_timespec(uint64_t addr, uint64_t *sec, uint64_t *nsec)
{
    if (!user_ok(addr, 16, 0))
        return -EFAULT;
    const int64_t *ts = (const int64_t *)addr;
    if (ts[0] < 0 || ts[1] < 0 || (uint64_t)ts[1] >= NSEC_PER_SEC)
        return -EINVAL;
    *sec = MIN((uint64_t)ts[0], MAX_SLEEP_SEC);
    *nsec = (uint64_t)ts[1];
    return 0;
}

/* Nothing interrupts a sleep (no asynchronous signals), so the remaining
 * time is never written. */
static void sleep_until(uint64_t deadline)
{
    while ((int64_t)(rdtsc() - deadline) < 0)
        cpu_idle();
}

long sys_nanosleep(uint64_t req, uint64_t rem)
{
    (void)rem;
    uint64_t sec, nsec;
    long err = get_timespec(req, &sec, &nsec);
    if (err)
        return err;
    sleep_until(rdtsc() + tsc_cycles(sec, nsec));
    return 0;
}

/* Relative, or with TIMER_ABSTIME absolute in the clock's own time (which
 * for all three clocks here is time since boot). */
long sys_clock_nanosleep(uint64_t clock, uint64_t flags, uint64_t req, uint64_t rem)
{
    (void)rem;
    if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC && clock != CLOCK_BOOTTIME)
        return -EINVAL;
    uint64_t sec, nsec;
    long err = get_timespec(req, &sec, &nsec);
    if (err)
        return err;
    uint64_t base = flags & TIMER_ABSTIME ? tsc_boot : rdtsc();
    sleep_until(base + tsc_cycles(sec, nsec));
    return 0;
}

/* Clock ticks (USER_HZ) since boot, from the PIT tick count.  The process
 * times are all charged as user time of the one process. */
long sys_times(uint64_t buf)
{
    uint64_t t = timer_ticks / (PIT_HZ / USER_HZ);
    if (buf) {
        if (!user_ok(buf, 32, 1))
            return -EFAULT;
        uint64_t *tms = (uint64_t *)buf;    /* utime, stime, cutime, cstime */
        tms[0] = t;
        tms[1] = tms[2] = tms[3] = 0;
    }
    return (long)t;
}
