/* The PVH start-of-day structures (Xen xen/include/public/arch-x86/hvm/start_info.h),
 * as vmm/arch/x86/pvh.py packs them for the direct boot. */
#ifndef FIRMWARE_PVH_H
#define FIRMWARE_PVH_H

#include <stdint.h>

#define HVM_START_MAGIC         0x336ec578
#define HVM_START_INFO_VERSION  1

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
} __attribute__((packed));

struct hvm_modlist_entry {
    uint64_t paddr;
    uint64_t size;
    uint64_t cmdline_paddr;
    uint64_t reserved;
} __attribute__((packed));

struct hvm_memmap_table_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
} __attribute__((packed));

#define E820_RAM        1
#define E820_RESERVED   2

#endif
