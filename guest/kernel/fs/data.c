/*
 * The contents of regular files.
 *
 * A file unpacked from the boot image starts as an extent: its data is
 * already in RAM, page-aligned (the VMM packs the archive so), and stays
 * there, read in place and mapped read-only into programs (PTE_BORROWED):
 * unpacking copies nothing.  A page the file writes becomes its own, in a
 * page tree like ext2's blocks (NDIRECT pages named in the inode, then a
 * page of 512, then a page of 512 such pages: 1 GiB).  Lookups take the
 * tree first, then the extent; neither: a hole, which reads as zeroes.
 *
 * The file's own pages hold zeroes past the end of the file; a borrowed
 * last page does not (the next archive header follows), so it is copied
 * before the file grows over it or is cut inside it.
 *
 * read() and pread64() of borrowed pages go through the copy window: the
 * pages are mapped read-only at USER_WINDOW_BASE and the system call returns
 * through the ring-3 copy stub (user_stub.S), which moves the bytes at
 * native speed.  Only borrowed pages are ever mapped there: they are never
 * freed or written, so a mapping left from an earlier read shows nothing
 * that is not in the boot image, which the program could read anyway.
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "layout.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "proc/thread.h"
#include "syscall/strace.h"
#include "x86.h"

#define PER_PAGE   (PAGE_SIZE / 8)
#define MAX_PAGES  (NDIRECT + PER_PAGE + (uint64_t)PER_PAGE * PER_PAGE)
#define MAX_SIZE   (MAX_PAGES * PAGE_SIZE)

static uint64_t *table_entry(uint64_t *table_pa, uint64_t index, int create)
{
    if (!*table_pa && (!create || !(*table_pa = alloc_page())))
        return 0;
    return &((uint64_t *)phys_to_virt(*table_pa))[index];
}

/* Where the tree names file page `index` (creating tables if asked), or NULL. */
static uint64_t *slot(struct inode *ino, uint64_t index, int create)
{
    if (index < NDIRECT)
        return &ino->data.direct[index];
    index -= NDIRECT;
    if (index < PER_PAGE)
        return table_entry(&ino->data.ind, index, create);
    index -= PER_PAGE;
    if (index >= (uint64_t)PER_PAGE * PER_PAGE)
        return 0;
    uint64_t *leaf = table_entry(&ino->data.dind, index / PER_PAGE, create);
    return leaf ? table_entry(leaf, index % PER_PAGE, create) : 0;
}

static uint64_t page_of(struct inode *ino, uint64_t index)
{
    uint64_t *s = slot(ino, index, 0);
    if (s && *s)
        return *s;
    if (index < ino->data.extent_pages)
        return ino->data.extent_pa + index * PAGE_SIZE;
    return 0;
}

/* File page `index` as the file's own page: the borrowed one copied (zeroes
 * past the end of the file), or a fresh one, zeroed unless the caller
 * overwrites all of it.  Its physical address, or 0 when out of memory. */
static uint64_t own_page(struct inode *ino, uint64_t index, int whole)
{
    uint64_t *s = slot(ino, index, 1);
    if (!s)
        return 0;
    if (*s)
        return *s;
    uint64_t pa = alloc_page_unzeroed();
    if (!pa)
        return 0;
    char *p = phys_to_virt(pa);
    if (index < ino->data.extent_pages && !whole) {
        memcpy(p, phys_to_virt(ino->data.extent_pa + index * PAGE_SIZE), PAGE_SIZE);
        uint64_t keep = (uint64_t)ino->size > index * PAGE_SIZE ? (uint64_t)ino->size - index * PAGE_SIZE : 0;
        if (keep < PAGE_SIZE)
            memset(p + keep, 0, PAGE_SIZE - keep);
    } else if (!whole) {
        zero_page(pa);
    }
    *s = pa;
    return pa;
}

/* Before the file grows: its last page must read zeroes past the old end. */
static long prepare_grow(struct inode *ino)
{
    uint64_t index = (uint64_t)ino->size / PAGE_SIZE;
    if (ino->size % PAGE_SIZE && index < ino->data.extent_pages && !own_page(ino, index, 0))
        return -ENOSPC;
    return 0;
}

