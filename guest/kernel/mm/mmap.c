/*
 * The memory system calls, with Linux's argument checks and errors:
 * mmap (anonymous, and private file mappings; fixed, fixed-noreplace and
 * hinted), munmap, mprotect, mremap, madvise, msync, mlock, brk.
 *
 * mmap only records a region: pages arrive on the first touch (fault.c),
 * anonymous ones zeroed in ring 3.  brk maps its pages at once and has the
 * ring-3 stub zero them on the way back (user_zero_on_return).
 *
 * MAP_SHARED mappings of a file open for writing map the file's own pages
 * (fault.c), shared with every other mapping and with read and write;
 * shared anonymous memory is a nameless file of its own, so that fork's
 * children share it.  Shared mappings of a read-only file cannot become
 * writable, and behave as private ones, which nothing can tell apart.
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "layout.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "uapi.h"

#define MADV_MAX_KNOWN 25               /* MADV_COLLAPSE: the last Linux 6.1 knows */

static int page_aligned(uint64_t x)
{
    return (x & (PAGE_SIZE - 1)) == 0;
}

/* len rounded up to pages; 0 if it wraps or leaves user space. */
static uint64_t page_len(uint64_t len)
{
    if (len > USER_END)
        return 0;
    return ALIGN_UP(len, PAGE_SIZE);
}

/* The file an mmap names: 0 and *inode (NULL for /dev/zero, which maps as
 * anonymous memory, as Linux's does), *writable (opened for writing), or
 * -errno. */
static long mmap_file(uint64_t fd, uint64_t prot, uint64_t type, struct inode **inode, int *writable)
{
    struct file *f = fd_file((int)fd);
    if (!f)
        return -EBADF;
    struct inode *ino = f->inode;
    if (S_ISCHR(ino->mode) && ino->rdev == DEV_ZERO) {
        *inode = 0;
        return 0;
    }
    if (!S_ISREG(ino->mode) || ino->ops)    /* synthetic files (proc, sys) have no pages */
        return -ENODEV;
    if ((f->flags & O_ACCMODE) == O_WRONLY)
        return -EACCES;
    *writable = (f->flags & O_ACCMODE) == O_RDWR;
    if (type != MAP_PRIVATE && (prot & PROT_WRITE) && !*writable)
        return -EACCES;
    *inode = ino;
    return 0;
}

/* Shared anonymous memory (and /dev/zero's): a nameless file of len bytes
 * that only the mappings hold, so fork's children share its pages, as
 * Linux's shmem.  NULL when out of memory. */
static struct inode *shared_anon_file(uint64_t len)
{
    struct inode *ino = inode_new(S_IFREG | 0600);
    if (!ino)
        return 0;
    inode_get(ino);
    if (inode_truncate(ino, len) < 0) {
        inode_put(ino);
        return 0;
    }
    return ino;
}

long sys_mmap(uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags, uint64_t fd, uint64_t off)
{
    struct mm *mm = current->mm;
    uint64_t type = flags & MAP_TYPE;
    if (type != MAP_SHARED && type != MAP_PRIVATE && type != MAP_SHARED_VALIDATE)
        return -EINVAL;
    if (!page_aligned(off) || len == 0 || (prot & ~(uint64_t)(PROT_READ | PROT_WRITE | PROT_EXEC)))
        return -EINVAL;
    if (!(len = page_len(len)))
        return -ENOMEM;
    if (off + len < off)
        return -EOVERFLOW;
    struct inode *inode = 0;
    int writable = 0;
    if (!(flags & MAP_ANONYMOUS)) {
        long r = mmap_file(fd, prot, type, &inode, &writable);
        if (r < 0)
            return r;
    }
    uint64_t start;
    if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
        if (!page_aligned(addr))
            return -EINVAL;
        if (addr < USER_MIN)
            return -EPERM;
        if (addr > USER_END - len)
            return -ENOMEM;
        start = addr;
        if (!vma_range_free(mm, start, start + len)) {
            if (!(flags & MAP_FIXED))
                return -EEXIST;
            if (vma_unmap(mm, start, start + len) < 0)
                return -ENOMEM;
        }
    } else if (!(start = vma_free_area(mm, len, ALIGN_DOWN(addr, PAGE_SIZE)))) {
        return -ENOMEM;
    }
    uint32_t vflags = (inode ? 0 : VMA_ANON) | (type != MAP_PRIVATE ? VMA_SHARED : 0);
    struct inode *anon = 0;
    if (!inode && type != MAP_PRIVATE) {
        if (!(anon = shared_anon_file(len)))
            return -ENOMEM;
        inode = anon;
        off = 0;
        writable = 1;
        vflags = VMA_SHARED;
    }
    if (type != MAP_PRIVATE && writable)
        vflags |= VMA_MAYWRITE;
    struct vma *v = vma_new(start, start + len, (uint32_t)prot, vflags, inode, off);
    if (anon)
        inode_put(anon);                /* the region holds it now (or nothing does) */
    if (!v)
        return -ENOMEM;
    vma_insert(mm, v);
    return (long)start;
}

