/* Pipes, descriptors, eventfd and epoll within one process: what Linux
 * promises for each (fs/pipe.c, fs/eventfd.c, fs/eventpoll.c), checked the
 * same way in the VM, on the host and in a container.  Pipe fills and
 * drains stay on whole pages, where Linux's page-slot accounting and a
 * byte ring agree. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

#define PIPE_BYTES 65536
#define MAXFD(a, b, c) ((a) > (b) ? ((a) > (c) ? (a) : (c)) : ((b) > (c) ? (b) : (c)))
static char page[4096];

static int sigpipe_count, sigpipe_code;

static void on_sigpipe(int sig, siginfo_t *info, void *uc)
{
    (void)sig; (void)uc;
    sigpipe_count++;
    sigpipe_code = info->si_code;
}

static void basics(void)
{
    int p[2];
    char buf[16] = { 0 };
    struct stat st;
    check(pipe(p) == 0, "pipe");
    check(write(p[1], "hello", 5) == 5 && read(p[0], buf, sizeof buf) == 5 && !memcmp(buf, "hello", 5),
          "write then read returns the bytes");
    check(fstat(p[0], &st) == 0 && S_ISFIFO(st.st_mode), "fstat says S_IFIFO");
    check((fcntl(p[0], F_GETFL) & O_ACCMODE) == O_RDONLY && (fcntl(p[1], F_GETFL) & O_ACCMODE) == O_WRONLY,
          "read end O_RDONLY, write end O_WRONLY");
    check(fcntl(p[0], F_GETFD) == 0, "pipe: no close-on-exec");
    check(fcntl(p[1], F_GETPIPE_SZ) == PIPE_BYTES, "F_GETPIPE_SZ is 64 KiB");
    check_error(write(p[0], "x", 1), EBADF, "write to the read end");
    check_error(lseek(p[0], 0, SEEK_SET), ESPIPE, "lseek on a pipe");
    close(p[1]);
    check(read(p[0], buf, sizeof buf) == 0, "EOF once the last writer is closed");
    close(p[0]);
}

static void nonblocking(void)
{
    int p[2], n = 0;
    char c;
    check(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0, "pipe2(O_NONBLOCK | O_CLOEXEC)");
    check(fcntl(p[0], F_GETFD) == FD_CLOEXEC && fcntl(p[1], F_GETFD) == FD_CLOEXEC, "both ends close-on-exec");
    check((fcntl(p[0], F_GETFL) & O_NONBLOCK) != 0, "F_GETFL shows O_NONBLOCK");
    check_error(read(p[0], &c, 1), EAGAIN, "read from an empty pipe");
    long total = 0, r;
    while ((r = write(p[1], page, sizeof page)) > 0)
        total += r;
    check(total == PIPE_BYTES, "64 KiB fit, then the write fails");
    check_error(write(p[1], "x", 1), EAGAIN, "write to a full pipe");
    check(ioctl(p[0], FIONREAD, &n) == 0 && n == PIPE_BYTES, "FIONREAD counts the bytes");
    check(read(p[0], page, sizeof page) == sizeof page, "a page read makes a page of room");
    static char two[8192];
    check(write(p[1], two, sizeof two) == sizeof page, "a larger write goes in part");
    while (read(p[0], page, sizeof page) > 0)
        ;
    check(fcntl(p[0], F_SETFL, 0) == 0 && !(fcntl(p[0], F_GETFL) & O_NONBLOCK), "F_SETFL clears O_NONBLOCK");
    check(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0, "F_SETFL sets it again");
    check_error(read(p[0], &c, 1), EAGAIN, "read is non-blocking again");
    close(p[0]);
    close(p[1]);
}

static void broken_pipe(void)
{
    int p[2];
    handle_info(SIGPIPE, on_sigpipe);
    check(pipe(p) == 0, "pipe for EPIPE");
    close(p[0]);
    struct pollfd pf = { p[1], POLLOUT, 0 };
    check(poll(&pf, 1, 0) == 1 && (pf.revents & POLLERR), "poll: POLLERR with no reader");
    check_error(write(p[1], "x", 1), EPIPE, "write with no reader left");
    check(sigpipe_count == 1 && sigpipe_code == SI_USER, "SIGPIPE caught once, si_code SI_USER");
    signal(SIGPIPE, SIG_IGN);
    check_error(write(p[1], "x", 1), EPIPE, "with SIGPIPE ignored: EPIPE still");
    sigset_t pending;
    sigpending(&pending);
    check(sigpipe_count == 1 && !sigismember(&pending, SIGPIPE), "and no signal");
    close(p[1]);
}

static void descriptors(void)
{
    int p[2];
    char buf[64] = { 0 };
    check(pipe(p) == 0, "pipe for dup2");
    fflush(stdout);
    int saved = dup(1), moved = dup2(p[1], 1);
    printf("into the pipe\n");
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    check(saved > 2 && moved == 1, "dup(1), dup2(pipe, 1)");
    long n = read(p[0], buf, sizeof buf - 1);
    check(n == 14 && !strcmp(buf, "into the pipe\n"), "dup2 over stdout: printf went into the pipe");
    check(dup2(p[0], p[0]) == p[0], "dup2 onto itself returns the fd");
    check_error(dup2(99, 98), EBADF, "dup2 of a closed fd");
    check_error(dup3(p[0], p[0], 0), EINVAL, "dup3 onto itself");
    check_error(syscall(SYS_dup3, p[0], 20, 1), EINVAL, "dup3 with an unknown flag");
    check(dup3(p[0], 20, O_CLOEXEC) == 20 && fcntl(20, F_GETFD) == FD_CLOEXEC, "dup3(O_CLOEXEC)");
    check(dup2(p[0], 20) == 20 && fcntl(20, F_GETFD) == 0, "dup2 clears close-on-exec");
    int d = fcntl(p[0], F_DUPFD_CLOEXEC, 30);
    check(d == 30 && fcntl(d, F_GETFD) == FD_CLOEXEC, "F_DUPFD_CLOEXEC from 30");
    check(fcntl(d, F_SETFD, 0) == 0 && fcntl(d, F_GETFD) == 0, "F_SETFD clears it");
    check(fcntl(p[0], F_DUPFD, 30) == 31, "F_DUPFD: the lowest free from 30");
    /* The duplicates share the open file: the pipe keeps its reader. */
    close(p[0]);
    check(write(p[1], "y", 1) == 1 && read(20, buf, 1) == 1 && buf[0] == 'y', "a dup'ed read end still reads");
    close(20);
    close(30);
    close(31);
    check_error(write(p[1], "y", 1), EPIPE, "EPIPE once every duplicate is closed");
    close(p[1]);
}

