/* Physical memory: the direct map, the page allocator, user page tables. */
#ifndef MM_H
#define MM_H
#include <stdint.h>
#include "bootinfo.h"

/* Kernel pointer to physical address pa (must already be direct-mapped). */
static inline void *phys_to_virt(uint64_t pa)
{
    return (void *)(DIRECT_MAP_BASE + pa);
}

void *phys_map(uint64_t pa, uint64_t len);   /* direct-map [pa, pa+len), return pointer */
void *mmio_map(uint64_t pa, uint64_t len);   /* the same, uncached: device registers */
int mm_overlaps_ram(uint64_t start, uint64_t end);   /* any RAM in [start, end)? (after mm_init) */
void mm_init(const struct boot_info *bi);    /* map all RAM, start the allocator */
uint64_t alloc_page(void);                   /* zeroed page, or 0 when out of memory */
uint64_t alloc_page_unzeroed(void);          /* stale contents, or 0 */
void zero_page(uint64_t pa);
void free_page(uint64_t pa);
uint64_t pages_free(void);

/* User mappings (USER_MIN <= va < USER_MAX).  flags: PTE_W and/or PTE_NX;
 * PTE_P|PTE_U are added.  A present PTE is returned even if not user. */
uint64_t *user_pte(uint64_t va, int create);  /* NULL if absent (or no memory) */
int map_user_page(uint64_t va, uint64_t pa, uint64_t flags);  /* 0, or -1: no memory */
/* Map new pages at [start, end); zero them now, or (zero = 0) leave that to
 * the caller, e.g. through user_zero_on_return().  0, or -1: no memory. */
int map_user_fresh_pages(uint64_t start, uint64_t end, uint64_t flags, int zero);
void zero_user_pages(uint64_t start, uint64_t end);  /* ring 0, mapped pages */
void unmap_user_pages(uint64_t start, uint64_t end);  /* frees the pages */
extern uint64_t pte_nx;                       /* PTE_NX, or 0 without NX */

#endif
