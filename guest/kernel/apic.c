/*
 * The local APIC, only so far as the 8259A needs it: its INTR reaches the
 * CPU through LINT0 when the APIC is on, so set virtual wire mode (MP spec
 * 1.4, 3.6.2.2), as a PC BIOS leaves it: LINT0 ExtINT, LINT1 NMI, the APIC
 * software-enabled (else every LVT stays masked).  QEMU microvm boots with
 * the APIC on and LINT0 masked, where no PIC interrupt would arrive.  With no
 * APIC (CPUID), or one that is off, INTR goes straight to the CPU.
 */
#include "apic.h"
#include "layout.h"
#include "mm/mm.h"
#include "x86.h"

/* x2APIC mode has the registers as MSRs, xAPIC mode as MMIO. */
static void apic_write(volatile uint32_t *mmio, uint32_t reg, uint32_t value)
{
    if (mmio)
        mmio[reg / 4] = value;
    else
        wrmsr(MSR_X2APIC_BASE + reg / 16, value);
}

void apic_virtual_wire(void)
{
    uint32_t a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    if (!(d & CPUID_1_EDX_APIC))
        return;                         /* then IA32_APIC_BASE does not exist either */
    uint64_t base = rdmsr(MSR_APIC_BASE);
    if (!(base & APIC_BASE_ENABLE))
        return;
    volatile uint32_t *mmio = 0;
    if (!(base & APIC_BASE_X2APIC)) {
        uint64_t pa = base & APIC_BASE_ADDR_MASK;
        if (pa >= DIRECT_MAP_LIMIT)
            return;                     /* moved out of reach: leave it be */
        mmio = phys_map(pa, PAGE_SIZE);
    }
    apic_write(mmio, APIC_SVR, APIC_SVR_ENABLE | APIC_SPURIOUS_VECTOR);
    apic_write(mmio, APIC_TPR, 0);
    apic_write(mmio, APIC_LVT_LINT0, APIC_LVT_EXTINT);
    apic_write(mmio, APIC_LVT_LINT1, APIC_LVT_NMI);
}
