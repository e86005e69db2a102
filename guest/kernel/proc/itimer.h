/* The real interval timer of a process (itimer.c): alarm, setitimer, getitimer. */
#ifndef PROC_ITIMER_H
#define PROC_ITIMER_H
#include <stdint.h>

struct task;
extern uint64_t itimer_armed;           /* non-zero: the tick checks the timers */
void itimer_tick(void);
void itimer_process_exit(struct task *leader);

#endif
