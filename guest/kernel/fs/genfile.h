/* Generated files (procfs, sysfs): text made when the file is opened, read
 * like a regular file afterwards.  genfile.c */
#ifndef FS_GENFILE_H
#define FS_GENFILE_H
#include <stddef.h>
#include <stdint.h>
#include "fs/vfs.h"

#define GEN_MAX_PAGES 8                 /* 32 KiB of text at most; the rest is cut */

struct genbuf {
    uint64_t pages[GEN_MAX_PAGES];
    uint64_t len;
};

/* Fill b for inode ino; 0 or -errno (the open fails with it). */
typedef long (*gen_fn)(struct inode *ino, struct genbuf *b);

/* A generated file's operations: static ones (GEN_OPS) for files that come
 * and go (/proc/PID), where a per-file allocation would outlive the inode. */
struct gen_ops {
    struct inode_ops inode;
    gen_fn fn;
};
long gen_open(struct inode *ino, struct file *f);
#define GEN_OPS(f) { .inode = { .open = gen_open }, .fn = (f) }

void gen_write(struct genbuf *b, const char *s, size_t n);
void gen_puts(struct genbuf *b, const char *s);
void gen_dec(struct genbuf *b, uint64_t v, int width);     /* right-aligned in width */
void gen_hex(struct genbuf *b, uint64_t v, int width);     /* zero-padded to width */
void gen_pad(struct genbuf *b, uint64_t column);           /* spaces up to column */

/* A read-only generated file named name in dir; its text comes from fn. */
struct inode *gen_file(struct inode *dir, const char *name, uint32_t mode, gen_fn fn);
struct inode *gen_file_static(struct inode *dir, const char *name, uint32_t mode, const struct gen_ops *ops);
/* A symbolic link whose target is computed when read. */
struct inode *gen_symlink(struct inode *dir, const char *name,
                          long (*readlink)(struct inode *, char *, size_t));

#endif
