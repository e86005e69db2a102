/*
 * Signals, Linux-compatible (kernel/signal.c, arch/x86/kernel/signal.c):
 * rt_sigaction, rt_sigprocmask, rt_sigpending, sigaltstack, rt_sigreturn,
 * pending signals (kill/tgkill to itself) delivered on the way back to user
 * mode, and synchronous fault signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
 * SIGTRAP) with their si_code and si_addr.
 *
 * The frame (struct rt_sigframe) goes on the user stack below the red zone,
 * or on the alternate stack for SA_ONSTACK handlers; the FPU/SSE state is
 * saved after it with fxsave (512 bytes, legacy format: no xstate magic) and
 * restored by rt_sigreturn with fxrstor, after the MXCSR reserved bits a
 * handler may have set are cleared (they would fault fxrstor in ring 0).
 *
 * As for Linux's init, PID 1 never gets a signal it has no handler for,
 * unless the kernel forces it (a fault): a default action is ignored.  Stop
 * signals are ignored too (there is no one to continue the task).
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "proc/wait.h"
#include "serial.h"
#include "syscall/strace.h"

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
    union {
        uint64_t addr;          /* faults: offset 16 */
        struct { int32_t pid; uint32_t uid; } kill;
    };
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

#define MXCSR_OFFSET   24               /* in the fxsave area */
#define MXCSR_VALID    0xffff           /* the bits fxrstor accepts (MXCSR_MASK on every SSE2 CPU) */

static uint64_t sigbit(int sig) { return 1ull << (sig - 1); }
#define UNBLOCKABLE (sigbit(SIGKILL) | sigbit(SIGSTOP))
#define DEFAULT_IGNORE (sigbit(SIGCHLD) | sigbit(SIGURG) | sigbit(SIGWINCH) | sigbit(SIGCONT) | \
                        sigbit(SIGSTOP) | sigbit(SIGTSTP) | sigbit(SIGTTIN) | sigbit(SIGTTOU))
#define SYNCHRONOUS (sigbit(SIGSEGV) | sigbit(SIGBUS) | sigbit(SIGILL) | sigbit(SIGTRAP) | \
                     sigbit(SIGFPE) | sigbit(SIGSYS))

static void update_work(void)
{
    if (current->pending & ~current->blocked)
        user_return_work = 1;
}

long sys_rt_sigaction(uint64_t sig, uint64_t act, uint64_t oact, uint64_t size)
{
    if (size != 8 || sig < 1 || sig > NSIG)
        return -EINVAL;
    if (act && (sig == SIGKILL || sig == SIGSTOP))
        return -EINVAL;
    struct k_sigaction *ka = &current->sighand->action[sig], new;
    if (act && copy_from_user(&new, act, sizeof new) < 0)
        return -EFAULT;
    if (oact && copy_to_user(oact, ka, sizeof *ka) < 0)
        return -EFAULT;
    if (act) {
        new.mask &= ~UNBLOCKABLE;
        *ka = new;
        if (new.handler == SIG_IGN || (new.handler == SIG_DFL && (DEFAULT_IGNORE & sigbit((int)sig))))
            current->pending &= ~sigbit((int)sig);      /* POSIX: discarded */
    }
    return 0;
}

long sys_rt_sigprocmask(uint64_t how, uint64_t set, uint64_t oset, uint64_t size)
{
    if (size != 8)
        return -EINVAL;
    uint64_t old = current->blocked, s;
    if (set) {
        if (copy_from_user(&s, set, 8) < 0)
            return -EFAULT;
        if (how == SIG_BLOCK)
            current->blocked |= s;
        else if (how == SIG_UNBLOCK)
            current->blocked &= ~s;
        else if (how == SIG_SETMASK)
            current->blocked = s;
        else
            return -EINVAL;
        current->blocked &= ~UNBLOCKABLE;
    }
    if (oset && copy_to_user(oset, &old, 8) < 0)
        return -EFAULT;
    update_work();
    return 0;
}

long sys_rt_sigpending(uint64_t set, uint64_t size)
{
    if (size > 8)
        return -EINVAL;
    uint64_t p = current->pending & current->blocked;
    return copy_to_user(set, &p, size);
}

