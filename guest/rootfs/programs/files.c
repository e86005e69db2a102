/* files: file I/O on the root file system, through the C library as programs
 * use it: create, write, read, positions, O_APPEND, truncation and holes,
 * stdio streams, directories and their listing, renames, links, symbolic
 * links, the working directory, permissions, timestamps, descriptor
 * flags, and the errors Linux gives.  Works in /tmp and removes what it made. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common.h"

#define T "/tmp/files-test"

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void basic_io(void)
{
    char buf[64] = { 0 };
    int fd = open(T "/a.txt", O_CREAT | O_EXCL | O_RDWR, 0640);
    check(fd >= 0, "open O_CREAT|O_EXCL creates a file");
    check(write(fd, "hello world\n", 12) == 12, "write 12 bytes");
    struct stat st;
    check(fstat(fd, &st) == 0 && st.st_size == 12 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0640,
          "fstat: regular, 12 bytes, mode 0640 (umask 022)");
    check(lseek(fd, 0, SEEK_SET) == 0 && read(fd, buf, sizeof buf) == 12 && memcmp(buf, "hello world\n", 12) == 0,
          "read it back from the start");
    check(read(fd, buf, sizeof buf) == 0, "read at the end: 0");
    check(pwrite(fd, "HELLO", 5, 0) == 5 && pread(fd, buf, 12, 0) == 12 && memcmp(buf, "HELLO world\n", 12) == 0,
          "pwrite and pread at offset 0");
    check(lseek(fd, 0, SEEK_CUR) == 12, "pread and pwrite leave the position");
    int app = open(T "/a.txt", O_WRONLY | O_APPEND);
    check(app >= 0 && write(app, "more\n", 5) == 5 && fstat(fd, &st) == 0 && st.st_size == 17,
          "O_APPEND writes at the end");
    close(app);
    check_error(open(T "/a.txt", O_CREAT | O_EXCL | O_RDWR, 0600), EEXIST, "open O_EXCL of an existing file");
    check(ftruncate(fd, 5) == 0 && fstat(fd, &st) == 0 && st.st_size == 5, "ftruncate shrinks to 5");
    check(ftruncate(fd, 10000) == 0 && fstat(fd, &st) == 0 && st.st_size == 10000, "ftruncate grows to 10000");
    static char big[10000];
    int zeros = pread(fd, big, sizeof big, 0) == 10000 && memcmp(big, "HELLO", 5) == 0;
    for (int i = 5; i < 10000 && zeros; i++)
        zeros = big[i] == 0;
    check(zeros, "the grown part reads as zeroes");
    check(lseek(fd, 0, SEEK_END) == 10000, "lseek SEEK_END");
    check_error(lseek(fd, -20000, SEEK_CUR), EINVAL, "lseek before the start");
    close(fd);
    fd = open(T "/a.txt", O_RDWR | O_TRUNC);
    check(fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 0, "O_TRUNC empties it");
    close(fd);
}

static void stdio_streams(void)
{
    FILE *f = fopen(T "/lines.txt", "w");
    for (int i = 1; i <= 500; i++)
        fprintf(f, "line %d of the stdio test\n", i);
    check(f && fclose(f) == 0, "fprintf 500 lines through a FILE");
    f = fopen(T "/lines.txt", "r");
    char line[64];
    long n = 0, sum = 0;
    while (f && fgets(line, sizeof line, f)) {
        n++;
        sum += atoi(line + 5);
    }
    check(n == 500 && sum == 125250, "fgets reads them back (500 lines, numbers sum 125250)");
    if (f)
        fclose(f);
}

static void directories(void)
{
    check(mkdir(T "/d", 0755) == 0, "mkdir");
    check_error(mkdir(T "/d", 0755), EEXIST, "mkdir of an existing directory");
    const char *names[] = { "c", "a", "b" };
    for (int i = 0; i < 3; i++) {
        char path[64];
        snprintf(path, sizeof path, T "/d/%s", names[i]);
        int fd = open(path, O_CREAT | O_WRONLY, 0644);
        close(fd);
    }
    DIR *dir = opendir(T "/d");
    char *seen[8];
    int count = 0;
    struct dirent *e;
    while (dir && (e = readdir(dir)) && count < 8)
        seen[count++] = strdup(e->d_name);
    if (dir)
        closedir(dir);
    qsort(seen, count, sizeof seen[0], cmp);
    printf("readdir (sorted):");
    for (int i = 0; i < count; i++)
        printf(" %s", seen[i]);
    printf("\n");
    check(rename(T "/d/a", T "/d/z") == 0 && access(T "/d/z", F_OK) == 0, "rename a to z");
    check_error(access(T "/d/a", F_OK), ENOENT, "the old name is gone");
    check(link(T "/d/z", T "/d/hard") == 0, "link");
    struct stat st;
    check(stat(T "/d/z", &st) == 0 && st.st_nlink == 2, "two links: st_nlink 2");
    check(symlink("z", T "/d/sym") == 0, "symlink");
    char target[64] = { 0 };
    check(readlink(T "/d/sym", target, sizeof target) == 1 && target[0] == 'z', "readlink gives z");
    check(lstat(T "/d/sym", &st) == 0 && S_ISLNK(st.st_mode), "lstat sees the link");
    check(stat(T "/d/sym", &st) == 0 && S_ISREG(st.st_mode), "stat follows it");
    check_error(rmdir(T "/d"), ENOTEMPTY, "rmdir of a non-empty directory");
    check_error(open(T "/d", O_WRONLY), EISDIR, "open a directory for writing");
    check_error(open(T "/d/z", O_RDONLY | O_DIRECTORY), ENOTDIR, "O_DIRECTORY on a file");
    check_error(open(T "/d/z/x", O_RDONLY), ENOTDIR, "a file in the middle of a path");
    check_error(unlink(T "/d"), EISDIR, "unlink of a directory");
    check_error(open(T "/d/none", O_RDONLY), ENOENT, "open of a missing file");
    const char *all[] = { "z", "hard", "sym", "b", "c" };
    int removed = 0;
    for (int i = 0; i < 5; i++) {
        char path[64];
        snprintf(path, sizeof path, T "/d/%s", all[i]);
        removed += unlink(path) == 0;
    }
    check(removed == 5 && rmdir(T "/d") == 0, "unlink everything, then rmdir");
}

static void working_directory(void)
{
    char cwd[256];
    check(mkdir(T "/w", 0755) == 0 && chdir(T "/w") == 0 && getcwd(cwd, sizeof cwd) && strcmp(cwd, T "/w") == 0,
          "chdir, getcwd");
    int fd = open("rel.txt", O_CREAT | O_WRONLY, 0644);
    check(fd >= 0 && access(T "/w/rel.txt", F_OK) == 0, "a relative path is in the working directory");
    close(fd);
    check(chdir("..") == 0 && getcwd(cwd, sizeof cwd) && strcmp(cwd, T) == 0, "chdir ..");
    check(unlink("w/rel.txt") == 0 && rmdir("w") == 0 && chdir("/") == 0, "clean up, back to /");
}

/* The tiny kernel reads boot-image files through a window of its own at this address
 * (guest/kernel/layout.h, USER_WINDOW_BASE); with the window unmapped, reads take its other
 * way.  Linux has nothing of its own there, but it randomizes the stack, which lands on this
 * area in about 1 run in 400 (/proc/self/maps says "[stack]"): then an area the kernel
 * chooses, mapped and unmapped, is the unused one. */
