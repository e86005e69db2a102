/*
 * Signals for CPU faults, Linux-compatible (arch/x86/kernel/signal.c):
 * rt_sigaction stores handlers, a fault builds struct rt_sigframe on the
 * user stack and enters the handler, rt_sigreturn restores the saved
 * registers.  No signal is ever sent asynchronously, so nothing is pending.
 *
 * As in Linux (force_sig_fault), a fault whose signal is blocked or ignored
 * kills the program.  The FPU/SSE state is not saved (fpstate = NULL): the
 * kernel never touches it, so only a handler that changes SSE registers and
 * then returns would be noticed.
 */
#include "signal.h"
#include "kernel.h"
#include "layout.h"
#include "serial.h"
#include "uspace.h"

struct k_sigaction {            /* the kernel's layout, not glibc's */
    uint64_t handler, flags, restorer, mask;
};

struct sigcontext {             /* = uc_mcontext, gregs[] in this order */
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
    uint16_t cs, gs, fs, ss;
    uint64_t err, trapno, oldmask, cr2;
    uint64_t fpstate;
    uint64_t reserved[8];
};

struct ucontext {
    uint64_t uc_flags, uc_link;
    uint64_t ss_sp;
    uint32_t ss_flags, ss_pad;
    uint64_t ss_size;
    struct sigcontext mc;
    uint64_t sigmask;
};

struct siginfo {
    int32_t signo, errno_, code, pad;
    uint64_t addr;              /* offset 16 */
    uint8_t rest[128 - 24];
};

struct rt_sigframe {
    uint64_t pretcode;          /* the restorer: the handler's return address */
    struct ucontext uc;
    struct siginfo info;
};

_Static_assert(sizeof(struct sigcontext) == 256, "sigcontext layout");
_Static_assert(sizeof(struct ucontext) == 304, "ucontext layout");
_Static_assert(sizeof(struct siginfo) == 128, "siginfo layout");

static struct k_sigaction actions[NSIG + 1];
static uint64_t blocked;

static uint64_t sigbit(uint64_t sig) { return 1ull << (sig - 1); }
#define UNBLOCKABLE (sigbit(SIGKILL) | sigbit(SIGSTOP))

long sys_rt_sigaction(uint64_t sig, uint64_t act, uint64_t oact, uint64_t size)
{
    if (size != 8 || sig < 1 || sig > NSIG)
        return -EINVAL;
    if (act && (sig == SIGKILL || sig == SIGSTOP))
        return -EINVAL;
    if (!user_ok(act, act ? sizeof(struct k_sigaction) : 0, 0) ||
        !user_ok(oact, oact ? sizeof(struct k_sigaction) : 0, 1))
        return -EFAULT;
    struct k_sigaction old = actions[sig];
    if (act) {
        actions[sig] = *(const struct k_sigaction *)act;
        actions[sig].mask &= ~UNBLOCKABLE;
    }
    if (oact)
        *(struct k_sigaction *)oact = old;
    return 0;
}

long sys_rt_sigprocmask(uint64_t how, uint64_t set, uint64_t oset, uint64_t size)
{
    if (size != 8)
        return -EINVAL;
    if (!user_ok(set, set ? 8 : 0, 0) || !user_ok(oset, oset ? 8 : 0, 1))
        return -EFAULT;
    uint64_t old = blocked;
    if (set) {
        uint64_t s = *(const uint64_t *)set;
        if (how == SIG_BLOCK)
            blocked |= s;
        else if (how == SIG_UNBLOCK)
            blocked &= ~s;
        else if (how == SIG_SETMASK)
            blocked = s;
        else
            return -EINVAL;
        blocked &= ~UNBLOCKABLE;
    }
    if (oset)
        *(uint64_t *)oset = old;
    return 0;
}

