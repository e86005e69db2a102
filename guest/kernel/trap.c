/*
 * CPU exceptions (vectors 0..31).
 *   ring 0, #DF, #MC: "panic: kernel #PF vector=14 ..." and status 125.
 *   ring 3: a page fault the address space resolves (mm/fault.c), else the
 *           program's signal handler, else a one-line report and status
 *           128 + signal, like a shell.
 */
#include "kernel.h"
#include "layout.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "regs.h"
#include "serial.h"
#include "syscall/strace.h"
#include "uapi.h"
#include "x86.h"

static const char *const names[32] = {
    "#DE", "#DB", "#NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
    "#DF", "#CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23",
    "#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31",
};

/* "<name> vector=<n> error=<hex> rip=<hex> cr2=<hex>\n" */
static void print_fault(const struct regs *r, uint64_t cr2)
{
    serial_puts(names[r->vector & 31]);
    serial_puts(" vector=");
    serial_put_dec(r->vector);
    serial_puts(" error=");
    serial_put_hex(r->error);
    serial_puts(" rip=");
    serial_put_hex(r->rip);
    serial_puts(" cr2=");
    serial_put_hex(cr2);
    serial_puts("\n");
}

static int fault_signal(uint64_t vector)
{
    switch (vector) {
    case VEC_DE: return SIGFPE;
    case VEC_BP: return SIGTRAP;
    case VEC_UD: return SIGILL;
    default:     return SIGSEGV;    /* #PF, #GP and everything else */
    }
}

static int fault_code(const struct regs *r, int sig)
{
    if (r->vector == VEC_PF)
        return (r->error & PF_ERR_PRESENT) ? SEGV_ACCERR : SEGV_MAPERR;
    if (sig == SIGILL)
        return ILL_ILLOPN;
    if (sig == SIGFPE)
        return FPE_INTDIV;
    return SI_KERNEL;
}

void trap_handler(struct regs *r)
{
    /* CR2 only means something for #PF; report 0 otherwise. */
    uint64_t cr2 = r->vector == VEC_PF ? read_cr2() : 0;

    /* Ring 0, or an abort (#DF, #MC), which no program can cause. */
    if (!(r->cs & 3) || r->vector == VEC_DF || r->vector == VEC_MC) {
        serial_start_line();
        serial_puts("panic: kernel ");
        print_fault(r, cr2);
        vm_exit(EXIT_PANIC);
    }
    int sig = fault_signal(r->vector), code = fault_code(r, sig);
    if (r->vector == VEC_PF && user_page_fault(r, cr2, &sig, &code))
        return;                                 /* retry with the page there */
    if (sig == SIGKILL) {                       /* out of memory, as Linux's OOM killer */
        serial_start_line();
        serial_puts("fault: out of memory at cr2=");
        serial_put_hex(cr2);
        serial_puts("\n");
        task_kill_by_signal(SIGKILL);
    }
    uint64_t addr = r->vector == VEC_PF ? cr2 : r->rip;
    if (signal_force(r, sig, code, addr, cr2))
        return;                                 /* into the handler */

    strace_signal(sig, code, addr, 0, 0);       /* as strace shows a fatal fault, before the death */
    serial_start_line();
    serial_puts("fault: ");
    print_fault(r, cr2);
    task_kill_by_signal(sig);
}
