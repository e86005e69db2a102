/*
 * Changing and checking attributes: access, faccessat, faccessat2, chmod,
 * fchmod, fchmodat, chown, fchown, lchown, fchownat, utimensat, truncate,
 * ftruncate.  The caller is root: reading and writing are always allowed,
 * executing needs an x bit somewhere (directories: always searchable).
 */
#include "clock.h"
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/task.h"


long sys_faccessat2(uint64_t dirfd, uint64_t path, uint64_t mode, uint64_t flags)
{
    if ((mode & ~7ull) || (flags & ~(uint64_t)(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)))
        return -EINVAL;
    struct inode *ino;
    long r = user_path_at((int)dirfd, path, flags & AT_SYMLINK_NOFOLLOW ? 0 : LOOKUP_FOLLOW,
                          (flags & AT_EMPTY_PATH) != 0, &ino);
    if (r)
        return r;
    if ((mode & X_OK) && !S_ISDIR(ino->mode) && !(ino->mode & S_IXUGO))
        return -EACCES;
    return 0;
}

long sys_faccessat(uint64_t dirfd, uint64_t path, uint64_t mode)
{
    return sys_faccessat2(dirfd, path, mode, 0);
}

long sys_access(uint64_t path, uint64_t mode)
{
    return sys_faccessat2((uint64_t)AT_FDCWD, path, mode, 0);
}

static long chmod_inode(struct inode *ino, uint64_t mode)
{
    ino->mode = (ino->mode & S_IFMT) | (uint32_t)(mode & S_IALLUGO);
    inode_touch(ino, 0);
    return 0;
}

long sys_fchmodat(uint64_t dirfd, uint64_t path, uint64_t mode)
{
    struct inode *ino;
    long r = user_path_at((int)dirfd, path, LOOKUP_FOLLOW, 0, &ino);
    return r ? r : chmod_inode(ino, mode);
}

long sys_chmod(uint64_t path, uint64_t mode)
{
    return sys_fchmodat((uint64_t)AT_FDCWD, path, mode);
}

long sys_fchmod(uint64_t fd, uint64_t mode)
{
    struct file *f = fd_file((int)fd);
    return f && !(f->flags & O_PATH) ? chmod_inode(f->inode, mode) : -EBADF;
}

static long chown_inode(struct inode *ino, uint64_t uid, uint64_t gid)
{
    if ((uint32_t)uid != (uint32_t)-1)
        ino->uid = (uint32_t)uid;
    if ((uint32_t)gid != (uint32_t)-1)
        ino->gid = (uint32_t)gid;
    if (!S_ISDIR(ino->mode))
        ino->mode &= ~(uint32_t)(S_ISUID | ((ino->mode & S_IXUGO & 010) ? S_ISGID : 0));
    inode_touch(ino, 0);
    return 0;
}

long sys_fchownat(uint64_t dirfd, uint64_t path, uint64_t uid, uint64_t gid, uint64_t flags)
{
    if (flags & ~(uint64_t)(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
        return -EINVAL;
    struct inode *ino;
    long r = user_path_at((int)dirfd, path, flags & AT_SYMLINK_NOFOLLOW ? 0 : LOOKUP_FOLLOW,
                          (flags & AT_EMPTY_PATH) != 0, &ino);
    return r ? r : chown_inode(ino, uid, gid);
}

long sys_chown(uint64_t path, uint64_t uid, uint64_t gid)
{
    return sys_fchownat((uint64_t)AT_FDCWD, path, uid, gid, 0);
}

long sys_lchown(uint64_t path, uint64_t uid, uint64_t gid)
{
    return sys_fchownat((uint64_t)AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW);
}

long sys_fchown(uint64_t fd, uint64_t uid, uint64_t gid)
{
    struct file *f = fd_file((int)fd);
    return f && !(f->flags & O_PATH) ? chown_inode(f->inode, uid, gid) : -EBADF;
}

long sys_utimensat(uint64_t dirfd, uint64_t path, uint64_t times, uint64_t flags)
{
    if (flags & ~(uint64_t)(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
        return -EINVAL;
    int64_t t[4];                       /* atime sec, nsec, mtime sec, nsec */
    struct timespec64 now = vfs_now();
    if (times) {
        if (copy_from_user(t, times, sizeof t) < 0)
            return -EFAULT;
        for (int i = 1; i < 4; i += 2)
            if (t[i] != UTIME_NOW && t[i] != UTIME_OMIT && (t[i] < 0 || (uint64_t)t[i] >= NSEC_PER_SEC))
                return -EINVAL;
    } else {
        t[1] = t[3] = UTIME_NOW;
    }
    struct inode *ino;
    long r;
    if (!path) {                        /* futimens: dirfd is the file */
        struct file *f = fd_file((int)dirfd);
        if (!f)
            return -EBADF;
        ino = f->inode;
    } else if ((r = user_path_at((int)dirfd, path, flags & AT_SYMLINK_NOFOLLOW ? 0 : LOOKUP_FOLLOW,
                                 (flags & AT_EMPTY_PATH) != 0, &ino))) {
        return r;
    }
    struct timespec64 *dst[2] = { &ino->atime, &ino->mtime };
    for (int i = 0; i < 2; i++) {
        if (t[2 * i + 1] == UTIME_OMIT)
            continue;
        *dst[i] = t[2 * i + 1] == UTIME_NOW ? now : (struct timespec64){ t[2 * i], t[2 * i + 1] };
    }
    if (t[1] != UTIME_OMIT || t[3] != UTIME_OMIT)
        ino->ctime = now;
    return 0;
}

static long truncate_inode(struct inode *ino, int64_t len)
{
    if (len < 0)
        return -EINVAL;
    if (S_ISDIR(ino->mode))
        return -EISDIR;
    if (!S_ISREG(ino->mode) || ino->ops)
        return -EINVAL;
    return inode_truncate(ino, (uint64_t)len);
}

long sys_truncate(uint64_t path, uint64_t len)
{
    struct inode *ino;
    long r = user_path_at(AT_FDCWD, path, LOOKUP_FOLLOW, 0, &ino);
    return r ? r : truncate_inode(ino, (int64_t)len);
}

long sys_ftruncate(uint64_t fd, uint64_t len)
{
    struct file *f = fd_file((int)fd);
    if (!f || (f->flags & O_PATH))
        return -EBADF;
    if ((int64_t)len < 0 || (f->flags & O_ACCMODE) == O_RDONLY)
        return -EINVAL;
    return truncate_inode(f->inode, (int64_t)len);
}
