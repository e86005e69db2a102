/*
 * Memory: physical pages (phys.c), small kernel objects (kmalloc.c), address
 * spaces with their page tables (pagetable.c) and regions (vma.c), the
 * memory system calls (mmap.c), user page faults (fault.c) and checked
 * access to user memory (uaccess.c).
 */
#ifndef MM_MM_H
#define MM_MM_H
#include <stddef.h>
#include <stdint.h>
#include "bootinfo.h"
#include "layout.h"
#include "regs.h"

struct inode;

#define PT_CACHE_SLOTS 4                /* a power of two */

/* ---- Physical pages (phys.c) ------------------------------------------------ */

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
/* Up to n physically contiguous pages with stale contents; returns how many
 * (0: out of memory) and the first one in *pa. */
uint64_t alloc_run_unzeroed(uint64_t n, uint64_t *pa);
void zero_page(uint64_t pa);
void free_page(uint64_t pa);
uint64_t alloc_contiguous(uint64_t n);       /* n contiguous pages, stale; 0 if none */
/* Copy on write: a private page mapped by one more address space (0, or -1
 * without memory for the count), whether others map it, and one unmapping
 * (frees it with the last). */
int page_share(uint64_t pa);
int page_is_shared(uint64_t pa);
void page_put(uint64_t pa);
uint64_t pages_free(void);
uint64_t pages_total(void);
/* Module 0 (the program or the root file system image): never allocated,
 * and its pages may be mapped read-only into user space (PTE_BORROWED). */
int phys_in_module(uint64_t pa);

/* ---- Kernel objects (kmalloc.c): sizes up to PAGE_SIZE, freed with their size. */
void *kmalloc(size_t size);                  /* NULL when out of memory */
void *kzalloc(size_t size);
void kfree(void *p, size_t size);

/* ---- Address spaces ----------------------------------------------------------- */

/* A region of user address space: [start, end), page-aligned. */
struct vma {
    uint64_t start, end;
    uint32_t prot;              /* PROT_READ | PROT_WRITE | PROT_EXEC */
    uint32_t flags;             /* VMA_* */
    struct inode *inode;        /* file-backed: its pages, from offset on */
    uint64_t offset;            /* file offset of start */
    uint64_t file_end;          /* file-backed: the file's bytes end at this address, zeroes after
                                 * (an ELF segment's p_filesz); ~0: at the end of the file */
    struct vma *next;           /* sorted by address */
};
#define VMA_ANON      0x1       /* zero-filled on first touch */
#define VMA_STACK     0x2       /* grows down on faults below it */
#define VMA_HEAP      0x4       /* the brk area */
#define VMA_SHARED    0x8       /* MAP_SHARED: the file's own pages (PTE_SHARED); anonymous ones
                                 * get a nameless file of their own (shared across fork) */
#define VMA_WINDOW    0x10      /* the copy window (layout.h USER_WINDOW_BASE): no faults there */
#define VMA_MAYWRITE  0x20      /* shared file region whose file was open for writing:
                                 * mprotect may add PROT_WRITE */

struct mm {
    uint64_t pml4;              /* physical */
    struct vma *vmas;
    uint64_t brk_start, brk;    /* the break; the heap VMA ends at ALIGN_UP(brk) */
    uint64_t stack_limit;       /* lowest address the stack may grow to */
    struct vma *window;         /* the copy window's region while it is mapped (vma.c clears it) */
    int users;                  /* tasks that hold it, zombies included (clone CLONE_VM) */
    int live;                   /* ... not yet exited: the pages go when this reaches 0 */
    /* Recently found page tables, by 2 MiB region (va >> 21), direct-mapped on the
     * region's low bits: a system call touches the program's data, its stack and
     * the copy window, each a walk of ~25 emulated instructions if not here. */
    uint64_t pt_cache_region[PT_CACHE_SLOTS];
    uint64_t *pt_cache[PT_CACHE_SLOTS];
};

/* pagetable.c */
struct mm *mm_create(void);                  /* NULL when out of memory */
void mm_destroy(struct mm *mm);              /* frees every page it owns */
void mm_activate(struct mm *mm);             /* load its page tables */
/* fork (issue 15a): a copy of mm sharing its private pages copy-on-write;
 * NULL when out of memory.  mm_release_pages: every user page and region
 * goes (at exit), the page tables stay until mm_destroy. */
struct mm *mm_fork(struct mm *mm);
void mm_release_pages(struct mm *mm);
/* clone(CLONE_VM) without CLONE_THREAD: one more task holds mm.  mm_exit:
 * one of them exits (the last live one releases the pages); mm_put: one is
 * gone for good (the last destroys it). */
void mm_share(struct mm *mm);
void mm_exit(struct mm *mm);
void mm_put(struct mm *mm);
/* The PTE for va (USER_MIN <= va < USER_END), creating the tables if
 * `create`; NULL if absent (or out of memory).  The cached case is inline:
 * out of line, the walk's register saves cost as much as the walk. */
uint64_t *pte_lookup_walk(struct mm *mm, uint64_t va, int create);
static inline uint64_t *pte_lookup(struct mm *mm, uint64_t va, int create)
{
    uint64_t region = va >> 21, slot = region % PT_CACHE_SLOTS;
    if (mm->pt_cache[slot] && region == mm->pt_cache_region[slot])
        return &mm->pt_cache[slot][(va >> 12) % PT_ENTRIES];
    return pte_lookup_walk(mm, va, create);
}
/* The page table covering va, or NULL; *next is the first address after
 * it (after the absent region around va when NULL). */
