/*
 * The end of a process, and its parent's wait (issue 15a).
 *
 * do_exit is the one way a task ends (exit, exit_group, a fatal signal).
 * It gives back at once what the process held: descriptors, user pages and
 * regions, its working directory; the task stays a zombie holding only its
 * page tables, kernel stack and exit status until the parent reaps it with
 * wait4 or waitid.  Its children go to the nearest subreaper above it, else
 * to PID 1; the parent gets exit_signal
 * (SIGCHLD, whose default action ignores it).  A parent whose SIGCHLD is
 * SIG_IGN (no signal then) or has SA_NOCLDWAIT gets no zombie: the child is
 * released at exit, and its wait4 ends with ECHILD once no child is left.  When PID 1 ends, the VM ends
 * with its status (and the other processes with it).
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "layout.h"
#include "mm/mm.h"
#include "proc/itimer.h"
#include "proc/task.h"
#include "proc/thread.h"
#include "proc/wait.h"
#include "syscall/strace.h"

struct waitq child_wq;                  /* parents in wait4/waitid, vfork parents */

/* Children that ended while their parent ignored SIGCHLD (or set
 * SA_NOCLDWAIT): released at exit, freed later (linked by run_next). */
static struct task *autoreaped;
static void task_unlink(struct task *t);
static void task_free(struct task *t);

/* t ended: its parent gets exit_signal, unless that is SIGCHLD and set to
 * SIG_IGN.  Returns 1 when t must not stay a zombie: SIGCHLD ignored, or its
 * handler installed with SA_NOCLDWAIT (Linux's do_notify_parent). */
static int notify_parent(struct task *t, int code)
{
    if (!t->exit_signal)
        return 0;
    struct k_sigaction *ka = &t->parent->sighand->action[SIGCHLD];
    int autoreap = t->exit_signal == SIGCHLD && (ka->handler == SIG_IGN || (ka->flags & SA_NOCLDWAIT));
    if (!(t->exit_signal == SIGCHLD && ka->handler == SIG_IGN))
        signal_send(t->parent, t->exit_signal, code, 0);
    return autoreap;
}

/* Who adopts t's children: the nearest living subreaper above it, else PID 1. */
static struct task *adopter(struct task *t)
{
    for (struct task *a = t->parent; a; a = a->parent)
        if (a->child_subreaper && a->state != TASK_ZOMBIE)
            return a;
    struct task *init = all_tasks;
    while (init && init->pid != 1)
        init = init->all_next;
    return init;
}

void do_exit(int wait_status)
{
    wait_status = thread_exit(wait_status, 1);     /* the other threads end first (issue 15c) */
    struct task *t = current;           /* the process's last task: its leader */
    int sig = wait_status & 0x7f;
    itimer_process_exit(t);
    if (t->pid == 1) {                  /* the VM's status is PID 1's */
        strace_process_end(sig ? 0 : (wait_status >> 8) & 0xff, sig);
        vm_exit(sig ? EXIT_SIGNAL_BASE + (uint32_t)sig : (uint32_t)(wait_status >> 8) & 0xff);
    }
    files_release(t->files);
    t->files = 0;
    mm_exit(t->mm);                     /* the pages go with the last task using them */
    inode_put(t->cwd);
    inode_put(t->root);
    if (t->exe)
        inode_put(t->exe);
    t->exe = 0;
    free_autoreaped();
    struct task *init = adopter(t);
    while (t->children) {               /* orphans: a subreaper or PID 1 adopts them */
        struct task *c = t->children;
        t->children = c->sibling;
        c->parent = init;
        c->ppid = init->tgid;
        c->sibling = init->children;
        init->children = c;
        if (c->state == TASK_ZOMBIE && notify_parent(c, CLD_EXITED))
            task_release(c);            /* the adopter ignores SIGCHLD: no zombie (Linux's reparent_leader) */
    }
    t->exit_status = wait_status;
    t->state = TASK_ZOMBIE;
    t->vfork_parent = 0;
    if (notify_parent(t, sig ? CLD_KILLED : CLD_EXITED)) {
        task_unlink(t);                 /* no zombie: gone for wait and kill at once; */
        t->run_next = autoreaped;       /* freed by the next task here, off this stack */
        autoreaped = t;
    }
    wake_up(&child_wq);                 /* a parent waiting for it gets ECHILD when it was the last */
    schedule();                         /* never comes back: no one wakes a zombie */
    panic("a zombie ran");
}

void task_exit(int status)
{
    do_exit((status & 0xff) << 8);
}

/* A reaped zombie: out of its parent's children and the task list (its pid free). */
static void task_unlink(struct task *t)
{
    for (struct task **p = &t->parent->children; *p; p = &(*p)->sibling)
        if (*p == t) {
            *p = t->sibling;
            break;
        }
    for (struct task **p = &all_tasks; *p; p = &(*p)->all_next)
        if (*p == t) {
            *p = t->all_next;
            break;
        }
    nr_tasks--;
}

