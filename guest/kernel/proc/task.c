/*
 * The task (today PID 1, alone), its identities and limits, and the small
 * process system calls: getpid and friends, the user and group IDs, set_tid_
 * address, set_robust_list, rseq (ENOSYS, as kernels before 4.18 say, so
 * glibc goes on without it), prlimit64, getrlimit, setrlimit, prctl,
 * arch_prctl, exit, exit_group, kill, tkill, tgkill, wait4.
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "proc/thread.h"
#include "syscall/strace.h"
#include "x86.h"

#define ROBUST_LIST_HEAD_SIZE 24
#define ARCH_GET_CPUID 0x1011
#define ARCH_SET_CPUID 0x1012

extern char kernel_stack_top[];         /* entry.S: PID 1's kernel stack */
struct task *current;
volatile uint8_t user_return_work;

static const uint64_t default_limits[RLIM_NLIMITS][2] = {
    [RLIMIT_STACK] = { USER_STACK_MAX, RLIM_INFINITY },
    [RLIMIT_NOFILE] = { NOFILE_DEFAULT, NOFILE_MAX },
    [4] = { 0, RLIM_INFINITY },                     /* RLIMIT_CORE */
    [8] = { 8 << 20, 8 << 20 },                     /* RLIMIT_MEMLOCK */
    [12] = { 819200, 819200 },                      /* RLIMIT_MSGQUEUE */
    [13] = { 0, 0 },                                /* RLIMIT_NICE */
    [14] = { 0, 0 },                                /* RLIMIT_RTPRIO */
};

struct task *task_init(void)
{
    struct task *t = kzalloc(sizeof *t);
    if (!t || !(t->files = files_new()) || !(t->sighand = kzalloc(sizeof *t->sighand)))
        panic("out of memory");
    t->pid = t->tgid = 1;
    t->cwd = t->root = root_inode;
    inode_get(root_inode);
    inode_get(root_inode);
    t->umask = 022;
    for (int i = 0; i < RLIM_NLIMITS; i++) {
        int set = default_limits[i][0] || default_limits[i][1] || i == 4 || i == 13 || i == 14;
        t->rlim_cur[i] = set ? default_limits[i][0] : RLIM_INFINITY;
        t->rlim_max[i] = set ? default_limits[i][1] : RLIM_INFINITY;
    }
    memcpy(t->comm, "init", 5);
    t->pgid = t->sid = 1;
    t->exit_signal = SIGCHLD;
    t->kstack_top = (uint64_t)kernel_stack_top;    /* the boot stack */
    if (!(t->fpu = kmalloc(FXSAVE_AREA)))
        panic("out of memory");
    t->slice = SCHED_SLICE_TICKS;
    all_tasks = t;
    nr_tasks = 1;
    current = t;
    return t;
}

long sys_getpid(void)  { return current->tgid; }
long sys_gettid(void)  { return current->pid; }
long sys_getppid(void) { return thread_leader(current)->ppid; }     /* kept up to date in the leader */
long sys_getuid(void)  { return 0; }
long sys_getgid(void)  { return 0; }
long sys_getpgrp(void) { return current->pgid; }

/* The process pid names (0: the caller), or NULL. */
static struct task *process(uint64_t pid)
{
    return pid == 0 ? current : task_by_pid((int)pid);
}

long sys_getpgid(uint64_t pid)
{
    struct task *t = process(pid);
    return t ? t->pgid : -ESRCH;
}

long sys_getsid(uint64_t pid)
{
    struct task *t = process(pid);
    return t ? t->sid : -ESRCH;
}

long sys_setsid(void)
{
    for (struct task *t = all_tasks; t; t = t->all_next)
        if (t->pgid == current->tgid)
            return -EPERM;              /* already a group leader (setsid(2)) */
    current->pgid = current->sid = current->tgid;
    return current->sid;
}

/* setpgid(2): the caller or a child of it, in its session, into a group of
 * the same session (or a new one named by the process). */
