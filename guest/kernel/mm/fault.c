/*
 * User page faults.  A region (vma.c) says what may be there; a page
 * arrives on the first touch:
 *
 *   anonymous   fresh pages, up to FAULT_AROUND of them at once (within the
 *               region and the page table), zeroed in ring 3 by the stub on
 *               the way back to the faulting instruction (user_stub.S);
 *               stack pages one at a time, zeroed here (the stub needs the
 *               stack for its save area)
 *   file        the file's page mapped read-only in place when it is a whole
 *               page of the root file system image (PTE_BORROWED), else a
 *               private copy with zeroes past the end of the file; past the
 *               last page of the file: SIGBUS, as Linux; in a MAP_SHARED
 *               region of a file open for writing, the file's own page,
 *               writable (PTE_SHARED), so writes reach the file and the
 *               other mappings
 *   write to a borrowed page: a private copy (copy on write)
 *   write to a page shared since a fork (PTE_COW): a private copy, or the
 *               page itself once no other address space maps it
 *
 * The stack region grows down on a fault below it, to RLIMIT_STACK.
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "layout.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "uapi.h"
#include "x86.h"

#define FAULT_AROUND   16               /* pages mapped per anonymous fault */
#define PF_ERR_WRITE   0x2
#define PF_ERR_FETCH   0x10

/* The stack region, grown down to cover addr, or NULL. */
static struct vma *stack_grow(struct mm *mm, uint64_t addr)
{
    struct vma *v = vma_find(mm, addr);
    if (!v || !(v->flags & VMA_STACK) || addr < mm->stack_limit || addr < USER_MIN)
        return 0;
    v->start = ALIGN_DOWN(addr, PAGE_SIZE);
    return v;
}

/* A private copy of the file's page at `index`: its first `keep` bytes (at
 * most), zeroes after them and after the end of the file.  0: no memory. */
static uint64_t file_page_copy(struct inode *inode, uint64_t index, uint64_t keep)
{
    uint64_t pa = alloc_page_unzeroed();
    if (!pa)
        return 0;
    uint64_t n = inode_read_kernel(inode, index * PAGE_SIZE, phys_to_virt(pa), MIN(keep, PAGE_SIZE));
    memset((char *)phys_to_virt(pa) + n, 0, PAGE_SIZE - n);
    return pa;
}

/* Map the page at `page` of file region v.  0, or the signal to send. */
static int file_fault(struct mm *mm, struct vma *v, uint64_t page, int write, uint64_t *pte)
{
    uint64_t index = (page - v->start + v->offset) / PAGE_SIZE;
    if (index >= ALIGN_UP(v->inode->size, PAGE_SIZE) / PAGE_SIZE)
        return SIGBUS;
    uint64_t flags = pte_flags(v->prot), pa;
    if (v->flags & VMA_MAYWRITE) {      /* MAP_SHARED, writable file: the file's own page */
        if (!(pa = inode_shared_page(v->inode, index)) || page_share(pa) < 0)
            return SIGKILL;
        *pte = pa | flags | PTE_SHARED;
        return 0;
    }
    uint64_t keep = v->file_end > page ? v->file_end - page : 0;   /* an ELF segment's file part */
    if (!write && keep >= PAGE_SIZE && (pa = inode_borrowable_page(v->inode, index))) {
        *pte = pa | (flags & ~(uint64_t)PTE_W) | PTE_BORROWED;
        return 0;
    }
    if (!(pa = file_page_copy(v->inode, index, keep)))
        return SIGKILL;
    (void)mm;
    *pte = pa | flags;
    return 0;
}

/* Fresh anonymous pages from `page` on.  With r, up to FAULT_AROUND and
 * zeroed in ring 3 on the return r describes; without, one, zeroed here. */
