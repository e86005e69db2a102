/*
 * Unpacking the initramfs: "newc" cpio archives (070701, and 070702 whose
 * checksums are not checked), one after another with zero padding between
 * them, as Linux's init/initramfs.c reads them.
 *
 * Each entry: a 110-byte header of 13 fields in 8 hex digits, the name
 * (namesize bytes with its NUL; the VMM pads it with more NULs so that the
 * data starts on a page boundary), padding to 4, the data, padding to 4.
 * A regular file's page-aligned data is not copied: the file borrows the
 * archive's pages (data.c).  Unaligned data (an archive from another tool)
 * is copied into the file's own pages.  Hard links (nlink >= 2, the same
 * inode number) become one inode, whichever of its entries holds the data.
 * Missing parent directories are created; an existing name is replaced.
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "serial.h"

#define HEADER_SIZE 110
#define MAX_HARDLINKS 256

enum { F_INO, F_MODE, F_UID, F_GID, F_NLINK, F_MTIME, F_FILESIZE, F_DEVMAJOR, F_DEVMINOR,
       F_RDEVMAJOR, F_RDEVMINOR, F_NAMESIZE, F_CHECK, NFIELDS };

struct hardlink {
    uint32_t ino, dev;
    struct inode *inode;
};

/* Not zeroed: only entries below nlinks are read. */
static struct hardlink links[MAX_HARDLINKS] __attribute__((section(".noinit")));
static int nlinks;

/* 8 ASCII hex digits, all at once (ring 0 is emulated here): each byte to its
 * nibble, then nibbles, bytes and halves folded together. */
static uint32_t hex8(const char *p)
{
    uint64_t x;
    __builtin_memcpy(&x, p, 8);
    x = (x & 0x0f0f0f0f0f0f0f0full) + 9 * ((x >> 6) & 0x0101010101010101ull);
    x = ((x & 0x00ff00ff00ff00ffull) << 4) | ((x >> 8) & 0x00ff00ff00ff00ffull);
    x = ((x & 0x0000ffff0000ffffull) << 8) | ((x >> 16) & 0x0000ffff0000ffffull);
    return (uint32_t)(((x & 0xffffffffull) << 16) | (x >> 32));
}

int cpio_is_archive(const void *start, uint64_t size)
{
    return size >= HEADER_SIZE && memcmp(start, "07070", 5) == 0 &&
           (((const char *)start)[5] == '1' || ((const char *)start)[5] == '2');
}

static void complain(const char *what, const char *name)
{
    serial_start_line();
    serial_puts("initramfs: ");
    serial_puts(what);
    if (name) {
        serial_puts(": ");
        serial_puts(name);
    }
    serial_puts("\n");
}

/* The directory that will hold the last component of path, creating
 * missing ones; *last points at that component.  NULL if a component
 * exists but is not a directory. */
static struct inode *parent_of(char *path, const char **last)
{
    struct inode *dir = root_inode;
    char *p = path;
    for (;;) {
        char *slash = p;
        while (*slash && *slash != '/')
            slash++;
        if (!*slash) {
            *last = p;
            return dir;
        }
        *slash = 0;
        struct inode *next = p[0] ? vfs_mkdir_kernel(dir, p, 0755) : dir;
        *slash = '/';
        if (!next)
            return 0;
        dir = next;
        p = slash + 1;
    }
}

static struct inode *find_link(uint32_t ino, uint32_t dev)
{
    for (int i = 0; i < nlinks; i++)
        if (links[i].ino == ino && links[i].dev == dev)
            return links[i].inode;
    return 0;
}

/* Attach the entry's data (at pa, size bytes) to regular file ino. */
static void attach_data(struct inode *ino, uint64_t pa, uint64_t size)
{
    if (size == 0)
        return;
    inode_free_data(ino);
    if (pa % PAGE_SIZE == 0) {
        ino->data.extent_pa = pa;
        ino->data.extent_pages = ALIGN_UP(size, PAGE_SIZE) / PAGE_SIZE;
        ino->size = (int64_t)size;
    } else if (inode_write_kernel(ino, 0, phys_to_virt(pa), size) != (long)size) {
        complain("out of memory for a file", 0);
    }
}