static void counters(void)
{
    uint64_t v = 0;
    int e = eventfd(3, EFD_NONBLOCK | EFD_CLOEXEC);
    check(e >= 0 && fcntl(e, F_GETFD) == FD_CLOEXEC, "eventfd(3, EFD_NONBLOCK | EFD_CLOEXEC)");
    check(read(e, &v, 8) == 8 && v == 3, "read takes the count, 3");
    check_error(read(e, &v, 8), EAGAIN, "then it is empty");
    v = 2;
    write(e, &v, 8);
    v = 5;
    write(e, &v, 8);
    check(read(e, &v, 8) == 8 && v == 7, "writes add up: 7");
    check_error(read(e, &v, 4), EINVAL, "a read of 4 bytes");
    v = ~0ull;
    check_error(write(e, &v, 8), EINVAL, "writing 2^64-1");
    v = 1;
    write(e, &v, 8);
    v = 0xfffffffffffffffeull;
    check_error(write(e, &v, 8), EAGAIN, "a write past the maximum");
    close(e);
    int s = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    check(read(s, &v, 8) == 8 && v == 1 && read(s, &v, 8) == 8 && v == 1, "EFD_SEMAPHORE: reads take 1 each");
    check_error(read(s, &v, 8), EAGAIN, "until the count is 0");
    check_error(eventfd(0, 0x10), EINVAL, "eventfd with an unknown flag");
    close(s);
}

static void readiness(void)
{
    int p[2], e = eventfd(0, 0);
    uint64_t one = 1;
    check(pipe(p) == 0 && e >= 0, "a pipe and an eventfd to poll");
    struct pollfd pf[3] = { { p[0], POLLIN, 0 }, { p[1], POLLOUT, 0 }, { e, POLLIN, 0 } };
    check(poll(pf, 3, 10) == 1 && pf[1].revents == POLLOUT && !pf[0].revents && !pf[2].revents,
          "poll: only the write end is ready");
    write(p[1], "z", 1);
    write(e, &one, 8);
    check(poll(pf, 3, -1) == 3 && pf[0].revents == POLLIN && pf[2].revents == POLLIN, "poll: then all three");
    struct timespec ts = { 0, 0 };
    check(ppoll(pf, 1, &ts, NULL) == 1, "ppoll with a zero timeout");
    fd_set r, w;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_SET(p[0], &r);
    FD_SET(e, &r);
    FD_SET(p[1], &w);
    int top = MAXFD(e, p[0], p[1]) + 1;
    check(select(top, &r, &w, NULL, NULL) == 3 && FD_ISSET(p[0], &r) && FD_ISSET(e, &r) && FD_ISSET(p[1], &w),
          "select: the three bits");
    char c;
    uint64_t v;
    read(p[0], &c, 1);
    read(e, &v, 8);
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    FD_SET(e, &r);
    struct timeval tv = { 0, 10000 };
    check(select(top, &r, NULL, NULL, &tv) == 0 && !FD_ISSET(p[0], &r), "select: a timeout when drained");
    FD_SET(p[0], &r);
    ts.tv_nsec = 1000000;
    check(pselect(p[0] + 1, &r, NULL, NULL, &ts, NULL) == 0, "pselect: a timeout too");
    close(p[1]);
    pf[0].revents = 0;
    check(poll(pf, 1, 0) == 1 && pf[0].revents == POLLHUP, "poll: POLLHUP after the last writer");
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    check(select(p[0] + 1, &r, NULL, NULL, NULL) == 1, "select: readable at EOF");
    close(p[0]);
    close(e);
}

