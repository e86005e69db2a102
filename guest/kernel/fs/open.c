/*
 * Opening and closing: open, openat, creat, close, close_range, dup, dup2,
 * dup3, fcntl, and the working directory (chdir, fchdir, getcwd, umask).
 * Linux's checks, in Linux's order; the one user is root, so permission
 * bits only matter for execution.
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/task.h"

#define OPEN_KNOWN (O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK | \
                    O_DSYNC | 020000 /* FASYNC */ | O_DIRECT | O_LARGEFILE | O_DIRECTORY | \
                    O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_PATH | O_TMPFILE | 04000000 /* __O_SYNC */)
/* What an open file keeps: the access mode and the status flags. */
#define FILE_KEEP  (O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | O_DIRECT | O_LARGEFILE | \
                    O_NOATIME | O_PATH | 020000 | 04000000)

/* Create the regular file nd names; the new inode, or NULL and *err. */
static struct inode *create_file(struct nameidata *nd, uint64_t mode, long *err)
{
    struct inode *ino = inode_new(S_IFREG | (mode & S_IALLUGO & ~current->umask));
    if (!ino || dentry_add(nd->dir, nd->last, nd->last_len, ino) < 0) {
        if (ino)
            kfree(ino, sizeof *ino);
        *err = -ENOMEM;
        return 0;
    }
    return ino;
}

/* The inode open() names (creating it for O_CREAT); NULL and *err. */
static struct inode *open_lookup(struct inode *start, const char *name, uint64_t flags, uint64_t mode,
                                 long *err, int *created)
{
    struct nameidata nd;
    struct inode *ino = 0;
    if (!(flags & O_CREAT)) {
        int lookup = (flags & O_NOFOLLOW ? 0 : LOOKUP_FOLLOW) | (flags & O_DIRECTORY ? LOOKUP_DIRECTORY : 0);
        *err = path_walk(start, name, lookup, &nd);
        ino = *err ? 0 : nd.inode;
        nd_release(&nd);
        return ino;
    }
    *err = path_walk(start, name, LOOKUP_PARENT, &nd);
    if (*err == 0) {
        int dots = (nd.last_len == 1 && nd.last[0] == '.') || (nd.last_len == 2 && nd.last[0] == '.' && nd.last[1] == '.');
        if (nd.inode && (flags & O_EXCL))
            *err = -EEXIST;
        else if (dots || nd.trailing_slash || (nd.inode && S_ISDIR(nd.inode->mode)))
            *err = -EISDIR;
        else if (nd.inode && S_ISLNK(nd.inode->mode)) {
            nd_release(&nd);            /* an existing link: open what it names */
            if (flags & O_NOFOLLOW)
                *err = -ELOOP;
            else if ((*err = path_walk(start, name, LOOKUP_FOLLOW, &nd)) == 0)
                ino = nd.inode;
        } else if (nd.inode) {
            ino = nd.inode;
        } else if ((ino = create_file(&nd, mode, err))) {
            *created = 1;
        }
    }
    nd_release(&nd);
    return *err ? 0 : ino;
}

static long do_open(int dirfd, uint64_t upath, uint64_t flags, uint64_t mode)
{
    if ((flags & O_ACCMODE) == O_ACCMODE)
        return -EINVAL;                 /* kept from the earlier kernel; Linux allows it for ioctls */
    if ((flags & O_TMPFILE) == O_TMPFILE)
        return -EOPNOTSUPP;
    long err = 0;
    char *name = getname(upath, 0, &err);
    if (!name)
        return err;
    int created = 0;
    struct inode *start = at_start(dirfd, name, &err);
    struct inode *ino = start ? open_lookup(start, name, flags, mode, &err, &created) : 0;
    putname(name);
    if (!ino)
        return err;
    uint32_t acc = flags & O_ACCMODE;
    if (S_ISLNK(ino->mode) && !(flags & O_PATH))
        return -ELOOP;                  /* O_NOFOLLOW met a link */
    if ((flags & O_DIRECTORY) && !S_ISDIR(ino->mode))
        return -ENOTDIR;
    if (S_ISDIR(ino->mode) && !(flags & O_PATH) && (acc != O_RDONLY || (flags & O_CREAT)))
        return -EISDIR;
    struct file *f;
    uint32_t keep = (uint32_t)(flags & FILE_KEEP) | O_LARGEFILE;
    if (flags & O_PATH) {
        if (!(f = file_new(ino, O_PATH)))
            return -ENOMEM;
    } else {
        if ((flags & O_TRUNC) && S_ISREG(ino->mode) && !created && !ino->ops && (err = inode_truncate(ino, 0)) < 0)
            return err;
        if ((err = file_open_inode(ino, keep, &f)) < 0)
            return err;
    }
    int fd = fd_install(f, (flags & O_CLOEXEC) != 0, 0);
    if (fd < 0)
        file_put(f);
    return fd;
}

