/*
 * Reading metadata: stat, lstat, fstat, newfstatat, statx, getdents64,
 * readlink, readlinkat, statfs, fstatfs, in Linux's x86-64 layouts.
 *
 * Directories report one 4 KiB block (st_size 4096, st_blocks 8), as on
 * ext4, so that `ls -l` totals match the host's for the same tree; regular
 * files report the 512-byte units of their pages.
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/task.h"

#define ROOT_DEV      MKDEV(0, 1)       /* the RAM file system (Linux's rootfs is 0:1 too) */
#define TMPFS_MAGIC   0x01021994       /* what Linux's rootfs is when it is a tmpfs */
#define STATX_RESERVED 0x80000000u

struct stat_k {
    uint64_t dev, ino, nlink;
    uint32_t mode, uid, gid, pad0;
    uint64_t rdev;
    int64_t size, blksize, blocks;
    int64_t atime, atime_nsec, mtime, mtime_nsec, ctime, ctime_nsec;
    int64_t unused[3];
};

struct statx_time {
    int64_t sec;
    uint32_t nsec;
    int32_t reserved;
};

struct statx_k {
    uint32_t mask, blksize;
    uint64_t attributes;
    uint32_t nlink, uid, gid;
    uint16_t mode, pad0;
    uint64_t ino, size, blocks, attributes_mask;
    struct statx_time atime, btime, ctime, mtime;
    uint32_t rdev_major, rdev_minor, dev_major, dev_minor;
    uint64_t mnt_id;
    uint32_t dio_mem_align, dio_offset_align;
    uint64_t spare[12];
};

_Static_assert(sizeof(struct stat_k) == 144, "struct stat layout");
_Static_assert(sizeof(struct statx_k) == 256, "struct statx layout");

static int64_t stat_size(const struct inode *ino)
{
    return S_ISDIR(ino->mode) ? STAT_BLOCK_SIZE : S_ISLNK(ino->mode) && !ino->ops ? ino->link.len : ino->size;
}

static int64_t stat_blocks(const struct inode *ino)
{
    if (S_ISDIR(ino->mode))
        return STAT_BLOCK_SIZE / 512;
    return S_ISREG(ino->mode) ? (int64_t)ALIGN_UP((uint64_t)ino->size, PAGE_SIZE) / 512 : 0;
}

static long fill_stat(const struct inode *ino, uint64_t buf)
{
    struct stat_k st = {
        .dev = ROOT_DEV, .ino = ino->ino, .nlink = ino->nlink, .mode = ino->mode, .uid = ino->uid,
        .gid = ino->gid, .rdev = ino->rdev, .size = stat_size(ino), .blksize = STAT_BLOCK_SIZE,
        .blocks = stat_blocks(ino),
        .atime = ino->atime.sec, .atime_nsec = ino->atime.nsec, .mtime = ino->mtime.sec,
        .mtime_nsec = ino->mtime.nsec, .ctime = ino->ctime.sec, .ctime_nsec = ino->ctime.nsec,
    };
    return copy_to_user(buf, &st, sizeof st);
}

long sys_newfstatat(uint64_t dirfd, uint64_t path, uint64_t buf, uint64_t flags)
{
    if (flags & ~(uint64_t)(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT))
        return -EINVAL;
    struct inode *ino;
    long r = user_path_at((int)dirfd, path, flags & AT_SYMLINK_NOFOLLOW ? 0 : LOOKUP_FOLLOW,
                          (flags & AT_EMPTY_PATH) != 0, &ino);
    return r ? r : fill_stat(ino, buf);
}

long sys_stat(uint64_t path, uint64_t buf)
{
    return sys_newfstatat((uint64_t)AT_FDCWD, path, buf, 0);
}

long sys_lstat(uint64_t path, uint64_t buf)
{
    return sys_newfstatat((uint64_t)AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW);
}

long sys_fstat(uint64_t fd, uint64_t buf)
{
    struct file *f = fd_file((int)fd);
    return f ? fill_stat(f->inode, buf) : -EBADF;
}

static struct statx_time statx_time(struct timespec64 t)
{
    return (struct statx_time){ t.sec, (uint32_t)t.nsec, 0 };
}

long sys_statx(uint64_t dirfd, uint64_t path, uint64_t flags, uint64_t mask, uint64_t buf)
{
    if (flags & ~(uint64_t)(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE) ||
        (flags & AT_STATX_SYNC_TYPE) == AT_STATX_SYNC_TYPE || (mask & STATX_RESERVED))
        return -EINVAL;
    struct inode *ino;
    long r = user_path_at((int)dirfd, path, flags & AT_SYMLINK_NOFOLLOW ? 0 : LOOKUP_FOLLOW,
                          (flags & AT_EMPTY_PATH) != 0, &ino);
    if (r)
        return r;
    struct statx_k sx = {
        .mask = STATX_BASIC_STATS, .blksize = STAT_BLOCK_SIZE, .nlink = ino->nlink, .uid = ino->uid,
        .gid = ino->gid, .mode = (uint16_t)ino->mode, .ino = ino->ino, .size = (uint64_t)stat_size(ino),
        .blocks = (uint64_t)stat_blocks(ino), .atime = statx_time(ino->atime), .ctime = statx_time(ino->ctime),
        .mtime = statx_time(ino->mtime), .rdev_major = MAJOR(ino->rdev), .rdev_minor = MINOR(ino->rdev),
        .dev_major = MAJOR(ROOT_DEV), .dev_minor = MINOR(ROOT_DEV),
    };
    return copy_to_user(buf, &sx, sizeof sx);
}

