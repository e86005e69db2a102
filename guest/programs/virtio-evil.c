/* virtio-evil: the Linux ABI used in every hostile way a program can reach
 * the virtio drivers from ring 3: bad paths and descriptors, offsets and
 * lengths that are negative, unaligned, huge or past the end, pointers to
 * nothing, to the kernel, to read-only code, buffers that run into unmapped
 * memory, descriptor exhaustion.  Every call must return an error (or a
 * short count, as Linux would) and the kernel must carry on: the last check
 * is that the disk still works.  (Hostile rings are the host-side tests'
 * business: no program can build a descriptor.)  Needs a 64 KiB disk. */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <syscall.h>
#include <unistd.h>
#include "guestdev.h"

#define DISK 65536
#define KERNEL_IMAGE ((void *)0x100000)
#define DIRECT_MAP ((void *)0xffff800000000000ull)
#define NON_CANONICAL ((void *)0x0000800000000000ull)
#define TOP_PAGE ((void *)0xfffffffffffff000ull)

static uint8_t buf[4096];

static void show(const char *what, long r)
{
    printf("%s: %s\n", what, err_name(r));
}

static void paths(void)
{
    show("openat NULL", openat(AT_FDCWD, NULL, O_RDONLY, 0));
    show("openat a kernel address", openat(AT_FDCWD, KERNEL_IMAGE, O_RDONLY, 0));
    show("openat /dev/vdz", openat(AT_FDCWD, "/dev/vdz", O_RDONLY, 0));
    show("openat /dev/vda1", openat(AT_FDCWD, "/dev/vda1", O_RDONLY, 0));
    show("openat /dev/nope", openat(AT_FDCWD, "/dev/nope", O_RDONLY, 0));
    long rel = openat(AT_FDCWD, "dev/vda", O_RDONLY, 0);    /* the working directory is / */
    show("openat dev/vda (relative to /) gives fd", rel);
    if (rel >= 0)
        close((int)rel);
    show("openat a 100-byte path", openat(AT_FDCWD, "/dev/vda/../../../../../../../../../../../../../../"
                                          "../../../../../../../../../../dev/vda", O_RDONLY, 0));
    show("openat O_ACCMODE", openat(AT_FDCWD, "/dev/vda", 3, 0));
    show("openat O_CREAT|O_EXCL", openat(AT_FDCWD, "/dev/vda", O_RDWR | O_CREAT | O_EXCL, 0600));
    show("openat /sys/block/vda/serial for writing", openat(AT_FDCWD, "/sys/block/vda/serial", O_WRONLY, 0));
    /* A path whose bytes run into an unmapped page before its NUL. */
    char *top = (char *)(((uintptr_t)sbrk(0) + 4095) & ~4095ul);
    brk(top);
    memcpy(top - 7, "/dev/vd", 7);
    show("openat a path running off the heap", openat(AT_FDCWD, top - 7, O_RDONLY, 0));
}

static void descriptors(void)
{
    show("close -1", close(-1));
    show("close 1000", close(1000));
    show("close 17 (never opened)", close(17));
    show("pread64 fd 99", pread64(99, buf, 512, 0));
    show("pread64 stdout", pread64(1, buf, 512, 0));
    show("fsync stdout", fsync(1));
    show("fsync 99", fsync(99));
    show("lseek stdin", lseek(0, 0, SEEK_SET));
    /* RLIMIT_NOFILE 19: descriptors 3 to 18 are left. */
    const unsigned long limit[2] = { 19, 19 };
    show("prlimit64 RLIMIT_NOFILE 19", syscall6(SYS_prlimit64, 0, 7 /* RLIMIT_NOFILE */, (long)limit, 0, 0, 0));
    int fds[20], n = 0;
    long r;
    while (n < 20 && (r = openat(AT_FDCWD, "/dev/vda", O_RDONLY, 0)) >= 0)
        fds[n++] = (int)r;
    printf("descriptors: %d opened, then %s\n", n, err_name(r));
    while (n)
        close(fds[--n]);
}

