/*
 * Wait queues (wait.h).  One task runs today, so a sleep is one idle wait
 * for the next interrupt (the tick, or a device's IRQ, is what makes any
 * condition change) and waking has no one to switch to.  The scheduler
 * replaces these two bodies; their callers stay as they are.
 */
#include "irq.h"
#include "proc/wait.h"

void waitq_sleep(struct waitq *q)
{
    (void)q;
    cpu_idle();
}

void wake_up(struct waitq *q)
{
    (void)q;
}

int signal_pending(void)
{
    return (current->pending & ~current->blocked) != 0;
}
