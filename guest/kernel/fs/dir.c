/*
 * Changing the tree: mkdir, mkdirat, mknod, mknodat, unlink, unlinkat,
 * rmdir, rename, renameat, renameat2 (RENAME_NOREPLACE, RENAME_EXCHANGE),
 * link, linkat, symlink, symlinkat, with Linux's errors for the special
 * names ("." and ".."), existing targets, non-empty directories and moves
 * of a directory into itself.
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/task.h"

#define LINUX_NEW_DEV_MAJOR(d) ((uint32_t)(((d) & 0xfff00) >> 8))
#define LINUX_NEW_DEV_MINOR(d) ((uint32_t)(((d) & 0xff) | (((d) >> 12) & 0xfff00)))

struct parent {
    char *name;
    struct nameidata nd;
    int dot, dotdot;                    /* the last component is "." / ".." */
};

/* Resolve all of path but its last component. 0, or -errno (nothing to release). */
static long parent_of(int dirfd, uint64_t upath, struct parent *p)
{
    long err = 0;
    if (!(p->name = getname(upath, 0, &err)))
        return err;
    struct inode *start = at_start(dirfd, p->name, &err);
    if (start && (err = path_walk(start, p->name, LOOKUP_PARENT, &p->nd)) == 0) {
        p->dot = p->nd.last_len == 1 && p->nd.last[0] == '.';
        p->dotdot = p->nd.last_len == 2 && p->nd.last[0] == '.' && p->nd.last[1] == '.';
        return 0;
    }
    if (start)
        nd_release(&p->nd);
    putname(p->name);
    return err;
}

static void parent_done(struct parent *p)
{
    nd_release(&p->nd);
    putname(p->name);
}

/* A new inode named by p (which must not exist): 0, or -errno. */
static long add_new(struct parent *p, struct inode *ino)
{
    if (!ino)
        return -ENOMEM;
    long r = dentry_add(p->nd.dir, p->nd.last, p->nd.last_len, ino);
    if (r < 0)
        kfree(ino, sizeof *ino);
    return r;
}

long sys_mkdirat(uint64_t dirfd, uint64_t path, uint64_t mode)
{
    struct parent p;
    long r = parent_of((int)dirfd, path, &p);
    if (r)
        return r;
    if (p.dot || p.dotdot || p.nd.inode)
        r = -EEXIST;
    else
        r = add_new(&p, inode_new(S_IFDIR | (mode & S_IALLUGO & ~current->umask)));
    parent_done(&p);
    return r;
}

long sys_mkdir(uint64_t path, uint64_t mode)
{
    return sys_mkdirat((uint64_t)AT_FDCWD, path, mode);
}

long sys_mknodat(uint64_t dirfd, uint64_t path, uint64_t mode, uint64_t dev)
{
    uint32_t type = mode & S_IFMT;
    if (type == S_IFDIR)
        return -EPERM;
    if (type && type != S_IFREG && type != S_IFCHR && type != S_IFBLK && type != S_IFIFO && type != S_IFSOCK)
        return -EINVAL;
    struct parent p;
    long r = parent_of((int)dirfd, path, &p);
    if (r)
        return r;
    if (p.dot || p.dotdot || p.nd.inode) {
        r = -EEXIST;
    } else {
        struct inode *ino = inode_new((type ? type : S_IFREG) | (mode & S_IALLUGO & ~current->umask));
        if (ino && (type == S_IFCHR || type == S_IFBLK))
            ino->rdev = MKDEV(LINUX_NEW_DEV_MAJOR(dev), LINUX_NEW_DEV_MINOR(dev));
        r = add_new(&p, ino);
    }
    parent_done(&p);
    return r;
}

long sys_mknod(uint64_t path, uint64_t mode, uint64_t dev)
{
    return sys_mknodat((uint64_t)AT_FDCWD, path, mode, dev);
}

