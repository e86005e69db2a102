/* sysbench: the system-call benchmark's guest program (vmm bench syscalls; no .expect: it
 * prints timings).  `sysbench MODE N`, MODE getppid (the system-call round trip), pread
 * (a 4 KiB pread64 of a root file system file: the kernel's file path and the copy), futex
 * (a wake-up round trip between two threads: each waits on a word for the other's
 * FUTEX_WAKE), thread (pthread_create and pthread_join of a thread that returns at once),
 * fork (fork, a child that _exits at once, waitpid), exec (fork, the child execs this program
 * as `sysbench exit`, which exits 0 before anything else, waitpid) or pipe (a round trip
 * between two processes: one byte each way over two pipes), runs N of them and prints
 * "sysbench MODE calls=N ns=T" (CLOCK_MONOTONIC around the loop).
 * N = 0 runs none: the benchmark counts the kernel instructions of N as the difference
 * from that. argv[0] must be the program's path (exec runs it again). */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common.h"

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The futex ping-pong: the word says whose turn it is (odd: the partner's). */
static volatile uint32_t turn;
static long rounds;

static void futex_wait_for(uint32_t expected_parity)
{
    uint32_t v;
    while (((v = turn) & 1) != expected_parity)
        syscall(SYS_futex, &turn, 128 /* FUTEX_WAIT_PRIVATE */, v, NULL, NULL, 0);
}

static void pass_turn(void)
{
    __atomic_add_fetch(&turn, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &turn, 129 /* FUTEX_WAKE_PRIVATE */, 1, NULL, NULL, 0);
}

static void *partner(void *arg)
{
    for (long i = 0; i < rounds; i++) {
        futex_wait_for(1);
        pass_turn();
    }
    return arg;
}

static void *nothing(void *arg)
{
    return arg;
}

/* Waits for a child; nonzero unless it exited with status 0. */
static int reap(pid_t pid)
{
    int status;
    return pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}

/* The parent writes a byte to `there` and reads it back from `back`; the child echoes it. */
static int pipe_ping_pong(long n)
{
    int there[2], back[2];
    char byte = 'x';
    if (pipe(there) || pipe(back))
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        close(there[1]);
        close(back[0]);
        while (read(there[0], &byte, 1) == 1)
            if (write(back[1], &byte, 1) != 1)
                _exit(1);
        _exit(0);                       /* end of file: the parent closed its end */
    }
    close(there[0]);
    close(back[1]);
    for (long i = 0; i < n; i++)
        if (write(there[1], &byte, 1) != 1 || read(back[0], &byte, 1) != 1)
            return 1;
    close(there[1]);
    close(back[0]);
    return reap(pid);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "exit") == 0)
        return 0;                       /* the program exec mode runs */
    if (argc != 3) {
        printf("usage: sysbench getppid|pread|futex|thread|fork|exec|pipe N\n");
        return 2;
    }
    long n = atol(argv[2]);
    static char buf[4096];
    int fd = open("/data/pattern.bin", O_RDONLY);
    if (fd < 0)
        return 3;
    uint64_t start = now_ns();
    if (strcmp(argv[1], "getppid") == 0) {
        for (long i = 0; i < n; i++)
            syscall(SYS_getppid);
    } else if (strcmp(argv[1], "pread") == 0) {
        for (long i = 0; i < n; i++)
            if (pread(fd, buf, sizeof buf, 0) != sizeof buf)
                return 4;
    } else if (strcmp(argv[1], "futex") == 0) {
        pthread_t t;
        rounds = n;
        if (pthread_create(&t, NULL, partner, NULL))
            return 5;
        for (long i = 0; i < n; i++) {
            pass_turn();
            futex_wait_for(0);
        }
        pthread_join(t, NULL);
    } else if (strcmp(argv[1], "thread") == 0) {
        for (long i = 0; i < n; i++) {
            pthread_t t;
            if (pthread_create(&t, NULL, nothing, NULL) || pthread_join(t, NULL))
                return 5;
        }
    } else if (strcmp(argv[1], "fork") == 0) {
        for (long i = 0; i < n; i++) {
            pid_t pid = fork();
            if (pid == 0)
                _exit(0);
            if (reap(pid))
                return 6;
        }
    } else if (strcmp(argv[1], "exec") == 0) {
        char *child_argv[] = { argv[0], "exit", NULL };
        for (long i = 0; i < n; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                execv(argv[0], child_argv);
                _exit(127);
            }
            if (reap(pid))
                return 7;
        }
    } else if (strcmp(argv[1], "pipe") == 0) {
        if (pipe_ping_pong(n))
            return 8;
    } else {
        return 2;
    }
    uint64_t end = now_ns();
    printf("sysbench %s calls=%ld ns=%llu\n", argv[1], n, (unsigned long long)(end - start));
    return 0;
}
