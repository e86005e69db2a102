/*
 * The regions of an address space (struct vma), kept in a list sorted by
 * address.  A process has tens of them, so a list is the short path here;
 * neighbours with the same attributes are merged, as Linux does, so that
 * glibc's malloc (mprotect on parts of a reservation) does not grow it.
 *
 * Free space for mmap is searched top-down from USER_MMAP_BASE, like Linux's
 * default layout, so addresses look like a Linux process's without ASLR.
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "layout.h"
#include "mm/mm.h"

struct vma *vma_find(struct mm *mm, uint64_t addr)
{
    struct vma *v = mm->vmas;
    while (v && v->end <= addr)
        v = v->next;
    return v;
}

struct vma *vma_containing(struct mm *mm, uint64_t addr)
{
    struct vma *v = vma_find(mm, addr);
    return v && v->start <= addr ? v : 0;
}

struct vma *vma_new(uint64_t start, uint64_t end, uint32_t prot, uint32_t flags,
                    struct inode *inode, uint64_t offset)
{
    struct vma *v = kmalloc(sizeof *v);
    if (!v)
        return 0;
    v->start = start;
    v->end = end;
    v->prot = prot;
    v->flags = flags;
    v->inode = inode;
    v->offset = offset;
    v->file_end = ~0ull;
    v->next = 0;
    if (inode)
        inode_get(inode);
    return v;
}

static void vma_free(struct mm *mm, struct vma *v)
{
    if (mm && mm->window == v)
        mm->window = 0;
    if (v->inode)
        inode_put(v->inode);
    kfree(v, sizeof *v);
}

void vma_release(struct mm *mm, struct vma *v)
{
    vma_free(mm, v);
}

/* b directly follows a and could be one region with it. */
static int mergeable(const struct vma *a, const struct vma *b)
{
    return a->end == b->start && a->prot == b->prot && a->flags == b->flags && a->inode == b->inode &&
           a->file_end == b->file_end && (!a->inode || a->offset + (a->end - a->start) == b->offset);
}

void vma_insert(struct mm *mm, struct vma *v)
{
    struct vma **link = &mm->vmas, *prev = 0;
    while (*link && (*link)->start < v->start) {
        prev = *link;
        link = &(*link)->next;
    }
    v->next = *link;
    *link = v;
    if (v->next && mergeable(v, v->next)) {
        struct vma *n = v->next;
        v->end = n->end;
        v->next = n->next;
        vma_free(mm, n);
    }
    if (prev && mergeable(prev, v)) {
        prev->end = v->end;
        prev->next = v->next;
        vma_free(mm, v);
    }
}

long vma_split(struct mm *mm, struct vma *v, uint64_t addr)
{
    (void)mm;
    if (addr <= v->start || addr >= v->end)
        return 0;
    struct vma *tail = vma_new(addr, v->end, v->prot, v->flags, v->inode, v->offset + (addr - v->start));
    if (!tail)
        return -ENOMEM;
    tail->file_end = v->file_end;
    tail->next = v->next;
    v->next = tail;
    v->end = addr;
    return 0;
}

long vma_unmap(struct mm *mm, uint64_t start, uint64_t end)
{
    struct vma *v = vma_find(mm, start);
    if (v && v->start < start && vma_split(mm, v, start) < 0)
        return -ENOMEM;
    for (v = vma_find(mm, start); v && v->start < end; v = v->next)
        if (v->end > end && vma_split(mm, v, end) < 0)
            return -ENOMEM;
    struct vma **link = &mm->vmas;
    while (*link && (*link)->start < end) {
        struct vma *cur = *link;
        if (cur->start >= start) {
            *link = cur->next;
            vma_free(mm, cur);
        } else {
            link = &cur->next;
        }
    }
    unmap_pages(mm, start, end);
    return 0;
}

int vma_range_free(struct mm *mm, uint64_t start, uint64_t end)
{
    struct vma *v = vma_find(mm, start);
    return !v || v->start >= end;
}

uint64_t vma_free_area(struct mm *mm, uint64_t len, uint64_t hint)
{
    if (len > USER_MMAP_BASE - USER_MIN)
        return 0;
    if (hint >= USER_MIN && hint <= USER_END - len && vma_range_free(mm, hint, hint + len))
        return hint;
    uint64_t top = USER_MMAP_BASE;
    for (;;) {
        uint64_t start = top - len;
        struct vma *v = vma_find(mm, start);
        if (!v || v->start >= top)
            return start;
        if (v->start < USER_MIN + len)
            return 0;
        top = v->start;
    }
}

void vma_free_all(struct mm *mm)
{
    while (mm->vmas) {
        struct vma *v = mm->vmas;
        mm->vmas = v->next;
        vma_free(mm, v);
    }
}
