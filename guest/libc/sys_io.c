/* File descriptor system calls: read, write, pread64, pwrite64, openat,
 * close, fsync, fdatasync, lseek, ioctl. Each returns the kernel's result:
 * >= 0 or -errno. */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <syscall.h>
#include <unistd.h>

ssize_t read(int fd, void *buf, size_t count)
{
    return syscall6(SYS_read, fd, (long)buf, (long)count, 0, 0, 0);
}

ssize_t write(int fd, const void *buf, size_t count)
{
    return syscall6(SYS_write, fd, (long)buf, (long)count, 0, 0, 0);
}

ssize_t pread64(int fd, void *buf, size_t count, off_t offset)
{
    return syscall6(SYS_pread64, fd, (long)buf, (long)count, offset, 0, 0);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset)
{
    return syscall6(SYS_pwrite64, fd, (long)buf, (long)count, offset, 0, 0);
}

int openat(int dirfd, const char *path, int flags, int mode)
{
    return (int)syscall6(SYS_openat, dirfd, (long)path, flags, mode, 0, 0);
}

int close(int fd)
{
    return (int)syscall6(SYS_close, fd, 0, 0, 0, 0, 0);
}

int fsync(int fd)
{
    return (int)syscall6(SYS_fsync, fd, 0, 0, 0, 0, 0);
}

int fdatasync(int fd)
{
    return (int)syscall6(SYS_fdatasync, fd, 0, 0, 0, 0, 0);
}

off_t lseek(int fd, off_t offset, int whence)
{
    return syscall6(SYS_lseek, fd, offset, whence, 0, 0, 0);
}

int ioctl(int fd, unsigned long request, void *arg)
{
    return (int)syscall6(SYS_ioctl, fd, (long)request, (long)arg, 0, 0, 0);
}

ssize_t write_all(int fd, const void *buf, size_t count)
{
    const char *p = buf;
    size_t done = 0;

    while (done < count) {
        ssize_t n = write(fd, p + done, count - done);
        if (n < 0)
            return n;
        if (n == 0)
            return -EIO; /* the kernel accepted nothing */
        done += (size_t)n;
    }
    return (ssize_t)done;
}
