/*
 * Physical memory: the direct map and the page allocator.
 *
 * Direct map: RAM at DIRECT_MAP_BASE + pa with 2 MiB pages (the page
 * directories are static in entry.S).  The kernel reaches every physical
 * page through it, because the low virtual addresses belong to the user
 * program.  It is filled lazily, for the boot info, the module and each run
 * the allocator hands out, so boot cost does not grow with the RAM size.
 *
 * Allocator: a bump pointer through the RAM ranges of the memory map,
 * skipping low memory, the kernel image and module 0 (the program or the
 * root file system image, which stays where the loader put it: its
 * read-only pages are mapped in place).  Freed pages go on a free list.
 *
 * Every page is zeroed before user code can see it (a real loader gives no
 * guarantee that untouched RAM is zero).  Zeroing in ring 0 is emulated here
 * (~0.4 ms per page), so: page tables and the first stack pages come from a
 * pool of zero pages in the kernel's .data, which the ELF loader copied from
 * the file; other small amounts are zeroed in ring 0; .bss and brk memory
 * are zeroed in ring 3 by the stub (user_stub.S).
 */
#include "mm/mm.h"
#include "cpu.h"
#include "kernel.h"
#include "layout.h"
#include "x86.h"

extern uint64_t pd_direct[PT_ENTRIES * DIRECT_MAP_PDS];  /* entry.S */
extern char __kernel_start[], __kernel_end[];

uint64_t pte_nx;

static struct mem_range ram[MAX_MEMMAP];
static int nram;
static struct mem_range reserved[2];    /* kernel image, module 0 */
static int cur_range;                   /* bump allocator position */
static uint64_t next_free;
static uint64_t free_list;              /* pa of first freed page, 0 = none */
static uint64_t free_list_pages;

/* Zero pages for page tables etc.: zero because the ELF file says so. */
static uint8_t zero_pool[ZERO_POOL_PAGES][PAGE_SIZE]
    __attribute__((aligned(PAGE_SIZE), section(".data.zero_pool")));
static int zero_pool_used;

static void *map_range(uint64_t pa, uint64_t len, uint64_t flags)
{
    uint64_t end = pa + len;
    if (end < pa || end > DIRECT_MAP_LIMIT)
        panic("physical address beyond the direct map");
    if (len == 0)
        return phys_to_virt(pa);
    uint64_t entry = ALIGN_DOWN(pa, LARGE_PAGE_SIZE) | PTE_P | PTE_W | PTE_PS | pte_nx | flags;
    for (uint64_t i = pa / LARGE_PAGE_SIZE; i <= (end - 1) / LARGE_PAGE_SIZE; i++) {
        pd_direct[i] = entry;
        entry += LARGE_PAGE_SIZE;
    }
    return phys_to_virt(pa);
}

void *phys_map(uint64_t pa, uint64_t len)
{
    return map_range(pa, len, 0);
}

/* Device registers: uncached (PCD+PWT select PAT entry 3, UC, in the
 * power-on PAT).  The whole 2 MiB page around them is mapped so, which is
 * harmless as long as no RAM shares it: the VMMs put their MMIO slots far
 * above RAM (vmm/layout.py, QEMU microvm's 0xfeb00000). */
void *mmio_map(uint64_t pa, uint64_t len)
{
    return map_range(pa, len, PTE_PCD | PTE_PWT);
}

int mm_overlaps_ram(uint64_t start, uint64_t end)
{
    for (int i = 0; i < nram; i++)
        if (start < ram[i].end && ram[i].start < end)
            return 1;
    return 0;
}

void mm_init(const struct boot_info *bi)
{
    pte_nx = cpu_has_nx ? PTE_NX : 0;
    for (int i = 0; i < bi->nram; i++)
        ram[i] = bi->ram[i];
    nram = bi->nram;
    reserved[0].start = (uint64_t)__kernel_start;
    reserved[0].end = (uint64_t)__kernel_end;
    phys_map(reserved[0].start, reserved[0].end - reserved[0].start);   /* zero_pool */
    if (bi->has_module) {
        phys_map(bi->module.start, bi->module.end - bi->module.start);
        reserved[1] = bi->module;
    }
}

/* First page-aligned address >= p whose page avoids every reserved range. */
static uint64_t skip_reserved(uint64_t p)
{
    int moved;
    do {
        moved = 0;
        for (int i = 0; i < 2; i++) {
            if (p < reserved[i].end && p + PAGE_SIZE > reserved[i].start) {
                p = ALIGN_UP(reserved[i].end, PAGE_SIZE);
                moved = 1;
            }
        }
    } while (moved);
    return p;
}

/* Up to n physically contiguous pages from the bump pointer; returns how
 * many (0 = out of memory) and their first address in *pa.  Handing out
 * runs lets big mappings cost a few instructions per page. */
static uint64_t bump_run(uint64_t n, uint64_t *pa)
{
    while (cur_range < nram) {
        uint64_t p = MAX(MAX(ram[cur_range].start, next_free), (uint64_t)LOW_MEMORY_END);
        p = skip_reserved(ALIGN_UP(p, PAGE_SIZE));
        uint64_t stop = ALIGN_DOWN(ram[cur_range].end, PAGE_SIZE);
        for (int i = 0; i < 2; i++)     /* the run ends at the next reserved range */
            if (reserved[i].start > p && reserved[i].start < stop)
                stop = ALIGN_DOWN(reserved[i].start, PAGE_SIZE);
        if (p < stop) {
            n = MIN(n, (stop - p) / PAGE_SIZE);
            next_free = p + n * PAGE_SIZE;
            phys_map(p, n * PAGE_SIZE);
            *pa = p;
            return n;
        }
        cur_range++;
        next_free = 0;
    }
    return 0;
}

