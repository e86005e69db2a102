/* faults: catches CPU exceptions raised in ring 3 as signals.
 *
 * Installs one SA_SIGINFO handler for SIGSEGV, SIGILL and SIGFPE, then
 * raises #PF, #GP, #UD and #DE, each twice: once leaving the handler with
 * longjmp(), once by moving the saved RIP past the faulting instruction and
 * returning through the SA_RESTORER stub (rt_sigreturn). For every fault it
 * checks the signal number, the saved RIP and RSI in the signal frame, and
 * for #PF the faulting address; after a sigreturn it checks that the
 * interrupted code continues with its registers intact. It prints no
 * addresses, so the output is the same in the VM and on Linux. */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#define MAGIC 0x0123456789abcdefUL          /* what each trigger puts in RSI */

/* Each trigger is a small function with one faulting instruction. The
 * labels mark that instruction (the RIP the signal frame must hold) and the
 * next one (where a handler may resume). After resuming, a trigger returns
 * RSI, which it set to MAGIC before the fault. */
long write_to(void *addr);
long invalid_opcode(void *unused);
long divide_by_zero(void *unused);
extern const char write_insn[], write_resume[];
extern const char ud2_insn[], ud2_resume[];
extern const char div_insn[], div_resume[];

__asm__(
    "    .text\n"
    "    .type write_to, @function\n"
    "write_to:\n"
    "    movabs $0x0123456789abcdef, %rsi\n"
    "write_insn:\n"
    "    movl $1, (%rdi)\n"
    "write_resume:\n"
    "    mov %rsi, %rax\n"
    "    ret\n"
    "    .type invalid_opcode, @function\n"
    "invalid_opcode:\n"
    "    movabs $0x0123456789abcdef, %rsi\n"
    "ud2_insn:\n"
    "    ud2\n"
    "ud2_resume:\n"
    "    mov %rsi, %rax\n"
    "    ret\n"
    "    .type divide_by_zero, @function\n"
    "divide_by_zero:\n"
    "    movabs $0x0123456789abcdef, %rsi\n"
    "    xor %ecx, %ecx\n"
    "    mov $1, %eax\n"
    "    xor %edx, %edx\n"
    "div_insn:\n"
    "    div %ecx\n"
    "div_resume:\n"
    "    mov %rsi, %rax\n"
    "    ret\n");

struct fault_case {
    const char *what;
    int signo;
    const char *signame;
    long (*trigger)(void *);
    void *arg;
    const char *insn;                       /* expected saved RIP */
    const char *resume;                     /* where sigreturn mode resumes */
    int check_addr;                         /* si_addr must equal arg */
};

static const struct fault_case cases[] = {
    { "#PF (write to an unmapped page)", SIGSEGV, "SIGSEGV", write_to,
      (void *)0x30000000, write_insn, write_resume, 1 },
    { "#GP (non-canonical address)", SIGSEGV, "SIGSEGV", write_to,
      (void *)0x8000000000000000UL, write_insn, write_resume, 0 },
    { "#UD (ud2)", SIGILL, "SIGILL", invalid_opcode, NULL, ud2_insn, ud2_resume, 0 },
    { "#DE (divide by zero)", SIGFPE, "SIGFPE", divide_by_zero, NULL, div_insn, div_resume, 0 },
};

/* What the handler saw, and how it should leave. */
static volatile int use_longjmp;
static const char *volatile resume_at;
static jmp_buf back_to_main;
static volatile int seen_sig, seen_info_signo;
static void *volatile seen_addr;
static volatile unsigned long seen_rip, seen_rsi;

static void handler(int sig, siginfo_t *info, void *context)
{
    ucontext_t *uc = context;

    seen_sig = sig;
    seen_info_signo = info->si_signo;
    seen_addr = info->si_addr;
    seen_rip = uc->uc_mcontext.gregs[REG_RIP];
    seen_rsi = uc->uc_mcontext.gregs[REG_RSI];
    if (use_longjmp)
        longjmp(back_to_main, 1);
    uc->uc_mcontext.gregs[REG_RIP] = (unsigned long)resume_at;
}

static int install(int sig)
{
    struct sigaction act = {
        .sa_sigaction = handler,
        .sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTORER,
        .sa_restorer = __restore_rt,
    };
    return rt_sigaction(sig, &act, NULL);
}

static int fail(const struct fault_case *c, const char *why)
{
    printf("FAIL %s: %s\n", c->what, why);
    return 1;
}

/* Runs the trigger; returns 1 if the handler jumped back here. */
static int trigger_and_longjmp(const struct fault_case *c)
{
    if (setjmp(back_to_main) == 0) {
        c->trigger(c->arg);
        return 0;
    }
    return 1;
}

/* Raises one fault; returns 0 if everything matched. */
static int run(const struct fault_case *c, int by_longjmp)
{
    long result = 0;

    seen_sig = 0;
    use_longjmp = by_longjmp;
    resume_at = c->resume;
    if (by_longjmp) {
        if (!trigger_and_longjmp(c))
            return fail(c, "no signal");
    } else {
        result = c->trigger(c->arg);
        if (!seen_sig)
            return fail(c, "no signal");
    }

    if (seen_sig != c->signo)
        return fail(c, "wrong signal number");
    if (seen_info_signo != c->signo)
        return fail(c, "wrong si_signo");
    if (seen_rip != (uintptr_t)c->insn)
        return fail(c, "saved RIP is not the faulting instruction");
    if (seen_rsi != MAGIC)
        return fail(c, "saved RSI is wrong");
    if (c->check_addr && seen_addr != c->arg)
        return fail(c, "si_addr is not the faulting address");
    if (!by_longjmp && (unsigned long)result != MAGIC)
        return fail(c, "registers not restored by sigreturn");

    printf("caught %s from %s, resumed by %s\n", c->signame, c->what,
           by_longjmp ? "longjmp" : "sigreturn");
    return 0;
}

int main(void)
{
    int failures = 0;

    if (install(SIGSEGV) || install(SIGILL) || install(SIGFPE)) {
        puts("FAIL rt_sigaction");
        return 1;
    }
    puts("faults: handlers installed");

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        failures += run(&cases[i], 1);
        failures += run(&cases[i], 0);
    }

    if (failures) {
        printf("faults: %d failed\n", failures);
        return 1;
    }
    puts("all faults caught");
    return 0;
}
