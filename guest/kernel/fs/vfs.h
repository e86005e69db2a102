/*
 * The file system: one RAM file system (inodes and directory entries, from
 * the boot module's cpio archive), device files, and synthetic directories
 * (/proc, /sys) whose entries appear on lookup; open files shared by
 * reference (dup, and fork in time) and a descriptor table per process.
 *
 *   inode.c    inodes, directory entries, the name hash, timestamps
 *   data.c     regular files' pages: a borrowed extent of the boot image
 *              plus a page tree of the file's own pages
 *   namei.c    path resolution (symlinks, "..", trailing slashes)
 *   file.c     open files and descriptor tables
 *   cpio.c     unpacking the initramfs (newc)
 *   devices.c  device files by device number; /dev
 *   console.c  the serial console as a terminal
 *   procfs.c, sysfs.c   the synthetic trees
 *   pipe.c     pipes (pipe, pipe2)
 *   eventfd.c  event counters (eventfd, eventfd2)
 *   epoll.c    epoll instances (epoll_create1, epoll_ctl, epoll_pwait)
 *   open.c, rw.c, stat.c, dir.c, poll.c   the system calls
 */
#ifndef FS_VFS_H
#define FS_VFS_H
#include <stddef.h>
#include <stdint.h>
#include "uapi.h"

#define S_ISREG(m)  (((m) & S_IFMT) == S_IFREG)
#define S_ISDIR(m)  (((m) & S_IFMT) == S_IFDIR)
#define S_ISLNK(m)  (((m) & S_IFMT) == S_IFLNK)
#define S_ISCHR(m)  (((m) & S_IFMT) == S_IFCHR)
#define S_ISBLK(m)  (((m) & S_IFMT) == S_IFBLK)
#define S_ISFIFO(m) (((m) & S_IFMT) == S_IFIFO)

#define NDIRECT 8                       /* data.c: pages named in the inode itself */

struct inode;
struct file;

struct timespec64 {
    int64_t sec, nsec;
};

/* What an open file does; NULL members: the operation is refused (read and
 * write with -EINVAL, ioctl with -ENOTTY) or, for poll, always ready. */
struct file_ops {
    long (*read)(struct file *f, uint64_t buf, uint64_t count, int64_t *pos);
    long (*write)(struct file *f, uint64_t buf, uint64_t count, int64_t *pos);
    long (*ioctl)(struct file *f, uint64_t cmd, uint64_t arg);
    /* Readiness as of now (POLLIN | POLLOUT | POLLHUP ...); NULL: always
     * ready for both, and epoll refuses the file (EPERM), as Linux does for
     * regular files.  A file with a poll op calls poll_wake() on every
     * change of its readiness, which wakes poll, select and epoll. */
    int (*poll)(struct file *f);
    long (*fsync)(struct file *f);
    int64_t (*end)(struct file *f);              /* for SEEK_END (default: the inode's size) */
    void (*release)(struct file *f);
    uint32_t flags;
};
#define FOP_SEEKABLE  0x1                       /* lseek moves the position */
#define FOP_PREAD     0x2                       /* takes pread64/pwrite64 */
#define FOP_SEEK_ZERO 0x4                       /* lseek succeeds and returns 0 (no position) */

/* What an inode does beyond a plain RAM file system inode. */
struct inode_ops {
    long (*open)(struct inode *ino, struct file *f);     /* set f->ops (and f->priv) */
    long (*readlink)(struct inode *ino, char *buf, size_t size);   /* length, or -errno */
    /* Directories: an entry that is not there yet, made on this lookup
     * (a device that answers its probe); NULL: none.  Until then getdents
     * does not list it. */
    struct inode *(*lookup)(struct inode *dir, const char *name, size_t len);
    /* Synthetic directories: make the entries, on first use (lookup or
     * getdents), not at boot, where each costs emulated instructions. */
    void (*fill)(struct inode *dir);
    /* Directories whose entries follow something else (/proc's processes):
     * brought up to date before each lookup and listing in them. */
    void (*refresh)(struct inode *dir);
};

#define INODE_FILLED 0x1                 /* ops->fill has run */
#define INODE_SEEN   0x2                 /* procpid.c: still has its task, during a refresh */

struct dentry {
    struct dentry *next, *prev;          /* in the directory, in creation order */
    struct dentry *hash_next;
    struct inode *dir, *inode;
    uint32_t hash;
    uint16_t len;
    char name[];                         /* NUL-terminated */
};

