/*
 * Processes.  Today one task runs (PID 1, the program the VM boots), but
 * every piece of per-process state lives in struct task and the objects it
 * points to (address space, descriptor table, working directory, signal
 * handlers), so that fork, threads and a scheduler can share or copy them.
 *
 *   task.c     the task, its limits and identities; the small process calls
 *   exec.c     loading an ELF from a file: a new address space and stack
 *   signal.c   handlers, masks, pending signals and their delivery
 */
#ifndef PROC_TASK_H
#define PROC_TASK_H
#include <stdint.h>
#include "regs.h"
#include "uapi.h"

struct mm;
struct files;
struct inode;

struct k_sigaction {            /* the kernel's layout, not glibc's */
    uint64_t handler, flags, restorer, mask;
};

struct sighand {                /* shared by the threads of a process */
    struct k_sigaction action[NSIG + 1];
};

struct pending_info {           /* what the siginfo of a pending signal says */
    int32_t code, pid, uid;
    uint64_t addr;
};

struct task {
    int pid, tgid, ppid;
    struct mm *mm;
    struct files *files;
    struct inode *cwd, *root;
    uint32_t umask;
    struct sighand *sighand;
    uint64_t blocked, pending;
    struct pending_info info[NSIG + 1];
    uint64_t altstack_sp, altstack_size;
    uint32_t altstack_flags;
    uint64_t clear_child_tid, robust_list, robust_len;
    uint64_t rlim_cur[RLIM_NLIMITS], rlim_max[RLIM_NLIMITS];
    char comm[TASK_COMM_LEN];
    struct inode *exe;
    char *exe_path;             /* kmalloc(PATH_MAX): what /proc/self/exe reads */
    uint64_t arg_start, arg_end, env_start, env_end;   /* on the user stack */
    uint64_t fs_base, gs_base;  /* as arch_prctl set them */
    struct task *wait_next;     /* on a waitq (wait.h) */
    /* ---- part A (issue 15a): scheduling and the process tree ---- */
    int state;                  /* TASK_RUNNING, TASK_SLEEPING, TASK_ZOMBIE */
    uint64_t ksp;               /* saved kernel RSP while switched out (sched.c) */
    uint64_t kstack_top;        /* TSS.RSP0 and the syscall stack while it runs */
    uint64_t kstack_pa;         /* its KSTACK_PAGES (0: the boot stack, PID 1) */
    void *fpu;                  /* FXSAVE_AREA bytes: user x87/SSE state while switched out */
    int slice;                  /* ticks left before preemption */
    struct task *run_next;      /* on the run queue */
    struct task *parent, *children, *sibling;
    struct task *all_next;      /* every task (kill -1, process groups) */
    int pgid, sid;
    int exit_status;            /* for wait4: Linux's encoding */
    int exit_signal;            /* sent to the parent at exit (clone's CSIGNAL bits) */
    uint64_t set_child_tid;     /* CLONE_CHILD_SETTID: written on the child's first return */
    struct task *vfork_parent;  /* waiting in vfork until this task execs or exits */
    uint64_t saved_blocked;     /* rt_sigsuspend: the mask the next signal frame restores */
    int restore_blocked;        /* ... when set */
    int child_subreaper;        /* PR_SET_CHILD_SUBREAPER: orphans below come here, not to PID 1 */
    /* ---- part C (issue 15c): threads ---- */
    struct thread_group *group; /* NULL until the process's first thread (thread.c) */
    uint8_t own_files;          /* a thread cloned without CLONE_FILES: its own table */
    /* ---- issue 15g: ITIMER_REAL, in the process's leader only (itimer.c) ---- */
    uint64_t itimer_deadline;   /* CLOCK_MONOTONIC ns; 0: disarmed */
    uint64_t itimer_interval;   /* ns; 0: one-shot */
};

enum { TASK_RUNNING, TASK_SLEEPING, TASK_ZOMBIE };

/* The running task.  `user_return_work` is non-zero when the way back to
 * user mode has something to do (a signal to deliver): the system-call fast
 * path tests it (two instructions) and otherwise returns directly. */
extern struct task *current;
extern volatile uint8_t user_return_work;

struct task *task_init(void);                 /* PID 1, before the first exec */
/* Work before returning to user mode with r: deliver pending signals. */
void return_to_user_work(struct regs *r);

/* exec.c: replace the task's program with the ELF file at path (argv and
 * envp are kernel strings).  Returns only on failure, with -errno. */
long exec_file(const char *path, char *const argv[], char *const envp[]);

/* signal.c */
void signal_send(struct task *t, int sig, int code, uint64_t addr);
/* A synchronous fault signal: delivered now into r, or the task dies.
 * Returns 1 when r now enters the handler. */
int signal_force(struct regs *r, int sig, int code, uint64_t addr, uint64_t cr2);
void signal_deliver_pending(struct regs *r);
void sys_rt_sigreturn(struct regs *r);
/* ppoll, pselect6, epoll_pwait: install the user's mask (set may be 0) for
 * a wait, 0 or -errno; then restore it given the wait's result. */
long signal_mask_for_wait(uint64_t set, uint64_t size);
void signal_mask_after_wait(long result);
void task_exit(int status) __attribute__((noreturn));

/* sched.c (issue 15a) */
extern struct task *all_tasks;
extern int nr_tasks;
void schedule(void);                          /* run someone else if there is someone */
void task_wake(struct task *t);               /* a sleeping task becomes runnable */
void task_make_runnable(struct task *t);      /* a new one */
struct task *task_by_pid(int pid);
int pid_alloc(void);
extern int last_pid;                          /* the last PID given: with nr_tasks, procfs sees a change */
uint64_t kstack_alloc(void);                  /* physical base of KSTACK_PAGES, or 0 */
void kstack_free(uint64_t pa);
uint64_t kstack_cached_pages(void);
void timer_tick_work(struct regs *r);         /* traps.S: a tick from user mode with work */
/* fork.c / exit.c */
void do_exit(int wait_status) __attribute__((noreturn));   /* the one way a task ends */
void task_release(struct task *t);            /* free a reaped zombie */
void free_autoreaped(void);                    /* children released at exit (SIGCHLD ignored) */
int task_listed(struct task *t);               /* still in all_tasks (not released) */
void fork_regs(struct regs *r);               /* fork, vfork, clone: full path */
/* The kernel stack of a new task t: a copy of r (RAX = 0) and a frame
 * that starts it at ret_from_fork. */
void task_stack_setup(struct task *t, const struct regs *r);
void sys_execve_regs(struct regs *r);
/* End the process for signal sig (default action), with a report line. */
void task_kill_by_signal(int sig) __attribute__((noreturn));

#endif