/* Create one entry; f holds its fields, data its bytes. */
static void make_entry(char *name, const uint32_t *f, uint64_t data_pa)
{
    while (name[0] == '.' && name[1] == '/')
        name += 2;
    while (name[0] == '/')
        name++;
    uint32_t mode = f[F_MODE];
    struct inode *ino = 0;
    if (!name[0] || (name[0] == '.' && !name[1])) {
        ino = root_inode;                   /* "." : the root's own attributes */
    } else {
        const char *last;
        struct inode *dir = parent_of(name, &last);
        if (!dir) {
            complain("parent is not a directory", name);
            return;
        }
        size_t len = strlen(last);
        struct dentry *old = dentry_lookup(dir, last, len);
        if (old && S_ISDIR(old->inode->mode) && S_ISDIR(mode)) {
            ino = old->inode;               /* a directory listed twice */
        } else {
            if (old)
                dentry_remove(old);
            uint32_t dev = (f[F_DEVMAJOR] << 12) | f[F_DEVMINOR];
            if (S_ISREG(mode) && f[F_NLINK] >= 2)
                ino = find_link(f[F_INO], dev);
            int linked = ino != 0;
            if (!ino && !(ino = inode_new(mode)))
                goto oom;
            if (dentry_add(dir, last, len, ino) < 0)
                goto oom;
            if (S_ISREG(mode) && f[F_NLINK] >= 2 && !linked && nlinks < MAX_HARDLINKS)
                links[nlinks++] = (struct hardlink){ f[F_INO], dev, ino };
        }
    }
    ino->mode = mode;
    ino->uid = f[F_UID];
    ino->gid = f[F_GID];
    ino->mtime.sec = ino->atime.sec = ino->ctime.sec = f[F_MTIME];
    ino->mtime.nsec = ino->atime.nsec = ino->ctime.nsec = 0;
    if (S_ISREG(mode)) {
        attach_data(ino, data_pa, f[F_FILESIZE]);
    } else if (S_ISLNK(mode)) {
        uint32_t n = f[F_FILESIZE];
        if (n == 0 || n >= PATH_MAX || !(ino->link.target = kmalloc(n + 1)))
            goto bad_link;
        memcpy(ino->link.target, phys_to_virt(data_pa), n);
        ino->link.target[n] = 0;
        ino->link.len = n;
    } else if (!S_ISDIR(mode)) {
        ino->rdev = MKDEV(f[F_RDEVMAJOR], f[F_RDEVMINOR]);
    }
    return;
bad_link:
    complain("bad symbolic link", name);
    return;
oom:
    panic("out of memory unpacking the initramfs");
}

void cpio_unpack(uint64_t pa, uint64_t size)
{
    const char *base = phys_to_virt(pa);
    uint64_t off = 0;
    nlinks = 0;
    vfs_keep_times = 1;
    while (off + HEADER_SIZE <= size) {
        if (base[off] == 0) {               /* padding between archives */
            off += 4;
            continue;
        }
        const char *h = base + off;
        if (!cpio_is_archive(h, size - off)) {
            complain("not a newc cpio header; unpacking stops", 0);
            break;
        }
        uint32_t f[NFIELDS];
        for (int i = 0; i < NFIELDS; i++)
            f[i] = hex8(h + 6 + 8 * i);
        uint64_t name_off = off + HEADER_SIZE;
        uint64_t data_off = ALIGN_UP(name_off + f[F_NAMESIZE], 4);
        uint64_t next = ALIGN_UP(data_off + f[F_FILESIZE], 4);
        if (f[F_NAMESIZE] == 0 || f[F_NAMESIZE] > PATH_MAX || data_off > size || f[F_FILESIZE] > size - data_off) {
            complain("entry runs past the end of the archive; unpacking stops", 0);
            break;
        }
        char name[PATH_MAX];                /* up to its NUL: not the VMM's padding */
        const char *src = base + name_off;
        size_t n = 0;
        while (n < f[F_NAMESIZE] - 1 && src[n])
            n++;
        memcpy(name, src, n);
        name[n] = 0;
        if (strcmp(name, "TRAILER!!!") != 0)
            make_entry(name, f, pa + data_off);
        off = next;
    }
    vfs_keep_times = 0;
}