uint64_t inode_shared_page(struct inode *ino, uint64_t index)
{
    return own_page(ino, index, 0);
}

uint64_t inode_borrowable_page(struct inode *ino, uint64_t index)
{
    uint64_t *s = slot(ino, index, 0);
    if ((s && *s) || index >= ino->data.extent_pages || (index + 1) * PAGE_SIZE > (uint64_t)ino->size)
        return 0;
    return ino->data.extent_pa + index * PAGE_SIZE;
}

uint64_t inode_read_kernel(struct inode *ino, uint64_t off, void *buf, uint64_t len)
{
    if (off >= (uint64_t)ino->size)
        return 0;
    len = MIN(len, (uint64_t)ino->size - off);
    for (uint64_t done = 0; done < len;) {
        uint64_t at = off + done, n = MIN(len - done, PAGE_SIZE - at % PAGE_SIZE);
        uint64_t pa = page_of(ino, at / PAGE_SIZE);
        if (pa)
            memcpy((char *)buf + done, (char *)phys_to_virt(pa) + at % PAGE_SIZE, n);
        else
            memset((char *)buf + done, 0, n);
        done += n;
    }
    return len;
}

/* Copy between the file at off and the buffer at addr (user or kernel).
 * Returns bytes moved; the caller checked the buffer. */
static uint64_t write_pages(struct inode *ino, uint64_t off, const char *src, uint64_t len)
{
    uint64_t done = 0;
    while (done < len) {
        uint64_t at = off + done, n = MIN(len - done, PAGE_SIZE - at % PAGE_SIZE);
        uint64_t pa = own_page(ino, at / PAGE_SIZE, n == PAGE_SIZE);
        if (!pa)
            break;
        memcpy((char *)phys_to_virt(pa) + at % PAGE_SIZE, src + done, n);
        done += n;
    }
    if (off + done > (uint64_t)ino->size)
        ino->size = (int64_t)(off + done);
    if (done)
        inode_touch(ino, 1);
    return done;
}

long inode_write_kernel(struct inode *ino, uint64_t off, const void *buf, uint64_t len)
{
    if (off + len > MAX_SIZE || off + len < off)
        return -EFBIG;
    if (off + len > (uint64_t)ino->size && prepare_grow(ino) < 0)
        return -ENOSPC;
    uint64_t n = write_pages(ino, off, buf, len);
    return n || !len ? (long)n : -ENOSPC;
}

int ramfs_read_through_window(struct file *f, struct regs *r, uint64_t buf, uint64_t count, int64_t *pos)
{
    struct inode *ino = f->inode;
    struct mm *mm = current->mm;
    /* Under --strace the exit report shows the buffer: it must be filled by then. */
    if (f->ops != &ramfs_file_ops || *pos >= ino->size || count < READ_STUB_MIN || strace_on)
        return 0;
    uint64_t n = MIN(count, (uint64_t)(ino->size - *pos));
    uint64_t first = (uint64_t)*pos / PAGE_SIZE, pages = ((uint64_t)*pos + n - 1) / PAGE_SIZE - first + 1;
    if (first + pages > ino->data.extent_pages || pages > USER_WINDOW_PAGES)
        return 0;
    for (uint64_t i = first; i < first + pages; i++) {      /* all borrowed: none the file's own */
        uint64_t *s = slot(ino, i, 0);
        if (s && *s)
            return 0;
    }
    /* The window is the address space's: another task on it (a thread, a CLONE_VM child)
     * could remap it between these mappings and this task's ring-3 copy, if the tick
     * preempts the copy.  Only a task alone on its address space takes this way. */
    if (mm->users > 1 || !thread_alone(current))
        return 0;
    struct vma *w = mm->window;
    if (!w || w->start != USER_WINDOW_BASE || w->end < USER_WINDOW_BASE + pages * PAGE_SIZE || !user_ok(buf, n, 1))
        return 0;                       /* window gone (unmapped by the program), or a bad buffer */
    uint64_t flags = PTE_P | PTE_U | pte_nx | PTE_BORROWED;
    for (uint64_t j = 0; j < pages; j++) {
        uint64_t va = USER_WINDOW_BASE + j * PAGE_SIZE;
        uint64_t *pte = pte_lookup(mm, va, 1);
        if (!pte)
            return 0;
        uint64_t entry = (ino->data.extent_pa + (first + j) * PAGE_SIZE) | flags;
        if (*pte != entry) {
            int was = *pte & PTE_P;
            *pte = entry;
            if (was)
                invlpg(va);
        }
    }
    if (!user_copy_on_return(r, buf, USER_WINDOW_BASE + (uint64_t)*pos % PAGE_SIZE, n))
        return 0;
    *pos += (int64_t)n;
    return 1;
}

