/*
 * fork, vfork and clone without CLONE_VM's sharing (issue 15a).  The child
 * is a copy of the caller: its address space shares every private page
 * copy-on-write (mm_fork), its descriptor table names the same open files,
 * its signal handlers are copied, pending signals are not.  Its kernel stack
 * starts with a copy of the caller's struct regs (RAX = 0) under a switch_to
 * frame returning to ret_from_fork (traps.S).
 *
 * vfork (and clone with CLONE_VFORK, as glibc's posix_spawn uses with
 * CLONE_VM and a stack of its own) suspends the caller until the child execs
 * or exits.  clone with CLONE_VM shares the caller's address space (counted:
 * mm_share); vfork itself gives a copy-on-write one, so what its child does
 * before exec cannot reach the parent's memory.  Threads (CLONE_THREAD) are
 * issue 15c's.
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "layout.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "proc/thread.h"
#include "proc/wait.h"

extern char ret_from_fork[];            /* traps.S */
extern struct waitq child_wq;           /* exit.c */

static void undo(struct task *t)
{
    if (t->mm) {
        mm_exit(t->mm);
        mm_put(t->mm);
    }
    if (t->files)
        files_release(t->files);
    if (t->sighand)
        kfree(t->sighand, sizeof *t->sighand);
    if (t->fpu)
        kfree(t->fpu, FXSAVE_AREA);
    if (t->exe_path)
        kfree(t->exe_path, PATH_MAX);
    if (t->kstack_pa)
        kstack_free(t->kstack_pa);
    kfree(t, sizeof *t);
}

/* A copy of current for the child, or NULL (ENOMEM) with nothing left over. */
static struct task *task_copy(uint64_t flags)
{
    struct task *t = kmalloc(sizeof *t);
    if (!t)
        return 0;
    memcpy(t, current, sizeof *t);
    t->mm = 0;
    t->files = 0;
    t->sighand = 0;
    t->fpu = 0;
    t->exe_path = 0;
    t->kstack_pa = 0;
    t->itimer_deadline = t->itimer_interval = 0;   /* a fork child has no timer */
    if (!(t->kstack_pa = kstack_alloc()) || !(t->fpu = kmalloc(FXSAVE_AREA)) ||
        !(t->sighand = kmalloc(sizeof *t->sighand)) || !(t->files = files_copy(current->files)) ||
        (current->exe_path && !(t->exe_path = kmalloc(PATH_MAX)))) {
        undo(t);
        return 0;
    }
    if (flags & CLONE_VM) {             /* the same address space, as Linux */
        t->mm = current->mm;
        mm_share(t->mm);
    } else if (!(t->mm = mm_fork(current->mm))) {
        undo(t);
        return 0;
    }
    memcpy(t->sighand, current->sighand, sizeof *t->sighand);
    if (current->exe_path)
        memcpy(t->exe_path, current->exe_path, PATH_MAX);
    __asm__ volatile("fxsave64 %0" : "=m"(*(char (*)[FXSAVE_AREA])t->fpu));   /* the caller's, now */
    inode_get(t->cwd);
    inode_get(t->root);
    if (t->exe)
        inode_get(t->exe);
    t->pending = 0;
    t->wait_next = t->run_next = t->children = t->sibling = 0;
    t->vfork_parent = 0;
    t->set_child_tid = 0;
    t->exit_status = 0;
    t->group = 0;                       /* a new process: one thread (issue 15c) */
    t->own_files = 0;
    return t;
}

/* Its kernel stack: the struct regs at the top, the switch_to frame below. */
void task_stack_setup(struct task *t, const struct regs *r)
{
    t->kstack_top = (uint64_t)phys_to_virt(t->kstack_pa) + KSTACK_PAGES * PAGE_SIZE;
    struct regs *cr = (struct regs *)t->kstack_top - 1;
    *cr = *r;
    cr->rax = 0;                        /* fork returns 0 in the child */
    uint64_t *frame = (uint64_t *)cr - 7;
    memset(frame, 0, 6 * sizeof *frame);
    frame[6] = (uint64_t)ret_from_fork;
    t->ksp = (uint64_t)frame;
}

static long do_fork(struct regs *r, uint64_t flags, uint64_t newsp, uint64_t ptid, uint64_t ctid, uint64_t tls)
{
    if (flags & CLONE_THREAD)
        return thread_clone(r, flags, newsp, ptid, ctid, tls);     /* issue 15c */
    if (flags & CLONE_SIGHAND)
        return -EINVAL;                 /* shared handlers come only with a thread */
    free_autoreaped();
    if (nr_tasks >= TASK_MAX)
        return -EAGAIN;
    struct task *t = task_copy(flags);
    if (!t)
        return -ENOMEM;
    task_stack_setup(t, r);
    struct regs *cr = (struct regs *)t->kstack_top - 1;
    if (newsp)
        cr->rsp = newsp;
    if (flags & CLONE_SETTLS)
        t->fs_base = tls;
    t->pid = t->tgid = pid_alloc();
    struct task *self = thread_leader(current);    /* a thread's children are its process's */
    struct task *parent = (flags & CLONE_PARENT) && self->parent ? self->parent : self;
    t->parent = parent;
    t->ppid = parent->tgid;
    t->sibling = parent->children;
    parent->children = t;
    t->all_next = all_tasks;
    all_tasks = t;
    nr_tasks++;
    t->exit_signal = (int)(flags & CSIGNAL);
    if (flags & CLONE_CHILD_SETTID)
        t->set_child_tid = ctid;
    t->clear_child_tid = (flags & CLONE_CHILD_CLEARTID) ? ctid : 0;
    if (flags & CLONE_PARENT_SETTID)
        copy_to_user(ptid, &t->pid, sizeof t->pid);
    int pid = t->pid;
    task_make_runnable(t);
    if (flags & CLONE_VFORK) {
        t->vfork_parent = current;
        while (task_listed(t) && t->vfork_parent == current)  /* exec or exit clears it (an autoreaped t is gone); signals wait too (Linux: killable only) */
            waitq_sleep(&child_wq);
    }
    return pid;
}

/* traps.S ret_from_fork: the child's first moment, on its own stack. */
void fork_child_start(struct regs *r)
{
    if (current->set_child_tid)
        copy_to_user(current->set_child_tid, &current->pid, sizeof current->pid);
    current->set_child_tid = 0;
    if (user_return_work)
        return_to_user_work(r);
}

void fork_regs(struct regs *r)
{
    long ret;
    switch (r->rax) {
    case SYS_fork:
        ret = do_fork(r, SIGCHLD, 0, 0, 0, 0);
        break;
    case SYS_vfork:
        ret = do_fork(r, CLONE_VFORK | SIGCHLD, 0, 0, 0, 0);
        break;
    default:                            /* clone(flags, newsp, parent_tid, child_tid, tls) */
        ret = do_fork(r, r->rdi, r->rsi, r->rdx, r->r10, r->r8);
    }
    r->rax = (uint64_t)ret;
}
