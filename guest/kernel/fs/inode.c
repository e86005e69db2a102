/*
 * Inodes and directory entries of the RAM file system.
 *
 * A directory keeps its entries in a list, in creation order (getdents
 * returns them so: the VMM packs the archive in the host directory's own
 * order, so `find` lists a tree as it would on the host).  Lookups go
 * through one hash table keyed by (directory, name), as Linux's dcache:
 * a /bin with hundreds of applet links costs a few compares per component,
 * which matters where every ring-0 instruction is emulated.
 *
 * An inode lives while it has a name (nlink) or a reference (an open file,
 * a working directory, a mapping, a running program).
 */
#include "clock.h"
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"

#define HASH_BUCKETS 1024               /* a power of two */

/* In .data, not .bss: zero in the image, so nothing zeroes it in ring 0. */
static struct dentry *hash_table[HASH_BUCKETS] __attribute__((section(".data.dcache")));
struct inode *root_inode;
static uint64_t next_ino = 1;
static uint64_t inodes_live;
/* While the boot archive is unpacked, adding entries leaves the directories'
 * times as the archive gave them (Linux's initramfs sets them afterwards). */
int vfs_keep_times;

static uint32_t name_hash(const struct inode *dir, const char *name, size_t len)
{
    uint32_t h = 2166136261u ^ (uint32_t)((uintptr_t)dir >> 4);     /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)name[i]) * 16777619u;
    return h;
}

/* Set when the first program starts.  Before, the times of what the kernel
 * makes (/, /dev, /proc ...) are time since boot, as they were: reading the
 * RTC for them would cost every boot its port accesses. */
int vfs_wall_clock;

struct timespec64 vfs_now(void)
{
    uint64_t sec, nsec;
    if (vfs_wall_clock)
        clock_realtime(&sec, &nsec);
    else
        clock_now(&sec, &nsec);
    return (struct timespec64){ (int64_t)sec, (int64_t)nsec };
}

void inode_touch(struct inode *ino, int mtime)
{
    ino->ctime = vfs_now();
    if (mtime)
        ino->mtime = ino->ctime;
}

struct inode *inode_new(uint32_t mode)
{
    struct inode *ino = kzalloc(sizeof *ino);
    if (!ino)
        return 0;
    ino->ino = next_ino++;
    inodes_live++;
    ino->mode = mode;
    ino->atime = ino->mtime = ino->ctime = vfs_now();
    return ino;
}

static void inode_maybe_free(struct inode *ino)
{
    if (ino->nlink || ino->refs)
        return;
    if (S_ISREG(ino->mode))
        inode_free_data(ino);
    else if (S_ISLNK(ino->mode) && ino->link.target)
        kfree(ino->link.target, ino->link.len + 1);
    kfree(ino, sizeof *ino);
    inodes_live--;
}

uint64_t inodes_in_use(void)
{
    return inodes_live;
}

void inode_get(struct inode *ino)
{
    ino->refs++;
}

void inode_put(struct inode *ino)
{
    ino->refs--;
    inode_maybe_free(ino);
}

struct dentry *dentry_lookup(struct inode *dir, const char *name, size_t len)
{
    uint32_t h = name_hash(dir, name, len);
    for (struct dentry *d = hash_table[h % HASH_BUCKETS]; d; d = d->hash_next)
        if (d->hash == h && d->dir == dir && d->len == len && memcmp(d->name, name, len) == 0)
            return d;
    return 0;
}

long dentry_add(struct inode *dir, const char *name, size_t len, struct inode *ino)
{
    struct dentry *d = kmalloc(sizeof *d + len + 1);
    if (!d)
        return -ENOMEM;
    memcpy(d->name, name, len);
    d->name[len] = 0;
    d->len = (uint16_t)len;
    d->dir = dir;
    d->inode = ino;
    d->hash = name_hash(dir, name, len);
    struct dentry **bucket = &hash_table[d->hash % HASH_BUCKETS];
    d->hash_next = *bucket;
    *bucket = d;
    d->next = 0;
    d->prev = dir->dir.last;
    if (dir->dir.last)
        dir->dir.last->next = d;
    else
        dir->dir.first = d;
    dir->dir.last = d;
    ino->nlink++;
    if (S_ISDIR(ino->mode)) {
        ino->nlink++;                   /* its "." */
        ino->dir.parent = dir;
        ino->dir.self = d;
        dir->nlink++;                   /* its ".." */
    }
    if (!vfs_keep_times)
        inode_touch(dir, 1);
    return 0;
}

void dentry_remove(struct dentry *d)
{
    struct inode *dir = d->dir, *ino = d->inode;
    struct dentry **link = &hash_table[d->hash % HASH_BUCKETS];
    while (*link != d)
        link = &(*link)->hash_next;
    *link = d->hash_next;
    if (d->prev)
        d->prev->next = d->next;
    else
        dir->dir.first = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        dir->dir.last = d->prev;
    ino->nlink--;
    if (S_ISDIR(ino->mode)) {
        ino->nlink--;
        ino->dir.self = 0;
        dir->nlink--;
    }
    inode_touch(dir, 1);
    inode_touch(ino, 0);
    kfree(d, sizeof *d + d->len + 1);
    inode_maybe_free(ino);
}

int dir_is_empty(struct inode *dir)
{
    return dir->dir.first == 0;
}

void dir_fill(struct inode *dir)
{
    if (dir->ops && dir->ops->fill && !(dir->flags & INODE_FILLED)) {
        dir->flags |= INODE_FILLED;
        dir->ops->fill(dir);
    }
    if (dir->ops && dir->ops->refresh)
        dir->ops->refresh(dir);
}

struct inode *dir_child(struct inode *dir, const char *name, size_t len)
{
    if (dir->ops && dir->ops->refresh)
        dir->ops->refresh(dir);
    struct dentry *d = dentry_lookup(dir, name, len);
    if (d)
        return d->inode;
    if (dir->ops && dir->ops->fill && !(dir->flags & INODE_FILLED)) {
        dir_fill(dir);
        if ((d = dentry_lookup(dir, name, len)))
            return d->inode;
    }
    if (dir->ops && dir->ops->lookup)
        return dir->ops->lookup(dir, name, len);
    return 0;
}

static struct inode *add_new(struct inode *dir, const char *name, uint32_t mode)
{
    struct inode *ino = inode_new(mode);
    if (!ino || dentry_add(dir, name, strlen(name), ino) < 0)
        panic("out of memory");
    return ino;
}

struct inode *vfs_mkdir_kernel(struct inode *dir, const char *name, uint32_t mode)
{
    struct dentry *d = dentry_lookup(dir, name, strlen(name));
    if (d)
        return S_ISDIR(d->inode->mode) ? d->inode : 0;
    return add_new(dir, name, S_IFDIR | mode);
}

struct inode *vfs_mknod_kernel(struct inode *dir, const char *name, uint32_t mode, uint32_t rdev)
{
    struct dentry *d = dentry_lookup(dir, name, strlen(name));
    if (d)
        return d->inode;
    struct inode *ino = add_new(dir, name, mode);
    ino->rdev = rdev;
    return ino;
}

void vfs_init(void)
{
    root_inode = inode_new(S_IFDIR | 0755);
    if (!root_inode)
        panic("out of memory");
    root_inode->nlink = 2;
    root_inode->refs = 1;               /* for ever */
    root_inode->dir.parent = root_inode;
}
