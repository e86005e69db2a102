/*
 * Firmware-wide declarations: the exit statuses and the two ways out.
 *
 * On failure the firmware prints one line `firmware: <reason>` on COM1 and writes its
 * status to the debug-exit port (QEMU isa-debug-exit, our VMM's DebugExit); QEMU's own
 * exit status is then (status << 1) | 1. The guest kernel uses 0x7d for a panic and
 * 0x80 + n for signals, so 0x71-0x79 are the firmware's.
 */
#ifndef FIRMWARE_H
#define FIRMWARE_H

#include <stdint.h>

#define EXIT_NO_FW_CFG          0x71    /* no "QEMU" signature at the fw_cfg ports */
#define EXIT_NO_KERNEL          0x72    /* FW_CFG_KERNEL_SIZE is 0: no -kernel given */
#define EXIT_NOT_PVH_ELF        0x73    /* FW_CFG_SETUP_DATA holds no x86 ELF header */
#define EXIT_NO_PVH_ENTRY       0x74    /* FW_CFG_KERNEL_ENTRY is 0 */
#define EXIT_NO_MEMORY_MAP      0x75    /* no usable etc/e820 file */
#define EXIT_CMDLINE_TOO_LONG   0x76    /* the command line exceeds CMDLINE_MAX_SIZE */
#define EXIT_INITRD_NO_ROOM     0x77    /* the initrd does not fit in RAM where it must go */
#define EXIT_KERNEL_NOT_IN_RAM  0x78    /* the pre-loaded kernel lies outside RAM */
#define EXIT_DMA_ERROR          0x79    /* a fw_cfg DMA transfer reported an error */

void serial_puts(const char *s);
void fail(uint32_t status, const char *reason) __attribute__((noreturn));
void pvh_enter(uint32_t entry, uint32_t start_info) __attribute__((noreturn));

#endif
