/* ioctl() and the block-device requests the guest kernel answers (Linux
 * include/uapi/linux/fs.h values). */
#ifndef LIBC_SYS_IOCTL_H
#define LIBC_SYS_IOCTL_H

#define BLKROGET     0x125e          /* int: 1 if the device is read-only */
#define BLKSSZGET    0x1268          /* int: logical sector size */
#define BLKGETSIZE64 0x80081272      /* uint64_t: size in bytes */

/* Returns >= 0 or -errno. */
int ioctl(int fd, unsigned long request, void *arg);

#endif
