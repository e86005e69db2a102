/* The PC/AT pair of 8259A interrupt controllers. */
#ifndef PIC_H
#define PIC_H

void pic_init(void);               /* remap to IRQ_VECTOR_BASE, everything masked */
void pic_unmask(int irq);          /* 0-15; a slave IRQ also unmasks the cascade */
void pic_eoi(int irq);             /* specific EOI: slave then master for 8-15 */
int pic_in_service(int irq);       /* the ISR bit (OCW3): 0 for a spurious 7 or 15 */

#endif
