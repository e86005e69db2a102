/*
 * PVH entry: 32-bit flat protected mode, paging off, interrupts off,
 * EBX = physical address of struct hvm_start_info.
 *
 * We switch to long mode with page tables that are static data (no loop
 * builds them: ring-0 code is emulated slowly on this machine's KVM), clear
 * .bss, and call kmain(start_info_pa) on the boot stack, which later becomes
 * the TSS.RSP0 stack.
 */
#include "layout.h"

    .section .text.entry, "ax"
    .code32
    .globl pvh_start
pvh_start:
    cli
    cld
    lgdt    gdt_ptr                 /* 32-bit lgdt reads limit + low 4 base bytes */

    /* CR4: PAE for long mode; OSFXSR/OSXMMEXCPT so ring 3 may use SSE. */
    movl    $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
    movl    %eax, %cr4
    movl    $boot_pml4, %eax
    movl    %eax, %cr3

    /* EFER: long mode and the syscall instruction.  NXE is set later, in C,
     * only if CPUID says the CPU has NX. */
    movl    $MSR_EFER, %ecx
    rdmsr
    orl     $(EFER_LME | EFER_SCE), %eax
    wrmsr

    /* CR0: paging (activates long mode), write protection also for ring 0
     * (so a kernel bug cannot write a read-only user page), FPU/SSE usable
     * (MP set, EM clear), native x87 error reporting. */
    movl    %cr0, %eax
    andl    $~CR0_EM, %eax
    orl     $(CR0_PE | CR0_MP | CR0_NE | CR0_WP | CR0_PG), %eax
    movl    %eax, %cr0
    ljmp    $KERNEL_CS, $start64

    .code64
start64:
    movl    $KERNEL_DS, %eax
    movl    %eax, %ds
    movl    %eax, %es
    movl    %eax, %ss
    xorl    %eax, %eax
    movl    %eax, %fs
    movl    %eax, %gs
    movq    $kernel_stack_top, %rsp

    /* Zero .bss (a few hundred bytes of globals: cheap even when emulated).
     * The ELF loader should have done it; we do not rely on that. */
    movq    $__bss_start, %rdi
    movq    $__bss_end, %rcx
    subq    %rdi, %rcx
    shrq    $3, %rcx
    rep stosq

    movl    %ebx, %edi              /* zero-extends: start_info physical address */
    call    kmain
1:  cli                             /* kmain never returns */
    hlt
    jmp     1b

/* ---- GDT ---------------------------------------------------------------------- */
    .section .data
    .balign 16
    .globl gdt
gdt:
    .quad 0                         /* 0x00 null */
    .quad 0x00cf9a000000ffff        /* 0x08 kernel code, 32-bit (unused after entry) */
    .quad 0x00af9a000000ffff        /* 0x10 kernel code, 64-bit (L=1) */
    .quad 0x00cf92000000ffff        /* 0x18 kernel data */
    .quad 0                         /* 0x20 STAR base for sysret: no 32-bit user code */
    .quad 0x00cff2000000ffff        /* 0x28 user data, DPL 3 */
    .quad 0x00affa000000ffff        /* 0x30 user code, 64-bit, DPL 3 */
    .quad 0                         /* 0x38 unused */
    .quad 0, 0                      /* 0x40 TSS descriptor, filled by desc.c */
gdt_end:
    .globl gdt_ptr
gdt_ptr:
    .word gdt_end - gdt - 1
    .quad gdt

/* ---- Boot page tables ------------------------------------------------------------
 * Static so that entering long mode runs no loops.  mm.c later fills the
 * direct map's page directories and adds user page tables under pd_low.
 */
    .section .data
    .balign 4096
    .globl boot_pml4, pdpt_low, pd_low, pt_kernel, pdpt_direct, pd_direct
boot_pml4:
    .quad pdpt_low + (PTE_P | PTE_W | PTE_U)        /* [0]: low 512 GiB */
    .fill 255, 8, 0
    .quad pdpt_direct + (PTE_P | PTE_W)             /* [256]: DIRECT_MAP_BASE */
    .fill 255, 8, 0
pdpt_low:
    .quad pd_low + (PTE_P | PTE_W | PTE_U)          /* [0]: first GiB */
    .fill 511, 8, 0
pd_low:
    .quad pt_kernel + (PTE_P | PTE_W)               /* [0]: 0-2 MiB, supervisor only */
    .fill 511, 8, 0                                 /* [1..511]: user page tables */
pt_kernel:
    /* 0-1 MiB is not mapped, so a user NULL access is a not-present #PF
     * (error 0x4/0x6, as on Linux); 1-2 MiB holds the kernel image. */
    .fill 256, 8, 0
    .set page, KERNEL_PHYS_BASE
    .rept 256
    .quad page + (PTE_P | PTE_W)
    .set page, page + PAGE_SIZE
    .endr
pdpt_direct:
    .quad pd_direct + 0x0000 + (PTE_P | PTE_W)      /* DIRECT_MAP_PDS = 4 */
    .quad pd_direct + 0x1000 + (PTE_P | PTE_W)
    .quad pd_direct + 0x2000 + (PTE_P | PTE_W)
    .quad pd_direct + 0x3000 + (PTE_P | PTE_W)
    .fill 508, 8, 0
pd_direct:
    .fill 512 * DIRECT_MAP_PDS, 8, 0                /* 2 MiB pages, set by mm.c */

/* ---- Stacks (NOLOAD, see kernel.ld) -------------------------------------------- */
    .section .stack, "aw", @nobits
    .balign 4096
    .globl kernel_stack_top, ist_stack_top
    .space KERNEL_STACK_SIZE
kernel_stack_top:
    .space IST_STACK_SIZE
ist_stack_top:
