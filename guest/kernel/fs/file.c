/*
 * Open files and the descriptor table.
 *
 * An open file (struct file: position, status flags, what it does) is
 * shared by reference: dup'ed descriptors name the same one, as will a
 * forked child's.  A descriptor table maps numbers to open files in chunks
 * of FD_CHUNK slots, allocated as descriptors are used; the low bit of a
 * slot is its close-on-exec flag.  Lookup is two loads: write(1, ...) is on
 * the hot path.  RLIMIT_NOFILE bounds the numbers handed out.
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/task.h"

#define FD_CHUNK    256
#define FD_CHUNKS   (NOFILE_MAX / FD_CHUNK)
#define SLOT_CLOEXEC 1ul

struct files {
    uintptr_t *chunk[FD_CHUNKS];        /* FD_CHUNK slots each, or NULL */
};

struct files *files_new(void)
{
    return kzalloc(sizeof(struct files));
}

static uintptr_t *fd_slot(int fd, int create)
{
    if (fd < 0 || fd >= NOFILE_MAX)
        return 0;
    uintptr_t **chunk = &current->files->chunk[fd / FD_CHUNK];
    if (!*chunk && (!create || !(*chunk = kzalloc(FD_CHUNK * sizeof(uintptr_t)))))
        return 0;
    return &(*chunk)[fd % FD_CHUNK];
}

struct file *fd_file(int fd)
{
    if ((unsigned)fd >= NOFILE_MAX)
        return 0;
    uintptr_t *chunk = current->files->chunk[fd / FD_CHUNK];
    return chunk ? (struct file *)(chunk[fd % FD_CHUNK] & ~SLOT_CLOEXEC) : 0;
}

int fd_cloexec(int fd)
{
    uintptr_t *s = fd_slot(fd, 0);
    return s && (*s & SLOT_CLOEXEC);
}

void fd_set_cloexec(int fd, int on)
{
    uintptr_t *s = fd_slot(fd, 0);
    if (s && *s)
        *s = (*s & ~SLOT_CLOEXEC) | (on ? SLOT_CLOEXEC : 0);
}

int fd_install(struct file *f, int cloexec, int min_fd)
{
    uint64_t limit = MIN(current->rlim_cur[RLIMIT_NOFILE], (uint64_t)NOFILE_MAX);
    for (int fd = min_fd; (uint64_t)fd < limit; fd++) {
        uintptr_t *s = fd_slot(fd, 1);
        if (!s)
            return -ENOMEM;
        if (!*s) {
            *s = (uintptr_t)f | (cloexec ? SLOT_CLOEXEC : 0);
            return fd;
        }
    }
    return -EMFILE;
}

long fd_close(int fd)
{
    uintptr_t *s = fd_slot(fd, 0);
    if (!s || !*s)
        return -EBADF;
    struct file *f = (struct file *)(*s & ~SLOT_CLOEXEC);
    *s = 0;
    file_put(f);
    return 0;
}

long fd_dup_to(int oldfd, int newfd, int cloexec)
{
    struct file *f = fd_file(oldfd);
    if (!f)
        return -EBADF;
    if ((uint64_t)newfd >= MIN(current->rlim_cur[RLIMIT_NOFILE], (uint64_t)NOFILE_MAX))
        return -EBADF;
    uintptr_t *s = fd_slot(newfd, 1);
    if (!s)
        return -ENOMEM;
    file_get(f);
    struct file *old = (struct file *)(*s & ~SLOT_CLOEXEC);
    *s = (uintptr_t)f | (cloexec ? SLOT_CLOEXEC : 0);
    if (old)
        file_put(old);
    return newfd;
}

long fd_install_new(struct file *f, int cloexec)
{
    int fd = fd_install(f, cloexec, 0);
    if (fd < 0)
        file_put(f);
    return fd;
}

struct file *file_with_ops(struct inode *ino, const struct file_ops *ops, uint32_t flags, void *priv)
{
    struct file *f = file_new(ino, flags);
    if (f) {
        f->ops = ops;
        f->priv = priv;
    }
    return f;
}

struct file *anon_file_new(const struct file_ops *ops, uint32_t flags, void *priv)
{
    struct inode *ino = inode_new(0600);          /* Linux's anonymous inode: no file type */
    if (!ino)
        return 0;
    inode_get(ino);
    struct file *f = file_with_ops(ino, ops, flags, priv);
    inode_put(ino);                               /* the file holds it now, or it is freed */
    return f;
}

struct file *file_new(struct inode *ino, uint32_t flags)
{
    struct file *f = kzalloc(sizeof *f);
    if (!f)
        return 0;
    f->refs = 1;
    f->flags = flags;
    f->inode = ino;
    inode_get(ino);
    return f;
}

/* Regular files of the RAM file system and directories need nothing more;
 * device files and synthetic files choose their operations. */
long file_open_inode(struct inode *ino, uint32_t flags, struct file **out)
{
    struct file *f = file_new(ino, flags);
    if (!f)
        return -ENOMEM;
    long r = 0;
    if (ino->ops && ino->ops->open)
        r = ino->ops->open(ino, f);
    else if (S_ISCHR(ino->mode) || S_ISBLK(ino->mode))
        r = device_open(ino, f);
    else if (S_ISREG(ino->mode))
        f->ops = &ramfs_file_ops;
    if (r < 0) {
        f->ops = 0;                     /* no release for what did not open */
        file_put(f);
        return r;
    }
    *out = f;
    return 0;
}

void file_get(struct file *f)
{
    f->refs++;
}

void file_put(struct file *f)
{
    if (--f->refs)
        return;
    if (f->epoll_items)
        epoll_forget(f);
    if (f->ops && f->ops->release)
        f->ops->release(f);
    inode_put(f->inode);
    kfree(f, sizeof *f);
}

/* ---- Processes (issue 15a): fork copies the table, sharing the open files;
 * exit closes every descriptor; exec closes the close-on-exec ones. */
struct files *files_copy(const struct files *from)
{
    struct files *to = files_new();
    if (!to)
        return 0;
    for (int c = 0; c < FD_CHUNKS; c++) {
        if (!from->chunk[c])
            continue;
        if (!(to->chunk[c] = kmalloc(FD_CHUNK * sizeof(uintptr_t)))) {
            files_release(to);
            return 0;
        }
        for (int i = 0; i < FD_CHUNK; i++) {
            uintptr_t s = from->chunk[c][i];
            if (s)
                file_get((struct file *)(s & ~SLOT_CLOEXEC));
            to->chunk[c][i] = s;
        }
    }
    return to;
}

static void files_close_matching(struct files *files, uintptr_t must)
{
    for (int c = 0; c < FD_CHUNKS; c++) {
        uintptr_t *chunk = files->chunk[c];
        for (int i = 0; chunk && i < FD_CHUNK; i++) {
            uintptr_t s = chunk[i];
            if (s && (s & must) == must) {
                chunk[i] = 0;
                file_put((struct file *)(s & ~SLOT_CLOEXEC));
            }
        }
    }
}

void files_release(struct files *files)
{
    files_close_matching(files, 0);
    for (int c = 0; c < FD_CHUNKS; c++)
        if (files->chunk[c])
            kfree(files->chunk[c], FD_CHUNK * sizeof(uintptr_t));
    kfree(files, sizeof *files);
}

void files_close_on_exec(struct files *files)
{
    files_close_matching(files, SLOT_CLOEXEC);
}
