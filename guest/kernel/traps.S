/*
 * Kernel entry and exit paths: CPU exceptions 0..31 and the system call.
 *
 * Exceptions and the "full" system call path build a struct regs (regs.h)
 * on the kernel stack: the 15 general registers, vector, error code, then
 * the interrupt frame (rip, cs, rflags, rsp, ss), and leave through
 * return_to_user, which pops it and does iretq.  One frame format means
 * signal delivery and rt_sigreturn can rewrite all user state.  Ordinary
 * system calls take a shorter path that saves fewer registers (below).
 *
 * The kernel never uses GS, so exception entries need no swapgs: only the
 * syscall entry uses it, to find the kernel stack (struct percpu).
 */
#include "layout.h"
#include "uapi.h"

/* Offsets in struct percpu (cpu.c). */
#define PERCPU_KERNEL_RSP 0
#define PERCPU_USER_RSP   8

    .text

/* The general registers of struct regs (regs.h), pushed in its order; return_to_user
 * pops them in reverse. */
.macro PUSH_REGS
    pushq   %rax
    pushq   %rbx
    pushq   %rcx
    pushq   %rdx
    pushq   %rsi
    pushq   %rdi
    pushq   %rbp
    pushq   %r8
    pushq   %r9
    pushq   %r10
    pushq   %r11
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
.endm

/* ---- Exception stubs ---------------------------------------------------------- */
.macro TRAP_NOERR vec
    pushq   $0                      /* no error code: keep the frame uniform */
    pushq   $\vec
    jmp     trap_common
.endm
.macro TRAP_ERR vec
    pushq   $\vec                   /* the CPU pushed an error code */
    jmp     trap_common
.endm

/* Entry points for IDT vectors 0..31 (cpu.c). */
    .section .rodata
    .balign 8
    .globl trap_entries
trap_entries:
    .quad trap0, trap1, trap2, trap3, trap4, trap5, trap6, trap7
    .quad trap8, trap9, trap10, trap11, trap12, gp_entry, pf_entry, trap15
    .quad trap16, trap17, trap18, trap19, trap20, trap21, trap22, trap23
    .quad trap24, trap25, trap26, trap27, trap28, trap29, trap30, trap31
    .text

trap0:  TRAP_NOERR 0
trap1:  TRAP_NOERR 1
trap2:  TRAP_NOERR 2
trap3:  TRAP_NOERR 3
trap4:  TRAP_NOERR 4
trap5:  TRAP_NOERR 5
trap6:  TRAP_NOERR 6
trap7:  TRAP_NOERR 7
trap8:  TRAP_ERR   8
trap9:  TRAP_NOERR 9
trap10: TRAP_ERR   10
trap11: TRAP_ERR   11
trap12: TRAP_ERR   12
trap15: TRAP_NOERR 15
trap16: TRAP_NOERR 16
trap17: TRAP_ERR   17
trap18: TRAP_NOERR 18
trap19: TRAP_NOERR 19
trap20: TRAP_NOERR 20
trap21: TRAP_ERR   21
trap22: TRAP_NOERR 22
trap23: TRAP_NOERR 23
trap24: TRAP_NOERR 24
trap25: TRAP_NOERR 25
trap26: TRAP_NOERR 26
trap27: TRAP_NOERR 27
trap28: TRAP_NOERR 28
trap29: TRAP_ERR   29
trap30: TRAP_ERR   30
trap31: TRAP_NOERR 31

/*
 * #GP and #PF.  On this machine's nested KVM, `syscall` from ring 3 jumps to
 * LSTAR without leaving CPL 3.  The CPU then faults at syscall_entry from
 * user mode: with #PF (error 0x15: user instruction fetch from our
 * supervisor-only kernel page), or, where the page is user-accessible, with
 * #GP on the privileged `swapgs`.  Either fault IS the system call: user RIP
 * is in RCX, RFLAGS in R11, RSP is the user stack.  Recognise it with two
 * compares and run the ordinary syscall path (every instruction here is
 * emulated, so this path stays short).  On real CPUs this never matches.
 */
.macro SYSCALL_OR_TRAP vec
    cmpq    $syscall_entry, 8(%rsp)         /* saved RIP (error code at 0) */
    jne     1f
    testb   $3, 16(%rsp)                    /* saved CS: came from ring 3? */
    jz      1f
    addq    $8, %rsp                        /* drop the error code */
    jmp     syscall_common                  /* C fixes rip/rflags from rcx/r11 */
1:  pushq   $\vec
    jmp     trap_common
.endm

gp_entry:
    SYSCALL_OR_TRAP 13
