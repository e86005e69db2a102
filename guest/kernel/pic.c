/*
 * The 8259A pair, programmed the standard way (ICW1-ICW4, as Linux and every
 * PC BIOS): IRQ 0-7 on vectors 0x20-0x27, IRQ 8-15 on 0x28-0x2f, edge
 * triggered, normal (not automatic) EOI.  Only the IRQs a driver asks for
 * are unmasked.  Whatever state the firmware or VMM left (SeaBIOS: base 8;
 * our VMM's models and KVM: base 0, unmasked) ICW1 resets, and this runs
 * before interrupts are ever enabled.
 */
#include "pic.h"
#include "layout.h"
#include "x86.h"

static uint8_t master_mask = 0xff, slave_mask = 0xff;

void pic_init(void)
{
    outb(PIC_MASTER_DATA, 0xff);            /* mask all while we reprogram */
    outb(PIC_SLAVE_DATA, 0xff);
    outb(PIC_MASTER_CMD, PIC_ICW1);
    outb(PIC_MASTER_DATA, IRQ_VECTOR_BASE);             /* ICW2 */
    outb(PIC_MASTER_DATA, PIC_ICW3_MASTER);
    outb(PIC_MASTER_DATA, PIC_ICW4_8086);
    outb(PIC_SLAVE_CMD, PIC_ICW1);
    outb(PIC_SLAVE_DATA, IRQ_VECTOR_BASE + 8);          /* ICW2 */
    outb(PIC_SLAVE_DATA, PIC_ICW3_SLAVE);
    outb(PIC_SLAVE_DATA, PIC_ICW4_8086);
    outb(PIC_MASTER_DATA, master_mask);     /* OCW1: ICW1 cleared the masks */
    outb(PIC_SLAVE_DATA, slave_mask);
}

void pic_unmask(int irq)
{
    if (irq >= 8) {
        slave_mask &= ~(1u << (irq - 8));
        outb(PIC_SLAVE_DATA, slave_mask);
        irq = PIC_CASCADE_IRQ;
    }
    master_mask &= ~(1u << irq);
    outb(PIC_MASTER_DATA, master_mask);
}

void pic_eoi(int irq)
{
    if (irq >= 8) {
        outb(PIC_SLAVE_CMD, PIC_OCW2_SPECIFIC_EOI | (irq - 8));
        irq = PIC_CASCADE_IRQ;
    }
    outb(PIC_MASTER_CMD, PIC_OCW2_SPECIFIC_EOI | irq);
}

int pic_in_service(int irq)
{
    uint16_t cmd = irq >= 8 ? PIC_SLAVE_CMD : PIC_MASTER_CMD;
    outb(cmd, PIC_OCW3_READ_ISR);
    return (inb(cmd) >> (irq & 7)) & 1;
}
