/*
 * Small kernel objects (inodes, directory entries, open files, regions):
 * power-of-two size classes from 32 bytes to a page, each a free list of
 * freed objects and a page being cut (one object per call: threading a
 * whole page at once would cost hundreds of emulated instructions on this
 * machine's KVM).  The caller frees with the size it asked for, so objects
 * carry no header.  Nothing is zeroed unless asked (kzalloc).
 */
#include "kernel.h"
#include "layout.h"
#include "mm/mm.h"

#define MIN_SHIFT 5                     /* 32 bytes */
#define CLASSES   8                     /* 32 .. 4096 */

static void *free_lists[CLASSES];
static char *cut_next[CLASSES], *cut_end[CLASSES];     /* the page being cut */

static int size_class(size_t size)
{
    return size <= (1u << MIN_SHIFT) ? 0 : 64 - __builtin_clzl(size - 1) - MIN_SHIFT;
}

void *kmalloc(size_t size)
{
    if (size == 0 || size > PAGE_SIZE)
        return 0;
    int c = size_class(size);
    void *p = free_lists[c];
    if (p) {
        free_lists[c] = *(void **)p;
        return p;
    }
    if (cut_next[c] == cut_end[c]) {
        uint64_t pa = alloc_page_unzeroed();
        if (!pa)
            return 0;
        cut_next[c] = phys_to_virt(pa);
        cut_end[c] = cut_next[c] + PAGE_SIZE;
    }
    p = cut_next[c];
    cut_next[c] += (size_t)1 << (MIN_SHIFT + c);
    return p;
}

void *kzalloc(size_t size)
{
    void *p = kmalloc(size);
    if (p)
        memset(p, 0, size);
    return p;
}

void kfree(void *p, size_t size)
{
    if (!p)
        return;
    int c = size_class(size);
    *(void **)p = free_lists[c];
    free_lists[c] = p;
}
