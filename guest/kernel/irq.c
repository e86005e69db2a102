/*
 * External interrupts.  IRQ n arrives on vector 0x20 + n (pic.c):
 *
 *   IRQ 0   PIT channel 0, PIT_HZ: the tick.  Handled entirely in traps.S
 *           (count, EOI, iretq), because ring 0 is emulated here.
 *   IRQ 4   COM1 received data: into the console ring (serial.c).
 *   others  virtio-mmio slots (virtio_mmio.c) unmask theirs when a device is
 *           brought up: acknowledge the device's InterruptStatus.
 *   IRQ 7   spurious if the master's ISR bit 7 is clear: no EOI.
 *   IRQ 15  spurious if the slave's ISR bit 7 is clear: EOI the master only.
 *   the rest masked; if one arrives anyway it is acknowledged and ignored.
 *
 * The kernel runs with IF=0 (every gate is an interrupt gate) and enables
 * interrupts only in cpu_idle(); ring 3 always runs with IF=1.  So an IRQ
 * handler interrupts either user code or cpu_idle()'s HLT, never kernel code
 * in the middle of an update.
 */
#include "irq.h"
#include "layout.h"
#include "pic.h"
#include "pit.h"
#include "serial.h"
#include "virtio.h"

void irq_init(void)
{
    pit_start();
    serial_init_input();
    pic_unmask(IRQ_TIMER);
    pic_unmask(IRQ_COM1);
}

void irq_dispatch(uint64_t irq)
{
    if ((irq & 7) == PIC_SPURIOUS_IR && !pic_in_service((int)irq)) {
        /* The request vanished before the acknowledge.  A spurious 15 went
         * through master IR2, which is in service. */
        if (irq >= 8)
            pic_eoi(PIC_CASCADE_IRQ);
        return;
    }
    if (irq == IRQ_COM1)
        serial_poll_input();
    else
        virtio_irq(irq);                /* a no-op for lines no device uses */
    pic_eoi((int)irq);
}

/*
 * Sleep until an interrupt: `sti; hlt` is one unit, since STI delays
 * interrupts until after the next instruction, so an interrupt that became
 * pending before the STI wakes the HLT instead of being taken before it
 * (and then sleeping through the wake-up).  The VMM sleeps meanwhile.
 *
 * Until the first tick has been seen there may be no timer at all (a VMM
 * without PIC/PIT), and HLT could sleep forever: then spin instead, with
 * interrupts open for one instruction at a time, and now and then read the
 * UART directly.  On a PC that is at most the first 10 ms after boot.  (A
 * `nop`, not `pause`: QEMU TCG leaves the translation block at a `pause`
 * with the STI shadow still set, and then never takes the interrupt in this
 * window.)
 */
void cpu_idle(void)
{
    if (timer_ticks == 0) {
        for (int i = 0; i < IDLE_POLL_SPINS; i++)
            __asm__ volatile("sti; nop; cli" ::: "memory");
        serial_poll_input();
        return;
    }
    __asm__ volatile("sti; hlt; cli" ::: "memory");
}
