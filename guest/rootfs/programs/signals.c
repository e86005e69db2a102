/* signals: handlers entered and left through rt_sigreturn, as the C library
 * sets them up: raise and kill to itself, masks (a blocked signal waits and
 * arrives when unblocked), SA_RESETHAND, SA_SIGINFO with si_code, the
 * alternate stack (SA_ONSTACK), synchronous faults (SIGFPE from a division
 * by zero, SIGILL from ud2, SIGTRAP from int3) with their si_code and
 * si_addr, and the floating-point registers surviving a handler that uses
 * them. */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>
#include "common.h"

static volatile int count[65];
static volatile int order[8], norder;
static volatile int last_code;
static volatile uintptr_t last_addr;
static volatile int on_altstack;
static char altstack[65536];
static sigjmp_buf escape;

static void counting(int sig)
{
    count[sig]++;
    if (norder < 8)
        order[norder++] = sig;
}

static void with_info(int sig, siginfo_t *info, void *context)
{
    (void)context;
    count[sig]++;
    last_code = info->si_code;
    last_addr = (uintptr_t)info->si_addr;
}

static void where_am_i(int sig)
{
    char here;
    count[sig]++;
    on_altstack = &here >= altstack && &here < altstack + sizeof altstack;
}

static void escaping(int sig, siginfo_t *info, void *context)
{
    (void)context;
    count[sig]++;
    last_code = info->si_code;
    last_addr = (uintptr_t)info->si_addr;
    siglongjmp(escape, 1);
}

/* A handler that clobbers the SSE registers. */
static void float_work(int sig)
{
    volatile double x = 1.0;
    for (int i = 0; i < 100; i++)
        x = x * 1.5 + 0.25;
    count[sig] += x > 0;
}

static void delivery(void)
{
    install(SIGUSR1, counting, 0);
    check(raise(SIGUSR1) == 0 && count[SIGUSR1] == 1, "raise(SIGUSR1) runs the handler");
    check(kill(getpid(), SIGUSR1) == 0 && count[SIGUSR1] == 2, "kill(getpid()) runs it again");
    handle_info(SIGUSR2, with_info);
    check(kill(getpid(), SIGUSR2) == 0 && count[SIGUSR2] == 1 && last_code == SI_USER, "SA_SIGINFO: si_code SI_USER");
    struct sigaction old;
    sigaction(SIGUSR1, NULL, &old);
    check(old.sa_handler == counting, "sigaction reads the handler back");
    install(SIGUSR1, counting, SA_RESETHAND);
    raise(SIGUSR1);
    sigaction(SIGUSR1, NULL, &old);
    check(count[SIGUSR1] == 3 && old.sa_handler == SIG_DFL, "SA_RESETHAND: back to SIG_DFL after one");
    install(SIGUSR1, SIG_IGN, 0);
    check(raise(SIGUSR1) == 0 && count[SIGUSR1] == 3, "an ignored signal is dropped");
}

static void masks(void)
{
    sigset_t block, old, pending;
    install(SIGUSR1, counting, 0);
    install(SIGTERM, counting, 0);
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGTERM);
    norder = 0;
    check(sigprocmask(SIG_BLOCK, &block, &old) == 0, "block SIGUSR1 and SIGTERM");
    raise(SIGTERM);
    raise(SIGUSR1);
    check(count[SIGTERM] == 0 && norder == 0, "blocked: nothing delivered yet");
    check(sigpending(&pending) == 0 && sigismember(&pending, SIGUSR1) && sigismember(&pending, SIGTERM),
          "sigpending shows both");
    check(sigprocmask(SIG_SETMASK, &old, NULL) == 0, "unblock");
    /* Linux dequeues the lower number first and stacks a frame for each:
     * the last frame built, SIGTERM's, runs first. */
    printf("unblocked: handlers ran for");
    for (int i = 0; i < norder; i++)
        printf(" %s", order[i] == SIGUSR1 ? "SIGUSR1" : order[i] == SIGTERM ? "SIGTERM" : "another");
    printf("\n");
}

static void alternate_stack(void)
{
    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0 }, old;
    check(sigaltstack(&ss, &old) == 0 && (old.ss_flags & SS_DISABLE), "sigaltstack (none before)");
    install(SIGUSR2, where_am_i, SA_ONSTACK);
    raise(SIGUSR2);
    check(on_altstack, "an SA_ONSTACK handler runs on the alternate stack");
    install(SIGUSR2, where_am_i, 0);
    raise(SIGUSR2);
    check(!on_altstack, "without SA_ONSTACK it does not");
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
}

static void faults(void)
{
    handle_info(SIGFPE, escaping);
    if (sigsetjmp(escape, 1) == 0) {
        volatile int zero = 0, one = 1;
        one /= zero;
        check(0, "division by zero traps");
    } else {
        check(count[SIGFPE] == 1 && last_code == FPE_INTDIV, "division by zero: SIGFPE, FPE_INTDIV");
    }
    handle_info(SIGILL, escaping);
    if (sigsetjmp(escape, 1) == 0) {
        __asm__ volatile("ud2");
        check(0, "ud2 traps");
    } else {
        check(count[SIGILL] == 1 && last_code == ILL_ILLOPN, "ud2: SIGILL, ILL_ILLOPN");
    }
    handle_info(SIGTRAP, escaping);
    if (sigsetjmp(escape, 1) == 0) {
        __asm__ volatile("int3");
        check(0, "int3 traps");
    } else {
        check(count[SIGTRAP] == 1 && last_code == SI_KERNEL, "int3: SIGTRAP, SI_KERNEL");
    }
    install(SIGUSR1, float_work, 0);
    volatile double a = 3.0, b = 0;
    double kept = a * 7.0;              /* live in an SSE register across the signal */
    raise(SIGUSR1);
    b = kept + 1.0;
    check(b == 22.0, "SSE registers survive a handler that uses them");
}

int main(void)
{
    delivery();
    masks();
    alternate_stack();
    faults();
    return finish("signals");
}
