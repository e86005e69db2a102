/*
 * Reading the Xen PVH start info (xen/include/public/arch-x86/hvm/start_info.h).
 * Version 0 has no memory map; we need one to know where free RAM is, so
 * version 0 is a panic rather than a guess.
 */
#include "bootinfo.h"
#include "kernel.h"
#include "mm/mm.h"

struct hvm_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
};

struct hvm_modlist_entry {
    uint64_t paddr, size, cmdline_paddr, reserved;
};

struct hvm_memmap_table_entry {
    uint64_t addr, size;
    uint32_t type, reserved;
};

static void copy_memmap(const struct hvm_start_info *si, struct boot_info *bi)
{
    if (si->version < 1 || si->memmap_entries == 0 || !si->memmap_paddr)
        panic("no memory map in hvm_start_info (need version >= 1)");
    uint32_t n = MIN(si->memmap_entries, MAX_MEMMAP);
    const struct hvm_memmap_table_entry *e =
        phys_map(si->memmap_paddr, n * sizeof *e);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t end = e[i].addr + e[i].size;
        if (e[i].type != E820_RAM || end <= e[i].addr)
            continue;
        /* RAM beyond the 4 GiB direct map is simply not used. */
        end = MIN(end, (uint64_t)DIRECT_MAP_LIMIT);
        if (e[i].addr >= end)
            continue;
        bi->ram[bi->nram].start = e[i].addr;
        bi->ram[bi->nram].end = end;
        bi->nram++;
    }
    if (bi->nram == 0)
        panic("no RAM in the memory map");
}

static void copy_cmdline(const struct hvm_start_info *si, struct boot_info *bi)
{
    if (!si->cmdline_paddr)
        return;
    const char *s = phys_map(si->cmdline_paddr, CMDLINE_MAX);
    int i;
    for (i = 0; i < CMDLINE_MAX - 1 && s[i]; i++)
        bi->cmdline[i] = s[i];
    bi->cmdline[i] = 0;
}

static void copy_module(const struct hvm_start_info *si, struct boot_info *bi)
{
    if (si->nr_modules == 0 || !si->modlist_paddr)
        return;
    const struct hvm_modlist_entry *m = phys_map(si->modlist_paddr, sizeof *m);
    if (m->size == 0)
        return;
    if (m->paddr + m->size < m->paddr || m->paddr + m->size > DIRECT_MAP_LIMIT)
        panic("module 0 lies above 4 GiB");
    bi->module.start = m->paddr;
    bi->module.end = m->paddr + m->size;
    bi->has_module = 1;
}

void pvh_parse(uint32_t start_info_pa, struct boot_info *bi)
{
    bi->nram = 0;
    bi->has_module = 0;
    bi->cmdline[0] = 0;
    const struct hvm_start_info *si = phys_map(start_info_pa, sizeof *si);
    if (si->magic != HVM_START_MAGIC)
        panic("bad hvm_start_info magic (not booted through PVH?)");
    copy_memmap(si, bi);
    copy_cmdline(si, bi);
    copy_module(si, bi);
}
