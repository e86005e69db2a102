/*
 * The full system-call path (traps.S syscall_full): a struct regs of every
 * user register, for the calls that read or rewrite it (rt_sigreturn; brk,
 * which may return through the ring-3 zeroing stub; read and pread64, which
 * may return through the ring-3 copy stub; sigaltstack, which needs the user
 * stack pointer), every call when --strace is on, and any call whose return
 * address iretq could not take.  Before returning, pending work (signals)
 * is done.
 */
#include "kernel.h"
#include "layout.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "serial.h"
#include "syscall/strace.h"
#include "syscall/syscalls.h"
#include "syscall/table.h"

void syscall_handler(struct regs *r)
{
    /* traps.S already put RCX/R11 (sanitised) into rip/rflags. */
    r->cs = USER_CS;
    r->ss = USER_DS;
    if (r->rip >= USER_CANONICAL_END) {
        /* Only a forged call (a jump to syscall_entry) gets here; iretq
         * would fault in ring 0.  Linux would deliver SIGSEGV. */
        serial_start_line();
        serial_puts("fault: bad syscall return rip=");
        serial_put_hex(r->rip);
        serial_puts("\n");
        task_kill_by_signal(SIGSEGV);
    }
    uint64_t nr = r->rax;
    long ret;
    if (strace_on)
        strace_syscall_entry(r);
    switch (nr) {
    case SYS_rt_sigreturn:
        sys_rt_sigreturn(r);            /* replaces every register */
        ret = (long)r->rax;
        break;
    case SYS_brk:
        sys_brk(r);                     /* may return through the zeroing stub */
        ret = (long)current->mm->brk;
        break;
    case SYS_sigaltstack:
        sys_sigaltstack(r);
        ret = (long)r->rax;
        break;
    case SYS_read:                      /* the copy stub sets RAX itself */
        r->rax = (uint64_t)(ret = sys_read_regs(r));
        break;
    case SYS_clone:                     /* issue 15a: the child starts from a copy of r */
    case SYS_fork:
    case SYS_vfork:
        fork_regs(r);
        ret = (long)r->rax;
        break;
    case SYS_execve:                    /* returns only on failure */
        sys_execve_regs(r);
        ret = (long)r->rax;
        break;
    case SYS_pread64:
        r->rax = (uint64_t)(ret = sys_pread64_regs(r));
        break;
    default:
        ret = nr < NR_SYSCALLS ? syscall_table[nr](r->rdi, r->rsi, r->rdx, r->r10, r->r8, r->r9) : -ENOSYS;
        r->rax = (uint64_t)ret;
    }
    if (strace_on)
        strace_syscall_exit(r, nr, ret);
    if (user_return_work)
        return_to_user_work(r);
}
