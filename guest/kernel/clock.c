/*
 * Clocks from the TSC, sleeping on the PIT tick.
 *
 * The TSC rate comes from the hypervisor timing leaf CPUID 0x40000010
 * (EAX = kHz; our VMM, and KVM/QEMU with vmware-cpuid-freq); without it
 * (QEMU by default, TCG, bare metal) it is measured against PIT channel 2 at
 * boot (pit.c), and only if that fails too is it assumed to be 1 GHz.
 *
 * The wall clock (CLOCK_REALTIME, gettimeofday, time, file times) is the
 * CMOS RTC's date at its first use, read once (about 20 port accesses, each
 * a VM exit: a program that never asks pays nothing), then the TSC.  A
 * machine without an RTC (the reads give nonsense) keeps time since boot.
 *
 * nanosleep/clock_nanosleep sleep on the tick's wait queue (HLT when no task runs)
 * until the TSC passes the deadline: each PIT tick wakes the CPU to check,
 * so a sleep ends within one tick (1/PIT_HZ) after its deadline.
 */
#include "clock.h"
#include "irq.h"
#include "kernel.h"
#include "layout.h"
#include "pit.h"
#include "mm/mm.h"
#include "proc/wait.h"
#include "uapi.h"
#include "x86.h"

#define MAX_SLEEP_SEC 1000000ull        /* keeps the TSC arithmetic in range */

_Static_assert(PIT_HZ % USER_HZ == 0, "times() assumes whole ticks per clock_t");

static uint64_t tsc_boot;
static int64_t realtime_offset = -1;    /* wall-clock seconds at boot; -1: RTC not read yet */
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

/* MC146818 CMOS RTC (ports 0x70/0x71): BCD unless register B says binary,
 * 12-hour unless it says 24 (bit 7 of the hour: PM).  A read that straddles
 * an update (the seconds differ from first to last) is retried. */
static uint8_t cmos(uint8_t reg)
{
    outb(RTC_INDEX_PORT, reg);
    return inb(RTC_DATA_PORT);
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)     /* H. Hinnant's algorithm */
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int64_t rtc_seconds(void)
{
    uint8_t f[8], again;
    static const uint8_t regs[8] = { RTC_SECONDS, RTC_MINUTES, RTC_HOURS, RTC_DAY, RTC_MONTH, RTC_YEAR,
                                     RTC_CENTURY, RTC_REG_B };
    for (int tries = 0; tries < 3; tries++) {
        for (int spin = 0; spin < 1000 && (cmos(RTC_REG_A) & RTC_A_UIP); spin++)
            ;
        for (int i = 0; i < 8; i++)
            f[i] = cmos(regs[i]);
        if ((again = cmos(RTC_SECONDS)) == f[0])
            break;
    }
    int binary = f[7] & RTC_B_BINARY, pm = !(f[7] & RTC_B_24H) && (f[2] & 0x80);
    if (!binary)
        for (int i = 0; i < 7; i++)
            f[i] = (uint8_t)((f[i] & (i == 2 ? 0x7f : 0xff)) >> 4) * 10 + (f[i] & 0x0f);
    unsigned hour = f[2] & 0x7f;
    if (!(f[7] & RTC_B_24H))
        hour = hour % 12 + (pm ? 12 : 0);
    unsigned year = f[6] * 100u + f[5];
    if (f[6] < 19 || f[6] > 99)         /* no century byte: this century */
        year = 2000 + f[5];
    if (f[0] > 59 || f[1] > 59 || hour > 23 || f[3] < 1 || f[3] > 31 || f[4] < 1 || f[4] > 12 || f[5] > 99)
        return 0;                       /* no RTC here (0xff everywhere) */
    return days_from_civil(year, f[4], f[3]) * 86400 + hour * 3600 + f[1] * 60 + f[0];
}

void clock_realtime(uint64_t *sec, uint64_t *nsec)
{
    clock_now(sec, nsec);
    if (realtime_offset < 0) {
        int64_t now = rtc_seconds();
        realtime_offset = now > (int64_t)*sec ? now - (int64_t)*sec : 0;
    }
    *sec += (uint64_t)realtime_offset;
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
    if (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)
        clock_realtime(&ts[0], &ts[1]);
    else
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
    clock_realtime(&t[0], &t[1]);
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
    clock_realtime(&sec, &nsec);
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

/* Sleep on the tick's queue (proc/sched.c) until the TSC passes deadline:
 * other tasks run meanwhile.  A signal ends it early: -EINTR, and the time
 * left goes to rem (if given), as nanosleep(2) says. */
static long sleep_until(uint64_t deadline, uint64_t rem)
{
    if (!wait_event(&tick_wq, (int64_t)(rdtsc() - deadline) >= 0))
        return 0;
    uint64_t left = deadline - rdtsc(), khz = clock_tsc_khz();
    int64_t ts[2] = { (int64_t)(left / (khz * 1000)), (int64_t)(left % (khz * 1000) * 1000000 / khz) };
    if (rem && (int64_t)left > 0 && copy_to_user(rem, ts, sizeof ts) < 0)
        return -EFAULT;
    return -EINTR;
}

long sys_nanosleep(uint64_t req, uint64_t rem)
{
    uint64_t sec, nsec;
    long err = get_timespec(req, &sec, &nsec);
    if (err)
        return err;
    return sleep_until(rdtsc() + tsc_cycles(sec, nsec), rem);
}

/* Relative, or with TIMER_ABSTIME absolute in the clock's own time (for
 * CLOCK_REALTIME the wall clock: a time before boot has passed already). */
long sys_clock_nanosleep(uint64_t clock, uint64_t flags, uint64_t req, uint64_t rem)
{
    if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC && clock != CLOCK_BOOTTIME)
        return -EINVAL;
    uint64_t sec, nsec;
    long err = get_timespec(req, &sec, &nsec);
    if (err)
        return err;
    if ((flags & TIMER_ABSTIME) && clock == CLOCK_REALTIME) {
        uint64_t now_sec, now_nsec;
        clock_realtime(&now_sec, &now_nsec);
        if (sec < (uint64_t)realtime_offset)
            return 0;
        sec -= (uint64_t)realtime_offset;
    }
    uint64_t base = flags & TIMER_ABSTIME ? tsc_boot : rdtsc();
    return sleep_until(base + tsc_cycles(sec, nsec), flags & TIMER_ABSTIME ? 0 : rem);
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
