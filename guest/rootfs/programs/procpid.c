/* /proc/PID for every process, read from that process (not the caller):
 * a child's state letter in /proc/CHILD/stat while it sleeps in a pipe read
 * (S) and once it has exited unreaped (Z), its parent pid, its status and
 * cmdline, /proc listing it, /proc/self, a thread under /proc/self/task,
 * and ENOENT once the child is reaped (LTP's TST_PROCESS_STATE_WAIT reads
 * the state letter so). */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define TRIES 20000                     /* 1 ms apart: far longer than any state change takes */

/* The whole of a small /proc file, NUL-terminated; -errno on failure. */
static long read_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -errno;
    long n = 0, k;
    while (n < (long)size - 1 && (k = read(fd, buf + n, size - 1 - n)) > 0)
        n += k;
    close(fd);
    buf[n] = 0;
    return n;
}

/* The state letter of /proc/<pid>[/task/<tid>]/stat (after "(comm) "), or 0. */
static char state_of(const char *dir)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "%s/stat", dir);
    if (read_file(path, buf, sizeof buf) <= 0)
        return 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : 0;
}

static int wait_state(const char *dir, char want)
{
    for (int i = 0; i < TRIES; i++) {
        if (state_of(dir) == want)
            return 1;
        usleep(1000);
    }
    return 0;
}

static long stat_field(const char *dir, int n)     /* field n (1-based; 4 is ppid) */
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "%s/stat", dir);
    if (read_file(path, buf, sizeof buf) <= 0)
        return -1;
    char *p = strrchr(buf, ')');
    for (int f = 2; p && f < n; f++)
        p = strchr(p + 1, ' ');
    return p ? strtol(p + 1, NULL, 10) : -1;
}

static int status_has(const char *dir, const char *line)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "%s/status", dir);
    return read_file(path, buf, sizeof buf) > 0 && strstr(buf, line) != NULL;
}

static int dir_lists(const char *dir, long id, int *count)
{
    DIR *d = opendir(dir);
    int found = 0;
    *count = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        ++*count;
        found |= strtol(e->d_name, NULL, 10) == id;
    }
    closedir(d);
    return found;
}

static void child_states(const char *argv0)
{
    int p[2];
    if (pipe(p) < 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(p[1]);
        _exit(read(p[0], &c, 1) == 0 ? 0 : 1);     /* sleeps until the parent closes */
    }
    close(p[0]);
    char dir[32], line[64], buf[256];
    int n;
    snprintf(dir, sizeof dir, "/proc/%d", (int)pid);
    check(wait_state(dir, 'S'), "a child asleep in a pipe read: its stat says S");
    check(stat_field(dir, 4) == getpid(), "its stat's ppid is the parent's getpid()");
    snprintf(line, sizeof line, "PPid:\t%d\n", (int)getpid());
    check(status_has(dir, "State:\tS (sleeping)\n") && status_has(dir, line) &&
          status_has(dir, "Threads:\t1\n"), "its status: State S, PPid, Threads 1");
    snprintf(line, sizeof line, "%s/cmdline", dir);
    check(read_file(line, buf, sizeof buf) > 0 && strcmp(buf, argv0) == 0, "its cmdline is its argv");
    check(dir_lists("/proc", pid, &n), "/proc lists it");
    close(p[1]);
    check(wait_state(dir, 'Z'), "exited and not reaped: its stat says Z");
    int status;
    check(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the child's read saw the end of the pipe");
    snprintf(line, sizeof line, "%s/stat", dir);
    check_error(open(line, O_RDONLY), ENOENT, "/proc/PID/stat of a reaped child");
    check(!dir_lists("/proc", pid, &n), "/proc no longer lists it");
}

static int gate[2];
static volatile long thread_tid;

static void *sleeper(void *arg)
{
    (void)arg;
    char c;
    thread_tid = syscall(SYS_gettid);
    return (void *)(long)read(gate[0], &c, 1);    /* sleeps until main writes */
}

static void thread_entries(void)
{
    pthread_t th;
    if (pipe(gate) < 0 || pthread_create(&th, NULL, sleeper, NULL) != 0)
        return;
    while (!thread_tid)
        usleep(1000);
    char dir[64];
    int n;
    check(dir_lists("/proc/self/task", thread_tid, &n) && n == 2,
          "/proc/self/task lists the main thread and the new one");
    snprintf(dir, sizeof dir, "/proc/self/task/%ld", thread_tid);
    check(wait_state(dir, 'S'), "the thread asleep in a pipe read: its task stat says S");
    check(stat_field(dir, 5) == getpgrp(), "its pgrp is the process's");
    check(status_has("/proc/self", "Threads:\t2\n"), "/proc/self/status: Threads 2");
    void *r;
    check(write(gate[1], "x", 1) == 1 && pthread_join(th, &r) == 0 && (long)r == 1, "the thread joined");
}

int main(int argc, char **argv)
{
    (void)argc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    char self[32] = { 0 }, want[32];
    snprintf(want, sizeof want, "%d", (int)getpid());
    check(readlink("/proc/self", self, sizeof self - 1) > 0 && strcmp(self, want) == 0,
          "/proc/self resolves to getpid()");
    check(state_of("/proc/self") == 'R', "the caller's own stat says R");
    child_states(argv[0]);
    thread_entries();
    return finish("procpid");
}