static void event_poll(void)
{
    struct epoll_event ev, out[4];
    int p[2], e = eventfd(0, EFD_NONBLOCK), ep = epoll_create1(EPOLL_CLOEXEC);
    uint64_t one = 1, v;
    char c;
    check(pipe(p) == 0 && ep >= 0 && fcntl(ep, F_GETFD) == FD_CLOEXEC, "epoll_create1(EPOLL_CLOEXEC)");
    check_error(syscall(SYS_epoll_create, 0), EINVAL, "epoll_create(0)");
    ev.events = EPOLLIN;
    ev.data.u64 = 1;
    check(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0, "add the pipe's read end");
    ev.data.u64 = 2;
    check(epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev) == 0, "add the eventfd");
    check_error(epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev), EEXIST, "add it twice");
    check_error(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev), EINVAL, "add the epoll to itself");
    check_error(epoll_ctl(ep, EPOLL_CTL_MOD, p[1], &ev), ENOENT, "modify what is not there");
    check_error(epoll_ctl(p[0], EPOLL_CTL_ADD, e, &ev), EINVAL, "an epoll_ctl on a pipe");
    check_error(epoll_ctl(ep, EPOLL_CTL_ADD, 77, &ev), EBADF, "add a closed fd");
    int file = open("/data/numbers.txt", O_RDONLY);
    check_error(epoll_ctl(ep, EPOLL_CTL_ADD, file, &ev), EPERM, "add a regular file");
    close(file);
    check(epoll_wait(ep, out, 4, 10) == 0, "epoll_wait: a timeout, nothing ready");
    write(p[1], "a", 1);
    check(epoll_wait(ep, out, 4, -1) == 1 && out[0].data.u64 == 1 && out[0].events == EPOLLIN,
          "the pipe is readable");
    write(e, &one, 8);
    int n = epoll_pwait(ep, out, 4, 0, NULL);
    check(n == 2 && out[0].data.u64 + out[1].data.u64 == 3, "epoll_pwait: both");
    check(epoll_wait(ep, out, 1, 0) == 1, "maxevents 1: one of them");
    check_error(epoll_wait(ep, out, 0, 0), EINVAL, "maxevents 0");
    read(e, &v, 8);
    read(p[0], &c, 1);
    check(epoll_wait(ep, out, 4, 0) == 0, "drained: nothing");

    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.u64 = 1;
    check(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev) == 0, "EPOLLONESHOT on the pipe");
    write(p[1], "b", 1);
    check(epoll_wait(ep, out, 4, 0) == 1 && epoll_wait(ep, out, 4, 0) == 0, "one-shot: reported once");
    check(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev) == 0 && epoll_wait(ep, out, 4, 0) == 1, "re-armed by MOD");
    read(p[0], &c, 1);
    ev.events = EPOLLIN;
    epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev);

    int ep2 = epoll_create1(0);
    ev.events = EPOLLOUT | EPOLLET;
    ev.data.u64 = 3;
    check(epoll_ctl(ep2, EPOLL_CTL_ADD, p[1], &ev) == 0, "EPOLLET on the write end");
    check(epoll_wait(ep2, out, 4, 0) == 1 && out[0].events == EPOLLOUT, "edge-triggered: the first edge");
    check(epoll_wait(ep2, out, 4, 0) == 0, "and not again while nothing changes");
    ev.events = EPOLLIN;
    ev.data.u64 = 4;
    check(epoll_ctl(ep2, EPOLL_CTL_ADD, ep, &ev) == 0, "an epoll inside an epoll");
    write(e, &one, 8);
    check(epoll_wait(ep2, out, 4, 0) == 1 && out[0].data.u64 == 4, "the inner one is readable");
    check(epoll_ctl(ep2, EPOLL_CTL_DEL, ep, NULL) == 0, "delete it");
    check_error(epoll_ctl(ep2, EPOLL_CTL_DEL, ep, NULL), ENOENT, "delete it again");
    close(ep2);

    close(e);                           /* the last reference: the item goes */
    check(epoll_wait(ep, out, 4, 0) == 0, "a closed eventfd is no longer watched");
    close(p[1]);
    n = epoll_wait(ep, out, 4, 0);
    check(n == 1 && out[0].events == EPOLLHUP, "EPOLLHUP after the last writer");
    close(p[0]);
    close(ep);
}

int main(void)
{
    basics();
    nonblocking();
    broken_pipe();
    descriptors();
    counters();
    readiness();
    event_poll();
    return finish("pipes");
}
