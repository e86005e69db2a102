/*
 * QEMU's fw_cfg interface, guest side (QEMU docs/specs/fw_cfg.rst).
 *
 * x86 I/O ports: a 16-bit selector at 0x510, an 8-bit data port at 0x511 that reads the
 * selected item sequentially (a new selection restarts at offset 0; reads past the end
 * give 0), and the DMA address register at 0x514 (big-endian 64-bit, high half first,
 * the write of the low half at 0x518 starts the transfer).
 */
#ifndef FIRMWARE_FW_CFG_H
#define FIRMWARE_FW_CFG_H

#include <stdint.h>

/* Item keys (QEMU include/standard-headers/linux/qemu_fw_cfg.h). */
#define FW_CFG_SIGNATURE        0x00    /* "QEMU" */
#define FW_CFG_ID               0x01    /* le32: bit 0 traditional interface, bit 1 DMA */
#define FW_CFG_KERNEL_ADDR      0x07    /* le32 */
#define FW_CFG_KERNEL_SIZE      0x08    /* le32 */
#define FW_CFG_INITRD_ADDR      0x0a    /* le32 */
#define FW_CFG_INITRD_SIZE      0x0b    /* le32 */
#define FW_CFG_KERNEL_ENTRY     0x10    /* le32 */
#define FW_CFG_KERNEL_DATA      0x11    /* not used: for PVH, QEMU loads the ELF itself */
#define FW_CFG_INITRD_DATA      0x12
#define FW_CFG_CMDLINE_SIZE     0x14    /* le32, including the NUL */
#define FW_CFG_CMDLINE_DATA     0x15
#define FW_CFG_SETUP_SIZE       0x17    /* le32 */
#define FW_CFG_SETUP_DATA       0x18
#define FW_CFG_FILE_DIR         0x19

#define FW_CFG_ID_DMA           0x02

/* FWCfgDmaAccess.control bits. */
#define FW_CFG_DMA_ERROR        0x01
#define FW_CFG_DMA_READ         0x02
#define FW_CFG_DMA_SKIP         0x04
#define FW_CFG_DMA_SELECT       0x08

struct fw_cfg {
    int dma;                            /* FW_CFG_ID said DMA is available */
};

/* Checks the signature; returns 0 if there is no fw_cfg device. */
int fw_cfg_init(struct fw_cfg *cfg);
void fw_cfg_select(struct fw_cfg *cfg, uint16_t key);
/* Read `len` bytes of the selected item, from the current offset on. */
void fw_cfg_read(struct fw_cfg *cfg, void *buf, uint32_t len);
/* Select `key` and read its first 4 bytes as a little-endian number (0 if absent). */
uint32_t fw_cfg_read_u32(struct fw_cfg *cfg, uint16_t key);
/* The selector and size of the named file in FW_CFG_FILE_DIR; 0 if there is none. */
uint16_t fw_cfg_find_file(struct fw_cfg *cfg, const char *name, uint32_t *size);

#endif
