/*
 * Threads (issue 15c): clone with CLONE_VM|CLONE_SIGHAND|CLONE_THREAD, as
 * glibc's pthread_create and Go's runtime call it.  A thread is a task with
 * its own ID, kernel stack, registers, FPU state, TLS base, signal mask,
 * pending signals and alternate stack, sharing with its group the address
 * space, the descriptor table (CLONE_FILES) and the signal handlers.  The
 * group (struct thread_group, made at the first clone) counts its live
 * threads; what they share is released by the leader, the task the parent
 * waits for, which ends last: a leader that exits while threads live waits
 * for them, as Linux's delayed group leader does.
 *
 *   exit (SYS_exit)      ends the calling thread only;
 *   exit_group, a fatal signal
 *                        ends every thread: the others get SIGKILL, and the
 *                        group's status is the first one given.
 *
 * A thread that ends is no one's child: it is freed (its stack, its task)
 * by the next clone or group exit, once it has switched away for good.
 * A signal sent to the process goes to a thread that does not block it.
 * The working directory stays per thread (CLONE_FS is accepted, not shared).
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "layout.h"
#include "mm/mm.h"
#include "proc/futex.h"
#include "proc/task.h"
#include "proc/thread.h"
#include "proc/wait.h"

struct thread_group {
    int live;                   /* threads that have not ended */
    int exiting;                /* exit_group or a fatal signal: all end */
    int execing;                /* exec: all but the leader end, the process goes on */
    int exit_status;            /* the group's wait status once exiting */
    struct task *leader;
    struct waitq ended;         /* the leader waits here for the others */
};

int thread_alone(struct task *t)
{
    return !t->group || t->group->live == 1;
}

static struct task *dead_threads;      /* ended, not yet freed (linked by run_next) */

static void free_dead_threads(void)
{
    struct task *t;
    while ((t = dead_threads) && t != current) {
        dead_threads = t->run_next;
        kstack_free(t->kstack_pa);
        kfree(t->fpu, FXSAVE_AREA);
        if (t->exe_path)
            kfree(t->exe_path, PATH_MAX);
        kfree(t, sizeof *t);
    }
}

long thread_clone(struct regs *r, uint64_t flags, uint64_t newsp, uint64_t ptid, uint64_t ctid, uint64_t tls)
{
    if (!(flags & CLONE_SIGHAND) || !(flags & CLONE_VM))
        return -EINVAL;                 /* Linux: THREAD needs SIGHAND, SIGHAND needs VM */
    free_dead_threads();
    if (nr_tasks >= TASK_MAX)
        return -EAGAIN;
    struct thread_group *g = current->group;
    if (!g) {
        if (!(g = kzalloc(sizeof *g)))
            return -ENOMEM;
        g->live = 1;
        g->leader = current;
    }
    struct task *t = kmalloc(sizeof *t);
    if (!t)
        goto no_memory;
    memcpy(t, current, sizeof *t);
    t->itimer_deadline = t->itimer_interval = 0;   /* the process's timer is the leader's */
    t->fpu = 0;
    t->exe_path = 0;
    if (!(t->kstack_pa = kstack_alloc()))
        goto no_memory;
    if (!(t->fpu = kmalloc(FXSAVE_AREA)) || (current->exe_path && !(t->exe_path = kmalloc(PATH_MAX))) ||
        (!(flags & CLONE_FILES) && !(t->files = files_copy(current->files)))) {
        if (t->fpu)
            kfree(t->fpu, FXSAVE_AREA);
        if (t->exe_path)
            kfree(t->exe_path, PATH_MAX);
        kstack_free(t->kstack_pa);
        goto no_memory;
    }
    if (current->exe_path)
        memcpy(t->exe_path, current->exe_path, PATH_MAX);
    __asm__ volatile("fxsave64 %0" : "=m"(*(char (*)[FXSAVE_AREA])t->fpu));
    inode_get(t->cwd);
    inode_get(t->root);
    if (t->exe)
        inode_get(t->exe);
    t->own_files = !(flags & CLONE_FILES);
    current->group = t->group = g;
    g->live++;
    t->pid = pid_alloc();
    t->pending = 0;
    t->altstack_sp = t->altstack_size = 0;      /* Linux: a CLONE_VM child has none */
    t->altstack_flags = SS_DISABLE;
    t->wait_next = t->run_next = t->children = t->sibling = 0;
    t->vfork_parent = 0;
    t->exit_signal = 0;                 /* a thread's end signals no one */
    t->exit_status = 0;
    t->robust_list = 0;
    t->set_child_tid = flags & CLONE_CHILD_SETTID ? ctid : 0;
    t->clear_child_tid = flags & CLONE_CHILD_CLEARTID ? ctid : 0;
    if (flags & CLONE_SETTLS)
        t->fs_base = tls;
    task_stack_setup(t, r);
    ((struct regs *)t->kstack_top - 1)->rsp = newsp ? newsp : r->rsp;
    t->all_next = all_tasks;
    all_tasks = t;
    nr_tasks++;
    if (flags & CLONE_PARENT_SETTID)
        copy_to_user(ptid, &t->pid, sizeof t->pid);
    task_make_runnable(t);
    return t->pid;
no_memory:
    if (t)
        kfree(t, sizeof *t);
    if (!current->group)
        kfree(g, sizeof *g);
    return -ENOMEM;
}