/* The rest of it (its stack is not in use: we are its parent, or it is on autoreaped). */
static void task_free(struct task *t)
{
    thread_group_release(t);
    mm_put(t->mm);
    kfree(t->sighand, sizeof *t->sighand);
    kfree(t->fpu, FXSAVE_AREA);
    if (t->exe_path)
        kfree(t->exe_path, PATH_MAX);
    kstack_free(t->kstack_pa);
    kfree(t, sizeof *t);
}

void task_release(struct task *t)
{
    task_unlink(t);
    task_free(t);
}

void free_autoreaped(void)
{
    struct task *t;
    while ((t = autoreaped) && t != current) {
        autoreaped = t->run_next;
        task_free(t);
    }
}

int task_listed(struct task *t)
{
    for (struct task *o = all_tasks; o; o = o->all_next)
        if (o == t)
            return 1;
    return 0;
}

/* Does child c match wait's pid argument (Linux's encoding)? */
static int wait_match(struct task *c, int pid)
{
    if (pid > 0)
        return c->tgid == pid;
    if (pid == 0)
        return c->pgid == current->pgid;
    if (pid < -1)
        return c->pgid == -pid;
    return 1;
}

/* A zombie child matching pid (returned), or NULL with *any set when some
 * child matches at all. */
static struct task *find_zombie(int pid, int *any)
{
    *any = 0;
    for (struct task *c = thread_leader(current)->children; c; c = c->sibling) {
        if (!wait_match(c, pid))
            continue;
        *any = 1;
        if (c->state == TASK_ZOMBIE)
            return c;
    }
    return 0;
}

/* Sleep until a matching child is a zombie: it, or NULL with *err. */
static struct task *wait_child(int pid, uint64_t options, long *err)
{
    int any;
    struct task *z;
    *err = 0;
    free_autoreaped();
    while (!(z = find_zombie(pid, &any))) {
        if (!any) {
            *err = -ECHILD;
            return 0;
        }
        if (options & WNOHANG)
            return 0;
        if (signal_pending()) {
            *err = restart_syscall();   /* again after a handler with SA_RESTART */
            return 0;
        }
        waitq_sleep(&child_wq);
    }
    return z;
}

long sys_wait4(uint64_t upid, uint64_t ustatus, uint64_t options, uint64_t rusage)
{
    if (options & ~(uint64_t)(WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WALL | __WCLONE))
        return -EINVAL;
    if ((int)upid == INT32_MIN)
        return -ESRCH;                  /* Linux: -INT_MIN, its process group, cannot be */
    long err;
    struct task *z = wait_child((int)upid, options, &err);
    if (!z)
        return err;
    int status = z->exit_status, pid = z->tgid;
    static const uint64_t no_usage[18];     /* struct rusage: no accounting here */
    if ((ustatus && copy_to_user(ustatus, &status, sizeof status)) ||
        (rusage && copy_to_user(rusage, no_usage, sizeof no_usage)))
        return -EFAULT;
    task_release(z);
    return pid;
}

long sys_waitid(uint64_t idtype, uint64_t id, uint64_t infop, uint64_t options, uint64_t rusage)
{
    int pid;
    switch (idtype) {
    case P_ALL: pid = -1; break;
    case P_PID: pid = (int)id; if (pid <= 0) return -EINVAL; break;
    case P_PGID: pid = id ? -(int)id : 0; if ((int)id < 0) return -EINVAL; break;
    default: return -EINVAL;
    }
    if (!(options & (WEXITED | WUNTRACED | WCONTINUED)) ||
        (options & ~(uint64_t)(WNOHANG | WEXITED | WUNTRACED | WCONTINUED | WNOWAIT | __WNOTHREAD | __WALL | __WCLONE)))
        return -EINVAL;
    long err;
    struct task *z = (options & WEXITED) ? wait_child(pid, options, &err) : 0;
    if (!(options & WEXITED))
        err = -ECHILD;                  /* only stops/continues asked: none happen here */
    if (!z && err)
        return err;
    struct {                            /* siginfo_t for SIGCHLD (asm-generic/siginfo.h) */
        int32_t signo, errnum, code, pad;
        int32_t pid, uid, status, pad2;
        uint8_t rest[96];
    } info;
    memset(&info, 0, sizeof info);
    if (z) {
        int sig = z->exit_status & 0x7f;
        info.signo = SIGCHLD;
        info.code = sig ? CLD_KILLED : CLD_EXITED;
        info.pid = z->tgid;
        info.status = sig ? sig : (z->exit_status >> 8) & 0xff;
    }
    static const uint64_t no_usage[18];
    if ((infop && copy_to_user(infop, &info, sizeof info)) ||
        (rusage && copy_to_user(rusage, no_usage, sizeof no_usage)))
        return -EFAULT;
    if (z && !(options & WNOWAIT))
        task_release(z);
    return 0;
}
