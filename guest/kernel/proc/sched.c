/*
 * The scheduler (issue 15a): one vCPU, round-robin.  Every task has its own
 * kernel stack (TSS.RSP0 and the syscall entry's stack while it runs); a
 * switch saves the callee-saved registers on the old stack and pops the new
 * one's (switch_to, traps.S: 14 instructions), loads CR3 only when the
 * address space differs, and swaps the user FPU/SSE state (one fxsave, one
 * fxrstor: the kernel never touches SSE, -mgeneral-regs-only).
 *
 * Runnable tasks wait on a FIFO; sleeping ones are on no list but their
 * wait queue, so they cost nothing.  The tick (traps.S irq_timer) goes to C
 * only from user mode and only when someone waits to run or sleeps on the
 * tick: then the slice is counted down, and when it is used up the task
 * yields at the return to user mode.  With nothing to run the CPU halts in
 * cpu_idle(), on the stack of the task that slept last.
 */
#include "cpu.h"
#include "irq.h"
#include "kernel.h"
#include "layout.h"
#include "mm/mm.h"
#include "proc/itimer.h"
#include "proc/task.h"
#include "proc/wait.h"
#include "x86.h"

struct task *all_tasks;
int nr_tasks;
/* Read by traps.S irq_timer, with itimer_armed: work for the tick when any is non-zero. */
struct task *runq_head;
struct waitq tick_wq;                   /* sleepers with a deadline (clock.c, poll.c) */
static struct task *runq_tail;
int last_pid = 1;
static uint64_t stack_cache;            /* freed kernel stacks, linked through their first word */
static uint64_t stack_cache_count;

/* traps.S */
void switch_to(uint64_t *save_ksp, uint64_t next_ksp);

static void runq_push(struct task *t)
{
    t->run_next = 0;
    if (runq_tail)
        runq_tail->run_next = t;
    else
        runq_head = t;
    runq_tail = t;
}

static struct task *runq_pop(void)
{
    struct task *t = runq_head;
    if (t && !(runq_head = t->run_next))
        runq_tail = 0;
    return t;
}

void task_make_runnable(struct task *t)
{
    t->state = TASK_RUNNING;
    runq_push(t);
}

void task_wake(struct task *t)
{
    if (t->state == TASK_SLEEPING)
        task_make_runnable(t);
}

static void switch_tasks(struct task *prev, struct task *next)
{
    current = next;
    cpu_set_kernel_stack(next->kstack_top);
    if (next->mm != prev->mm && next->mm)
        mm_activate(next->mm);
    if (next->fs_base != prev->fs_base)
        wrmsr(MSR_FS_BASE, next->fs_base);
    if (next->gs_base != prev->gs_base)
        wrmsr(MSR_GS_BASE, next->gs_base);
    __asm__ volatile("fxsave64 %0" : "=m"(*(char (*)[FXSAVE_AREA])prev->fpu));
    __asm__ volatile("fxrstor64 %0" :: "m"(*(char (*)[FXSAVE_AREA])next->fpu));
    user_return_work = (next->pending & ~next->blocked) != 0;
    switch_to(&prev->ksp, next->ksp);
}

void schedule(void)
{
    struct task *prev = current, *next;
    if (prev->state == TASK_RUNNING)
        runq_push(prev);
    while (!(next = runq_pop())) {
        cpu_idle();                     /* an interrupt may wake someone */
        wake_up(&tick_wq);
        if (itimer_armed)
            itimer_tick();
    }
    next->slice = SCHED_SLICE_TICKS;
    if (next != prev)
        switch_tasks(prev, next);
}

void timer_tick_work(struct regs *r)
{
    wake_up(&tick_wq);
    if (itimer_armed)
        itimer_tick();
    if (--current->slice <= 0 && runq_head)
        schedule();
    if (user_return_work)
        return_to_user_work(r);
}

struct task *task_by_pid(int pid)
{
    for (struct task *t = all_tasks; t; t = t->all_next)
        if (t->pid == pid && t->state != TASK_ZOMBIE)
            return t;
    return 0;
}

static int pid_used(int pid)
{
    for (struct task *t = all_tasks; t; t = t->all_next)
        if (t->pid == pid || t->pgid == pid || t->sid == pid)
            return 1;
    return 0;
}

/* The next free pid after the last one, wrapping below PID_MAX (as Linux). */
int pid_alloc(void)
{
    do
        last_pid = last_pid + 1 < PID_MAX ? last_pid + 1 : 2;
    while (pid_used(last_pid));
    return last_pid;
}

uint64_t kstack_alloc(void)
{
    uint64_t pa = stack_cache;
    if (pa) {
        stack_cache = *(uint64_t *)phys_to_virt(pa);
        stack_cache_count--;
        return pa;
    }
    return alloc_contiguous(KSTACK_PAGES);
}

/* Kept for the next fork: a free run of KSTACK_PAGES may not come again. */
void kstack_free(uint64_t pa)
{
    *(uint64_t *)phys_to_virt(pa) = stack_cache;
    stack_cache = pa;
    stack_cache_count++;
}

uint64_t kstack_cached_pages(void)
{
    return stack_cache_count * KSTACK_PAGES;
}