static int on_altstack(uint64_t sp)
{
    return current->altstack_size && sp - current->altstack_sp <= current->altstack_size;
}

/* sigaltstack(ss, old_ss) with the user RSP from r: the full path. */
void sys_sigaltstack(struct regs *r)
{
    uint64_t ss = r->rdi, old = r->rsi;
    struct { uint64_t sp; int32_t flags, pad; uint64_t size; } cur, next;
    cur.sp = current->altstack_sp;
    cur.size = current->altstack_size;
    cur.flags = current->altstack_size ? (on_altstack(r->rsp) ? SS_ONSTACK : 0) : SS_DISABLE;
    cur.pad = 0;
    r->rax = 0;
    if (ss) {
        if (copy_from_user(&next, ss, sizeof next) < 0) {
            r->rax = (uint64_t)-EFAULT;
            return;
        }
        uint32_t mode = (uint32_t)next.flags & ~SS_AUTODISARM;
        if (on_altstack(r->rsp))
            r->rax = (uint64_t)-EPERM;
        else if (mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK)
            r->rax = (uint64_t)-EINVAL;
        else if (mode != SS_DISABLE && next.size < MINSIGSTKSZ)
            r->rax = (uint64_t)-ENOMEM;
    }
    if (old && r->rax == 0 && copy_to_user(old, &cur, sizeof cur) < 0)
        r->rax = (uint64_t)-EFAULT;
    if (ss && r->rax == 0) {
        int off = ((uint32_t)next.flags & ~SS_AUTODISARM) == SS_DISABLE;
        current->altstack_sp = off ? 0 : next.sp;
        current->altstack_size = off ? 0 : next.size;
        current->altstack_flags = (uint32_t)next.flags;
    }
}

