/* The 8254 PIT: channel 0 is the periodic timer, channel 2 calibrates the TSC. */
#ifndef PIT_H
#define PIT_H
#include <stdint.h>

/* Timer interrupts since pit_start(), counted by the IRQ 0 entry (traps.S). */
extern volatile uint64_t timer_ticks;

void pit_start(void);                  /* channel 0: mode 2 at PIT_HZ */
uint64_t pit_measure_tsc_khz(void);    /* 0 if channel 2 / port 0x61 do not work */

#endif