static long remove_entry(struct parent *p, int rmdir)
{
    if (p->dot)
        return rmdir ? -EINVAL : -EISDIR;
    if (p->dotdot)
        return rmdir ? -ENOTEMPTY : -EISDIR;
    struct inode *ino = p->nd.inode;
    if (!ino)
        return -ENOENT;
    if (rmdir) {
        if (!S_ISDIR(ino->mode))
            return -ENOTDIR;
        if (ino == current->root)
            return -EBUSY;
        if (!dir_is_empty(ino))
            return -ENOTEMPTY;
    } else if (S_ISDIR(ino->mode)) {
        return -EISDIR;
    } else if (p->nd.trailing_slash) {
        return -ENOTDIR;
    }
    struct dentry *d = dentry_lookup(p->nd.dir, p->nd.last, p->nd.last_len);
    if (!d)
        return -EPERM;                  /* a synthetic entry without a name of its own */
    dentry_remove(d);
    return 0;
}

long sys_unlinkat(uint64_t dirfd, uint64_t path, uint64_t flags)
{
    if (flags & ~(uint64_t)AT_REMOVEDIR)
        return -EINVAL;
    struct parent p;
    long r = parent_of((int)dirfd, path, &p);
    if (r)
        return r;
    r = remove_entry(&p, (flags & AT_REMOVEDIR) != 0);
    parent_done(&p);
    return r;
}

long sys_unlink(uint64_t path)
{
    return sys_unlinkat((uint64_t)AT_FDCWD, path, 0);
}

long sys_rmdir(uint64_t path)
{
    return sys_unlinkat((uint64_t)AT_FDCWD, path, AT_REMOVEDIR);
}

/* Is dir the directory d or below it? */
static int is_below(struct inode *dir, struct inode *d)
{
    for (;;) {
        if (dir == d)
            return 1;
        if (dir == current->root || dir == root_inode || !dir->dir.self)
            return 0;
        dir = dir->dir.parent;
    }
}

/* Give ino the name p names (which does not exist now). */
static long rename_move(struct dentry *from, struct parent *to)
{
    struct inode *ino = from->inode;
    inode_get(ino);                     /* nlink may touch 0 in between */
    dentry_remove(from);
    long r = dentry_add(to->nd.dir, to->nd.last, to->nd.last_len, ino);
    inode_put(ino);
    return r;
}

static long do_rename(struct parent *a, struct parent *b, uint64_t flags)
{
    if (a->dot || a->dotdot || b->dot || b->dotdot)
        return -EBUSY;
    struct inode *from = a->nd.inode, *to = b->nd.inode;
    if (!from)
        return -ENOENT;
    if ((flags & RENAME_EXCHANGE) && !to)
        return -ENOENT;
    if ((flags & RENAME_NOREPLACE) && to)
        return -EEXIST;
    if ((a->nd.trailing_slash || b->nd.trailing_slash) && !S_ISDIR(from->mode))
        return -ENOTDIR;
    if (S_ISDIR(from->mode) && is_below(b->nd.dir, from))
        return -EINVAL;
    if ((flags & RENAME_EXCHANGE) && S_ISDIR(to->mode) && is_below(a->nd.dir, to))
        return -EINVAL;
    if (from == to)
        return 0;
    struct dentry *src = dentry_lookup(a->nd.dir, a->nd.last, a->nd.last_len);
    struct dentry *dst = to ? dentry_lookup(b->nd.dir, b->nd.last, b->nd.last_len) : 0;
    if (!src || (to && !dst))
        return -EPERM;
    if (flags & RENAME_EXCHANGE) {
        inode_get(from);
        inode_get(to);
        dentry_remove(src);
        dentry_remove(dst);
        long r = dentry_add(b->nd.dir, b->nd.last, b->nd.last_len, from);
        if (r == 0)
            r = dentry_add(a->nd.dir, a->nd.last, a->nd.last_len, to);
        inode_put(from);
        inode_put(to);
        return r;
    }
    if (to) {
        if (S_ISDIR(from->mode) && !S_ISDIR(to->mode))
            return -ENOTDIR;
        if (!S_ISDIR(from->mode) && S_ISDIR(to->mode))
            return -EISDIR;
        if (S_ISDIR(to->mode) && !dir_is_empty(to))
            return -ENOTEMPTY;
        dentry_remove(dst);
    }
    return rename_move(src, b);
}

