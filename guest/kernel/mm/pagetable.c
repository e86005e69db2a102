/*
 * Address spaces: one 4-level page-table tree per struct mm (Intel SDM vol.
 * 3, 4.5).  Every tree shares the kernel's parts: PML4 slot 256 (the direct
 * map) and, in the first 2 MiB, pt_kernel (the kernel image, supervisor
 * only).  User pages live in [USER_MIN, USER_END).
 *
 * PTE conventions: PTE_BORROWED marks a read-only page of module 0 (never
 * freed, copied on write); PTE_SHARED a file's page in a MAP_SHARED
 * region (one page_share count per mapping); a PTE with P clear but an address is a page kept
 * under PROT_NONE (PTE_PROTNONE), restored by mprotect.
 *
 * Each walk costs ~25 emulated instructions, so the mm remembers the page
 * tables it found last (pt_cache, a few slots): a page there costs ~8.
 */
#include "kernel.h"
#include "layout.h"
#include "mm/mm.h"
#include "uapi.h"
#include "x86.h"

#define PTE_PROTNONE 0x400              /* software bit: present page under PROT_NONE */

extern uint64_t pt_kernel[PT_ENTRIES], pdpt_direct[PT_ENTRIES];   /* entry.S */
extern uint64_t boot_pml4[PT_ENTRIES];
static int boot_tables_taken;

static struct mm *active_mm;

static uint64_t *table(uint64_t entry)
{
    return phys_to_virt(entry & PTE_ADDR_MASK);
}

static void flush(struct mm *mm, uint64_t va)
{
    if (mm == active_mm)
        invlpg(va);
}

struct mm *mm_create(void)
{
    struct mm *mm = kzalloc(sizeof *mm);
    if (!mm)
        return 0;
    mm->stack_limit = USER_STACK_TOP - USER_STACK_MAX;
    mm->users = mm->live = 1;
    if (!boot_tables_taken) {
        /* The first address space takes over the boot page tables (entry.S),
         * which have this very shape: no CR3 switch at the first exec.  On
         * this machine's nested KVM a fresh tree is expensive: every page
         * the kernel touches through it costs a shadow-paging exit. */
        boot_tables_taken = 1;
        mm->pml4 = (uint64_t)boot_pml4;     /* identity-mapped: VA = PA */
        return mm;
    }
    uint64_t pml4 = alloc_page(), pdpt = alloc_page(), pd = alloc_page();
    if (!pml4 || !pdpt || !pd) {
        if (pml4) free_page(pml4);
        if (pdpt) free_page(pdpt);
        if (pd) free_page(pd);
        kfree(mm, sizeof *mm);
        return 0;
    }
    uint64_t *t = phys_to_virt(pml4);
    t[0] = pdpt | PTE_P | PTE_W | PTE_U;
    t[PML4_DIRECT_SLOT] = (uint64_t)pdpt_direct | PTE_P | PTE_W;   /* identity-mapped: VA = PA */
    ((uint64_t *)phys_to_virt(pdpt))[0] = pd | PTE_P | PTE_W | PTE_U;
    ((uint64_t *)phys_to_virt(pd))[0] = (uint64_t)pt_kernel | PTE_P | PTE_W;  /* 0-2 MiB: kernel */
    mm->pml4 = pml4;
    return mm;
}

void mm_activate(struct mm *mm)
{
    uint64_t cr3;
    active_mm = mm;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    if ((cr3 & PTE_ADDR_MASK) != mm->pml4)      /* reloading the same CR3 would only flush the TLB */
        __asm__ volatile("mov %0, %%cr3" :: "r"(mm->pml4) : "memory");
}

uint64_t *pt_of(struct mm *mm, uint64_t va, uint64_t *next)
{
    uint64_t region = va >> 21, slot = region % PT_CACHE_SLOTS;
    if (mm->pt_cache[slot] && region == mm->pt_cache_region[slot]) {
        *next = (region + 1) << 21;
        return mm->pt_cache[slot];
    }
    uint64_t *t = phys_to_virt(mm->pml4);
    for (int shift = 39; shift >= 21; shift -= 9) {
        uint64_t e = t[(va >> shift) % PT_ENTRIES];
        if (!(e & PTE_P)) {
            *next = ((va >> shift) + 1) << shift;
            return 0;
        }
        t = table(e);
    }
    *next = (region + 1) << 21;
    mm->pt_cache_region[slot] = region;
    mm->pt_cache[slot] = t;
    return t;
}

uint64_t *pte_lookup_walk(struct mm *mm, uint64_t va, int create)
{
    uint64_t region = va >> 21, slot = region % PT_CACHE_SLOTS;
    uint64_t *t = phys_to_virt(mm->pml4);
    for (int shift = 39; shift >= 21; shift -= 9) {
        uint64_t *e = &t[(va >> shift) % PT_ENTRIES];
        if (!(*e & PTE_P)) {
            uint64_t pa;
            if (!create || !(pa = alloc_page()))
                return 0;
            /* Permissions are decided in the PTEs; the upper levels allow all. */
            *e = pa | PTE_P | PTE_W | PTE_U;
        }
        t = table(*e);
    }
    mm->pt_cache_region[slot] = region;
    mm->pt_cache[slot] = t;
    return &t[(va >> 12) % PT_ENTRIES];
}

