/* Pipes between processes: children writing into one pipe, readers and
 * writers blocking until the other side acts, EOF when the last writer
 * exits, epoll and eventfd waking a parent, and descriptors across exec
 * (dup2 onto stdout, O_CLOEXEC).  Each check waits for an event, never for
 * a time, so the order of what the scheduler runs does not change the
 * output. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define CHILDREN 5
#define RECORDS 20
#define RECORD 100                      /* <= PIPE_BUF: each write arrives whole */
#define BIG (256 * 1024)

/* Read until EOF into buf (at most size); how many bytes. */
static long read_all(int fd, char *buf, long size)
{
    long total = 0, n;
    while (total < size && (n = read(fd, buf + total, (size_t)(size - total))) > 0)
        total += n;
    return total;
}

/* Reap every child; how many exited with status 0. */
static int reap(int expected)
{
    int ok = 0, status;
    for (int i = 0; i < expected; i++)
        if (wait(&status) > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
            ok++;
    return ok;
}

static void many_writers(void)
{
    int p[2];
    pipe(p);
    for (int c = 0; c < CHILDREN; c++) {
        if (fork() == 0) {
            close(p[0]);
            char rec[RECORD];
            for (int r = 0; r < RECORDS; r++) {
                memset(rec, 'a' + c, RECORD);
                rec[0] = (char)('0' + c);
                rec[1] = (char)r;
                if (write(p[1], rec, RECORD) != RECORD)
                    _exit(1);
            }
            _exit(0);
        }
    }
    close(p[1]);
    static char buf[CHILDREN * RECORDS * RECORD + 1];
    long total = read_all(p[0], buf, sizeof buf);
    int whole = 1, next[CHILDREN] = { 0 };
    for (long off = 0; off + RECORD <= total; off += RECORD) {
        int c = buf[off] - '0';
        if (c < 0 || c >= CHILDREN || buf[off + 1] != next[c]++)
            whole = 0;
        for (int i = 2; whole && i < RECORD; i++)
            whole = buf[off + i] == 'a' + c;
    }
    check(total == CHILDREN * RECORDS * RECORD, "5 children x 20 records of 100 bytes, then EOF");
    check(whole, "every record whole and in its writer's order");
    check(reap(CHILDREN) == CHILDREN, "the 5 writers exited with 0");
    close(p[0]);
}

static void blocking_both_ways(void)
{
    int to_child[2], to_parent[2];
    pipe(to_child);
    pipe(to_parent);
    if (fork() == 0) {
        char c;
        /* Blocks until the parent writes; then answers with 256 KiB, which
         * blocks while the pipe is full until the parent reads. */
        if (read(to_child[0], &c, 1) != 1)
            _exit(1);
        static char big[BIG];
        memset(big, c, sizeof big);
        _exit(write(to_parent[1], big, sizeof big) == BIG ? 0 : 2);
    }
    close(to_child[0]);
    close(to_parent[1]);
    write(to_child[1], "q", 1);
    static char got[BIG + 1];
    long n = read_all(to_parent[0], got, sizeof got);
    int same = n == BIG;
    for (long i = 0; same && i < n; i++)
        same = got[i] == 'q';
    check(same, "a reader blocks until the writer writes; 256 KiB through a 64 KiB pipe");
    check(reap(1) == 1, "the child exited with 0");
    close(to_child[1]);
    close(to_parent[0]);
}

static void broken_across(void)
{
    int p[2];
    pipe(p);
    signal(SIGPIPE, SIG_IGN);
    if (fork() == 0)
        _exit(0);                       /* holds a copy of the read end, until it exits */
    close(p[0]);
    reap(1);
    check(write(p[1], "x", 1) == -1 && errno == EPIPE, "EPIPE once the child with the last reader exited");
    close(p[1]);
}

static void waking(void)
{
    int p[2], e = eventfd(0, 0), ep = epoll_create1(0);
    pipe(p);
    struct epoll_event ev = { EPOLLIN, { .u64 = 7 } }, out[2];
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    if (fork() == 0) {
        uint64_t v = 3;
        write(p[1], "w", 1);
        _exit(write(e, &v, 8) == 8 ? 0 : 1);
    }
    check(epoll_wait(ep, out, 2, -1) == 1 && out[0].data.u64 == 7, "epoll_wait wakes when a child writes");
    uint64_t v = 0;
    check(read(e, &v, 8) == 8 && v == 3, "an eventfd read wakes when a child writes");
    struct pollfd pf = { p[0], POLLIN, 0 };
    check(poll(&pf, 1, -1) == 1, "poll sees the byte");
    check(reap(1) == 1, "the child exited with 0");
    close(p[0]);
    close(p[1]);
    close(e);
    close(ep);
}

static volatile int usr1_count;

static void on_usr1(int sig)
{
    (void)sig;
    usr1_count++;
}

/* SIGUSR1 blocked; the wait's own mask lets a child's SIGUSR1 interrupt it,
 * its handler runs, and the caller's mask (still blocking it) comes back. */
static void masked_waits(void)
{
    int p[2], ep = epoll_create1(0);
    pipe(p);
    struct epoll_event ev = { EPOLLIN, { .u64 = 1 } }, out[1];
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    signal(SIGUSR1, on_usr1);
    sigset_t usr1, none, now;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigemptyset(&none);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    const char *what[3] = { "ppoll", "pselect", "epoll_pwait" };
    for (int k = 0; k < 3; k++) {
        if (fork() == 0)
            _exit(kill(getppid(), SIGUSR1));
        int before = usr1_count;
        struct pollfd pf = { p[0], POLLIN, 0 };
        fd_set r;
        FD_ZERO(&r);
        FD_SET(p[0], &r);
        long n = k == 0 ? ppoll(&pf, 1, NULL, &none)
               : k == 1 ? pselect(p[0] + 1, &r, NULL, NULL, NULL, &none)
               : epoll_pwait(ep, out, 1, -1, &none);
        int interrupted = n == -1 && errno == EINTR;
        sigprocmask(SIG_BLOCK, NULL, &now);
        char line[96];
        snprintf(line, sizeof line, "%s: EINTR from a child's SIGUSR1, handler ran, mask back", what[k]);
        check(interrupted && usr1_count == before + 1 && sigismember(&now, SIGUSR1), line);
        reap(1);
    }
    sigprocmask(SIG_UNBLOCK, &usr1, NULL);
    close(p[0]);
    close(p[1]);
    close(ep);
}

static void across_exec(void)
{
    int p[2], keep[2], shut[2];
    pipe(p);
    pipe(keep);
    pipe2(shut, O_CLOEXEC);
    if (fork() == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        dup2(keep[1], 5);               /* no close-on-exec: the shell can write to it */
        dup3(shut[1], 6, O_CLOEXEC);    /* closed by exec */
        execl("/bin/sh", "sh", "-c", "echo kept >&5; echo shut 2>/dev/null >&6 || echo fd 6 closed", (char *)0);
        _exit(127);
    }
    close(p[1]);
    close(keep[1]);
    close(shut[1]);
    char out[64] = { 0 }, kept[16] = { 0 }, none[4];
    read_all(p[0], out, sizeof out - 1);
    read_all(keep[0], kept, sizeof kept - 1);
    check(!strcmp(out, "fd 6 closed\n"), "dup2 onto stdout across exec; O_CLOEXEC closed fd 6");
    check(!strcmp(kept, "kept\n"), "a descriptor without the flag stays open across exec");
    check(read(shut[0], none, sizeof none) == 0, "the close-on-exec pipe saw EOF");
    check(reap(1) == 1, "the shell exited with 0");
    close(p[0]);
    close(keep[0]);
    close(shut[0]);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);   /* nothing buffered is copied into a child */
    many_writers();
    blocking_both_ways();
    broken_across();
    waking();
    masked_waits();
    across_exec();
    return finish("pipefork");
}