uint64_t *pt_of(struct mm *mm, uint64_t va, uint64_t *next);
/* The PTE bits for a user page of protection prot (borrowed pages: never W). */
uint64_t pte_flags(uint32_t prot);
/* Fresh pages at [start, end) with prot's PTE bits, in contiguous runs,
 * stale contents: the caller zeroes them (user_zero_on_return or
 * zero_user_range) before user code can read them.  0 or -ENOMEM. */
long map_fresh_pages(struct mm *mm, uint64_t start, uint64_t end, uint64_t flags);
void zero_user_range(struct mm *mm, uint64_t start, uint64_t end);   /* ring 0, mapped pages */
void unmap_pages(struct mm *mm, uint64_t start, uint64_t end);      /* frees owned pages */
void protect_pages(struct mm *mm, uint64_t start, uint64_t end, uint32_t prot);
/* Move the PTEs of [from, from+len) to [to, to+len) (mremap). 0 or -ENOMEM. */
long move_pages(struct mm *mm, uint64_t from, uint64_t to, uint64_t len);
int map_user_page(struct mm *mm, uint64_t va, uint64_t pa, uint64_t flags);  /* 0 / -1 */

/* vma.c */
struct vma *vma_find(struct mm *mm, uint64_t addr);    /* first VMA ending above addr */
struct vma *vma_containing(struct mm *mm, uint64_t addr);
struct vma *vma_new(uint64_t start, uint64_t end, uint32_t prot, uint32_t flags,
                    struct inode *inode, uint64_t offset);   /* takes an inode reference */
void vma_insert(struct mm *mm, struct vma *v);         /* merges with equal neighbours */
void vma_release(struct mm *mm, struct vma *v);        /* free one that is out of the list */
long vma_split(struct mm *mm, struct vma *v, uint64_t addr);   /* 0 or -ENOMEM */
/* Remove [start, end) from the address space: VMAs and pages.  0 / -ENOMEM. */
long vma_unmap(struct mm *mm, uint64_t start, uint64_t end);
int vma_range_free(struct mm *mm, uint64_t start, uint64_t end);
uint64_t vma_free_area(struct mm *mm, uint64_t len, uint64_t hint);   /* 0: none */
void vma_free_all(struct mm *mm);

/* mmap.c */
long sys_mmap(uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags, uint64_t fd, uint64_t off);
long sys_munmap(uint64_t addr, uint64_t len);
long sys_mprotect(uint64_t addr, uint64_t len, uint64_t prot);
long sys_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, uint64_t flags, uint64_t new_addr);
long sys_madvise(uint64_t addr, uint64_t len, uint64_t advice);
long sys_msync(uint64_t addr, uint64_t len, uint64_t flags);
long sys_mlock(uint64_t addr, uint64_t len);
void sys_brk(struct regs *r);                 /* brk(r->rdi) -> r->rax, full path */
/* Set up the heap after exec: the break starts at `start`. */
void mm_brk_init(struct mm *mm, uint64_t start);

/* fault.c: a user #PF; 1 if handled (retry the access), else 0 and the
 * signal to send in *sig, *code. */
int user_page_fault(struct regs *r, uint64_t addr, int *sig, int *code);
/* Make the page at addr present for a kernel access (write: writable),
 * as a user access would: 1 if it now is. */
int user_fault_in(uint64_t addr, int write);

/* ---- User memory (uaccess.c) ------------------------------------------------- */

/* A physically contiguous piece of a buffer: one descriptor. */
struct phys_seg {
    uint64_t pa, len;
};

int user_ok(uint64_t addr, uint64_t len, int write);  /* 1 if all present (writable), faulting in */
/* How many bytes from addr on are usable (a buffer running into a bad page
 * is used up to it, as Linux does). */
uint64_t user_ok_prefix(uint64_t addr, uint64_t len, int write);
/* Until the end call, "user" buffers are kernel buffers (sendfile); DMA
 * into them is refused. */
void uaccess_kernel_begin(void);
void uaccess_kernel_end(void);
/* Copy to or from user memory; 0 or -EFAULT (checked first, nothing partial). */
long copy_to_user(uint64_t dst, const void *src, uint64_t len);
long copy_from_user(void *dst, uint64_t src, uint64_t len);
/* A NUL-terminated user string into buf[size]: its length, -EFAULT, or
 * -ENAMETOOLONG if it does not fit. */
long strncpy_from_user(char *buf, uint64_t src, uint64_t size);
/* The physical pieces of the user buffer [addr, addr+len) (see virtio.h). */
uint64_t user_dma_map(uint64_t addr, uint64_t len, int device_writes,
                      struct phys_seg *seg, int max, int *n);
void uspace_map_stub(struct mm *mm);          /* the ring-3 stub page */
/* Make the return to user mode described by r first zero [start, end)
 * (mapped, page-aligned) in ring 3; zeroes in ring 0 if that is impossible. */
void user_zero_on_return(struct regs *r, uint64_t start, uint64_t end);
/* Make the return described by r (a system call's) first copy len bytes from
 * src to dst in ring 3 and return len: 1, or 0 if the user stack cannot
 * take the stub's save area (then nothing changed). */
int user_copy_on_return(struct regs *r, uint64_t dst, uint64_t src, uint64_t len);

extern uint64_t pte_nx;                       /* PTE_NX, or 0 without NX */

#endif