long sys_renameat2(uint64_t olddfd, uint64_t oldpath, uint64_t newdfd, uint64_t newpath, uint64_t flags)
{
    if ((flags & ~(uint64_t)(RENAME_NOREPLACE | RENAME_EXCHANGE)) ||
        (flags & (RENAME_NOREPLACE | RENAME_EXCHANGE)) == (RENAME_NOREPLACE | RENAME_EXCHANGE))
        return -EINVAL;
    struct parent a, b;
    long r = parent_of((int)olddfd, oldpath, &a);
    if (r)
        return r;
    if ((r = parent_of((int)newdfd, newpath, &b)) == 0) {
        r = do_rename(&a, &b, flags);
        parent_done(&b);
    }
    parent_done(&a);
    return r;
}

long sys_renameat(uint64_t olddfd, uint64_t oldpath, uint64_t newdfd, uint64_t newpath)
{
    return sys_renameat2(olddfd, oldpath, newdfd, newpath, 0);
}

long sys_rename(uint64_t oldpath, uint64_t newpath)
{
    return sys_renameat2((uint64_t)AT_FDCWD, oldpath, (uint64_t)AT_FDCWD, newpath, 0);
}

long sys_linkat(uint64_t olddfd, uint64_t oldpath, uint64_t newdfd, uint64_t newpath, uint64_t flags)
{
    if (flags & ~(uint64_t)(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH))
        return -EINVAL;
    struct inode *ino;
    long r = user_path_at((int)olddfd, oldpath, flags & AT_SYMLINK_FOLLOW ? LOOKUP_FOLLOW : 0,
                          (flags & AT_EMPTY_PATH) != 0, &ino);
    if (r)
        return r;
    if (S_ISDIR(ino->mode))
        return -EPERM;
    struct parent p;
    if ((r = parent_of((int)newdfd, newpath, &p)))
        return r;
    if (p.dot || p.dotdot || p.nd.inode)
        r = -EEXIST;
    else if (p.nd.trailing_slash)
        r = -ENOENT;
    else if ((r = dentry_add(p.nd.dir, p.nd.last, p.nd.last_len, ino)) == 0)
        inode_touch(ino, 0);
    parent_done(&p);
    return r;
}

long sys_link(uint64_t oldpath, uint64_t newpath)
{
    return sys_linkat((uint64_t)AT_FDCWD, oldpath, (uint64_t)AT_FDCWD, newpath, 0);
}

long sys_symlinkat(uint64_t target, uint64_t newdfd, uint64_t linkpath)
{
    long r = 0;
    char *text = getname(target, 0, &r);
    if (!text)
        return r;
    struct parent p;
    if ((r = parent_of((int)newdfd, linkpath, &p)) == 0) {
        if (p.dot || p.dotdot || p.nd.inode) {
            r = -EEXIST;
        } else {
            size_t len = strlen(text);
            struct inode *ino = inode_new(S_IFLNK | 0777);
            char *copy = kmalloc(len + 1);
            if (ino && copy) {
                memcpy(copy, text, len + 1);
                ino->link.target = copy;
                ino->link.len = (uint32_t)len;
                if ((r = dentry_add(p.nd.dir, p.nd.last, p.nd.last_len, ino)) < 0) {
                    kfree(copy, len + 1);
                    kfree(ino, sizeof *ino);
                }
            } else {
                if (copy)
                    kfree(copy, len + 1);
                if (ino)
                    kfree(ino, sizeof *ino);
                r = -ENOMEM;
            }
        }
        parent_done(&p);
    }
    putname(text);
    return r;
}

long sys_symlink(uint64_t target, uint64_t linkpath)
{
    return sys_symlinkat(target, (uint64_t)AT_FDCWD, linkpath);
}