#define WINDOW_BASE 0x7ffff8000000UL
#define WINDOW_SIZE (32UL << 20)

static void *unused_area(void)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    /* Without /proc (a bare chroot): the stack's own address, and the 1 MiB above it. */
    int taken = (unsigned long)line + (1UL << 20) > WINDOW_BASE && (unsigned long)line < WINDOW_BASE + WINDOW_SIZE;
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long start, end;
        if (sscanf(line, "%lx-%lx", &start, &end) == 2 && start < WINDOW_BASE + WINDOW_SIZE &&
            end > WINDOW_BASE && !strstr(line, "[copy window]"))
            taken = 1;
    }
    if (maps)
        fclose(maps);
    if (!taken)
        return (void *)WINDOW_BASE;
    void *area = mmap(NULL, WINDOW_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(area, WINDOW_SIZE);
    return area;
}

/* FNV-1a of a file read in `chunk`-byte reads; *total gets its size. */
static uint32_t file_hash(const char *path, long chunk, long *total)
{
    static unsigned char buf[65536];
    uint32_t hash = 2166136261u;
    int fd = open(path, O_RDONLY);
    long n;
    *total = 0;
    while ((n = read(fd, buf, chunk)) > 0) {
        for (long i = 0; i < n; i++)
            hash = (hash ^ buf[i]) * 16777619u;
        *total += n;
    }
    close(fd);
    return hash;
}

