/* External interrupts: the ISA IRQs through the PIC, and waiting for them. */
#ifndef IRQ_H
#define IRQ_H
#include <stdint.h>

void irq_init(void);            /* after pic_init: timer, COM1 input; IF stays 0 */
void cpu_idle(void);            /* IF=0 caller: wait for an interrupt, return with IF=0 */

/* traps.S */
extern const uint64_t irq_entries[16];     /* IDT entry points for vectors 0x20-0x2f */
extern char irq_stray[];                   /* vectors 0x30-0x3f: iretq */
void irq_dispatch(uint64_t irq);           /* called from traps.S for IRQs 1-15 */

#endif
