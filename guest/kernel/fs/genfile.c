/*
 * Generated files: /proc and /sys text, made at open into up to
 * GEN_MAX_PAGES pages and then read (with positions, pread, lseek) like a
 * regular file; the pages go with the last close.  Writing is refused
 * (EACCES at open, as sysfs and procfs answer root for read-only files).
 */
#include "fs/genfile.h"
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"

void gen_write(struct genbuf *b, const char *s, size_t n)
{
    while (n && b->len < GEN_MAX_PAGES * PAGE_SIZE) {
        uint64_t index = b->len / PAGE_SIZE, at = b->len % PAGE_SIZE;
        if (!b->pages[index] && !(b->pages[index] = alloc_page_unzeroed()))
            return;
        size_t k = MIN(n, PAGE_SIZE - at);
        memcpy((char *)phys_to_virt(b->pages[index]) + at, s, k);
        b->len += k;
        s += k;
        n -= k;
    }
}

void gen_puts(struct genbuf *b, const char *s)
{
    gen_write(b, s, strlen(s));
}

static void put_number(struct genbuf *b, uint64_t v, int base, int width, char fill)
{
    char buf[24];
    int i = sizeof buf;
    do {
        buf[--i] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (i > (int)sizeof buf - width)
        buf[--i] = fill;
    gen_write(b, buf + i, sizeof buf - i);
}

void gen_dec(struct genbuf *b, uint64_t v, int width)
{
    put_number(b, v, 10, width, ' ');
}

void gen_hex(struct genbuf *b, uint64_t v, int width)
{
    put_number(b, v, 16, width, '0');
}

void gen_pad(struct genbuf *b, uint64_t column)
{
    static const char spaces[16] = "                ";
    uint64_t line_start = b->len;       /* find the current column */
    while (line_start > 0) {
        uint64_t at = line_start - 1;
        if (((char *)phys_to_virt(b->pages[at / PAGE_SIZE]))[at % PAGE_SIZE] == '\n')
            break;
        line_start--;
    }
    uint64_t col = b->len - line_start;
    while (col < column) {
        size_t k = MIN(column - col, sizeof spaces);
        gen_write(b, spaces, k);
        col += k;
    }
}

static long gen_read(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    struct genbuf *b = f->priv;
    if ((uint64_t)*pos >= b->len || count == 0)
        return 0;
    count = MIN(count, b->len - (uint64_t)*pos);
    uint64_t n = user_ok_prefix(buf, count, 1);
    if (!n)
        return -EFAULT;
    for (uint64_t done = 0; done < n;) {
        uint64_t at = (uint64_t)*pos + done, k = MIN(n - done, PAGE_SIZE - at % PAGE_SIZE);
        memcpy((char *)buf + done, (char *)phys_to_virt(b->pages[at / PAGE_SIZE]) + at % PAGE_SIZE, k);
        done += k;
    }
    *pos += (int64_t)n;
    return (long)n;
}

static int64_t gen_end(struct file *f)
{
    return (int64_t)((struct genbuf *)f->priv)->len;
}

static void gen_release(struct file *f)
{
    struct genbuf *b = f->priv;
    for (int i = 0; i < GEN_MAX_PAGES; i++)
        if (b->pages[i])
            free_page(b->pages[i]);
    kfree(b, sizeof *b);
}

static const struct file_ops gen_file_ops = {
    .read = gen_read, .end = gen_end, .release = gen_release, .flags = FOP_SEEKABLE | FOP_PREAD,
};

long gen_open(struct inode *ino, struct file *f)
{
    if ((f->flags & O_ACCMODE) != O_RDONLY || (f->flags & O_TRUNC))
        return -EACCES;
    struct genbuf *b = kzalloc(sizeof *b);
    if (!b)
        return -ENOMEM;
    long r = ((const struct gen_ops *)ino->ops)->fn(ino, b);
    f->ops = &gen_file_ops;
    f->priv = b;
    if (r < 0)
        gen_release(f);
    return r;
}

struct inode *gen_file(struct inode *dir, const char *name, uint32_t mode, gen_fn fn)
{
    struct gen_ops *ops = kzalloc(sizeof *ops);     /* one per file: it carries fn */
    struct inode *ino = vfs_mknod_kernel(dir, name, S_IFREG | mode, 0);
    if (!ops)
        panic("out of memory");
    ops->inode.open = gen_open;
    ops->fn = fn;
    ino->ops = &ops->inode;
    return ino;
}

struct inode *gen_file_static(struct inode *dir, const char *name, uint32_t mode, const struct gen_ops *ops)
{
    struct inode *ino = vfs_mknod_kernel(dir, name, S_IFREG | mode, 0);
    ino->ops = &ops->inode;
    return ino;
}

struct inode *gen_symlink(struct inode *dir, const char *name, long (*readlink)(struct inode *, char *, size_t))
{
    struct inode_ops *ops = kzalloc(sizeof *ops);
    struct inode *ino = vfs_mknod_kernel(dir, name, S_IFLNK | 0777, 0);
    if (!ops)
        panic("out of memory");
    ops->readlink = readlink;
    ino->ops = ops;
    return ino;
}