long sys_openat(uint64_t dirfd, uint64_t path, uint64_t flags, uint64_t mode)
{
    return do_open((int)dirfd, path, flags & OPEN_KNOWN, mode);
}

long sys_open(uint64_t path, uint64_t flags, uint64_t mode)
{
    return do_open(AT_FDCWD, path, flags & OPEN_KNOWN, mode);
}

long sys_creat(uint64_t path, uint64_t mode)
{
    return do_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

long sys_close(uint64_t fd)
{
    return fd_close((int)fd);
}

long sys_close_range(uint64_t first, uint64_t last, uint64_t flags)
{
    if (flags & ~(uint64_t)(1u << 2 | 1u << 1))     /* CLOSE_RANGE_CLOEXEC, _UNSHARE */
        return -EINVAL;
    if (first > last)
        return -EINVAL;
    for (uint64_t fd = first; fd <= last && fd < NOFILE_MAX; fd++) {
        if (flags & (1u << 2))
            fd_set_cloexec((int)fd, 1);
        else
            fd_close((int)fd);
    }
    return 0;
}

long sys_dup(uint64_t fd)
{
    struct file *f = fd_file((int)fd);
    if (!f)
        return -EBADF;
    file_get(f);
    int r = fd_install(f, 0, 0);
    if (r < 0)
        file_put(f);
    return r;
}

long sys_dup2(uint64_t oldfd, uint64_t newfd)
{
    if (oldfd == newfd)
        return fd_file((int)oldfd) ? (long)newfd : -EBADF;
    return fd_dup_to((int)oldfd, (int)newfd, 0);
}

long sys_dup3(uint64_t oldfd, uint64_t newfd, uint64_t flags)
{
    if ((flags & ~(uint64_t)O_CLOEXEC) || oldfd == newfd)
        return -EINVAL;
    return fd_dup_to((int)oldfd, (int)newfd, (flags & O_CLOEXEC) != 0);
}

long sys_fcntl(uint64_t fd, uint64_t cmd, uint64_t arg)
{
    struct file *f = fd_file((int)fd);
    if (!f)
        return -EBADF;
    switch (cmd) {
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
        if (arg >= MIN(current->rlim_cur[RLIMIT_NOFILE], (uint64_t)NOFILE_MAX))
            return -EINVAL;
        file_get(f);
        int r = fd_install(f, cmd == F_DUPFD_CLOEXEC, (int)arg);
        if (r < 0)
            file_put(f);
        return r;
    }
    case F_GETFD:
        return fd_cloexec((int)fd) ? FD_CLOEXEC : 0;
    case F_SETFD:
        fd_set_cloexec((int)fd, arg & FD_CLOEXEC);
        return 0;
    case F_GETFL:
        return f->flags;
    case F_SETFL:
        f->flags = (f->flags & ~(uint32_t)O_SETFL_MASK) | (uint32_t)(arg & O_SETFL_MASK);
        return 0;
    case F_GETPIPE_SZ:
        return pipe_size(f);
    case F_GETLK: {                     /* one process: no lock can conflict */
        int16_t unlocked = F_UNLCK;
        return copy_to_user(arg, &unlocked, sizeof unlocked);
    }
    case F_SETLK:
    case F_SETLKW:
        return user_ok(arg, 32, 0) ? 0 : -EFAULT;
    default:
        return -EINVAL;
    }
}

static void set_cwd(struct inode *dir)
{
    inode_get(dir);
    inode_put(current->cwd);
    current->cwd = dir;
}

long sys_chdir(uint64_t path)
{
    struct inode *dir;
    long r = user_path_at(AT_FDCWD, path, LOOKUP_FOLLOW | LOOKUP_DIRECTORY, 0, &dir);
    if (r == 0)
        set_cwd(dir);
    return r;
}

long sys_fchdir(uint64_t fd)
{
    struct file *f = fd_file((int)fd);
    if (!f)
        return -EBADF;
    if (!S_ISDIR(f->inode->mode))
        return -ENOTDIR;
    set_cwd(f->inode);
    return 0;
}

long sys_getcwd(uint64_t buf, uint64_t size)
{
    char *path = kmalloc(PATH_MAX);
    if (!path)
        return -ENOMEM;
    long n = dir_path(current->cwd, path, PATH_MAX);
    if (n >= 0 && (uint64_t)n + 1 > size)
        n = -ERANGE;
    if (n >= 0)
        n = copy_to_user(buf, path, (uint64_t)n + 1) < 0 ? -EFAULT : n + 1;
    kfree(path, PATH_MAX);
    return n;
}

long sys_umask(uint64_t mask)
{
    uint32_t old = current->umask;
    current->umask = mask & 0777;
    return old;
}
