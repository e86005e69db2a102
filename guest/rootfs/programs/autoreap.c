/* SIGCHLD ignored or SA_NOCLDWAIT: children are reaped at exit, and wait
 * then ends with ECHILD (Linux's do_notify_parent and do_wait); the default
 * still leaves a zombie.  And an eventfd read interrupted by a handler goes
 * on with SA_RESTART, and fails with EINTR without it. */
#define _GNU_SOURCE
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <stdint.h>
#include <unistd.h>

#include "common.h"

static volatile sig_atomic_t handled;

static void on_signal(int sig)
{
    (void)sig;
    handled++;
}

/* A child that writes a byte to the pipe and ends with status 3; the parent
 * reads the byte and then end of file (the child's descriptors are closed). */
static pid_t child_then_eof(void)
{
    int p[2];
    char c;
    if (pipe(p))
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        write(p[1], "x", 1);
        usleep(20000);                  /* the parent is (usually) blocked reading by now */
        _exit(3);
    }
    close(p[1]);
    int ok = read(p[0], &c, 1) == 1 && read(p[0], &c, 1) == 0;
    close(p[0]);
    return ok ? pid : -1;
}

static void ignored(void)
{
    install(SIGCHLD, SIG_IGN, 0);
    pid_t pid = child_then_eof();
    int status;
    check_error(wait(&status), ECHILD, "SIGCHLD ignored: wait after the child's end");
    check(pid > 0 && kill(pid, 0) == -1 && errno == ESRCH, "SIGCHLD ignored: the child left no zombie");
    sigset_t pending;
    sigpending(&pending);
    check(!sigismember(&pending, SIGCHLD), "SIGCHLD ignored: no SIGCHLD pending");
    pid = fork();                       /* the parent waits before the child ends */
    if (pid == 0) {
        usleep(20000);
        _exit(0);
    }
    check_error(waitpid(pid, &status, 0), ECHILD, "SIGCHLD ignored: waitpid blocks until the child is gone");
}

static void nocldwait(void)
{
    handled = 0;
    install(SIGCHLD, on_signal, SA_NOCLDWAIT | SA_RESTART);
    pid_t pid = child_then_eof();
    int status;
    check_error(waitpid(-1, &status, 0), ECHILD, "SA_NOCLDWAIT: wait after the child's end");
    check(pid > 0 && kill(pid, 0) == -1 && errno == ESRCH, "SA_NOCLDWAIT: the child left no zombie");
    check(handled == 1, "SA_NOCLDWAIT: the SIGCHLD handler ran once");
    install(SIGCHLD, SIG_DFL, 0);
}

static void by_default(void)
{
    install(SIGCHLD, SIG_DFL, 0);
    pid_t pid = child_then_eof();
    siginfo_t info;
    memset(&info, 0, sizeof info);
    check(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) == 0 && info.si_status == 3,
          "SIGCHLD default: waitid WNOWAIT sees the ended child");
    check(kill(pid, 0) == 0, "SIGCHLD default: the child is a zombie until reaped");
    int status;
    check(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 3,
          "SIGCHLD default: waitpid reaps it with its status");
    check_error(wait(&status), ECHILD, "SIGCHLD default: then no child is left");
}

/* An orphan adopted by this subreaper while it ignores SIGCHLD: a zombie
 * grandchild is released at adoption, a live one at its end. */
static void adopted(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    install(SIGCHLD, SIG_IGN, 0);
    int p[2];
    char c;
    pipe(p);
    pid_t pid = fork();
    if (pid == 0) {
        install(SIGCHLD, SIG_DFL, 0);
        pid_t dead = fork();
        if (dead == 0)
            _exit(0);
        siginfo_t info;
        waitid(P_PID, (id_t)dead, &info, WEXITED | WNOWAIT);     /* a zombie when we end */
        if (fork() == 0) {              /* alive when we end: it holds the pipe */
            usleep(20000);
            _exit(0);
        }
        _exit(0);
    }
    close(p[1]);
    int eof = read(p[0], &c, 1) == 0;
    close(p[0]);
    int status;
    check(eof, "adopted orphans: the last one closed the pipe");
    check_error(wait(&status), ECHILD, "adopted orphans with SIGCHLD ignored: no zombie left");
    install(SIGCHLD, SIG_DFL, 0);
    prctl(PR_SET_CHILD_SUBREAPER, 0);
}

/* The parent reads an empty eventfd; a child signals it (again and again:
 * one lands while the read sleeps) and, with write_after, then writes 42. */
static void interrupted_read(int flags, int write_after, const char *what)
{
    int fd = eventfd(0, 0);
    handled = 0;
    install(SIGUSR1, on_signal, flags);
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 3 || !write_after; i++) {
            usleep(20000);
            kill(parent, SIGUSR1);
        }
        usleep(20000);
        uint64_t v = 42;
        write(fd, &v, sizeof v);
        _exit(0);
    }
    uint64_t v = 0;
    long n = read(fd, &v, sizeof v);
    if (write_after) {
        check(n == 8 && v == 42 && handled > 0, what);
    } else {
        check_error(n, EINTR, what);
        kill(pid, SIGKILL);
    }
    int status;
    waitpid(pid, &status, 0);
    close(fd);
    install(SIGUSR1, SIG_DFL, 0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    ignored();
    nocldwait();
    by_default();
    adopted();
    interrupted_read(SA_RESTART, 1, "eventfd read interrupted by an SA_RESTART handler goes on and reads 42");
    interrupted_read(0, 0, "eventfd read interrupted by a handler without SA_RESTART");
    return finish("autoreap");
}
