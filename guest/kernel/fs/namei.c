/*
 * Path resolution, as Linux's path_lookupat: components separated by any
 * number of slashes, "." and ".." (the root is its own parent), symbolic
 * links followed in the middle of a path always and at its end on request,
 * at most MAX_SYMLINKS of them (ELOOP), names of at most NAME_MAX bytes and
 * paths of at most PATH_MAX (ENAMETOOLONG), a trailing slash demanding a
 * directory (ENOTDIR).
 *
 * A link is expanded by writing "target/rest-of-path" into a work buffer
 * and going on from there; two buffers alternate, so the rest being copied
 * is never the buffer being written.  Inodes found here are valid until the
 * system call returns (one task: nothing else unlinks meanwhile); whoever
 * keeps one takes a reference.
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/task.h"

char *getname(uint64_t upath, int empty_ok, long *err)
{
    char *name = kmalloc(PATH_MAX);
    if (!name) {
        *err = -ENOMEM;
        return 0;
    }
    long r = strncpy_from_user(name, upath, PATH_MAX);
    if (r < 0 || (r == 0 && !empty_ok)) {
        *err = r < 0 ? r : -ENOENT;
        kfree(name, PATH_MAX);
        return 0;
    }
    return name;
}

void putname(char *name)
{
    kfree(name, PATH_MAX);
}

long symlink_target(struct inode *ino, char *buf, size_t size)
{
    if (ino->ops && ino->ops->readlink)
        return ino->ops->readlink(ino, buf, size);
    if (ino->link.len >= size)
        return -ENAMETOOLONG;
    memcpy(buf, ino->link.target, ino->link.len);
    buf[ino->link.len] = 0;
    return ino->link.len;
}

static int is_dot(const char *name, size_t len)
{
    return len == 1 && name[0] == '.';
}

static int is_dotdot(const char *name, size_t len)
{
    return len == 2 && name[0] == '.' && name[1] == '.';
}

static struct inode *component(struct inode *dir, const char *name, size_t len)
{
    if (is_dot(name, len))
        return dir;
    if (is_dotdot(name, len))
        return dir == current->root ? dir : dir->dir.parent;
    return dir_child(dir, name, len);
}

/* "target" + rest (which starts at its '/' or is empty) into a work buffer. */
static long expand_link(struct nameidata *nd, int which, struct inode *link, const char *rest, char **out)
{
    if (!nd->work[which] && !(nd->work[which] = kmalloc(PATH_MAX)))
        return -ENOMEM;
    char *buf = nd->work[which];
    long n = symlink_target(link, buf, PATH_MAX);
    if (n < 0)
        return n;
    if (n == 0)
        return -ENOENT;
    size_t rest_len = strlen(rest);
    if ((size_t)n + rest_len + 1 > PATH_MAX)
        return -ENAMETOOLONG;
    memcpy(buf + n, rest, rest_len + 1);
    *out = buf;
    return 0;
}

long path_walk(struct inode *start, const char *path, int flags, struct nameidata *nd)
{
    nd->work[0] = nd->work[1] = 0;
    nd->dir = nd->inode = 0;
    nd->last = 0;
    nd->last_len = 0;
    nd->trailing_slash = 0;
    struct inode *dir = path[0] == '/' ? current->root : start;
    const char *p = path;
    int links = 0, which = 0;
    for (;;) {
        while (*p == '/')
            p++;
        if (!*p) {                      /* the path names dir itself ("/", "a/..") */
            nd->dir = dir;
            nd->inode = dir;
            nd->last = ".";
            nd->last_len = 1;
            return 0;
        }
        const char *name = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - name);
        if (len > NAME_MAX)
            return -ENAMETOOLONG;
        const char *rest = p;
        while (*rest == '/')
            rest++;
        int last = *rest == 0, slash = *p == '/';
        if (!S_ISDIR(dir->mode))
            return -ENOTDIR;
        struct inode *child = component(dir, name, len);
        if (last && (flags & LOOKUP_PARENT)) {
            nd->dir = dir;
            nd->inode = child;
            nd->last = name;
            nd->last_len = len;
            nd->trailing_slash = slash;
            return 0;
        }
        if (!child)
            return -ENOENT;
        if (S_ISLNK(child->mode) && (!last || slash || (flags & LOOKUP_FOLLOW))) {
            if (++links > MAX_SYMLINKS)
                return -ELOOP;
            char *expanded;
            long r = expand_link(nd, which, child, p, &expanded);
            if (r < 0)
                return r;
            which ^= 1;
            if (expanded[0] == '/')
                dir = current->root;
            p = expanded;
            continue;
        }
        if (last) {
            if ((slash || (flags & LOOKUP_DIRECTORY)) && !S_ISDIR(child->mode))
                return -ENOTDIR;
            nd->dir = dir;
            nd->inode = child;
            nd->last = name;
            nd->last_len = len;
            return 0;
        }
        dir = child;
        p = rest;
    }
}

void nd_release(struct nameidata *nd)
{
    for (int i = 0; i < 2; i++)
        if (nd->work[i])
            kfree(nd->work[i], PATH_MAX);
    nd->work[0] = nd->work[1] = 0;
}

long dir_path(struct inode *dir, char *buf, size_t size)
{
    size_t at = size;                   /* built from the end */
    buf[--at] = 0;
    while (dir != current->root) {
        struct dentry *d = dir->dir.self;
        if (!d)
            return -ENOENT;             /* removed */
        if (at < (size_t)d->len + 1 + 1)
            return -ERANGE;
        at -= d->len;
        memcpy(buf + at, d->name, d->len);
        buf[--at] = '/';
        dir = d->dir;
    }
    if (at == size - 1)
        buf[--at] = '/';
    size_t len = size - 1 - at;
    memcpy(buf, buf + at, len + 1);
    return (long)len;
}

struct inode *at_start(int dirfd, const char *path, long *err)
{
    if (path[0] == '/' || dirfd == AT_FDCWD)
        return current->cwd;
    struct file *f = fd_file(dirfd);
    if (!f) {
        *err = -EBADF;
        return 0;
    }
    if (!S_ISDIR(f->inode->mode)) {
        *err = -ENOTDIR;
        return 0;
    }
    return f->inode;
}

long user_path_at(int dirfd, uint64_t upath, int flags, int empty_ok, struct inode **out)
{
    long err = 0;
    char *name = getname(upath, empty_ok, &err);
    if (!name)
        return err;
    if (!name[0]) {                     /* AT_EMPTY_PATH: dirfd itself */
        struct file *f = dirfd == AT_FDCWD ? 0 : fd_file(dirfd);
        if (dirfd != AT_FDCWD && !f)
            err = -EBADF;
        else
            *out = f ? f->inode : current->cwd;
        putname(name);
        return err;
    }
    struct inode *start = at_start(dirfd, name, &err);
    if (start) {
        struct nameidata nd;
        err = path_walk(start, name, flags, &nd);
        if (err == 0)
            *out = nd.inode;
        nd_release(&nd);
    }
    putname(name);
    return err;
}