long sys_setpgid(uint64_t upid, uint64_t upgid)
{
    if ((int)upgid < 0)
        return -EINVAL;
    struct task *t = process(upid);
    if (!t || (t != current && t->parent != current))
        return -ESRCH;
    int pgid = upgid ? (int)upgid : t->tgid;
    if (t->sid != current->sid || t->sid == t->tgid)
        return t->sid == t->tgid ? -EPERM : -ESRCH;     /* a session leader stays */
    if (pgid != t->tgid) {
        struct task *m = all_tasks;
        while (m && !(m->pgid == pgid && m->sid == current->sid && m->state != TASK_ZOMBIE))
            m = m->all_next;
        if (!m)
            return -EPERM;
    }
    t->pgid = pgid;
    return 0;
}

/* The one user is root, and stays root: a change to another ID is refused
 * rather than pretended (nothing here could act as another user). */
long sys_setid(uint64_t id)
{
    return (uint32_t)id == 0 || (uint32_t)id == (uint32_t)-1 ? 0 : -EPERM;
}

long sys_setresid(uint64_t a, uint64_t b, uint64_t c)
{
    return sys_setid(a) || sys_setid(b) || sys_setid(c) ? -EPERM : 0;
}

long sys_setreid(uint64_t a, uint64_t b)
{
    return sys_setresid(a, b, (uint64_t)-1);
}

long sys_getresid(uint64_t a, uint64_t b, uint64_t c)
{
    static const uint32_t root = 0;
    if (copy_to_user(a, &root, 4) || copy_to_user(b, &root, 4) || copy_to_user(c, &root, 4))
        return -EFAULT;
    return 0;
}

long sys_getgroups(uint64_t size, uint64_t list)
{
    (void)size; (void)list;
    return 0;                           /* no supplementary groups */
}

long sys_set_tid_address(uint64_t tidptr)
{
    current->clear_child_tid = tidptr;
    return current->pid;
}

long sys_set_robust_list(uint64_t head, uint64_t len)
{
    if (len != ROBUST_LIST_HEAD_SIZE)
        return -EINVAL;
    current->robust_list = head;
    current->robust_len = len;
    return 0;
}

long sys_prlimit64(uint64_t pid, uint64_t resource, uint64_t new_limit, uint64_t old_limit)
{
    if (pid && (int)pid != current->tgid)
        return -ESRCH;
    if (resource >= RLIM_NLIMITS)
        return -EINVAL;
    uint64_t wanted[2];
    if (new_limit) {
        if (copy_from_user(wanted, new_limit, sizeof wanted) < 0)
            return -EFAULT;
        if (wanted[0] > wanted[1])
            return -EINVAL;
        if (resource == RLIMIT_NOFILE && wanted[1] > NOFILE_MAX)
            return -EPERM;              /* beyond the descriptor table (Linux: nr_open) */
    }
    uint64_t old[2] = { current->rlim_cur[resource], current->rlim_max[resource] };
    if (old_limit && copy_to_user(old_limit, old, sizeof old) < 0)
        return -EFAULT;
    if (new_limit) {
        current->rlim_cur[resource] = wanted[0];
        current->rlim_max[resource] = wanted[1];
    }
    return 0;
}

long sys_getrlimit(uint64_t resource, uint64_t rlim)
{
    return sys_prlimit64(0, resource, 0, rlim);
}

long sys_setrlimit(uint64_t resource, uint64_t rlim)
{
    return sys_prlimit64(0, resource, rlim, 0);
}

