/* memory: the memory calls as programs use them: malloc (brk and mmap),
 * anonymous mmap (zeroed), mmap of a file (private: writes stay in memory),
 * mprotect making a page read-only with the SIGSEGV handler catching the
 * write (si_code SEGV_ACCERR, si_addr the page), then making it writable
 * again and returning through rt_sigreturn to retry; SIGBUS past the end
 * of a mapped file; munmap (SEGV_MAPERR); mremap keeping the contents;
 * madvise(MADV_DONTNEED) zeroing anonymous pages. */
#define _GNU_SOURCE             /* mremap */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "common.h"

static volatile int faults;
static volatile int last_signal, last_code;
static volatile uintptr_t last_addr;
static char *volatile protected_page;
static sigjmp_buf escape;

/* SIGSEGV on a read-only page: note it, make the page writable, return:
 * the write runs again and succeeds. */
static void on_segv_fix(int sig, siginfo_t *info, void *context)
{
    (void)context;
    faults++;
    last_signal = sig;
    last_code = info->si_code;
    last_addr = (uintptr_t)info->si_addr;
    mprotect(protected_page, 4096, PROT_READ | PROT_WRITE);
}

/* A fault that cannot be fixed: leave through siglongjmp. */
static void on_fault_escape(int sig, siginfo_t *info, void *context)
{
    (void)context;
    last_signal = sig;
    last_code = info->si_code;
    last_addr = (uintptr_t)info->si_addr;
    siglongjmp(escape, 1);
}

static void heap(void)
{
    char *small = malloc(100), *large = malloc(1 << 20);
    check(small && large, "malloc 100 bytes and 1 MiB");
    memset(large, 0x5a, 1 << 20);
    long sum = 0;
    for (int i = 0; i < (1 << 20); i += 4096)
        sum += large[i];
    check(sum == 256L * 0x5a, "the 1 MiB block is usable");
    free(large);
    free(small);
    char *grown = NULL;
    for (int size = 16; size <= (1 << 22); size *= 2) {
        grown = realloc(grown, size);
        grown[size - 1] = 1;
    }
    check(grown != NULL, "realloc up to 4 MiB");
    free(grown);
}

static void anonymous(void)
{
    size_t len = 64 * 4096;
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check(p != MAP_FAILED, "mmap 256 KiB anonymous");
    int zero = 1;
    for (size_t i = 0; i < len; i += 512)
        zero &= p[i] == 0;
    check(zero, "anonymous pages read as zero");
    memset(p, 0xab, len);
    check(madvise(p + 4096, 4096, MADV_DONTNEED) == 0 && p[4096] == 0 && p[8191] == 0 && p[0] == 0xab &&
          p[8192] == 0xab, "MADV_DONTNEED zeroes that page only");
    unsigned char *q = mremap(p, len, 4 * len, MREMAP_MAYMOVE);
    check(q != MAP_FAILED && q[0] == 0xab && q[len - 1] == 0xab && q[4 * len - 1] == 0, "mremap grows, keeping the data");
    q = mremap(q, 4 * len, 4096, 0);
    check(q != MAP_FAILED && q[0] == 0xab, "mremap shrinks in place");
    check(munmap(q, 4096) == 0, "munmap");
    handle_info(SIGSEGV, on_fault_escape);
    if (sigsetjmp(escape, 1) == 0) {
        (void)*(volatile unsigned char *)q;
        check(0, "reading an unmapped page faults");
    } else {
        check(last_signal == SIGSEGV && last_code == SEGV_MAPERR && last_addr == (uintptr_t)q,
              "reading an unmapped page: SIGSEGV, SEGV_MAPERR, si_addr the page");
    }
    void *fixed = mmap((void *)0x70000000, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    check(fixed == (void *)0x70000000, "MAP_FIXED at 0x70000000");
    munmap(fixed, 8192);
}

static void protection(void)
{
    protected_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    protected_page[0] = 'a';
    check(mprotect(protected_page, 4096, PROT_READ) == 0, "mprotect the page read-only");
    check(protected_page[0] == 'a', "it still reads");
    handle_info(SIGSEGV, on_segv_fix);
    faults = 0;
    protected_page[100] = 'b';          /* faults once; the handler makes it writable */
    check(faults == 1 && last_signal == SIGSEGV, "the write raised SIGSEGV once");
    check(last_code == SEGV_ACCERR, "si_code SEGV_ACCERR (the page is there, the write is not allowed)");
    check(last_addr == (uintptr_t)protected_page + 100, "si_addr is the address written");
    check(protected_page[100] == 'b', "after rt_sigreturn the write ran again");
    /* The system call itself: musl's mprotect() rounds the address down. */
    check_error(syscall(SYS_mprotect, protected_page + 1, 4096, PROT_READ), EINVAL,
                "mprotect of an unaligned address");
    munmap(protected_page, 4096);
}

static void file_mapping(void)
{
    int fd = open("/data/lorem.txt", O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    check(m != MAP_FAILED && memcmp(m, "Lorem ipsum", 11) == 0, "mmap of /data/lorem.txt reads its text");
    check(m[st.st_size - 1] == '\n' && m[st.st_size] == 0 && m[4095] == 0, "past the end of the file: zeroes");
    m[0] = 'l';
    char first;
    check(pread(fd, &first, 1, 0) == 1 && first == 'L', "a private write does not reach the file");
    handle_info(SIGBUS, on_fault_escape);
    if (sigsetjmp(escape, 1) == 0) {
        (void)*(volatile char *)(m + 4096);
        check(0, "the page past the file's last page faults");
    } else {
        check(last_signal == SIGBUS && last_addr == (uintptr_t)m + 4096,
              "the page past the file's last page: SIGBUS, si_addr there");
    }
    munmap(m, 8192);
    int big = open("/data/pattern.bin", O_RDONLY);
    unsigned char *p = mmap(NULL, 100000, PROT_READ, MAP_PRIVATE, big, 4096);
    check(p != MAP_FAILED && p[0] == (unsigned char)(4096 * 31 + 8 * 7) && p[100000 - 4096 - 1] ==
          (unsigned char)((99999) * 31 + (99999 >> 9) * 7), "mmap of pattern.bin from offset 4096");
    check_error((long)(intptr_t)mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, big, 100), EINVAL,
                "mmap at an unaligned offset");
    munmap(p, 100000);
    close(big);
    close(fd);
}

int main(void)
{
    heap();
    anonymous();
    protection();
    file_mapping();
    return finish("memory");
}