static void save_regs(struct sigcontext *mc, const struct regs *r)
{
    mc->r8 = r->r8;   mc->r9 = r->r9;   mc->r10 = r->r10; mc->r11 = r->r11;
    mc->r12 = r->r12; mc->r13 = r->r13; mc->r14 = r->r14; mc->r15 = r->r15;
    mc->rdi = r->rdi; mc->rsi = r->rsi; mc->rbp = r->rbp; mc->rbx = r->rbx;
    mc->rdx = r->rdx; mc->rax = r->rax; mc->rcx = r->rcx; mc->rsp = r->rsp;
    mc->rip = r->rip; mc->eflags = r->rflags;
    mc->cs = USER_CS;
    mc->ss = USER_DS;
}

int signal_deliver(struct regs *r, int sig, int code, uint64_t addr, uint64_t cr2)
{
    struct k_sigaction *ka = &actions[sig];
    if (ka->handler == SIG_DFL || ka->handler == SIG_IGN || (blocked & sigbit(sig)) ||
        !(ka->flags & SA_RESTORER))
        return 0;

    /* Below the red zone; at handler entry (RSP + 8) is 16-byte aligned. */
    uint64_t sp = r->rsp - SIGNAL_RED_ZONE - sizeof(struct rt_sigframe);
    sp = ALIGN_DOWN(sp, 16) - 8;
    if (sp > r->rsp || !user_ok(sp, sizeof(struct rt_sigframe), 1))
        return 0;

    struct rt_sigframe *f = (struct rt_sigframe *)sp;
    memset(f, 0, sizeof *f);
    f->pretcode = ka->restorer;
    f->uc.uc_flags = UC_SIGCONTEXT_SS;
    f->uc.ss_flags = SS_DISABLE;
    save_regs(&f->uc.mc, r);
    f->uc.mc.err = r->error;
    f->uc.mc.trapno = r->vector;
    f->uc.mc.oldmask = blocked;
    f->uc.mc.cr2 = cr2;
    f->uc.sigmask = blocked;
    f->info.signo = sig;
    f->info.code = code;
    f->info.addr = addr;

    r->rdi = sig;
    r->rsi = (uint64_t)&f->info;
    r->rdx = (uint64_t)&f->uc;
    r->rax = 0;
    r->rip = ka->handler;
    r->rsp = sp;
    r->rflags &= ~(RFLAGS_TF | RFLAGS_DF);
    blocked |= ka->mask | ((ka->flags & SA_NODEFER) ? 0 : sigbit(sig));
    blocked &= ~UNBLOCKABLE;
    if (ka->flags & SA_RESETHAND)
        ka->handler = SIG_DFL;
    return 1;
}

static void restore_regs(struct regs *r, const struct sigcontext *mc)
{
    r->r8 = mc->r8;   r->r9 = mc->r9;   r->r10 = mc->r10; r->r11 = mc->r11;
    r->r12 = mc->r12; r->r13 = mc->r13; r->r14 = mc->r14; r->r15 = mc->r15;
    r->rdi = mc->rdi; r->rsi = mc->rsi; r->rbp = mc->rbp; r->rbx = mc->rbx;
    r->rdx = mc->rdx; r->rax = mc->rax; r->rcx = mc->rcx; r->rsp = mc->rsp;
    r->rip = mc->rip;
    /* Only user-changeable flags; CS/SS are always the user selectors. */
    r->rflags = USER_RFLAGS_SET | (mc->eflags & RFLAGS_USER_MASK);
    r->cs = USER_CS;
    r->ss = USER_DS;
}

/* The handler returned into the restorer, which popped pretcode: RSP now
 * points at the ucontext. */
void sys_rt_sigreturn(struct regs *r)
{
    const struct ucontext *uc = (const struct ucontext *)r->rsp;
    if (!user_ok(r->rsp, sizeof *uc, 0) || uc->mc.rip >= USER_CANONICAL_END) {
        /* Linux sends SIGSEGV; with no way to deliver it, the program dies. */
        serial_start_line();
        serial_puts("fault: bad rt_sigreturn frame rsp=");
        serial_put_hex(r->rsp);
        serial_puts("\n");
        vm_exit(EXIT_SIGNAL_BASE + SIGSEGV);
    }
    restore_regs(r, &uc->mc);
    blocked = uc->sigmask & ~UNBLOCKABLE;
}