long sys_prctl(uint64_t option, uint64_t arg2)
{
    switch (option) {
    case PR_SET_NAME: {
        char name[TASK_COMM_LEN];
        long n = strncpy_from_user(name, arg2, TASK_COMM_LEN);
        if (n == -EFAULT)
            return -EFAULT;
        name[TASK_COMM_LEN - 1] = 0;
        memcpy(current->comm, name, TASK_COMM_LEN);
        return 0;
    }
    case PR_GET_NAME:
        return copy_to_user(arg2, current->comm, TASK_COMM_LEN);
    case PR_SET_PDEATHSIG:
        return arg2 <= NSIG ? 0 : -EINVAL;
    case PR_GET_DUMPABLE:
        return 1;
    case PR_SET_DUMPABLE:
        return arg2 <= 1 ? 0 : -EINVAL;
    case PR_SET_NO_NEW_PRIVS:
        return arg2 == 1 ? 0 : -EINVAL;
    case PR_GET_NO_NEW_PRIVS:
        return 0;
    case PR_SET_CHILD_SUBREAPER:
        current->child_subreaper = arg2 != 0;
        return 0;
    case PR_GET_CHILD_SUBREAPER: {
        int v = current->child_subreaper;
        return copy_to_user(arg2, &v, sizeof v);
    }
    default:
        return -EINVAL;
    }
}

long sys_arch_prctl(uint64_t code, uint64_t addr)
{
    switch (code) {
    case ARCH_SET_FS:
    case ARCH_SET_GS:
        if (addr >= USER_CANONICAL_END)
            return -EPERM;
        /* The syscall paths leave the user's GS base in MSR_GS_BASE. */
        wrmsr(code == ARCH_SET_FS ? MSR_FS_BASE : MSR_GS_BASE, addr);
        *(code == ARCH_SET_FS ? &current->fs_base : &current->gs_base) = addr;
        return 0;
    case ARCH_GET_FS:
    case ARCH_GET_GS: {
        uint64_t v = rdmsr(code == ARCH_GET_FS ? MSR_FS_BASE : MSR_GS_BASE);
        return copy_to_user(addr, &v, 8);
    }
    case ARCH_GET_CPUID:
        return 1;                       /* cpuid works */
    default:
        return -EINVAL;
    }
}

/* exit ends the calling thread (the process with its last thread);
 * exit_group every thread (thread.c). */
long sys_exit(uint64_t status)
{
    do_exit(thread_exit(((int)status & 0xff) << 8, 0));
}

long sys_exit_group(uint64_t status)
{
    task_exit((int)status);
}

/* kill(2): one process, a group (0: the caller's, -pgid), or every process
 * but PID 1 and the caller (-1).  Signal 0 only checks. */
long sys_kill(uint64_t upid, uint64_t sig)
{
    int pid = (int)upid;
    if (sig > NSIG)
        return -EINVAL;
    if (pid > 0) {
        struct task *t = task_by_pid(pid);
        if (!t) {
            for (t = all_tasks; t && t->pid != pid; t = t->all_next)
                ;
            return t ? 0 : -ESRCH;      /* Linux: a zombie takes a signal, to no effect */
        }
        signal_send(thread_for_signal(t, (int)sig), (int)sig, SI_USER, 0);
        return 0;
    }
    int pgid = pid == 0 ? current->pgid : -pid, found = 0;
    for (struct task *t = all_tasks; t; t = t->all_next) {
        if (t->state == TASK_ZOMBIE || t->pid != t->tgid)
            continue;                   /* a process once: its leader stands for its threads */
        if (pid == -1 ? (t->pid == 1 || t == current) : t->pgid != pgid)
            continue;
        found = 1;
        signal_send(thread_for_signal(t, (int)sig), (int)sig, SI_USER, 0);
    }
    if (pid == -1 && current->pid != 1)
        found = 1;                      /* kill(-1) with no one else: Linux succeeds when it sent any */
    return found ? 0 : -ESRCH;
}

long sys_tgkill(uint64_t tgid, uint64_t tid, uint64_t sig)
{
    if ((int)tgid <= 0 || (int)tid <= 0 || sig > NSIG)
        return -EINVAL;
    struct task *t = task_by_pid((int)tid);
    if (!t || t->tgid != (int)tgid)
        return -ESRCH;
    signal_send(t, (int)sig, SI_TKILL, 0);
    return 0;
}

long sys_tkill(uint64_t tid, uint64_t sig)
{
    struct task *t = task_by_pid((int)tid);
    return t ? sys_tgkill((uint64_t)t->tgid, tid, sig) : -ESRCH;
}
