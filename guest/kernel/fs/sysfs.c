/*
 * /sys, the little of it programs read:
 *
 *   /sys/block/vdX/serial               the virtio-blk disk's GET_ID string
 *                                       and "\n"; the directory appears on
 *                                       first lookup when the disk exists
 *   /sys/devices/system/cpu/online, possible   "0\n": one CPU (glibc's
 *                                       get_nprocs reads them)
 */
#include "fs/genfile.h"
#include "fs/vfs.h"
#include "kernel.h"
#include "virtio.h"

static long gen_serial(struct inode *ino, struct genbuf *b)
{
    struct virtio_dev *d;
    long r = virtio_blk_open((int)(intptr_t)ino->priv, &d);
    if (r < 0)
        return r;
    char id[VIRTIO_BLK_ID_BYTES];
    if ((r = virtio_blk_id(d, id)) < 0)
        return r;
    size_t n = 0;
    while (n < VIRTIO_BLK_ID_BYTES && id[n])
        n++;
    gen_write(b, id, n);
    gen_puts(b, "\n");
    return 0;
}

static struct inode *block_lookup(struct inode *dir, const char *name, size_t len)
{
    struct virtio_dev *d;
    if (len != 3 || name[0] != 'v' || name[1] != 'd' || name[2] < 'a' || name[2] > 'z')
        return 0;
    int index = name[2] - 'a';
    if (virtio_blk_open(index, &d) == -ENOENT)
        return 0;
    char node[4] = { name[0], name[1], name[2], 0 };
    struct inode *disk = vfs_mkdir_kernel(dir, node, 0755);
    struct inode *serial = gen_file(disk, "serial", 0444, gen_serial);
    serial->priv = (void *)(intptr_t)index;
    return disk;
}

static const struct inode_ops block_dir_ops = { .lookup = block_lookup };

static long gen_cpu0(struct inode *ino, struct genbuf *b)
{
    (void)ino;
    gen_puts(b, "0\n");
    return 0;
}

static void sys_fill(struct inode *sys)
{
    struct inode *block = vfs_mkdir_kernel(sys, "block", 0755);
    if (block)
        block->ops = &block_dir_ops;
    struct inode *cpu = vfs_mkdir_kernel(vfs_mkdir_kernel(vfs_mkdir_kernel(sys, "devices", 0755),
                                                          "system", 0755), "cpu", 0755);
    gen_file(cpu, "online", 0444, gen_cpu0);
    gen_file(cpu, "possible", 0444, gen_cpu0);
}

static const struct inode_ops sys_dir_ops = { .fill = sys_fill };

void sysfs_init(void)
{
    struct inode *sys = vfs_mkdir_kernel(root_inode, "sys", 0555);
    if (sys)                            /* else the image has a file there: leave it */
        sys->ops = &sys_dir_ops;        /* the entries on first use */
}
