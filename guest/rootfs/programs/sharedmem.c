/* Memory shared between processes: MAP_SHARED (anonymous and files) and
 * clone(CLONE_VM), and wait4 restarted after a signal handler with
 * SA_RESTART: what the Linux Test Project's library needs before any of its
 * tests runs (its results page is a MAP_SHARED file written by the test's
 * child; its parent waits with a SIGUSR1 handler installed).  Each check
 * waits for an event, never for a time. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define PAGE 4096

static int child_exit_status(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void anonymous(void)
{
    volatile uint64_t *shared = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    volatile uint64_t *private = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check(shared != MAP_FAILED && private != MAP_FAILED, "mmap MAP_SHARED|MAP_ANONYMOUS");
    shared[0] = 1;                      /* touched before the fork */
    private[0] = 1;
    pid_t pid = fork();
    if (pid == 0) {
        shared[0] = 2;
        shared[PAGE / 8] = 3;           /* first touched in the child */
        private[0] = 2;
        _exit(0);
    }
    check(child_exit_status(pid) == 0, "the child exited with 0");
    check(shared[0] == 2 && shared[PAGE / 8] == 3, "the parent sees the child's writes to shared memory");
    check(private[0] == 1, "a private page stays the parent's own");
    munmap((void *)shared, 2 * PAGE);
    munmap((void *)private, PAGE);
}

static void file(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/sharedmem-%d", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    unlink(path);                       /* the descriptor and the mapping keep it */
    check(fd >= 0 && ftruncate(fd, 2 * PAGE) == 0, "a 2-page file open for writing");
    char *map = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    check(map != MAP_FAILED, "mmap MAP_SHARED, PROT_WRITE of it");
    memcpy(map + 10, "through the mapping", 19);
    char buf[32] = { 0 };
    check(pread(fd, buf, 19, 10) == 19 && !memcmp(buf, "through the mapping", 19),
          "read() sees what the mapping wrote");
    check(pwrite(fd, "by pwrite", 9, PAGE + 5) == 9 && !memcmp(map + PAGE + 5, "by pwrite", 9),
          "the mapping sees what pwrite() wrote");
    pid_t pid = fork();
    if (pid == 0) {
        memcpy(map + 100, "from the child", 14);
        _exit(0);
    }
    check(child_exit_status(pid) == 0, "the child exited with 0");
    memset(buf, 0, sizeof buf);
    check(!memcmp(map + 100, "from the child", 14) && pread(fd, buf, 14, 100) == 14 &&
          !memcmp(buf, "from the child", 14), "a child's write reaches the file and the parent's mapping");
    check(mprotect(map, PAGE, PROT_READ) == 0 && mprotect(map, PAGE, PROT_READ | PROT_WRITE) == 0,
          "mprotect adds PROT_WRITE back (the file is open for writing)");
    munmap(map, 2 * PAGE);
    memset(buf, 0, sizeof buf);
    check(pread(fd, buf, 19, 10) == 19 && !memcmp(buf, "through the mapping", 19),
          "the data stays in the file after munmap");

    int ro = open("/data/lorem.txt", O_RDONLY);
    check_error((long)mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0), EACCES,
                "MAP_SHARED, PROT_WRITE of a read-only descriptor");
    void *rmap = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, ro, 0);
    check(rmap != MAP_FAILED, "MAP_SHARED, PROT_READ of it");
    check_error(mprotect(rmap, PAGE, PROT_READ | PROT_WRITE), EACCES, "mprotect PROT_WRITE on it");
    munmap(rmap, PAGE);
    close(ro);
    close(fd);
}

static char clone_stack[64 * 1024] __attribute__((aligned(16)));
static volatile int clone_value;

static int clone_child(void *arg)
{
    clone_value = (int)(intptr_t)arg;   /* no libc call: the child shares the parent's TLS */
    return 0;
}

static void clone_vm(void)
{
    pid_t pid = clone(clone_child, clone_stack + sizeof clone_stack, CLONE_VM | SIGCHLD, (void *)42);
    check(pid > 0 && child_exit_status(pid) == 0 && clone_value == 42,
          "clone(CLONE_VM): the parent sees the child's write");
    pid = clone(clone_child, clone_stack + sizeof clone_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, (void *)43);
    int seen = clone_value;             /* the parent ran on only once the child had exited */
    check(pid > 0 && seen == 43 && child_exit_status(pid) == 0,
          "clone(CLONE_VM|CLONE_VFORK): the child's write is there when the parent goes on");
}

static volatile int *handled;           /* shared: the child waits on it */

static void on_usr1(int sig)
{
    (void)sig;
    ++*handled;
}

static void restart(void)
{
    handled = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    pid_t pid = fork();
    if (pid == 0) {                     /* the parent is in waitpid, or about to be */
        kill(getppid(), SIGUSR1);
        while (*handled == 0)
            sched_yield();
        _exit(7);
    }
    int status;
    pid_t got = waitpid(pid, &status, 0);
    int err = got == -1 ? errno : 0;
    check(*handled == 1, "the SIGUSR1 handler ran once");
    check(got == pid && WIFEXITED(status) && WEXITSTATUS(status) == 7,
          "waitpid, interrupted by a SA_RESTART handler, goes on and reaps the child");
    if (err)
        printf("  waitpid: %s\n", errname(err));
    signal(SIGUSR1, SIG_DFL);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    anonymous();
    file();
    clone_vm();
    restart();
    return finish("sharedmem");
}
