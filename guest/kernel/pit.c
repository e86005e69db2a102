/*
 * The 8254 PIT at its PC ports.  Channel 0 (gate tied high, OUT on IRQ 0)
 * runs as a rate generator (mode 2) at PIT_HZ: the kernel's tick.
 *
 * Before that, when no CPUID leaf gives the TSC rate, the PIT measures it:
 * one count of PIT_INPUT_HZ / TSC_CALIBRATE_HZ in mode 0 (OUT low from the
 * count write to terminal count), timed with the TSC.  Channel 2 is the PC's
 * way (gate and OUT on port 0x61, like Linux's pit_calibrate_tsc); where
 * port 0x61 does not exist (QEMU microvm) channel 0 does the same, its OUT
 * read through the read-back command (an 8254 feature).
 */
#include "pit.h"
#include "layout.h"
#include "x86.h"

volatile uint64_t timer_ticks;

void pit_start(void)
{
    outb(PIT_CMD, PIT_CW_CH0_RATE);
    outb(PIT_CH0, PIT_CH0_DIVISOR & 0xff);
    outb(PIT_CH0, PIT_CH0_DIVISOR >> 8);
}

static int out_high(int channel)
{
    if (channel == 2)
        return inb(PORT_B) & PORT_B_OUT2;
    outb(PIT_CMD, PIT_READBACK_CH0_STATUS);
    return inb(PIT_CH0) & PIT_STATUS_OUT;
}

/*
 * One count down, bracketed by TSC reads: the count starts between t_a and
 * t_b (around the MSB write) and OUT rises between `low` (taken before the
 * last read that saw it low) and `high` (after the read that saw it high).
 * Returns the midpoint estimate of the TSC cycles and, in *error, the width
 * of the brackets; 0 if OUT never behaves (no such channel, or no PIT).
 */
static uint64_t count_down(int channel, uint64_t *error)
{
    const uint32_t count = PIT_INPUT_HZ / TSC_CALIBRATE_HZ;
    uint16_t port = channel == 2 ? PIT_CH2 : PIT_CH0;
    if (channel == 2)
        outb(PORT_B, (inb(PORT_B) & ~PORT_B_SPEAKER) | PORT_B_GATE2);
    outb(PIT_CMD, channel == 2 ? PIT_CW_CH2_ONESHOT : PIT_CW_CH0_ONESHOT);
    outb(port, count & 0xff);
    uint64_t t_a = rdtsc();
    outb(port, count >> 8);
    uint64_t t_b = rdtsc(), low = t_b;
    if (out_high(channel))
        return 0;                       /* OUT must be low while counting */
    for (;;) {
        uint64_t t = rdtsc();
        if (out_high(channel))
            break;
        low = t;
        if (t - t_b > (1ull << 34))     /* seconds at any plausible rate */
            return 0;
    }
    uint64_t high = rdtsc();
    *error = (high - low) + (t_b - t_a);
    /* Mode 0: OUT rises count + 1 input clocks after the count is written. */
    return ((low + high) / 2 - (t_a + t_b) / 2) * PIT_INPUT_HZ / ((count + 1) * 1000ull);
}

/* A preempted vCPU (a busy host) widens the brackets by milliseconds: try
 * again, up to TSC_CALIBRATE_TRIES counts, and keep the tightest. */
uint64_t pit_measure_tsc_khz(void)
{
    uint64_t best = 0, best_error = ~0ull;
    int channel = 2;
    for (int tries = 0; tries < TSC_CALIBRATE_TRIES; tries++) {
        uint64_t error, khz = count_down(channel, &error);
        if (!khz) {
            if (channel == 0)
                break;                  /* no PIT at all */
            channel = 0;                /* no port 0x61: use channel 0 */
            continue;
        }
        error = error * PIT_INPUT_HZ / ((PIT_INPUT_HZ / TSC_CALIBRATE_HZ + 1) * 1000ull);
        if (error < best_error) {       /* in kHz, like khz */
            best = khz;
            best_error = error;
        }
        if (error * TSC_CALIBRATE_TOLERANCE <= khz)
            break;                      /* good enough */
    }
    return best;
}
