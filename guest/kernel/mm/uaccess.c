/*
 * Checked access to user memory.
 *
 * Every pointer a system call receives is checked here against the page
 * tables themselves (present, user, and writable if the kernel will write),
 * faulting pages in as a user access would (fault.c), so a bad pointer
 * gives -EFAULT and never a kernel fault or a read of kernel memory.  The
 * kernel then reads and writes user memory directly: the user pages are
 * mapped in the same address space.
 */
#include "kernel.h"
#include "layout.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "uapi.h"

#define STUB_SAVE_SIZE 48           /* RDI RSI RAX RCX RFLAGS RIP: see user_stub.S */

extern char user_stub_page[], user_zero_stub[], user_copy_stub[];     /* user_stub.S */

static int uaccess_kernel;      /* sendfile: "user" buffers are kernel pages */

void uaccess_kernel_begin(void)
{
    uaccess_kernel = 1;
}

void uaccess_kernel_end(void)
{
    uaccess_kernel = 0;
}

/* From va on, with faults as a user access would take them. */
static __attribute__((noinline)) int user_ok_slow(struct mm *mm, uint64_t va, uint64_t end, int write)
{
    const uint64_t need = PTE_P | PTE_U | (write ? PTE_W : 0);
    for (; va < end; va += PAGE_SIZE) {
        uint64_t *pte = pte_lookup(mm, va, 0);
        if ((!pte || (*pte & need) != need) && !user_fault_in(va, write))
            return 0;
    }
    return 1;
}

/* Pages whose page table is cached and whose PTEs allow the access take a
 * loop with no calls (a dozen emulated instructions a page); anything else
 * goes to user_ok_slow. */
int user_ok(uint64_t addr, uint64_t len, int write)
{
    uint64_t end = addr + len;
    if (len == 0)
        return 1;
    if (addr < USER_MIN || end > USER_END || end < addr)
        return uaccess_kernel && addr >= DIRECT_MAP_BASE && end > addr;
    struct mm *mm = current->mm;
    const uint64_t need = PTE_P | PTE_U | (write ? PTE_W : 0);
    uint64_t va = ALIGN_DOWN(addr, PAGE_SIZE);
    do {
        uint64_t region = va >> 21, slot = region % PT_CACHE_SLOTS;
        const uint64_t *pt = mm->pt_cache[slot];
        if (!pt || mm->pt_cache_region[slot] != region || (pt[(va >> 12) % PT_ENTRIES] & need) != need)
            return user_ok_slow(mm, va, end, write);
        va += PAGE_SIZE;
    } while (va < end);
    return 1;
}

uint64_t user_ok_prefix(uint64_t addr, uint64_t len, int write)
{
    if (user_ok(addr, len, write))
        return len;
    uint64_t ok = 0;            /* page by page: how far the buffer is good */
    while (ok < len) {
        uint64_t step = MIN(len - ok, PAGE_SIZE - (addr + ok) % PAGE_SIZE);
        if (!user_ok(addr + ok, step, write))
            break;
        ok += step;
    }
    return ok;
}

long copy_to_user(uint64_t dst, const void *src, uint64_t len)
{
    if (!user_ok(dst, len, 1))
        return -EFAULT;
    memcpy((void *)dst, src, len);
    return 0;
}

long copy_from_user(void *dst, uint64_t src, uint64_t len)
{
    if (!user_ok(src, len, 0))
        return -EFAULT;
    memcpy(dst, (const void *)src, len);
    return 0;
}

long strncpy_from_user(char *buf, uint64_t src, uint64_t size)
{
    for (uint64_t i = 0; i < size; i++) {
        if ((i == 0 || (src + i) % PAGE_SIZE == 0) && !user_ok(src + i, 1, 0))
            return -EFAULT;
        buf[i] = ((const volatile char *)src)[i];
        if (!buf[i])
            return (long)i;
    }
    return -ENAMETOOLONG;
}