void signal_send(struct task *t, int sig, int code, uint64_t addr)
{
    if (sig == 0)
        return;
    uint64_t bit = sigbit(sig);
    struct k_sigaction *ka = &t->sighand->action[sig];
    int ignored = ka->handler == SIG_IGN ||
                  (ka->handler == SIG_DFL && ((DEFAULT_IGNORE & bit) || (t->tgid == 1 && code != SI_KERNEL)));
    if (ignored && !(t->blocked & bit))
        return;
    t->pending |= bit;
    t->info[sig] = (struct pending_info){ code, current->tgid, 0, addr };
    if (t == current)
        update_work();
    else if (!(t->blocked & bit))
        task_wake(t);                   /* out of an interruptible sleep (issue 15a) */
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

/* Build the frame and point r at the handler: 1, or 0 if the stack is bad. */
static int setup_frame(struct regs *r, int sig, const struct pending_info *info, uint64_t cr2, uint64_t error,
                       uint64_t trapno)
{
    struct k_sigaction *ka = &current->sighand->action[sig];
    uint64_t sp = r->rsp - SIGNAL_RED_ZONE;
    if ((ka->flags & SA_ONSTACK) && current->altstack_size && !on_altstack(r->rsp))
        sp = current->altstack_sp + current->altstack_size;
    uint64_t fp = ALIGN_DOWN(sp - FXSAVE_SIZE, 64);
    sp = ALIGN_DOWN(fp - sizeof(struct rt_sigframe), 16) - 8;   /* at handler entry (RSP + 8) is 16-aligned */
    if (sp > r->rsp && !(ka->flags & SA_ONSTACK))
        return 0;
    if (!user_ok(sp, fp + FXSAVE_SIZE - sp, 1))
        return 0;
    __asm__ volatile("fxsave64 (%0)" :: "r"(fp) : "memory");

    struct rt_sigframe *f = (struct rt_sigframe *)sp;
    memset(f, 0, sizeof *f);
    f->pretcode = ka->restorer;
    f->uc.uc_flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
    f->uc.ss_sp = current->altstack_sp;
    f->uc.ss_size = current->altstack_size;
    f->uc.ss_flags = current->altstack_size ? (on_altstack(r->rsp) ? SS_ONSTACK : 0) : SS_DISABLE;
    save_regs(&f->uc.mc, r);
    f->uc.mc.err = error;
    f->uc.mc.trapno = trapno;
    uint64_t saved = current->restore_blocked ? current->saved_blocked : current->blocked;
    current->restore_blocked = 0;
    f->uc.mc.oldmask = saved;
    f->uc.mc.cr2 = cr2;
    f->uc.mc.fpstate = fp;
    f->uc.sigmask = saved;
    f->info.signo = sig;
    f->info.code = info->code;
    if (info->code == SI_USER || info->code == SI_TKILL) {
        f->info.kill.pid = info->pid;
        f->info.kill.uid = (uint32_t)info->uid;
    } else {
        f->info.addr = info->addr;
    }

    r->rdi = (uint64_t)sig;
    r->rsi = (uint64_t)&f->info;
    r->rdx = (uint64_t)&f->uc;
    r->rax = 0;
    r->rip = ka->handler;
    r->rsp = sp;
    r->rflags &= ~(uint64_t)(RFLAGS_TF | RFLAGS_DF);
    current->blocked |= ka->mask | ((ka->flags & SA_NODEFER) ? 0 : sigbit(sig));
    current->blocked &= ~UNBLOCKABLE;
    if (ka->flags & SA_RESETHAND)
        ka->handler = SIG_DFL;
    if (current->altstack_flags & SS_AUTODISARM && (ka->flags & SA_ONSTACK))
        current->altstack_sp = current->altstack_size = 0;
    strace_signal(sig, info->code, info->addr, info->pid, info->uid);
    return 1;
}

void task_kill_by_signal(int sig)
{
    do_exit(sig);                       /* wait status: the signal in the low 7 bits */
}

int signal_force(struct regs *r, int sig, int code, uint64_t addr, uint64_t cr2)
{
    struct k_sigaction *ka = &current->sighand->action[sig];
    if (ka->handler == SIG_IGN || (current->blocked & sigbit(sig))) {
        ka->handler = SIG_DFL;          /* force_sig_info: a blocked or ignored fault kills */
        current->blocked &= ~sigbit(sig);
    }
    if (ka->handler == SIG_DFL || !(ka->flags & SA_RESTORER))
        return 0;
    struct pending_info info = { code, 0, 0, addr };
    return setup_frame(r, sig, &info, cr2, r->error, r->vector);
}

long restart_syscall(void)
{
    user_return_work = 1;               /* the way back decides (signal_deliver_pending) */
    return -ERESTARTSYS;
}

/* An interrupted call that restart_syscall() marked: again (RAX = the call's
 * number, which traps.S keeps in r->error, and RIP back on the 2-byte
 * `syscall`), or -EINTR for a handler without SA_RESTART. */
static void finish_interrupted_call(struct regs *r, int again)
{
    if (r->vector != (uint64_t)-1 || (long)r->rax != -ERESTARTSYS)
        return;
    if (again) {
        r->rax = r->error;
        r->rip -= 2;
    } else {
        r->rax = (uint64_t)-EINTR;
    }
}

void signal_deliver_pending(struct regs *r)
{
    uint64_t ready;
    while ((ready = current->pending & ~current->blocked)) {
        uint64_t pick = (ready & SYNCHRONOUS) ? (ready & SYNCHRONOUS) : ready;
        int sig = __builtin_ctzll(pick) + 1;
        current->pending &= ~sigbit(sig);
        struct k_sigaction *ka = &current->sighand->action[sig];
        if (ka->handler == SIG_IGN)
            continue;
        if (ka->handler == SIG_DFL) {
            if ((DEFAULT_IGNORE & sigbit(sig)) || (current->tgid == 1 && current->info[sig].code != SI_KERNEL))
                continue;               /* init ignores them, but not its group's end (thread.c) */
            const struct pending_info *info = &current->info[sig];
            strace_signal(sig, info->code, info->addr, info->pid, info->uid);   /* strace shows it, then the death */
            task_kill_by_signal(sig);
        }
        finish_interrupted_call(r, (ka->flags & SA_RESTART) != 0);     /* before the frame saves r */
        if (!(ka->flags & SA_RESTORER) || !setup_frame(r, sig, &current->info[sig], 0, 0, 0))
            task_kill_by_signal(SIGSEGV);       /* Linux: a frame that cannot be written */
        /* On to the next: as Linux, a frame for each, the last built runs first. */
    }
    finish_interrupted_call(r, 1);      /* no handler ran: as if nothing had happened */
    if (current->restore_blocked) {     /* rt_sigsuspend, and no handler ran */
        current->blocked = current->saved_blocked;
        current->restore_blocked = 0;
    }
    user_return_work = (current->pending & ~current->blocked) != 0;
}

/* ---- Waiting for a signal (issue 15a): pause, rt_sigsuspend.  Only a signal
 * wakes the sleeper (signal_send's task_wake); no one wakes this queue. */
static struct waitq signal_wq;

long sys_pause(void)
{
    while (!signal_pending())
        waitq_sleep(&signal_wq);
    return -EINTR;
}

/* The mask is the given one until a signal arrives; the handler's frame
 * saves the old one, which its sigreturn restores (or, with no handler, it
 * comes back at the return). */
/* ppoll, pselect6, epoll_pwait (issue 15b): the caller's mask for the
 * wait, then back as rt_sigsuspend's: at once, or after the handler of the
 * signal that interrupted the wait. */
long signal_mask_for_wait(uint64_t set, uint64_t size)
{
    uint64_t mask;
    if (!set)
        return 0;
    if (size != 8)
        return -EINVAL;
    if (copy_from_user(&mask, set, 8) < 0)
        return -EFAULT;
    current->saved_blocked = current->blocked;
    current->restore_blocked = 1;
    current->blocked = mask & ~UNBLOCKABLE;
    return 0;
}

void signal_mask_after_wait(long result)
{
    if (!current->restore_blocked)
        return;
    if (result == -EINTR) {
        user_return_work = 1;           /* the handler's frame keeps the caller's mask */
        return;
    }
    current->blocked = current->saved_blocked;
    current->restore_blocked = 0;
    update_work();
}

long sys_rt_sigsuspend(uint64_t set, uint64_t size)
{
    long err = set ? signal_mask_for_wait(set, size) : -EFAULT;
    if (err)
        return err;
    while (!signal_pending())
        waitq_sleep(&signal_wq);
    user_return_work = 1;
    return -EINTR;
}

void return_to_user_work(struct regs *r)
{
    signal_deliver_pending(r);
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

/* The FPU/SSE state a frame saved (fxsave format), or nothing if fpstate is 0. */
static int restore_fpu(uint64_t fpstate)
{
    if (!fpstate)
        return 1;
    static uint8_t area[FXSAVE_SIZE] __attribute__((aligned(16)));
    if (fpstate % 16 || copy_from_user(area, fpstate, FXSAVE_SIZE) < 0)
        return 0;
    uint32_t mxcsr;
    memcpy(&mxcsr, area + MXCSR_OFFSET, 4);
    mxcsr &= MXCSR_VALID;
    memcpy(area + MXCSR_OFFSET, &mxcsr, 4);
    __asm__ volatile("fxrstor64 (%0)" :: "r"(area) : "memory");
    return 1;
}

/* The handler returned into the restorer, which popped pretcode: RSP now
 * points at the ucontext. */
void sys_rt_sigreturn(struct regs *r)
{
    struct ucontext uc;
    if (copy_from_user(&uc, r->rsp, sizeof uc) < 0 || uc.mc.rip >= USER_CANONICAL_END ||
        !restore_fpu(uc.mc.fpstate)) {
        /* Linux sends SIGSEGV; with no way to deliver it, the program dies. */
        serial_start_line();
        serial_puts("fault: bad rt_sigreturn frame rsp=");
        serial_put_hex(r->rsp);
        serial_puts("\n");
        task_kill_by_signal(SIGSEGV);
    }
    restore_regs(r, &uc.mc);
    current->blocked = uc.sigmask & ~UNBLOCKABLE;
    update_work();
}
