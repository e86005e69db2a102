/*
 * The few guest addresses and port numbers the firmware uses.
 *
 * These are copies of constants in vmm/layout.py (the one place the VMM writes its memory
 * map down); keep the two in step. Firmware-only values (the stack, the status codes) are
 * marked as such.
 */
#ifndef FIRMWARE_LAYOUT_H
#define FIRMWARE_LAYOUT_H

/* I/O ports (vmm/layout.py: COM1_PORT, DEBUG_EXIT_PORT, FW_CFG_*_PORT). */
#define COM1_PORT               0x3F8
#define DEBUG_EXIT_PORT         0xF4
#define FW_CFG_SELECTOR_PORT    0x510
#define FW_CFG_DATA_PORT        0x511
#define FW_CFG_DMA_PORT         0x514   /* high 32 bits of the address; +4: low 32 bits */

/* The PVH hand-over, at the same addresses as the VMM's direct PVH boot
 * (vmm/layout.py: BOOT_GDT_ADDR, PVH_*, CMDLINE_*). */
#define BOOT_GDT_ADDR           0x500
#define PVH_INFO_START          0x6000
#define PVH_MODLIST_START       0x6040
#define PVH_MEMMAP_START        0x7000
#define PVH_MEMMAP_MAX_ENTRIES  128
#define CMDLINE_START           0x20000
#define CMDLINE_MAX_SIZE        0x10000 /* including the terminating NUL */

/* The PC's legacy hole, reserved in the memory map (vmm/layout.py: EBDA_START,
 * HIGH_MEMORY_START). The firmware's own shadow lies at 0xF0000 inside it. */
#define EBDA_START              0x9FC00
#define HIGH_MEMORY_START       0x100000

/* Firmware only: its stack, in low RAM below the hand-over structures, [0x1000, 0x6000). */
#define FW_STACK_TOP            0x6000

/* Boot GDT selectors, as in vmm/arch/x86/pvh.py (BOOT_CS, BOOT_DS, BOOT_TR). */
#define BOOT_CS                 0x08
#define BOOT_DS                 0x10
#define BOOT_TR                 0x18

#endif