long sys_munmap(uint64_t addr, uint64_t len)
{
    if (!page_aligned(addr) || len == 0 || addr < USER_MIN || !(len = page_len(len)) || addr > USER_END - len)
        return -EINVAL;
    return vma_unmap(current->mm, addr, addr + len);
}

/* Re-merge the regions around [start, end) after their attributes changed. */
static void merge_range(struct mm *mm, uint64_t start, uint64_t end)
{
    struct vma *v = mm->vmas, *prev = 0;
    while (v && v->end < start) {
        prev = v;
        v = v->next;
    }
    struct vma *cur = prev ? prev : v;
    while (cur && cur->next && cur->start <= end) {
        struct vma *n = cur->next;
        if (cur->end == n->start && cur->prot == n->prot && cur->flags == n->flags && cur->inode == n->inode &&
            cur->file_end == n->file_end && (!cur->inode || cur->offset + (cur->end - cur->start) == n->offset)) {
            cur->end = n->end;
            cur->next = n->next;
            vma_release(mm, n);
        } else {
            cur = n;
        }
    }
}

/* Every byte of [start, end) is in some region (ENOMEM otherwise, as Linux). */
static int fully_mapped(struct mm *mm, uint64_t start, uint64_t end)
{
    uint64_t at = start;
    for (struct vma *v = vma_find(mm, start); v && at < end; v = v->next) {
        if (v->start > at)
            return 0;
        at = v->end;
    }
    return at >= end;
}

long sys_mprotect(uint64_t addr, uint64_t len, uint64_t prot)
{
    struct mm *mm = current->mm;
    if (!page_aligned(addr) || (prot & ~(uint64_t)(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_GROWSDOWN | PROT_GROWSUP)))
        return -EINVAL;
    if ((prot & (PROT_GROWSDOWN | PROT_GROWSUP)) == (PROT_GROWSDOWN | PROT_GROWSUP))
        return -EINVAL;
    if (len == 0)
        return 0;
    if (!(len = page_len(len)) || addr > USER_END - len || addr < USER_MIN)
        return -ENOMEM;
    uint64_t end = addr + len;
    prot &= PROT_READ | PROT_WRITE | PROT_EXEC;
    if (!fully_mapped(mm, addr, end))
        return -ENOMEM;
    for (struct vma *v = vma_find(mm, addr); v && v->start < end; v = v->next)
        if ((v->flags & VMA_SHARED) && v->inode && !(v->flags & VMA_MAYWRITE) && (prot & PROT_WRITE))
            return -EACCES;
    struct vma *first = vma_find(mm, addr);
    if (vma_split(mm, first, addr) < 0)
        return -ENOMEM;
    for (struct vma *v = vma_find(mm, addr); v && v->start < end; v = v->next) {
        if (v->end > end && vma_split(mm, v, end) < 0)
            return -ENOMEM;
        v->prot = (uint32_t)prot;
    }
    protect_pages(mm, addr, end, (uint32_t)prot);
    merge_range(mm, addr, end);
    return 0;
}

