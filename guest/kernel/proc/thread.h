/* Threads (thread.c, issue 15c): clone with CLONE_THREAD, a thread's end, and
 * where a signal for the process goes. */
#ifndef PROC_THREAD_H
#define PROC_THREAD_H
#include <stdint.h>
#include "proc/task.h"

/* clone with CLONE_THREAD (from do_fork): the new thread's ID, or -errno. */
long thread_clone(struct regs *r, uint64_t flags, uint64_t newsp, uint64_t ptid, uint64_t ctid, uint64_t tls);
/* The first step of every task's end: the futex release, then for a thread
 * of a group (whole_group: exit_group or a fatal signal, which ends the
 * others) either the end here, or, for the leader, a wait for the others.
 * Returns the wait status the task goes on to end with. */
int thread_exit(int wait_status, int whole_group);
/* A reaped process: its group's record (the leader outlives its threads). */
void thread_group_release(struct task *leader);
/* The task that stands for t's process: its parent's child, its children's parent. */
struct task *thread_leader(struct task *t);
/* Before exec replaces the address space: the other threads end.  0, or
 * -EAGAIN from a thread that is not the leader (not supported here). */
long thread_exec_prepare(void);
/* 1 when t's process has no other thread that has not ended. */
int thread_alone(struct task *t);
/* The thread of t's process that takes signal sig sent to the process. */
struct task *thread_for_signal(struct task *t, int sig);

#endif
