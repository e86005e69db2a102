/* fw_cfg access through the data port or, when FW_CFG_ID offers it, DMA. */
#include "fw_cfg.h"
#include "io.h"
#include "layout.h"
#include "firmware.h"

/* struct FWCfgDmaAccess: every field big-endian. */
struct fw_cfg_dma_access {
    uint32_t control;
    uint32_t length;
    uint32_t address_hi;
    uint32_t address_lo;
} __attribute__((packed, aligned(16)));

/* A file directory entry: be32 size, be16 select, be16 reserved, name[56]. */
struct fw_cfg_file {
    uint32_t size;
    uint16_t select;
    uint16_t reserved;
    char name[56];
} __attribute__((packed));

/* One DMA transfer. The device finishes it before the `out` returns (QEMU and our VMM
 * both do), but the spec says to wait for the control word to clear, so wait, boundedly:
 * a device that never answers counts as an error. */
#define DMA_POLL_LIMIT 100000
static void dma(uint32_t control, void *buf, uint32_t len)
{
    volatile struct fw_cfg_dma_access access;
    access.control = bswap32(control);
    access.length = bswap32(len);
    access.address_hi = 0;
    access.address_lo = bswap32((uint32_t)buf);
    outl(FW_CFG_DMA_PORT, 0);
    outl(FW_CFG_DMA_PORT + 4, bswap32((uint32_t)&access));
    uint32_t status, polls = 0;
    while ((status = bswap32(access.control)) & ~FW_CFG_DMA_ERROR && ++polls < DMA_POLL_LIMIT)
        ;
    if (status != 0)
        fail(EXIT_DMA_ERROR, "fw_cfg DMA transfer failed");
}

int fw_cfg_init(struct fw_cfg *cfg)
{
    char sig[4];
    cfg->dma = 0;
    fw_cfg_select(cfg, FW_CFG_SIGNATURE);
    insb(FW_CFG_DATA_PORT, sig, sizeof sig);
    if (memcmp(sig, "QEMU", 4) != 0)
        return 0;
    cfg->dma = (fw_cfg_read_u32(cfg, FW_CFG_ID) & FW_CFG_ID_DMA) != 0;
    return 1;
}

void fw_cfg_select(struct fw_cfg *cfg, uint16_t key)
{
    (void)cfg;
    outw(FW_CFG_SELECTOR_PORT, key);
}

void fw_cfg_read(struct fw_cfg *cfg, void *buf, uint32_t len)
{
    if (len == 0)
        return;
    if (cfg->dma)
        dma(FW_CFG_DMA_READ, buf, len);
    else
        insb(FW_CFG_DATA_PORT, buf, len);
}

uint32_t fw_cfg_read_u32(struct fw_cfg *cfg, uint16_t key)
{
    uint32_t v = 0;
    fw_cfg_select(cfg, key);
    fw_cfg_read(cfg, &v, sizeof v);
    return v;
}

static int name_equals(const char *entry, const char *name)
{
    unsigned i = 0;
    for (; name[i]; i++)
        if (i >= 56 || entry[i] != name[i])
            return 0;
    return i == 56 || entry[i] == 0;
}

uint16_t fw_cfg_find_file(struct fw_cfg *cfg, const char *name, uint32_t *size)
{
    uint32_t count;
    struct fw_cfg_file f;
    fw_cfg_select(cfg, FW_CFG_FILE_DIR);
    fw_cfg_read(cfg, &count, sizeof count);
    count = bswap32(count);
    for (uint32_t i = 0; i < count; i++) {
        fw_cfg_read(cfg, &f, sizeof f);
        if (name_equals(f.name, name)) {
            *size = bswap32(f.size);
            return (uint16_t)((f.select >> 8) | (f.select << 8));
        }
    }
    return 0;
}