long sys_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, uint64_t flags, uint64_t new_addr)
{
    struct mm *mm = current->mm;
    if (flags & ~(uint64_t)(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP))
        return -EINVAL;
    if ((flags & MREMAP_FIXED) && !(flags & MREMAP_MAYMOVE))
        return -EINVAL;
    if (!page_aligned(old) || new_len == 0 || old_len == 0)
        return -EINVAL;         /* old_len 0 duplicates a shared mapping: none here */
    if (flags & MREMAP_DONTUNMAP)
        return -EINVAL;
    old_len = ALIGN_UP(old_len, PAGE_SIZE);
    if (!(new_len = page_len(new_len)))
        return -ENOMEM;
    struct vma *v = vma_containing(mm, old);
    if (!v || old + old_len > v->end)
        return -EFAULT;
    if (flags & MREMAP_FIXED) {
        if (!page_aligned(new_addr) || new_addr < USER_MIN || new_addr > USER_END - new_len)
            return -EINVAL;
        if (new_addr < old + old_len && old < new_addr + new_len)
            return -EINVAL;
    } else {
        if (new_len <= old_len) {       /* shrink in place */
            if (vma_unmap(mm, old + new_len, old + old_len) < 0)
                return -ENOMEM;
            return (long)old;
        }
        if (old + old_len == v->end && old + new_len <= USER_END &&
            vma_range_free(mm, v->end, old + new_len) && !(v->flags & VMA_STACK)) {
            v->end = old + new_len;     /* grow in place: pages come on first touch */
            return (long)old;
        }
        if (!(flags & MREMAP_MAYMOVE))
            return -ENOMEM;
        if (!(new_addr = vma_free_area(mm, new_len, 0)))
            return -ENOMEM;
    }
    if ((flags & MREMAP_FIXED) && vma_unmap(mm, new_addr, new_addr + new_len) < 0)
        return -ENOMEM;
    v = vma_containing(mm, old);        /* the unmap may have split regions */
    uint64_t keep = MIN(old_len, new_len);
    struct vma *moved = vma_new(new_addr, new_addr + new_len, v->prot, v->flags & ~(uint32_t)VMA_HEAP,
                                v->inode, v->offset + (old - v->start));
    if (moved && v->file_end != ~0ull)
        moved->file_end = v->file_end - old + new_addr;
    if (!moved || move_pages(mm, old, new_addr, keep) < 0) {
        if (moved)
            vma_unmap(mm, new_addr, new_addr + new_len);
        return -ENOMEM;
    }
    vma_insert(mm, moved);
    if (vma_unmap(mm, old, old + old_len) < 0)
        return -ENOMEM;
    return (long)new_addr;
}

long sys_madvise(uint64_t addr, uint64_t len, uint64_t advice)
{
    struct mm *mm = current->mm;
    if (!page_aligned(addr) || advice > MADV_MAX_KNOWN || (advice > 4 && advice < 8))
        return -EINVAL;
    if (advice == MADV_REMOVE)
        return -EINVAL;                 /* only for shared memory, which has no pages here */
    if (len == 0)
        return 0;
    if (!(len = page_len(len)) || addr > USER_END - len || addr < USER_MIN)
        return -EINVAL;
    if (!fully_mapped(mm, addr, addr + len))
        return -ENOMEM;
    if (advice == MADV_DONTNEED || advice == MADV_FREE)
        unmap_pages(mm, addr, addr + len);   /* anonymous: zero again; file: its data again */
    return 0;
}

long sys_msync(uint64_t addr, uint64_t len, uint64_t flags)
{
    if (!page_aligned(addr) || (flags & ~7ull) || (flags & 5) == 5)   /* MS_ASYNC|MS_SYNC */
        return -EINVAL;
    len = ALIGN_UP(len, PAGE_SIZE);
    return fully_mapped(current->mm, addr, addr + len) ? 0 : -ENOMEM;
}

long sys_mlock(uint64_t addr, uint64_t len)
{
    uint64_t start = ALIGN_DOWN(addr, PAGE_SIZE);
    return fully_mapped(current->mm, start, ALIGN_UP(addr + len, PAGE_SIZE)) ? 0 : -ENOMEM;
}

void mm_brk_init(struct mm *mm, uint64_t start)
{
    mm->brk_start = mm->brk = ALIGN_UP(start, PAGE_SIZE);
}

/* Linux semantics: returns the new break, or the unchanged one on failure.
 * Pages above the break are unmapped, so memory regained later is zero. */
void sys_brk(struct regs *r)
{
    struct mm *mm = current->mm;
    uint64_t addr = r->rdi;
    r->rax = mm->brk;
    if (addr < mm->brk_start || addr > USER_MMAP_BASE)
        return;
    uint64_t old_top = ALIGN_UP(mm->brk, PAGE_SIZE);
    uint64_t new_top = ALIGN_UP(addr, PAGE_SIZE);
    if (new_top > old_top) {
        /* Fail fast rather than map and unmap page by page: data pages
         * plus a page table per 2 MiB. */
        uint64_t pages = (new_top - old_top) / PAGE_SIZE;
        if (!vma_range_free(mm, old_top, new_top) || pages + pages / PT_ENTRIES + 2 > pages_free())
            return;
        struct vma *heap = vma_new(old_top, new_top, PROT_READ | PROT_WRITE, VMA_ANON | VMA_HEAP, 0, 0);
        if (!heap)
            return;
        if (map_fresh_pages(mm, old_top, new_top, pte_flags(PROT_READ | PROT_WRITE)) < 0) {
            kfree(heap, sizeof *heap);
            return;
        }
        vma_insert(mm, heap);           /* merges with the heap below */
    }
    if (new_top < old_top && vma_unmap(mm, new_top, old_top) < 0)
        return;
    mm->brk = r->rax = addr;
    user_zero_on_return(r, old_top, new_top);   /* nothing to do unless it grew */
}