static int anon_fault(struct mm *mm, struct vma *v, uint64_t page, struct regs *r)
{
    uint64_t flags = pte_flags(v->prot);
    if (!r || (v->flags & VMA_STACK) || !(v->prot & PROT_WRITE)) {
        uint64_t pa = alloc_page();
        if (!pa)
            return SIGKILL;
        *pte_lookup(mm, page, 0) = pa | flags;
        return 0;
    }
    uint64_t end = MIN(MIN(v->end, page + FAULT_AROUND * PAGE_SIZE), ALIGN_UP(page + 1, LARGE_PAGE_SIZE));
    uint64_t *pte = pte_lookup(mm, page, 0);
    uint64_t n = 1;
    while (page + n * PAGE_SIZE < end && !pte[n])
        n++;
    uint64_t pa;
    n = alloc_run_unzeroed(n, &pa);
    if (!n)
        return SIGKILL;
    for (uint64_t i = 0; i < n; i++)
        pte[i] = (pa + i * PAGE_SIZE) | flags;
    user_zero_on_return(r, page, page + n * PAGE_SIZE);
    return 0;
}

/* Make the page at addr usable for the access; r for the ring-3 zeroing, or
 * NULL.  0 (done), or the signal to send with its code in *code. */
static int fault(uint64_t addr, int write, int fetch, struct regs *r, int *code)
{
    struct mm *mm = current->mm;
    *code = SEGV_MAPERR;
    if (addr < USER_MIN || addr >= USER_END)
        return SIGSEGV;
    struct vma *v = vma_containing(mm, addr);
    if (!v && !(v = stack_grow(mm, addr)))
        return SIGSEGV;
    *code = SEGV_ACCERR;
    if ((v->flags & VMA_WINDOW) || !(v->prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) ||
        (write && !(v->prot & PROT_WRITE)) ||
        (fetch && !(v->prot & PROT_EXEC)))
        return SIGSEGV;
    uint64_t page = ALIGN_DOWN(addr, PAGE_SIZE);
    uint64_t *pte = pte_lookup(mm, page, 1);
    if (!pte)
        return SIGKILL;
    if (*pte & PTE_P) {
        if (write && (*pte & PTE_BORROWED)) {       /* copy on write */
            uint64_t pa = alloc_page_unzeroed();
            if (!pa)
                return SIGKILL;
            memcpy(phys_to_virt(pa), phys_to_virt(*pte & PTE_ADDR_MASK), PAGE_SIZE);
            *pte = pa | pte_flags(v->prot);
        } else if (write && (*pte & PTE_COW) && page_is_shared(*pte & PTE_ADDR_MASK)) {
            uint64_t old = *pte & PTE_ADDR_MASK, pa = alloc_page_unzeroed();
            if (!pa)
                return SIGKILL;
            memcpy(phys_to_virt(pa), phys_to_virt(old), PAGE_SIZE);
            page_put(old);              /* one sharer fewer */
            *pte = pa | pte_flags(v->prot);
        } else if (write) {
            *pte = (*pte | PTE_W) & ~(uint64_t)PTE_COW;   /* the last sharer keeps it */
        }
        invlpg(page);
        return 0;
    }
    if (*pte) {                         /* kept under PROT_NONE: the region allows it now */
        *pte = (*pte & (PTE_ADDR_MASK | PTE_BORROWED | PTE_COW | PTE_SHARED)) | pte_flags(v->prot);
        if (*pte & (PTE_BORROWED | PTE_COW))
            *pte &= ~(uint64_t)PTE_W;
        return fault(addr, write, fetch, r, code);
    }
    int sig = v->inode ? file_fault(mm, v, page, write, pte) : anon_fault(mm, v, page, r);
    if (sig == SIGBUS)
        *code = BUS_ADRERR;
    return sig;
}

int user_page_fault(struct regs *r, uint64_t addr, int *sig, int *code)
{
    *sig = fault(addr, (r->error & PF_ERR_WRITE) != 0, (r->error & PF_ERR_FETCH) != 0, r, code);
    return *sig == 0;
}

int user_fault_in(uint64_t addr, int write)
{
    int code;
    return fault(addr, write, 0, 0, &code) == 0;
}
