/*
 * CPU setup after entry.S reached long mode: TSS (RSP0 for traps from ring
 * 3, an IST stack for #DF/NMI/#MC), IDT for vectors 0..31 (exceptions),
 * 0x20..0x2f (IRQ 0-15 through the PIC, irq.c) and 0x30..0x3f (strays, such
 * as the local APIC's spurious vector: ignored), the syscall
 * MSRs, and NX if the CPU has it.  Everything here runs once, emulated:
 * about 500 instructions.
 */
#include "cpu.h"
#include "irq.h"
#include "kernel.h"
#include "layout.h"
#include "regs.h"
#include "x86.h"

int cpu_has_nx;

struct tss {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));

/* An IDT gate is two quadwords (Intel SDM vol. 3, 6.14.1). */
struct idt_gate {
    uint64_t lo, hi;
};

/* What the syscall entry finds through GS after swapgs (offsets in traps.S). */
struct percpu {
    uint64_t kernel_rsp;    /* PERCPU_KERNEL_RSP = 0 */
    uint64_t user_rsp;      /* PERCPU_USER_RSP = 8 */
};

extern uint64_t gdt[GDT_ENTRIES];       /* entry.S */
extern char kernel_stack_top[], ist_stack_top[];

static struct tss tss;
/* Not in .bss: setup_idt() writes every gate, so entry.S need not zero it. */
static struct idt_gate idt[IDT_VECTORS] __attribute__((section(".noinit"), aligned(16)));
static struct percpu percpu;

#define GATE_INTERRUPT_DPL0 0x8e        /* present, 64-bit interrupt gate (IF cleared) */
#define GATE_INTERRUPT_DPL3 0xee        /* same, but `int3` from ring 3 may use it */
#define TSS_TYPE_AVAILABLE  0x89        /* present, 64-bit TSS (available) */
#define IDT_IST1            (1ull << 32) /* gate's IST field = 1 */

static void setup_tss(void)
{
    uint64_t base = (uint64_t)&tss;
    uint64_t limit = sizeof tss - 1;

    tss.rsp[0] = (uint64_t)kernel_stack_top;
    tss.ist[0] = (uint64_t)ist_stack_top;   /* IST1 */
    tss.iomap_base = sizeof tss;            /* no I/O bitmap: ring 3 gets no ports */
    gdt[TSS_SEL / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
                       ((uint64_t)TSS_TYPE_AVAILABLE << 40) |
                       ((base >> 24) & 0xff) << 56;
    gdt[TSS_SEL / 8 + 1] = base >> 32;
    __asm__ volatile("ltr %w0" :: "r"(TSS_SEL));
}

static void setup_idt(void)
{
    /* Same attributes for all 64 gates (a short emulated loop), then the
     * four exceptions that differ.  All are interrupt gates: the kernel
     * always runs with IF=0. */
    const uint64_t attr = ((uint64_t)KERNEL_CS << 16) | ((uint64_t)GATE_INTERRUPT_DPL0 << 40);
    for (int v = 0; v < IDT_VECTORS; v++) {
        uint64_t h = v < IRQ_VECTOR_BASE ? trap_entries[v] :
                     v < IRQ_VECTOR_BASE + IRQ_COUNT ? irq_entries[v - IRQ_VECTOR_BASE] :
                     (uint64_t)irq_stray;
        idt[v].lo = (h & 0xffff) | ((h & 0xffff0000) << 32) | attr;
        idt[v].hi = h >> 32;
    }
    idt[VEC_BP].lo |= (uint64_t)(GATE_INTERRUPT_DPL3 ^ GATE_INTERRUPT_DPL0) << 40;  /* int3 from ring 3 */
    idt[VEC_NMI].lo |= IDT_IST1;    /* NMI, #DF and #MC get a known-good stack */
    idt[VEC_DF].lo |= IDT_IST1;
    idt[VEC_MC].lo |= IDT_IST1;

    struct { uint16_t limit; uint64_t base; } __attribute__((packed)) idtr = {
        sizeof idt - 1, (uint64_t)idt
    };
    __asm__ volatile("lidt %0" :: "m"(idtr));
}

static void setup_syscall(void)
{
    percpu.kernel_rsp = (uint64_t)kernel_stack_top;
    wrmsr(MSR_STAR, ((uint64_t)USER_STAR_BASE << 48) | ((uint64_t)KERNEL_CS << 32));
    wrmsr(MSR_LSTAR, (uint64_t)syscall_entry);
    wrmsr(MSR_SFMASK, SYSCALL_RFLAGS_MASK);
    wrmsr(MSR_GS_BASE, 0);                      /* user GS */
    wrmsr(MSR_KERNEL_GS_BASE, (uint64_t)&percpu);
    wrmsr(MSR_FS_BASE, 0);
}

void cpu_set_kernel_stack(uint64_t top)
{
    tss.rsp[0] = top;
    percpu.kernel_rsp = top;
}

static void setup_nx(void)
{
    uint32_t a, b, c, d;
    cpuid(CPUID_EXT_BASE, &a, &b, &c, &d);
    if (a < CPUID_EXT_FEATURES)
        return;
    cpuid(CPUID_EXT_FEATURES, &a, &b, &c, &d);
    if (d & CPUID_80000001_EDX_NX) {
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
        cpu_has_nx = 1;
    }
}

void cpu_init(void)
{
    setup_tss();
    setup_idt();
    setup_syscall();
    setup_nx();
}
