/* The local APIC: passing the 8259A's interrupts through (virtual wire mode). */
#ifndef APIC_H
#define APIC_H

void apic_virtual_wire(void);

#endif