pf_entry:
    SYSCALL_OR_TRAP 14

trap_common:
    PUSH_REGS
    movq    %rsp, %rdi              /* struct regs *; RSP is 16-aligned here */
    call    trap_handler            /* returns only to resume the interrupted code */
    /* fall through */

    .globl return_to_user
return_to_user:                     /* also resumes ring 0 after a trap there */
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %r11
    popq    %r10
    popq    %r9
    popq    %r8
    popq    %rbp
    popq    %rdi
    popq    %rsi
    popq    %rdx
    popq    %rcx
    popq    %rbx
    popq    %rax
    addq    $16, %rsp               /* vector, error code */
    iretq

/*
 * void switch_to(uint64_t *save_ksp, uint64_t next_ksp) (sched.c): the
 * callee-saved registers stay on the old task's stack, RSP goes to *save_ksp,
 * and the new task's are popped from next_ksp: 14 instructions.  A new task's
 * stack holds six zeroes, ret_from_fork, then its struct regs.
 */
    .globl switch_to
switch_to:
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret

    .globl ret_from_fork
ret_from_fork:                      /* RSP = the child's struct regs */
    movq    %rsp, %rdi
    call    fork_child_start
    jmp     return_to_user

/*
 * Start user mode from a struct regs prepared by C:
 * void enter_user(struct regs *r).  r is on the kernel stack; whatever lies
 * below it is abandoned, and the next trap starts again at TSS.RSP0.
 */
    .globl enter_user
enter_user:
    movq    %rdi, %rsp
    jmp     return_to_user

/* ---- External interrupts: vectors 0x20-0x2f = IRQ 0-15 (irq.c) ----------------
 * They arrive from ring 3, or from ring 0 only inside cpu_idle()'s `sti; hlt`
 * (the kernel otherwise runs with IF=0).  Nothing they do changes the
 * interrupted context, so they save only what they use.
 */
    .section .rodata
    .balign 8
    .globl irq_entries
irq_entries:
    .quad irq_timer, irq1, irq2, irq3, irq4, irq5, irq6, irq7
    .quad irq8, irq9, irq10, irq11, irq12, irq13, irq14, irq15
    .text

/* IRQ 0, the PIT tick: count it and EOI, six instructions (ring 0 is
 * emulated on this machine's KVM: the tick must stay cheap). */
    .type irq_timer, @function      /* with its size: vmm bench syscalls leaves it out */
irq_timer:
    incq    timer_ticks(%rip)
    pushq   %rax
    movb    $(PIC_OCW2_SPECIFIC_EOI | IRQ_TIMER), %al
    outb    %al, $PIC_MASTER_CMD
    testb   $3, 16(%rsp)            /* from ring 0 (cpu_idle): schedule() looks itself */
    jz      1f
    movq    runq_head(%rip), %rax   /* someone waits to run, sleeps on the tick, or has a timer? */
    orq     tick_wq(%rip), %rax
    orq     itimer_armed(%rip), %rax
    jnz     irq_timer_work
1:  popq    %rax
    iretq
    .size irq_timer, . - irq_timer

/* The tick with work (sched.c timer_tick_work): a struct regs, as a system
 * call's full path, so that the task can be switched out and get signals. */
irq_timer_work:
    popq    %rax
    pushq   $0                      /* error code */
    pushq   $-1                     /* "vector" */
    PUSH_REGS
    movq    %rsp, %rdi
    cld
    call    timer_tick_work
    jmp     return_to_user

.macro IRQ n
irq\n:
    pushq   $\n
    jmp     irq_common
.endm
    IRQ 1
    IRQ 2
    IRQ 3
    IRQ 4
    IRQ 5
    IRQ 6
    IRQ 7
    IRQ 8
    IRQ 9
    IRQ 10
    IRQ 11
    IRQ 12
    IRQ 13
    IRQ 14
    IRQ 15

/* Vectors 0x30-0x3f: nothing is programmed to send them but the local
 * APIC's spurious interrupt (APIC_SPURIOUS_VECTOR), which takes no EOI. */
    .globl irq_stray
irq_stray:
    iretq

/* The IRQ number, then the C-clobbered registers; irq_dispatch(irq).  The
 * CPU aligned RSP to 16 before the 5-quadword frame; 1 + 9 pushes and the
 * extra 8 bytes give a 16-aligned call. */