uint64_t alloc_run_unzeroed(uint64_t n, uint64_t *pa)
{
    if (free_list) {            /* reuse freed pages first, one at a time */
        *pa = alloc_page_unzeroed();
        return 1;
    }
    return bump_run(n, pa);
}

int phys_in_module(uint64_t pa)
{
    return pa >= reserved[1].start && pa < reserved[1].end;
}

uint64_t pages_total(void)
{
    uint64_t n = 0;
    for (int r = 0; r < nram; r++)
        n += (ALIGN_DOWN(ram[r].end, PAGE_SIZE) - ALIGN_UP(ram[r].start, PAGE_SIZE)) / PAGE_SIZE;
    return n;
}

/* Pages the allocator can still hand out (walks the few RAM ranges). */
uint64_t pages_free(void)
{
    uint64_t n = free_list_pages, next = next_free;
    for (int r = cur_range; r < nram; r++, next = 0) {
        uint64_t p = ALIGN_UP(MAX(MAX(ram[r].start, next), (uint64_t)LOW_MEMORY_END), PAGE_SIZE);
        uint64_t end = ALIGN_DOWN(ram[r].end, PAGE_SIZE);
        if (p >= end)
            continue;
        n += (end - p) / PAGE_SIZE;
        for (int i = 0; i < 2; i++) {   /* minus the reserved pages inside */
            uint64_t lo = MAX(p, ALIGN_DOWN(reserved[i].start, PAGE_SIZE));
            uint64_t hi = MIN(end, ALIGN_UP(reserved[i].end, PAGE_SIZE));
            if (lo < hi)
                n -= (hi - lo) / PAGE_SIZE;
        }
    }
    return n;
}

/* A page whose contents are stale: the caller must zero it before any user
 * code can read it (see user_stub.S). */
uint64_t alloc_page_unzeroed(void)
{
    uint64_t pa = free_list;
    if (pa) {
        free_list = *(uint64_t *)phys_to_virt(pa);
        free_list_pages--;
        return pa;
    }
    return bump_run(1, &pa) ? pa : 0;
}

void zero_page(uint64_t pa)
{
    uint64_t n = PAGE_SIZE / 8;
    void *d = phys_to_virt(pa);
    __asm__ volatile("rep stosq" : "+D"(d), "+c"(n) : "a"(0) : "memory");
}

uint64_t alloc_page(void)
{
    if (zero_pool_used < ZERO_POOL_PAGES)
        return (uint64_t)zero_pool[zero_pool_used++];   /* identity-mapped: VA = PA */
    uint64_t pa = alloc_page_unzeroed();
    if (pa)
        zero_page(pa);
    return pa;
}

void free_page(uint64_t pa)
{
    *(uint64_t *)phys_to_virt(pa) = free_list;
    free_list = pa;
    free_list_pages++;
}


/* KSTACK_PAGES-style runs: n contiguous pages from the bump pointer (freed
 * pages are single), stale contents; 0 when no such run is left. */
uint64_t alloc_contiguous(uint64_t n)
{
    uint64_t pa, got = bump_run(n, &pa);
    if (got == n)
        return pa;
    for (uint64_t i = 0; i < got; i++)          /* the end of a range: too short */
        free_page(pa + i * PAGE_SIZE);
    return got ? alloc_contiguous(n) : 0;
}

/*
 * Copy on write (issue 15a): how many more address spaces map a private page
 * than the first, by page frame.  0 for every page not shared, so the table
 * is needed only from the first fork on: it is made then (two bytes per page
 * of RAM, zeroed once), and a program that never forks pays nothing.
 */
static uint16_t *page_refs;

static int page_refs_init(void)
{
    uint64_t top = 0;
    for (int i = 0; i < nram; i++)
        top = MAX(top, ram[i].end);
    uint64_t pages = ALIGN_UP(top / PAGE_SIZE * sizeof *page_refs, PAGE_SIZE) / PAGE_SIZE;
    uint64_t pa = alloc_contiguous(pages);
    if (!pa)
        return -1;
    for (uint64_t i = 0; i < pages; i++)
        zero_page(pa + i * PAGE_SIZE);
    page_refs = phys_to_virt(pa);
    return 0;
}

/* -1 when the table cannot be made, or the count is full (a program mapping one
 * MAP_SHARED page 65,536 times): the caller fails that mapping or fork. */
int page_share(uint64_t pa)
{
    if (!page_refs && page_refs_init() < 0)
        return -1;
    if (page_refs[pa / PAGE_SIZE] == UINT16_MAX)
        return -1;
    page_refs[pa / PAGE_SIZE]++;
    return 0;
}

int page_is_shared(uint64_t pa)
{
    return page_refs && page_refs[pa / PAGE_SIZE];
}

/* One mapping of a private page goes: the page is freed with the last. */
void page_put(uint64_t pa)
{
    if (page_refs && page_refs[pa / PAGE_SIZE])
        page_refs[pa / PAGE_SIZE]--;
    else
        free_page(pa);
}
