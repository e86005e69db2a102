/* What the kernel keeps from the loader's struct hvm_start_info. */
#ifndef BOOTINFO_H
#define BOOTINFO_H
#include <stdint.h>
#include "layout.h"

struct mem_range {
    uint64_t start, end;                /* [start, end) physical */
};

struct boot_info {
    struct mem_range ram[MAX_MEMMAP];   /* E820_RAM entries, below DIRECT_MAP_LIMIT */
    int nram;
    int has_module;
    struct mem_range module;            /* module 0: the user program */
    char cmdline[CMDLINE_MAX];          /* NUL-terminated copy */
};

/* pvh.c: copy everything out of the loader's structures, which may then be
 * overwritten by the page allocator. */
void pvh_parse(uint32_t start_info_pa, struct boot_info *bi);

#endif