irq_common:
    pushq   %rax
    pushq   %rcx
    pushq   %rdx
    pushq   %rsi
    pushq   %rdi
    pushq   %r8
    pushq   %r9
    pushq   %r10
    pushq   %r11
    movq    72(%rsp), %rdi          /* the IRQ number */
    subq    $8, %rsp
    cld                             /* C expects DF=0; iretq restores the user's */
    call    irq_dispatch
    addq    $8, %rsp
    popq    %r11
    popq    %r10
    popq    %r9
    popq    %r8
    popq    %rdi
    popq    %rsi
    popq    %rdx
    popq    %rcx
    popq    %rax
    addq    $8, %rsp                /* the IRQ number */
    iretq

/* ---- System call -----------------------------------------------------------------
 * On a real CPU (and QEMU TCG, and the VMM's unicorn engine) `syscall` arrives
 * here at CPL 0 with the user RSP; SFMASK has cleared IF/TF/DF/AC.  Build an
 * interrupt frame by hand so that both entries continue at syscall_common
 * with the same stack and the same iretq exit.
 */
    .balign 16
    .globl syscall_entry
syscall_entry:
    swapgs                          /* FIRST instruction: see gp_entry */
    movq    %rsp, %gs:PERCPU_USER_RSP
    movq    %gs:PERCPU_KERNEL_RSP, %rsp
    pushq   $USER_DS                /* ss */
    pushq   %gs:PERCPU_USER_RSP     /* rsp */
    pushq   %r11                    /* rflags */
    pushq   $USER_CS                /* cs */
    pushq   %rcx                    /* rip */
    swapgs                          /* user GS back: the kernel never uses GS */

/*
 * Here: the interrupt frame (rip, cs, rflags, rsp, ss) is on the kernel
 * stack, every user register is live, RCX/R11 hold the user RIP/RFLAGS.
 * (On the #PF/#GP path the CPU pushed the user's CS/SS, 0x33/0x2b as
 * measured on this KVM, so only RIP and RFLAGS need replacing.)
 *
 * The fast path saves only what C may clobber and Linux must preserve
 * (RDI RSI RDX R8 R9 R10), because on this machine each ring-0 instruction
 * costs about a microsecond, and calls the table entry (syscall/table.c).
 * The full path (a struct regs) takes the calls whose syscall_full_path
 * byte is set (rt_sigreturn, brk, sigaltstack; all with --strace), numbers
 * past the table (ENOSYS, from C), and a return address iretq could not
 * take (a "syscall" forged by jumping to syscall_entry).  Back from the
 * table, one byte test: if the return to user mode has work (a signal to
 * deliver), the fast frame becomes a struct regs and C does it.  RCX and
 * R11 come back clobbered, as Linux allows.
 */
syscall_common:
    andq    $RFLAGS_USER_MASK, %r11 /* never let user RFLAGS set IOPL, nor clear IF */
    orq     $USER_RFLAGS_SET, %r11
    movq    %r11, 16(%rsp)
    movq    %rcx, 0(%rsp)           /* return to the instruction after syscall */
    cmpq    $NR_SYSCALLS, %rax
    jae     syscall_full
    cmpb    $0, syscall_full_path(%rax)
    jne     syscall_full
    movq    %rcx, %r11
    shrq    $47, %r11               /* a non-canonical or kernel return address */
    jnz     syscall_full
    pushq   %rdi
    pushq   %rsi
    pushq   %rdx
    pushq   %r8
    pushq   %r9
    pushq   %r10
    pushq   %rax                    /* keeps RSP 16-aligned for the call */
    movq    %r10, %rcx              /* Linux passes arg 4 in R10, C in RCX */
    call    *syscall_table(, %rax, 8)
    popq    %rcx                    /* the call's number: struct regs' error for a restart */
    cmpb    $0, user_return_work(%rip)
    jne     syscall_work
    popq    %r10
    popq    %r9
    popq    %r8
    popq    %rdx
    popq    %rsi
    popq    %rdi
    iretq

syscall_work:                       /* RAX = the result: a struct regs for C */
    popq    %r10
    popq    %r9
    popq    %r8
    popq    %rdx
    popq    %rsi
    popq    %rdi
    pushq   %rcx                    /* "error code": the call's number (signal.c restarts with it) */
    pushq   $-1                     /* "vector": not an exception */
    PUSH_REGS
    movq    %rsp, %rdi
    call    return_to_user_work
    jmp     return_to_user

syscall_full:                       /* RIP and RFLAGS are already in the frame */
    pushq   %rax                    /* "error code": the call's number (signal.c restarts with it) */
    pushq   $-1                     /* "vector": not an exception */
    PUSH_REGS
    movq    %rsp, %rdi
    call    syscall_handler
    jmp     return_to_user
