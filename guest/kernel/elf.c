/*
 * ELF64 loader for the user program (System V gABI + x86-64 psABI).
 *
 * Read-only pages that the file covers entirely are mapped in place: the
 * module stays where the loader put it and nothing is copied.  Writable
 * pages, and pages whose end lies in .bss, are private copies; bytes beyond
 * p_filesz come from freshly zeroed pages, so .bss reads as zero.  Whole
 * pages of .bss are zeroed later, in ring 3, by the stub (user_stub.S).
 */
#include "elf.h"
#include "kernel.h"
#include "layout.h"
#include "mm.h"

#define PT_LOAD 1
#define PT_PHDR 6
#define PF_X 1
#define PF_W 2
#define ET_EXEC 2
#define EM_X86_64 62

struct elf64_ehdr {
    unsigned char ident[16];
    uint16_t type, machine;
    uint32_t version;
    uint64_t entry, phoff, shoff;
    uint32_t flags;
    uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};

struct elf64_phdr {
    uint32_t type, flags;
    uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

static const struct elf64_phdr *check_header(const struct mem_range *m, const struct elf64_ehdr *eh)
{
    uint64_t size = m->end - m->start;
    static const unsigned char magic[7] = { 0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* LE */, 1 };
    if (size < sizeof *eh || memcmp(eh->ident, magic, sizeof magic) != 0)
        panic("bad program: not an ELF64 little-endian file");
    if (eh->type != ET_EXEC || eh->machine != EM_X86_64)
        panic("bad program: not a static x86-64 executable (ET_EXEC)");
    if (eh->phentsize != sizeof(struct elf64_phdr) || eh->phnum == 0 ||
        eh->phoff > size || (uint64_t)eh->phnum * sizeof(struct elf64_phdr) > size - eh->phoff)
        panic("bad program: program headers outside the file");
    return (const void *)((const char *)eh + eh->phoff);
}

static void check_segment(const struct mem_range *m, const struct elf64_phdr *ph)
{
    uint64_t size = m->end - m->start;
    if (ph->filesz > ph->memsz || ph->offset > size || ph->filesz > size - ph->offset)
        panic("bad program: segment outside the file");
    if (ph->vaddr < USER_MIN || ph->memsz > USER_BRK_LIMIT - ph->vaddr || ph->vaddr > USER_BRK_LIMIT)
        panic("bad program: segment outside user space");
    if ((ph->vaddr - ph->offset) % PAGE_SIZE)
        panic("bad program: segment offset and address not congruent mod 4096");
}

/* Map the user page at va for segment ph.  Returns nothing; panics on OOM. */
static void load_page(const struct mem_range *m, const struct elf64_phdr *ph, uint64_t va)
{
    uint64_t seg_lo = MAX(va, ph->vaddr);                   /* segment part of this page */
    uint64_t seg_hi = MIN(va + PAGE_SIZE, ph->vaddr + ph->memsz);
    uint64_t file_hi = MIN(seg_hi, ph->vaddr + ph->filesz); /* file-backed part */
    uint64_t flags = ((ph->flags & PF_W) ? PTE_W : 0) | ((ph->flags & PF_X) ? 0 : pte_nx);
    uint64_t file_pa = m->start + ph->offset + (seg_lo - ph->vaddr);
    uint64_t *pte = user_pte(va, 1);
    if (!pte)
        panic("out of memory");

    if (!(*pte & PTE_P) && !(ph->flags & PF_W) && file_hi == seg_hi && m->start % PAGE_SIZE == 0) {
        /* In place: this page of the module, read-only. */
        *pte = ALIGN_DOWN(file_pa, PAGE_SIZE) | flags | PTE_P | PTE_U;
        return;
    }

    uint64_t pa;
    if (*pte & PTE_P) {
        /* Two segments share this page (unusual linker output): merge them
         * in one private page with the union of their permissions. */
        uint64_t old = *pte & PTE_ADDR_MASK;
        flags = ((*pte | flags) & PTE_W) | (*pte & flags & pte_nx);
        pa = old;
        if (old >= m->start && old < m->end) {      /* still the module's page: copy it */
            if (!(pa = alloc_page()))
                panic("out of memory");
            memcpy(phys_to_virt(pa), phys_to_virt(old), PAGE_SIZE);
        }
        memset((char *)phys_to_virt(pa) + (seg_lo - va), 0, seg_hi - seg_lo);
    } else if (!(pa = alloc_page())) {
        panic("out of memory");
    }
    if (file_hi > seg_lo)
        memcpy((char *)phys_to_virt(pa) + (seg_lo - va), phys_to_virt(file_pa), file_hi - seg_lo);
    *pte = pa | flags | PTE_P | PTE_U;
}

/* Map one PT_LOAD segment.  Its whole pages of .bss are left unzeroed when
 * info->zero_* is still free: exec zeroes them in ring 3 (user_stub.S). */
static void load_segment(const struct mem_range *m, const struct elf64_phdr *ph, struct elf_info *info)
{
    uint64_t file_end = ph->vaddr + ph->filesz, mem_end = ph->vaddr + ph->memsz;
    uint64_t bss_lo = ALIGN_UP(file_end, PAGE_SIZE), bss_hi = ALIGN_DOWN(mem_end, PAGE_SIZE);
    uint64_t flags = ((ph->flags & PF_W) ? PTE_W : 0) | ((ph->flags & PF_X) ? 0 : pte_nx);

    for (uint64_t va = ALIGN_DOWN(ph->vaddr, PAGE_SIZE); va < MIN(bss_lo, mem_end); va += PAGE_SIZE)
        load_page(m, ph, va);
    if (bss_hi > bss_lo) {
        int defer = info->zero_start == info->zero_end;
        if (map_user_fresh_pages(bss_lo, bss_hi, flags, !defer) < 0)
            panic("out of memory");
        if (defer) {
            info->zero_start = bss_lo;
            info->zero_end = bss_hi;
        }
    }
    for (uint64_t va = MAX(bss_lo, bss_hi); va < mem_end; va += PAGE_SIZE)
        load_page(m, ph, va);   /* the partial last page of .bss */
}

void elf_load(const struct mem_range *m, struct elf_info *info)
{
    const struct elf64_ehdr *eh = phys_to_virt(m->start);
    const struct elf64_phdr *ph = check_header(m, eh);
    uint64_t end = 0;

    info->entry = eh->entry;
    info->phnum = eh->phnum;
    info->phdr_va = 0;
    info->zero_start = info->zero_end = 0;
    for (int i = 0; i < eh->phnum; i++) {
        if (ph[i].type == PT_PHDR)
            info->phdr_va = ph[i].vaddr;
        if (ph[i].type != PT_LOAD || ph[i].memsz == 0)
            continue;
        check_segment(m, &ph[i]);
        /* Sorted and disjoint (gABI); two may still share a boundary page. */
        if (ph[i].vaddr < end)
            panic("bad program: overlapping or unsorted segments");
        load_segment(m, &ph[i], info);
        end = ph[i].vaddr + ph[i].memsz;
        /* Without PT_PHDR, find the headers in a segment that maps them. */
        if (!info->phdr_va && eh->phoff >= ph[i].offset &&
            eh->phoff + eh->phnum * sizeof *ph <= ph[i].offset + ph[i].filesz)
            info->phdr_va = ph[i].vaddr + (eh->phoff - ph[i].offset);
    }
    if (end == 0)
        panic("bad program: no loadable segment");
    info->end = ALIGN_UP(end, PAGE_SIZE);
}