/* One linux_dirent64 at out (room bytes free): its length, or 0 if it does not fit. */
static uint64_t put_dirent(uint64_t out, uint64_t room, uint64_t ino, int64_t next, uint8_t type,
                           const char *name, size_t len)
{
    uint64_t reclen = ALIGN_UP(19 + len + 1, 8);
    if (reclen > room)
        return 0;
    char *d = (char *)out;
    memcpy(d, &ino, 8);
    memcpy(d + 8, &next, 8);
    uint16_t rl = (uint16_t)reclen;
    memcpy(d + 16, &rl, 2);
    d[18] = (char)type;
    memcpy(d + 19, name, len);
    memset(d + 19 + len, 0, reclen - 19 - len);
    return reclen;
}

long sys_getdents64(uint64_t fd, uint64_t buf, uint64_t count)
{
    struct file *f = fd_file((int)fd);
    if (!f || (f->flags & O_PATH))
        return -EBADF;
    struct inode *dir = f->inode;
    if (!S_ISDIR(dir->mode))
        return -ENOTDIR;
    count = MIN(count, 0x7ffff000ul);
    if (!user_ok(buf, count, 1))
        return -EFAULT;
    dir_fill(dir);
    uint64_t used = 0, index = (uint64_t)f->pos;
    struct dentry *d = dir->dir.first;
    for (uint64_t i = 2; d && i < index; i++)   /* skip what earlier calls returned */
        d = d->next;
    for (;; index++) {
        uint64_t n;
        if (index == 0)
            n = put_dirent(buf + used, count - used, dir->ino, 1, 4 /* DT_DIR */, ".", 1);
        else if (index == 1)
            n = put_dirent(buf + used, count - used, dir->dir.parent->ino, 2, 4, "..", 2);
        else if (d)
            n = put_dirent(buf + used, count - used, d->inode->ino, (int64_t)index + 1,
                           (uint8_t)((d->inode->mode & S_IFMT) >> 12), d->name, d->len);
        else
            break;
        if (!n) {
            if (!used)
                return -EINVAL;         /* not even one entry fits */
            break;
        }
        used += n;
        if (index >= 2)
            d = d->next;
    }
    f->pos = (int64_t)index;
    return (long)used;
}

long sys_readlinkat(uint64_t dirfd, uint64_t path, uint64_t buf, uint64_t size)
{
    if ((int64_t)size <= 0)
        return -EINVAL;
    struct inode *ino;
    long r = user_path_at((int)dirfd, path, 0, 0, &ino);
    if (r)
        return r;
    if (!S_ISLNK(ino->mode))
        return -EINVAL;
    char *target = kmalloc(PATH_MAX);
    if (!target)
        return -ENOMEM;
    long n = symlink_target(ino, target, PATH_MAX);
    if (n >= 0) {
        n = MIN((uint64_t)n, size);
        if (copy_to_user(buf, target, (uint64_t)n) < 0)
            n = -EFAULT;
    }
    kfree(target, PATH_MAX);
    return n;
}

long sys_readlink(uint64_t path, uint64_t buf, uint64_t size)
{
    return sys_readlinkat((uint64_t)AT_FDCWD, path, buf, size);
}

/* As a tmpfs reports it: inodes limited to half the RAM's pages (its nr_inodes default). */
static long fill_statfs(uint64_t buf)
{
    uint64_t files = pages_total() / 2, used = inodes_in_use();
    uint64_t st[15] = {
        TMPFS_MAGIC, PAGE_SIZE, pages_total(), pages_free(), pages_free(), files, files > used ? files - used : 0, 0,
        NAME_MAX, PAGE_SIZE, 0x20 /* ST_RELATIME */,
    };   /* type bsize blocks bfree bavail files ffree fsid namelen frsize flags spare[4] */
    return copy_to_user(buf, st, sizeof st);
}

long sys_statfs(uint64_t path, uint64_t buf)
{
    struct inode *ino;
    long r = user_path_at(AT_FDCWD, path, LOOKUP_FOLLOW, 0, &ino);
    return r ? r : fill_statfs(buf);
}

long sys_fstatfs(uint64_t fd, uint64_t buf)
{
    return fd_file((int)fd) ? fill_statfs(buf) : -EBADF;
}
