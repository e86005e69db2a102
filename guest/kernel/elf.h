/* Loading module 0, a static x86-64 ELF executable, into user space. */
#ifndef ELF_H
#define ELF_H
#include <stdint.h>
#include "bootinfo.h"

struct elf_info {
    uint64_t entry;
    uint64_t phdr_va;       /* program headers in user memory, 0 if not mapped */
    uint64_t phnum;
    uint64_t end;           /* highest segment end: the initial program break */
    uint64_t zero_start;    /* mapped but not yet zeroed .bss pages: */
    uint64_t zero_end;      /* [zero_start, zero_end), page-aligned */
};

void elf_load(const struct mem_range *module, struct elf_info *info);  /* panics if bad */

#endif