static long ramfs_read(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    struct inode *ino = f->inode;
    if (*pos >= ino->size || count == 0)
        return 0;
    count = MIN(count, (uint64_t)(ino->size - *pos));
    uint64_t n = user_ok_prefix(buf, count, 1);
    if (!n)
        return -EFAULT;
    n = inode_read_kernel(ino, (uint64_t)*pos, (void *)buf, n);
    *pos += (int64_t)n;
    return (long)n;
}

static long ramfs_write(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    struct inode *ino = f->inode;
    if (f->flags & O_APPEND)
        *pos = ino->size;
    if (count == 0)
        return 0;
    if ((uint64_t)*pos >= MAX_SIZE)
        return -EFBIG;
    count = MIN(count, MAX_SIZE - (uint64_t)*pos);
    uint64_t n = user_ok_prefix(buf, count, 0);
    if (!n)
        return -EFAULT;
    long r = inode_write_kernel(ino, (uint64_t)*pos, (const void *)buf, n);
    if (r > 0)
        *pos += r;
    return r;
}

const struct file_ops ramfs_file_ops = {
    .read = ramfs_read,
    .write = ramfs_write,
    .flags = FOP_SEEKABLE | FOP_PREAD,
};

/* Free the file's own pages from page `first` on (a page a shared mapping
 * still maps lives on until it is unmapped: page_put). */
static void free_pages_from(struct inode *ino, uint64_t first)
{
    uint64_t last = ALIGN_UP((uint64_t)ino->size, PAGE_SIZE) / PAGE_SIZE;
    for (uint64_t i = first; i < last; i++) {
        uint64_t *s = slot(ino, i, 0);
        if (s && *s) {
            page_put(*s);
            *s = 0;
        }
    }
}

long inode_truncate(struct inode *ino, uint64_t len)
{
    if (len > MAX_SIZE)
        return -EFBIG;
    if (len < (uint64_t)ino->size) {
        uint64_t keep = ALIGN_UP(len, PAGE_SIZE) / PAGE_SIZE;
        free_pages_from(ino, keep);
        if (ino->data.extent_pages > keep)
            ino->data.extent_pages = keep;
        if (len % PAGE_SIZE) {          /* the cut page: zeroes after the new end */
            uint64_t pa = own_page(ino, len / PAGE_SIZE, 0);
            if (!pa)
                return -ENOMEM;
            memset((char *)phys_to_virt(pa) + len % PAGE_SIZE, 0, PAGE_SIZE - len % PAGE_SIZE);
        }
    } else if (len > (uint64_t)ino->size && prepare_grow(ino) < 0) {
        return -ENOSPC;
    }
    ino->size = (int64_t)len;
    inode_touch(ino, 1);
    return 0;
}

void inode_free_data(struct inode *ino)
{
    free_pages_from(ino, 0);
    if (ino->data.dind) {
        uint64_t *leaves = phys_to_virt(ino->data.dind);
        for (int i = 0; i < PER_PAGE; i++)
            if (leaves[i])
                free_page(leaves[i]);
        free_page(ino->data.dind);
    }
    if (ino->data.ind)
        free_page(ino->data.ind);
    ino->data.ind = ino->data.dind = 0;
    ino->data.extent_pages = 0;
    ino->size = 0;
}
