/* ticks: counts timer interrupts over 300 ms of busy work in ring 3, by the
 * times() clock-tick count before and after (in the guest: the PIT
 * interrupts the kernel counted while this program ran), against
 * clock_gettime(CLOCK_MONOTONIC). At 100 ticks/s about 30 ticks pass: the
 * timer must interrupt user code, and never faster than its rate. Prints
 * "ticks ok ..." or "ticks FAIL ... (numbers)"; nothing that depends on
 * timing, and no check that a busy host can fail (how many ticks arrive on
 * time is `vmm bench interrupts`' figure, not a test). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/times.h>
#include <time.h>

#include "timing.h"

#define BUSY_MS 300

#define check(ok, what, a, b) check_in("ticks", ok, what, a, b)

/* Some ring-3 work between clock reads (a system call each time would keep
 * the CPU in the kernel, with interrupts off, most of the time). */
static uint64_t work(uint64_t x)
{
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        __asm__ volatile("" : "+r"(x));
    }
    return x;
}

int main(void)
{
    uint64_t x = 88172645463325252ull;
    clock_t c0 = times(NULL);
    long long t0 = now_ns(), t1;
    do {
        x = work(x);
        t1 = now_ns();
    } while (t1 - t0 < BUSY_MS * MS);
    clock_t c1 = times(NULL);

    /* Never more than 20% (+2 ticks of rounding) above the clock: a wrong
     * rate shows.  No lower bound but one tick: interrupts may come late or
     * be lost on a busy host (the VM is not scheduled, or the emulated PIT
     * coalesces ticks nobody took yet), but never early. */
    long long ticks = c1 - c0, want = (t1 - t0) / (1000 / CLK_TCK * MS);
    check(ticks > 0, "the tick count advances in ring 3", ticks, want);
    check(ticks <= want + want / 5 + 2, "no more ticks than 300 ms allow", ticks, want);

    struct tms tms;
    clock_t c2 = times(&tms);
    check(c2 >= c1 && tms.tms_utime >= 0 && tms.tms_stime >= 0, "times() fills struct tms", c2 - c1, 0);
    check(times((struct tms *)0x1000) == -EFAULT, "times() bad pointer -> EFAULT", 0, 0);

    if (failures) {
        printf("ticks: %d checks failed (x=%lx)\n", failures, (unsigned long)x);
        return 1;
    }
    puts("ticks: all ok");
    return 0;
}
