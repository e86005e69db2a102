/*
 * The guest addresses and port numbers the firmware uses.
 *
 * The VMM's own (ports, the PVH hand-over addresses, the boot GDT selectors) come from
 * vmm/layout.py and vmm/arch/x86/pvh.py through build/vmm_layout.h, which the Makefile
 * generates: COM1_PORT, DEBUG_EXIT_PORT, FW_CFG_*_PORT, BOOT_GDT_ADDR, PVH_*, CMDLINE_*,
 * EBDA_START, HIGH_MEMORY_START, BOOT_CS, BOOT_DS, BOOT_TR. Only the firmware's own
 * values are written here.
 */
#ifndef FIRMWARE_LAYOUT_H
#define FIRMWARE_LAYOUT_H

#include "vmm_layout.h"

/* Firmware only: its stack, in low RAM below the hand-over structures, [0x1000, 0x6000). */
#define FW_STACK_TOP            0x6000

#endif