/* The calling thread ends, and is not the last: it leaves the group and
 * switches away for good. */
static void thread_die(void) __attribute__((noreturn));
static void thread_die(void)
{
    struct task *t = current;
    struct thread_group *g = t->group;
    if (t->own_files)
        files_release(t->files);        /* clone without CLONE_FILES */
    inode_put(t->cwd);
    inode_put(t->root);
    if (t->exe)
        inode_put(t->exe);
    for (struct task **p = &all_tasks; *p; p = &(*p)->all_next)
        if (*p == t) {
            *p = t->all_next;
            break;
        }
    nr_tasks--;
    g->live--;
    wake_up(&g->ended);
    t->run_next = dead_threads;
    dead_threads = t;
    t->state = TASK_ZOMBIE;
    schedule();
    panic("an ended thread ran");
}

/* do_exit's first step.  Returns the wait status the task ends with, for
 * the leader (and a task without threads), once it is the last; any other
 * thread ends here. */
int thread_exit(int wait_status, int whole_group)
{
    struct task *t = current;
    struct thread_group *g = t->group;
    futex_exit_release(t);
    if (!g || g->live == 1) {
        if (g && g->exiting)
            wait_status = g->exit_status;
        return wait_status;
    }
    if (whole_group && !g->exiting && !g->execing) {
        g->exiting = 1;
        g->exit_status = wait_status;
        for (struct task *o = all_tasks; o; o = o->all_next)
            if (o->tgid == t->tgid && o != t && o->state != TASK_ZOMBIE)
                signal_send(o, SIGKILL, SI_KERNEL, 0);
    }
    if (t != g->leader)
        thread_die();
    while (g->live > 1)                 /* the leader: the others first (signals do not stop this) */
        waitq_sleep(&g->ended);
    free_dead_threads();
    return g->exiting ? g->exit_status : wait_status;
}

/* Where a signal for the process goes: the leader unless it blocks it, else
 * a thread that does not; if all do, the leader keeps it pending. */
struct task *thread_for_signal(struct task *t, int sig)
{
    if (!t->group || sig <= 0)
        return t;
    uint64_t bit = 1ull << (sig - 1);
    if (!(t->blocked & bit))
        return t;
    for (struct task *o = all_tasks; o; o = o->all_next)
        if (o->tgid == t->tgid && o->state != TASK_ZOMBIE && !(o->blocked & bit))
            return o;
    return t;
}

void thread_group_release(struct task *leader)
{
    if (leader->group)
        kfree(leader->group, sizeof *leader->group);
    leader->group = 0;
}

struct task *thread_leader(struct task *t)
{
    return t->group ? t->group->leader : t;
}

long thread_exec_prepare(void)
{
    struct thread_group *g = current->group;
    if (!g || g->live == 1)
        return 0;
    if (current != g->leader)
        return -EAGAIN;                 /* Linux moves the leader's PID to the caller: not done here */
    g->execing = 1;
    for (struct task *o = all_tasks; o; o = o->all_next)
        if (o->tgid == current->tgid && o != current && o->state != TASK_ZOMBIE)
            signal_send(o, SIGKILL, SI_KERNEL, 0);
    while (g->live > 1)
        waitq_sleep(&g->ended);
    g->execing = 0;
    free_dead_threads();
    return 0;
}