static void disk_io(int fd)
{
    show("pread64 offset -512", pread64(fd, buf, 512, -512));
    show("pread64 offset 1", pread64(fd, buf, 512, 1));
    show("pread64 count 100", pread64(fd, buf, 100, 0));
    show("pread64 offset 2^62", pread64(fd, buf, 512, 1l << 62));
    show("pread64 offset 2^63-512", pread64(fd, buf, 512, 0x7ffffffffffffe00l));
    show("pread64 count 2^63-512", pread64(fd, NULL, 0x7ffffffffffffe00ul, 0));
    show("pread64 into NULL", pread64(fd, NULL, 512, 0));
    show("pread64 into the kernel image", pread64(fd, KERNEL_IMAGE, 512, 0));
    show("pread64 into the direct map", pread64(fd, DIRECT_MAP, 512, 0));
    show("pread64 into a non-canonical address", pread64(fd, NON_CANONICAL, 512, 0));
    show("pread64 into the last page of the address space", pread64(fd, TOP_PAGE, 8192, 0));
    show("pread64 into read-only code", pread64(fd, (void *)show, 512, 0));
    /* 8 KiB at the top of the heap, nothing mapped above: a huge count is
     * cut to the disk, then the transfer stops at the unmapped page. */
    uint8_t *top = (uint8_t *)(((uintptr_t)sbrk(0) + 4095) & ~4095ul) + 8192;
    brk(top);
    show("pread64 2^62 bytes into the heap's last 8 KiB", pread64(fd, top - 8192, 1l << 62, 0));
    show("pwrite64 from read-only code", pwrite64(fd, (void *)show, 512, 0));
    show("pwrite64 count 0", pwrite64(fd, buf, 0, 0));
    show("pwrite64 count 0 past the end", pwrite64(fd, buf, 0, 1l << 40));
    show("pwrite64 at the end", pwrite64(fd, buf, 512, DISK));
    show("pwrite64 offset 2^62", pwrite64(fd, buf, 512, 1l << 62));
    show("pwrite64 across the end", pwrite64(fd, buf, 4096, DISK - 512));
    show("pwrite64 from NULL", pwrite64(fd, NULL, 512, 0));
    show("lseek whence 7", lseek(fd, 0, 7));
    show("lseek to -512", lseek(fd, -512, SEEK_SET));
    lseek(fd, 4096, SEEK_SET);
    show("lseek SEEK_CUR + 2^63-1", lseek(fd, 0x7fffffffffffffffl, SEEK_CUR));
    show("lseek past the end", lseek(fd, 1l << 40, SEEK_SET));
    show("read past the end", read(fd, buf, 512));
    show("ioctl BLKGETSIZE64 to NULL", ioctl(fd, BLKGETSIZE64, NULL));
    show("ioctl BLKGETSIZE64 to read-only code", ioctl(fd, BLKGETSIZE64, (void *)show));
    show("ioctl 0x1234", ioctl(fd, 0x1234, buf));
}

static void char_devices(void)
{
    int rng = openat(AT_FDCWD, "/dev/hwrng", O_RDONLY, 0);
    show("hwrng read into NULL", read(rng, NULL, 16));
    show("hwrng read into the kernel image", read(rng, KERNEL_IMAGE, 16));
    show("hwrng ioctl BLKGETSIZE64", ioctl(rng, BLKGETSIZE64, buf));
    show("hwrng lseek", lseek(rng, 0, SEEK_SET));
    close(rng);
    int hvc = openat(AT_FDCWD, "/dev/hvc0", O_WRONLY, 0);
    show("hvc0 write from NULL", write(hvc, NULL, 16));
    show("hvc0 write from the direct map", write(hvc, DIRECT_MAP, 16));
    show("hvc0 fsync", fsync(hvc));
    close(hvc);
}

int main(void)
{
    require_tiny_kernel("virtio-evil");
    paths();
    descriptors();
    int fd = openat(AT_FDCWD, "/dev/vda", O_RDWR, 0);
    if (fd < 0) {
        show("open /dev/vda", fd);
        return 1;
    }
    disk_io(fd);
    char_devices();
    memset(buf, 0x5a, 512);
    long w = pwrite64(fd, buf, 512, 512);
    memset(buf, 0, 512);
    long r = pread64(fd, buf, 512, 512);
    int ok = w == 512 && r == 512 && buf[0] == 0x5a && buf[511] == 0x5a;
    printf("virtio-evil: the disk still works: %s\n", ok ? "yes" : "NO");
    return ok ? 0 : 1;
}