uint64_t pte_flags(uint32_t prot)
{
    if (!(prot & (PROT_READ | PROT_WRITE | PROT_EXEC)))
        return PTE_PROTNONE;            /* with P clear */
    return PTE_P | PTE_U | ((prot & PROT_WRITE) ? PTE_W : 0) | ((prot & PROT_EXEC) ? 0 : pte_nx);
}

int map_user_page(struct mm *mm, uint64_t va, uint64_t pa, uint64_t flags)
{
    uint64_t *pte = pte_lookup(mm, va, 1);
    if (!pte)
        return -1;
    int was_present = *pte & PTE_P;
    if (*pte && !(*pte & PTE_BORROWED))
        page_put(*pte & PTE_ADDR_MASK);
    *pte = pa | flags;
    if (was_present)
        flush(mm, va);
    return 0;
}

/* Runs of contiguous pages entered one page table at a time in a tight loop:
 * ~5 emulated instructions per page. */
long map_fresh_pages(struct mm *mm, uint64_t start, uint64_t end, uint64_t flags)
{
    uint64_t va = start;
    while (va < end) {
        uint64_t pa, n = alloc_run_unzeroed((end - va) / PAGE_SIZE, &pa);
        if (!n)
            goto fail;
        while (n) {
            uint64_t *pte = pte_lookup(mm, va, 1);
            if (!pte) {
                for (; n; n--, pa += PAGE_SIZE)     /* not mapped yet: free them */
                    free_page(pa);
                goto fail;
            }
            uint64_t k = MIN(n, PT_ENTRIES - (va / PAGE_SIZE) % PT_ENTRIES);  /* to this table's end */
            uint64_t entry = pa | flags;
            for (uint64_t i = 0; i < k; i++, entry += PAGE_SIZE)
                pte[i] = entry;
            va += k * PAGE_SIZE;
            pa += k * PAGE_SIZE;
            n -= k;
        }
    }
    return 0;
fail:
    unmap_pages(mm, start, va);
    return -ENOMEM;
}

void zero_user_range(struct mm *mm, uint64_t start, uint64_t end)
{
    for (uint64_t va = start; va < end; va += PAGE_SIZE) {
        uint64_t *pte = pte_lookup(mm, va, 0);
        if (pte && *pte)
            zero_page(*pte & PTE_ADDR_MASK);
    }
}

void unmap_pages(struct mm *mm, uint64_t start, uint64_t end)
{
    for (uint64_t va = start, next; va < end; va = next) {
        uint64_t *pt = pt_of(mm, va, &next);
        if (!pt)
            continue;
        for (uint64_t stop = MIN(end, next); va < stop; va += PAGE_SIZE) {
            uint64_t *pte = &pt[(va >> 12) % PT_ENTRIES];
            if (!*pte)
                continue;
            if (!(*pte & PTE_BORROWED))
                page_put(*pte & PTE_ADDR_MASK);
            if (*pte & PTE_P)
                flush(mm, va);
            *pte = 0;
        }
    }
}

void protect_pages(struct mm *mm, uint64_t start, uint64_t end, uint32_t prot)
{
    uint64_t flags = pte_flags(prot);
    for (uint64_t va = start, next; va < end; va = next) {
        uint64_t *pt = pt_of(mm, va, &next);
        if (!pt)
            continue;
        for (uint64_t stop = MIN(end, next); va < stop; va += PAGE_SIZE) {
            uint64_t *pte = &pt[(va >> 12) % PT_ENTRIES];
            if (!*pte)
                continue;
            uint64_t e = (*pte & (PTE_ADDR_MASK | PTE_BORROWED | PTE_COW | PTE_SHARED)) | flags;
            if (e & (PTE_BORROWED | PTE_COW))
                e &= ~(uint64_t)PTE_W;          /* written through a copy (fault.c) */
            if (*pte & PTE_P)
                flush(mm, va);
            *pte = e;
        }
    }
}

long move_pages(struct mm *mm, uint64_t from, uint64_t to, uint64_t len)
{
    for (uint64_t off = 0; off < len; off += PAGE_SIZE) {
        uint64_t *src = pte_lookup(mm, from + off, 0);
        if (!src || !*src)
            continue;
        uint64_t e = *src;
        uint64_t *dst = pte_lookup(mm, to + off, 1);
        src = pte_lookup(mm, from + off, 0);    /* the cache moved */
        if (!dst)
            return -ENOMEM;
        *dst = e;
        *src = 0;
        if (e & PTE_P)
            flush(mm, from + off);
    }
    return 0;
}