static void rootfs_files(void)
{
    struct stat st;
    long total, again;
    check(stat("/data/pattern.bin", &st) == 0 && st.st_size == 100000, "/data/pattern.bin: 100000 bytes");
    uint32_t hash = file_hash("/data/pattern.bin", 4096, &total);
    printf("pattern.bin: %ld bytes in 4 KiB reads, FNV-1a %08x\n", total, hash);
    check(file_hash("/data/pattern.bin", 100, &again) == hash && again == total, "the same in 100-byte reads");
    check(file_hash("/data/pattern.bin", 65536, &again) == hash && again == total, "the same in 64 KiB reads");
    check(munmap(unused_area(), WINDOW_SIZE) == 0, "munmap of an unused area succeeds");
    check(file_hash("/data/pattern.bin", 4096, &again) == hash && again == total, "the same bytes again after it");
    check(access("/bin/sh", X_OK) == 0, "access X_OK on an executable");
    check_error(access("/data/lorem.txt", X_OK), EACCES, "access X_OK on a file without x bits");
    check_error(open("/data/lorem.txt/x", O_RDONLY), ENOTDIR, "a path through a file");
}

static void times_and_modes(void)
{
    int fd = open(T "/t.txt", O_CREAT | O_WRONLY, 0600);
    struct timespec when[2] = { { 1000000000, 0 }, { 1234567890, 500 } };
    struct stat st;
    check(futimens(fd, when) == 0 && fstat(fd, &st) == 0 && st.st_mtime == 1234567890 &&
          st.st_mtim.tv_nsec == 500 && st.st_atime == 1000000000, "futimens sets both times");
    check(fchmod(fd, 0751) == 0 && fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0751, "fchmod");
    check(chmod(T "/t.txt", 0644) == 0 && stat(T "/t.txt", &st) == 0 && (st.st_mode & 07777) == 0644, "chmod");
    close(fd);
    unlink(T "/t.txt");
}

static void descriptors(void)
{
    int fd = open("/data/lorem.txt", O_RDONLY | O_CLOEXEC);
    check(fcntl(fd, F_GETFD) == FD_CLOEXEC, "O_CLOEXEC sets FD_CLOEXEC");
    check(dup2(fd, 20) == 20 && fcntl(20, F_GETFD) == 0, "dup2 clears it on the copy");
    check(fcntl(fd, F_SETFL, O_NONBLOCK) == 0 && (fcntl(fd, F_GETFL) & O_NONBLOCK), "F_SETFL O_NONBLOCK");
    check((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY, "F_GETFL gives the access mode");
    char a[6] = { 0 }, b[6] = { 0 };
    check(read(fd, a, 5) == 5 && read(20, b, 5) == 5 && strcmp(a, "Lorem") == 0 && strcmp(b, " ipsu") == 0,
          "dup'ed descriptors share the position");
    int low = dup(fd);
    check(low == 4, "dup takes the lowest free number (4)");
    close(low);
    close(20);
    close(fd);
    check_error(close(fd), EBADF, "close twice");
    check_error(read(99, a, 1), EBADF, "read from a descriptor never opened");
}

int main(void)
{
    mkdir(T, 0755);
    basic_io();
    stdio_streams();
    directories();
    working_directory();
    rootfs_files();
    times_and_modes();
    descriptors();
    unlink(T "/a.txt");
    unlink(T "/lines.txt");
    check(rmdir(T) == 0, "the test directory is removed");
    return finish("files");
}
