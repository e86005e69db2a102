/*
 * --strace: with "strace" on the kernel command line, every system call
 * takes the full entry path and is reported to the VMM twice, at entry and
 * at exit, as a record in kernel memory whose physical address is written to
 * STRACE_PORT (one VM exit each).  The VMM reads the record and the user
 * memory it points into (through the record's CR3) and prints the call as
 * strace does.  Without the option nothing here runs: the fast path only
 * tests its table byte, as always.
 *
 * The record layout is shared with vmm/strace/ (struct.unpack "<IIQ6QqQ").
 */
#include "kernel.h"
#include "layout.h"
#include "proc/task.h"
#include "syscall/strace.h"
#include "syscall/table.h"
#include "x86.h"

enum { STRACE_ENTRY = 1, STRACE_EXIT, STRACE_SIGNAL, STRACE_EXITED, STRACE_KILLED };

struct strace_record {
    uint32_t kind, pid;
    uint64_t nr;                /* the call; the signal for STRACE_SIGNAL/KILLED; the status for EXITED */
    uint64_t args[6];           /* STRACE_SIGNAL: si_code, si_addr */
    int64_t ret;
    uint64_t cr3;
};

_Static_assert(sizeof(struct strace_record) == 80, "strace record layout (vmm/strace)");

int strace_on;
static struct strace_record record;     /* identity-mapped: its address is physical */

void strace_enable(void)
{
    strace_on = 1;
    memset(syscall_full_path, 1, NR_SYSCALLS);
}

static void send(uint32_t kind, uint64_t nr)
{
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    record.kind = kind;
    record.pid = (uint32_t)current->pid;
    record.nr = nr;
    record.cr3 = cr3;
    outl(STRACE_PORT, (uint32_t)(uintptr_t)&record);
}

void strace_syscall_entry(const struct regs *r)
{
    const uint64_t args[6] = { r->rdi, r->rsi, r->rdx, r->r10, r->r8, r->r9 };
    memcpy(record.args, args, sizeof args);
    record.ret = 0;
    send(STRACE_ENTRY, r->rax);
}

void strace_syscall_exit(const struct regs *r, uint64_t nr, long ret)
{
    (void)r;
    record.ret = ret;
    send(STRACE_EXIT, nr);
}

void strace_signal(int sig, int code, uint64_t addr, int pid, int uid)
{
    if (!strace_on)
        return;
    record.args[0] = (uint64_t)(int64_t)code;
    record.args[1] = addr;
    record.args[2] = (uint64_t)pid;     /* the sender's, for SI_USER/SI_TKILL */
    record.args[3] = (uint64_t)uid;
    send(STRACE_SIGNAL, (uint64_t)sig);
}

void strace_process_end(int status, int sig)
{
    if (strace_on)
        send(sig ? STRACE_KILLED : STRACE_EXITED, (uint64_t)(sig ? sig : status));
}
