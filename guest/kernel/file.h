/* File descriptors 3 and up: the virtio devices as Linux names them (file.c). */
#ifndef FILE_H
#define FILE_H
#include <stdint.h>

long sys_openat(uint64_t dirfd, uint64_t path, uint64_t flags, uint64_t mode);
long sys_close(uint64_t fd);
long sys_pread64(uint64_t fd, uint64_t buf, uint64_t count, uint64_t offset);
long sys_pwrite64(uint64_t fd, uint64_t buf, uint64_t count, uint64_t offset);
long sys_lseek(uint64_t fd, uint64_t offset, uint64_t whence);
long sys_fsync(uint64_t fd);                    /* and fdatasync: FLUSH either way */
/* read/write/ioctl on a descriptor >= 3 (syscall.c keeps 0-2). */
long file_read_fd(uint64_t fd, uint64_t buf, uint64_t count);
long file_write_fd(uint64_t fd, uint64_t buf, uint64_t count);
long file_ioctl(uint64_t fd, uint64_t cmd, uint64_t arg);

#endif
