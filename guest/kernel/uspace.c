/*
 * The user address space beyond the ELF segments.
 *
 * Every pointer a system call receives is checked here against the page
 * tables themselves (present, user, and writable if the kernel will write),
 * so a bad pointer gives -EFAULT and never a kernel fault or a read of
 * kernel memory.  The stack region grows on demand like Linux's: a #PF or a
 * checked pointer inside it maps a zeroed page.
 */
#include "uspace.h"
#include "kernel.h"
#include "layout.h"
#include "mm.h"
#include "virtio.h"

#define STACK_BOTTOM (USER_STACK_TOP - USER_STACK_MAX)
#define STUB_SAVE_SIZE 32           /* RDI, RAX, RFLAGS, RIP: see user_stub.S */

extern char user_stub_page[], user_zero_stub[];     /* user_stub.S */
extern uint64_t pd_low[PT_ENTRIES];                 /* entry.S: the user page tables */

static uint64_t brk_start, brk_cur;

int user_stack_grow(uint64_t addr)
{
    if (addr < STACK_BOTTOM || addr >= USER_STACK_TOP)
        return 0;
    uint64_t va = ALIGN_DOWN(addr, PAGE_SIZE);
    uint64_t *pte = user_pte(va, 0);
    if (pte && (*pte & PTE_P))
        return 1;
    return map_user_fresh_pages(va, va + PAGE_SIZE, PTE_W | pte_nx, 1) == 0;
}

int user_ok(uint64_t addr, uint64_t len, int write)
{
    if (len == 0)
        return 1;
    if (addr < USER_MIN || addr >= USER_MAX || len > USER_MAX - addr)
        return 0;
    for (uint64_t va = ALIGN_DOWN(addr, PAGE_SIZE); va < addr + len; va += PAGE_SIZE) {
        uint64_t *pte = user_pte(va, 0);
        if (!pte || !(*pte & PTE_P)) {
            if (!user_stack_grow(va))
                return 0;
            pte = user_pte(va, 0);
        }
        if (!(*pte & PTE_U) || (write && !(*pte & PTE_W)))
            return 0;
    }
    return 1;
}

/* DMA straight into (or out of) user pages: no copy in ring 0, where a copy
 * costs ~0.1 us per byte here.  The walk reads the page tables directly: 7
 * emulated instructions per page inside a physically contiguous run (the
 * bump allocator hands out brk/.bss memory in runs, so a big buffer is
 * usually one piece), about 60 for the call and each new piece. */
uint64_t user_dma_map(uint64_t addr, uint64_t len, int device_writes,
                      struct phys_seg *seg, int max, int *count)
{
    const uint64_t need = PTE_P | PTE_U | (device_writes ? PTE_W : 0);
    const uint64_t keep = PTE_ADDR_MASK | need;
    struct phys_seg *s = seg - 1, *const last = seg + max - 1;
    uint64_t expect = ~0ull;        /* the masked PTE that would extend *s */
    *count = 0;
    if (len == 0 || addr < USER_MIN || addr >= USER_MAX)
        return 0;
    uint64_t end = len > USER_MAX - addr ? USER_MAX : addr + len;
    uint64_t va = ALIGN_DOWN(addr, PAGE_SIZE);
    while (va < end) {
        uint64_t pde = pd_low[va / LARGE_PAGE_SIZE];
        if (pde & PTE_P) {
            uint64_t index = (va / PAGE_SIZE) % PT_ENTRIES;
            const uint64_t *pte = (const uint64_t *)phys_to_virt(pde & PTE_ADDR_MASK) + index;
            const uint64_t *p = pte;
            const uint64_t *stop = pte + MIN(PT_ENTRIES - index, (end - va + PAGE_SIZE - 1) / PAGE_SIZE);
            while (p < stop) {
                uint64_t e = *p & keep;
                if (e == expect) {          /* the run goes on: the hot loop */
                    const uint64_t *run = p;
                    do {
                        p++;
                        expect += PAGE_SIZE;
                    } while (p < stop && (*p & keep) == expect);
                    s->len += (uint64_t)(p - run) * PAGE_SIZE;
                    continue;
                }
                if ((e & need) != need || s == last)
                    break;
                s++;
                s->pa = e & PTE_ADDR_MASK;
                s->len = PAGE_SIZE;
                expect = e + PAGE_SIZE;
                p++;
            }
            va += (uint64_t)(p - pte) * PAGE_SIZE;
            if (p == stop)
                continue;                   /* this page table is done */
            if ((*p & PTE_P) || s == last)
                break;                      /* mapped but not for this, or no piece left */
        }
        if (!user_stack_grow(va))           /* only stack pages appear on demand */
            break;
    }
    int n = (int)(s + 1 - seg);
    if (n == 0)
        return 0;
    seg[0].pa += addr % PAGE_SIZE;
    seg[0].len -= addr % PAGE_SIZE;
    if (va > end)
        s->len -= va - end;
    *count = n;
    return MIN(va, end) - addr;
}

void uspace_init(uint64_t start)
{
    /* The stub page is part of the kernel image (identity-mapped: VA = PA). */
    if (map_user_page(USER_STUB_VA, (uint64_t)user_stub_page, 0) < 0)
        panic("out of memory");
    brk_start = brk_cur = start;
}

void user_zero_on_return(struct regs *r, uint64_t start, uint64_t end)
{
    if (start >= end)
        return;
    uint64_t save = r->rsp - SIGNAL_RED_ZONE - STUB_SAVE_SIZE;
    if (save > r->rsp || !user_ok(save, STUB_SAVE_SIZE, 1)) {
        zero_user_pages(start, end);    /* odd user stack: do it the slow way */
        return;
    }
    uint64_t *saved = (uint64_t *)save;
    saved[0] = r->rdi;
    saved[1] = r->rax;
    saved[2] = r->rflags;
    saved[3] = r->rip;
    r->rdi = start;
    r->rcx = (end - start) / 8;
    r->rax = 0;
    r->rflags &= ~RFLAGS_DF;
    r->rip = USER_STUB_VA + (uint64_t)(user_zero_stub - user_stub_page);
    r->rsp = save;
}

/* Linux semantics: returns the new break, or the unchanged one on failure.
 * Pages above the break are unmapped, so memory regained later is zero. */
void sys_brk(struct regs *r)
{
    uint64_t addr = r->rdi;
    r->rax = brk_cur;
    if (addr < brk_start || addr > USER_BRK_LIMIT)
        return;
    uint64_t old_top = ALIGN_UP(brk_cur, PAGE_SIZE);
    uint64_t new_top = ALIGN_UP(addr, PAGE_SIZE);
    if (new_top > old_top) {
        /* Fail fast rather than map and unmap page by page: data pages
         * plus a page table per 2 MiB. */
        uint64_t pages = (new_top - old_top) / PAGE_SIZE;
        if (pages + pages / PT_ENTRIES + 2 > pages_free() ||
            map_user_fresh_pages(old_top, new_top, PTE_W | pte_nx, 0) < 0)
            return;
    }
    if (new_top < old_top)
        unmap_user_pages(new_top, old_top);
    brk_cur = r->rax = addr;
    user_zero_on_return(r, old_top, new_top);   /* nothing to do unless it grew */
}