/* DMA straight into (or out of) user pages: no copy in ring 0, where a copy
 * costs ~0.1 us per byte here.  The walk reads the page tables directly: 7
 * emulated instructions per page inside a physically contiguous run (the
 * allocator hands out brk/.bss memory in runs, so a big buffer is usually
 * one piece), about 60 for the call and each new piece. */
uint64_t user_dma_map(uint64_t addr, uint64_t len, int device_writes,
                      struct phys_seg *seg, int max, int *count)
{
    const uint64_t need = PTE_P | PTE_U | (device_writes ? PTE_W : 0);
    const uint64_t keep = PTE_ADDR_MASK | need;
    struct mm *mm = current->mm;
    struct phys_seg *s = seg - 1, *const last = seg + max - 1;
    uint64_t expect = ~0ull;        /* the masked PTE that would extend *s */
    *count = 0;
    if (len == 0 || addr < USER_MIN || addr >= USER_END || uaccess_kernel)
        return 0;
    uint64_t end = len > USER_END - addr ? USER_END : addr + len;
    uint64_t va = ALIGN_DOWN(addr, PAGE_SIZE);
    while (va < end) {
        uint64_t next;
        const uint64_t *pte = pt_of(mm, va, &next);
        if (pte) {
            pte += (va / PAGE_SIZE) % PT_ENTRIES;
            const uint64_t *p = pte;
            const uint64_t *stop = pte + (MIN(next, ALIGN_UP(end, PAGE_SIZE)) - va) / PAGE_SIZE;
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
        }
        if (s == last || !user_fault_in(va, device_writes))
            break;                          /* no piece left, or a bad page */
        expect = ~0ull;                     /* the page table may have moved */
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

void uspace_map_stub(struct mm *mm)
{
    /* The stub page is part of the kernel image (identity-mapped: VA = PA):
     * borrowed, so that no address space ever frees it. */
    if (map_user_page(mm, USER_STUB_VA, (uint64_t)user_stub_page, PTE_P | PTE_U | PTE_BORROWED) < 0)
        panic("out of memory");
}

/* The save area below the red zone, if the user stack can take it and it
 * does not overlap [start, end), which the stub is about to write. */
static uint64_t *stub_save_area(struct regs *r, uint64_t start, uint64_t end)
{
    uint64_t save = r->rsp - SIGNAL_RED_ZONE - STUB_SAVE_SIZE;
    if (save > r->rsp || (save < end && save + STUB_SAVE_SIZE > start) || !user_ok(save, STUB_SAVE_SIZE, 1))
        return 0;
    return (uint64_t *)save;
}

/* Point r at `stub` with the registers it will restore saved; rax is what
 * the interrupted code gets in RAX. */
static void return_through_stub(struct regs *r, uint64_t *saved, char *stub, uint64_t rax)
{
    saved[0] = r->rdi;
    saved[1] = r->rsi;
    saved[2] = rax;
    saved[3] = r->rcx;
    saved[4] = r->rflags;
    saved[5] = r->rip;
    r->rflags &= ~RFLAGS_DF;
    r->rip = USER_STUB_VA + (uint64_t)(stub - user_stub_page);
    r->rsp = (uint64_t)saved;
}

void user_zero_on_return(struct regs *r, uint64_t start, uint64_t end)
{
    if (start >= end)
        return;
    uint64_t *saved = stub_save_area(r, start, end);
    if (!saved) {
        zero_user_range(current->mm, start, end);   /* odd user stack: do it the slow way */
        return;
    }
    return_through_stub(r, saved, user_zero_stub, r->rax);
    r->rdi = start;
    r->rcx = (end - start) / 8;
    r->rax = 0;
}

int user_copy_on_return(struct regs *r, uint64_t dst, uint64_t src, uint64_t len)
{
    uint64_t *saved = stub_save_area(r, dst, dst + len);
    if (!saved)
        return 0;
    return_through_stub(r, saved, user_copy_stub, len);
    r->rdi = dst;
    r->rsi = src;
    r->rcx = len;
    return 1;
}