struct inode {
    uint64_t ino;
    uint32_t mode, uid, gid, nlink;
    uint32_t rdev;                       /* device files: MKDEV(major, minor) */
    uint32_t refs;                       /* open files, working directories, mappings, exe */
    uint32_t flags;                      /* INODE_* */
    int64_t size;
    struct timespec64 atime, mtime, ctime;
    const struct inode_ops *ops;         /* NULL: a plain RAM file system inode */
    void *priv;
    union {
        struct {                         /* directories */
            struct dentry *first, *last;
            struct dentry *self;         /* this directory's entry in its parent (NULL: root) */
            struct inode *parent;
        } dir;
        struct {                         /* regular files (data.c) */
            uint64_t extent_pa;          /* borrowed boot-image pages, from file page 0 on */
            uint64_t extent_pages;
            uint64_t direct[NDIRECT];    /* own pages (0: none there) */
            uint64_t ind, dind;          /* pages of 512 entries; of 512 such pages */
        } data;
        struct {                         /* symbolic links */
            char *target;
            uint32_t len;
        } link;
    };
};

struct file {
    uint32_t refs;
    uint32_t flags;                      /* O_ACCMODE and the status flags (O_APPEND, O_NONBLOCK ...) */
    struct inode *inode;
    const struct file_ops *ops;
    int64_t pos;
    void *priv;
    uint32_t epoll_items;                /* epoll.c: how many epoll instances watch it */
};

/* ---- inode.c ---------------------------------------------------------------- */
extern struct inode *root_inode;
extern int vfs_keep_times;                            /* unpacking: entries keep the archive's times */
extern int vfs_wall_clock;                            /* the program runs: times from the wall clock */
void vfs_init(void);                                  /* an empty root directory */
struct inode *inode_new(uint32_t mode);               /* refs 0, nlink 0; NULL: no memory */
uint64_t inodes_in_use(void);
void inode_get(struct inode *ino);
void inode_put(struct inode *ino);                    /* frees it once unreferenced and unlinked */
struct timespec64 vfs_now(void);
void inode_touch(struct inode *ino, int mtime);       /* ctime (and mtime) = now */
struct dentry *dentry_lookup(struct inode *dir, const char *name, size_t len);
/* Add name -> ino to dir (nlink and the parent's counts follow).  0 / -ENOMEM. */
long dentry_add(struct inode *dir, const char *name, size_t len, struct inode *ino);
void dentry_remove(struct dentry *d);                 /* unlink: nlink--, the dentry freed */
int dir_is_empty(struct inode *dir);
/* The named child of dir, real or synthetic; NULL if none. */
struct inode *dir_child(struct inode *dir, const char *name, size_t len);
void dir_fill(struct inode *dir);                     /* a synthetic directory's entries (fill once, refresh) */
/* Find or create a directory / a device node under dir (boot-time set-up). */
struct inode *vfs_mkdir_kernel(struct inode *dir, const char *name, uint32_t mode);
struct inode *vfs_mknod_kernel(struct inode *dir, const char *name, uint32_t mode, uint32_t rdev);

/* ---- data.c ------------------------------------------------------------------ */
extern const struct file_ops ramfs_file_ops;
struct regs;
/* read() of a boot-image file through the copy window: 1 if r now returns
 * through the copy stub (the count moved *pos on), 0 to read the usual way. */
int ramfs_read_through_window(struct file *f, struct regs *r, uint64_t buf, uint64_t count, int64_t *pos);
/* Bytes [off, off+len) of a regular file into a kernel buffer; returns how
 * many (short at the end of the file). */
uint64_t inode_read_kernel(struct inode *ino, uint64_t off, void *buf, uint64_t len);
long inode_write_kernel(struct inode *ino, uint64_t off, const void *buf, uint64_t len);
/* The boot-image page holding whole file page `index`, if it may be mapped
 * read-only as it is (PTE_BORROWED); else 0. */
uint64_t inode_borrowable_page(struct inode *ino, uint64_t index);
/* File page `index` as the file's own page, for a MAP_SHARED mapping (the
 * caller takes a page_share count per mapping); 0 when out of memory. */
uint64_t inode_shared_page(struct inode *ino, uint64_t index);
long inode_truncate(struct inode *ino, uint64_t len);
void inode_free_data(struct inode *ino);

/* ---- namei.c ------------------------------------------------------------------ */
#define LOOKUP_FOLLOW    0x1            /* follow a final symbolic link */
#define LOOKUP_PARENT    0x2            /* stop before the last component */
#define LOOKUP_DIRECTORY 0x4            /* the result must be a directory */

struct nameidata {
    struct inode *dir;                  /* the last component's directory */
    struct inode *inode;                /* the result (NULL: last component absent, PARENT only) */
    const char *last;                   /* the last component (PARENT) */
    size_t last_len;
    int trailing_slash;
    char *work[2];                      /* buffers for symbolic link expansion */
};
/* Resolve path from start.  0 (nd filled; call nd_release), or -errno. */
long path_walk(struct inode *start, const char *path, int flags, struct nameidata *nd);
void nd_release(struct nameidata *nd);
/* A symbolic link's target into buf[size]: its length, or -errno. */
long symlink_target(struct inode *ino, char *buf, size_t size);
/* The absolute path of directory dir into buf[size]: its length, or -ERANGE. */
long dir_path(struct inode *dir, char *buf, size_t size);
/* The starting directory for a *at call: dirfd's directory, or the
 * working directory for AT_FDCWD.  NULL and *err on failure. */