/* Call fn(pt, va, arg) for every user page table of mm (not pt_kernel), in
 * address order, skipping absent entries at every level (a walk through the
 * few present ones: far cheaper than a lookup per 2 MiB); with free_tables,
 * each table is freed after its entries.  Stops at fn's first non-zero. */
static int for_each_pt(struct mm *mm, int (*fn)(uint64_t *pt, uint64_t va, void *arg), void *arg, int free_tables)
{
    uint64_t *pml4 = phys_to_virt(mm->pml4);
    for (int i = 0; i < PML4_DIRECT_SLOT; i++) {
        if (!(pml4[i] & PTE_P))
            continue;
        uint64_t *pdpt = table(pml4[i]);
        for (int j = 0; j < PT_ENTRIES; j++) {
            if (!(pdpt[j] & PTE_P))
                continue;
            uint64_t *pd = table(pdpt[j]);
            for (int k = (i == 0 && j == 0); k < PT_ENTRIES; k++) {   /* not pt_kernel */
                if (!(pd[k] & PTE_P))
                    continue;
                uint64_t va = ((uint64_t)i << 39) | ((uint64_t)j << 30) | ((uint64_t)k << 21);
                if (fn(table(pd[k]), va, arg))
                    return -1;
                if (free_tables)
                    free_page(pd[k] & PTE_ADDR_MASK);
            }
            if (free_tables)
                free_page(pdpt[j] & PTE_ADDR_MASK);
        }
        if (free_tables)
            free_page(pml4[i] & PTE_ADDR_MASK);
    }
    return 0;
}

/* Every page of one table goes (one mapping fewer of each). */
static int put_table_pages(uint64_t *pt, uint64_t va, void *arg)
{
    (void)va; (void)arg;
    for (int l = 0; l < PT_ENTRIES; l++) {
        if (pt[l] && !(pt[l] & PTE_BORROWED))
            page_put(pt[l] & PTE_ADDR_MASK);
        pt[l] = 0;
    }
    return 0;
}

/* Free every user page and page table of the tree (not the shared kernel
 * parts), then the mm itself. */
void mm_destroy(struct mm *mm)
{
    vma_free_all(mm);
    for_each_pt(mm, put_table_pages, 0, 1);
    free_page(mm->pml4);
    if (active_mm == mm)
        active_mm = 0;
    kfree(mm, sizeof *mm);
}

/* Share one page table's entries with the child's (copy on write): private
 * pages get a count and lose W in both; borrowed ones are copied as they
 * are, and MAP_SHARED ones get a count and keep W. */
static int share_table(uint64_t *pt, uint64_t va, void *child)
{
    uint64_t *to = pte_lookup_walk(child, va, 1);
    if (!to)
        return -1;
    for (int l = 0; l < PT_ENTRIES; l++) {
        uint64_t e = pt[l];
        if (!e)
            continue;
        if (!(e & PTE_BORROWED)) {
            if (page_share(e & PTE_ADDR_MASK) < 0)
                return -1;
            if (!(e & PTE_SHARED)) {    /* a MAP_SHARED page stays as it is */
                e = (e | PTE_COW) & ~(uint64_t)PTE_W;
                pt[l] = e;
            }
        }
        to[l] = e;
    }
    return 0;
}

struct mm *mm_fork(struct mm *mm)
{
    struct mm *child = mm_create();
    if (!child)
        return 0;
    for (struct vma *v = mm->vmas, **tail = &child->vmas; v; v = v->next) {
        struct vma *c = vma_new(v->start, v->end, v->prot, v->flags, v->inode, v->offset);
        if (!c) {
            mm_destroy(child);
            return 0;
        }
        c->file_end = v->file_end;
        *tail = c;                      /* same order, already merged */
        tail = &c->next;
        if (v == mm->window)
            child->window = c;
    }
    child->brk_start = mm->brk_start;
    child->brk = mm->brk;
    child->stack_limit = mm->stack_limit;
    int r = for_each_pt(mm, share_table, child, 0);
    if (mm == active_mm)
        __asm__ volatile("mov %0, %%cr3" :: "r"(mm->pml4) : "memory");   /* the W bits went */
    if (r < 0) {
        mm_destroy(child);
        return 0;
    }
    return child;
}

void mm_release_pages(struct mm *mm)
{
    vma_free_all(mm);
    for_each_pt(mm, put_table_pages, 0, 0);
    if (mm == active_mm)                /* one flush for all (the exiting task's own) */
        __asm__ volatile("mov %0, %%cr3" :: "r"(mm->pml4) : "memory");
}

void mm_share(struct mm *mm)
{
    mm->users++;
    mm->live++;
}

void mm_exit(struct mm *mm)
{
    if (--mm->live == 0)
        mm_release_pages(mm);
}

void mm_put(struct mm *mm)
{
    if (--mm->users == 0)
        mm_destroy(mm);
}
