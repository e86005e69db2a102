/* Signal handlers through rt_sigaction, in the Linux x86-64 kernel layout.
 *
 * A handler installed with SA_SIGINFO is called as
 *     handler(int sig, siginfo_t *info, void *ucontext)
 * where ucontext points at a ucontext_t whose uc_mcontext.gregs[] hold the
 * interrupted registers. Changing gregs[REG_RIP] and returning resumes there
 * (the return goes through the SA_RESTORER stub, which calls rt_sigreturn).
 */
#ifndef LIBC_SIGNAL_H
#define LIBC_SIGNAL_H

#include <stddef.h>

#include <linux_abi.h>      /* SIGHUP ... SIGSYS: the numbers the kernel uses */

#define SA_SIGINFO   0x00000004UL
#define SA_RESTORER  0x04000000UL
#define SA_ONSTACK   0x08000000UL
#define SA_RESTART   0x10000000UL
#define SA_NODEFER   0x40000000UL
#define SA_RESETHAND 0x80000000UL

/* si_code values for the faults a program can cause. */
#define SI_KERNEL    0x80   /* e.g. #GP: no faulting address */
#define SEGV_MAPERR  1      /* #PF: address not mapped */
#define SEGV_ACCERR  2      /* #PF: no permission for the access */
#define ILL_ILLOPN   2      /* #UD: illegal operand/opcode */
#define FPE_INTDIV   1      /* #DE: integer divide by zero */

#define SIG_DFL ((void (*)(int))0)
#define SIG_IGN ((void (*)(int))1)

typedef unsigned long sigset_t;     /* the kernel's 64-bit mask */

typedef struct {
    int si_signo;
    int si_errno;
    int si_code;
    int _pad0;
    union {
        void *si_addr;              /* SIGSEGV, SIGILL, SIGFPE, SIGBUS */
        int _pad[28];
    };
} siginfo_t;                        /* 128 bytes */

struct sigaction {
    union {
        void (*sa_handler)(int);
        void (*sa_sigaction)(int, siginfo_t *, void *);
    };
    unsigned long sa_flags;
    void (*sa_restorer)(void);
    sigset_t sa_mask;
};

/* Indices into mcontext_t.gregs (the kernel's struct sigcontext order). */
enum {
    REG_R8, REG_R9, REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15,
    REG_RDI, REG_RSI, REG_RBP, REG_RBX, REG_RDX, REG_RAX, REG_RCX, REG_RSP,
    REG_RIP, REG_EFL, REG_CSGSFS, REG_ERR, REG_TRAPNO, REG_OLDMASK, REG_CR2,
    NGREG
};

typedef struct {
    unsigned long gregs[NGREG];
    void *fpregs;                   /* saved FPU/SSE state, or NULL */
    unsigned long _reserved[8];
} mcontext_t;

typedef struct {
    void *ss_sp;
    int ss_flags;
    size_t ss_size;
} stack_t;

typedef struct ucontext {
    unsigned long uc_flags;
    struct ucontext *uc_link;
    stack_t uc_stack;
    mcontext_t uc_mcontext;         /* at offset 40 */
    sigset_t uc_sigmask;
} ucontext_t;

/* The raw call: `act` is passed as is (it must carry SA_RESTORER and a
 * restorer on x86-64). Returns 0 or -errno. */
int rt_sigaction(int sig, const struct sigaction *act, struct sigaction *oldact);

/* Like rt_sigaction, but adds SA_RESTORER and __restore_rt to `act` when it
 * has no restorer of its own. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact);

/* The restorer stub: a signal handler returns into it; it calls
 * rt_sigreturn. Never call it directly. */
void __restore_rt(void);

#endif