struct inode *at_start(int dirfd, const char *path, long *err);
/* A user path into a kernel buffer of PATH_MAX bytes (kfree with PATH_MAX):
 * NULL and *err on failure (EFAULT, ENAMETOOLONG, ENOENT for "" unless empty_ok). */
char *getname(uint64_t upath, int empty_ok, long *err);
void putname(char *name);
/* Look up a user path for a *at call; 0 and *out (referenced: inode_put). */
long user_path_at(int dirfd, uint64_t upath, int flags, int empty_ok, struct inode **out);

/* ---- file.c -------------------------------------------------------------------- */
struct file *file_new(struct inode *ino, uint32_t flags);     /* opened by the inode's kind */
long file_open_inode(struct inode *ino, uint32_t flags, struct file **out);
void file_get(struct file *f);
void file_put(struct file *f);
struct file *fd_file(int fd);                         /* NULL if fd is not open */
int fd_install(struct file *f, int cloexec, int min_fd);   /* lowest free fd >= min_fd, or -EMFILE */
long fd_close(int fd);
int fd_cloexec(int fd);
void fd_set_cloexec(int fd, int on);
long fd_dup_to(int oldfd, int newfd, int cloexec);
struct files;
struct files *files_new(void);
/* A new open file of ino doing ops (pipes, eventfd, epoll); NULL: no memory. */
struct file *file_with_ops(struct inode *ino, const struct file_ops *ops, uint32_t flags, void *priv);
/* The same on a new anonymous inode (eventfd, epoll). */
struct file *anon_file_new(const struct file_ops *ops, uint32_t flags, void *priv);
/* Install a new file as the lowest free descriptor: the fd, or -errno
 * (then the file is put). */
long fd_install_new(struct file *f, int cloexec);
struct files *files_copy(const struct files *from);   /* fork: NULL when out of memory */
void files_release(struct files *files);              /* exit: close all, free the table */
void files_close_on_exec(struct files *files);

/* ---- cpio.c, devices.c, console.c, procfs.c, sysfs.c ------------------------------ */
/* Unpack a newc archive into the root; the message of a malformed one is
 * printed and unpacking stops there. */
void cpio_unpack(uint64_t pa, uint64_t size);
int cpio_is_archive(const void *start, uint64_t size);
#define DEV_NULL    MKDEV(1, 3)
#define DEV_ZERO    MKDEV(1, 5)
#define DEV_FULL    MKDEV(1, 7)
#define DEV_RANDOM  MKDEV(1, 8)
#define DEV_URANDOM MKDEV(1, 9)
#define DEV_TTY     MKDEV(5, 0)
#define DEV_CONSOLE MKDEV(5, 1)
#define DEV_HWRNG   MKDEV(10, 183)
#define DEV_HVC0    MKDEV(229, 0)
#define VIRTBLK_MAJOR 254               /* Linux's virtio-blk major is dynamic; 254 is common */
#define VIRTBLK_MINORS 16               /* per disk: vda is 254:0, vdb 254:16 ... */
void devices_init(void);                /* /dev and its standard nodes; stdio on the console */
long device_open(struct inode *ino, struct file *f);
extern const struct file_ops console_ops;
void procfs_init(void);
/* procpid.c: /proc's self links (once) and its PID directories (before each use). */
void procpid_fill(struct inode *proc);
void procpid_refresh(struct inode *proc);
void sysfs_init(void);
/* Fill a user buffer with random bytes (getrandom, /dev/urandom). */
long random_read(uint64_t buf, uint64_t count);

/* ---- poll.c, pipe.c, epoll.c --------------------------------------------------------- */
struct waitq;
/* Wake the sleepers of q and every poll, select and epoll wait: the one
 * call a file makes when its readiness changes (interrupt handlers too). */
void poll_wake(struct waitq *q);
/* The queue a poll, select or epoll wait sleeps on, by its deadline (~0: none). */
struct waitq *poll_queue(uint64_t deadline);
/* A file's readiness mask (its poll op, or always ready). */
int file_ready(struct file *f);
long pipe_size(struct file *f);                       /* F_GETPIPE_SZ: bytes, or -EBADF if not a pipe */
void epoll_forget(struct file *f);                    /* f is going away: drop it from every epoll */

/* ---- system calls ---------------------------------------------------------------- */
long sys_read(uint64_t fd, uint64_t buf, uint64_t count);
long sys_write(uint64_t fd, uint64_t buf, uint64_t count);

#endif
