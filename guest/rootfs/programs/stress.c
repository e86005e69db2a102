/* A randomized stress test of processes and threads (issue 15): a seeded
 * PRNG drives a fixed number of steps that fork children (which write a
 * pipe, touch copy-on-write pages, wait for a signal, fork an orphan, exit
 * with a chosen status or die of a chosen signal), reap them in the order
 * the PRNG picks, and run rounds of threads that hand one token around with
 * futexes, condition variables and pipes, some with a tgkill first.
 *
 *   stress [STEPS [SEED]]      defaults: 40 steps, seed 15; more steps for a soak run
 *
 * What it checks, printed as counts and checksums that the seed alone fixes
 * (never PIDs or times), so the output is the same on every engine, as a
 * host process and in a container:
 *   - no lost wakeup: every wait (a parent's sigsuspend for SIGCHLD, a child's
 *     for SIGUSR1, each token hand-off) ends, and every token and signal is
 *     accounted for; a watchdog thread turns a hang into a FAIL line and
 *     status 3 instead of a silent timeout (the tiny kernel has no alarm());
 *   - no lost data: each child's bytes arrive whole (FNV-1a checksum);
 *   - no leaked memory: MemFree (/proc/meminfo) after everything is reaped
 *     and joined is where it was before the steps (see memory_check).
 * Each check waits for an event, never for a time. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/* <linux/futex.h> is not in musl-gcc's include path. */
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129

#define DEFAULT_STEPS 40
#define DEFAULT_SEED 15
#define MAX_LIVE 5                      /* children alive at once */
#define MAX_THREADS 4                   /* threads in a round */
#define MAX_HOPS 48                     /* hand-offs in a round */
#define MAX_BYTES (96 * 1024)           /* a child's data: more than a 64 KiB pipe holds */
#define COW_PAGES 64                    /* the parent's pages a child may write (copy on write) */
#define WATCHDOG_SECONDS 60             /* one step without progress for this long is a hang */
/* MemFree may end this much lower than it started on the tiny kernel: its
 * kmalloc keeps a slab page once one of its objects was used, and the lists
 * of kernel stacks and page tables keep what the peak of tasks took.  The
 * warm-up reaches the steps' peak first, so the steps end where they started
 * or nearly: measured 0 KiB lower after 40 steps, and a plateau of 4 KiB
 * (musl) and 16 KiB (glibc) after 300 to 3000 steps on unicorn (92 KiB before
 * the warm-up ran threads beside live children).  A leak of a page per fork
 * or per thread would be 50 KiB or more in the default run. */
#ifndef MEMORY_SLACK_KIB
#define MEMORY_SLACK_KIB 32
#endif

/* splitmix64: small, and the same sequence under every libc. */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned below(uint64_t *s, unsigned n) { return (unsigned)(next(s) % n); }

static uint64_t fnv(uint64_t h, const unsigned char *p, long n)
{
    for (long i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

#define FNV_START 0xcbf29ce484222325ull

/* The bytes a child writes: a function of its own seed. */
static void fill(unsigned char *buf, long n, uint64_t seed)
{
    for (long i = 0; i < n; i++)
        buf[i] = i % 8 == 0 ? (unsigned char)next(&seed) : (unsigned char)(buf[i - 1] + 1);
}

/* --- the watchdog: a thread that ends the program when the steps stop moving --- */

static volatile unsigned long progress;
static volatile int live_pids[MAX_LIVE + 1];
static const char *volatile phase = "start";

static void *watchdog(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);     /* the process's signals are for the others */
    unsigned long seen = progress;
    int still = 0;
    for (;;) {
        struct timespec one = { 1, 0 };
        nanosleep(&one, NULL);
        if (progress != seen) {
            seen = progress;
            still = 0;
        } else if (++still >= WATCHDOG_SECONDS) {
            char line[160];
            int n = snprintf(line, sizeof line, "FAIL hang: no progress for %d s at step %lu (%s)\n",
                             WATCHDOG_SECONDS, seen, phase);
            write(1, line, (size_t)n);
            for (int i = 0; i < MAX_LIVE + 1; i++)
                if (live_pids[i] > 0)
                    kill(live_pids[i], SIGKILL);
            _exit(3);
        }
    }
    return NULL;
}

/* --- children --- */

enum mode { EXITS, WAITS_USR1, KILLED, ORPHAN, MODES };
static const char *const mode_names[MODES] = { "exit", "sigusr1", "killed", "orphan" };

struct child {
    pid_t pid;
    int rd;                             /* the read end of its pipe */
    enum mode mode;
    int status;                         /* exit status, or the signal for KILLED */
    int signalled;
    long bytes;
    uint64_t seed;
};

static struct child live[MAX_LIVE];
static int nlive;
static unsigned char cow[COW_PAGES * 4096];
static unsigned char buf[MAX_BYTES];
static volatile sig_atomic_t got_usr1, sigchld_count;

static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }
static void on_chld(int sig) { (void)sig; sigchld_count++; }

static struct {
    int spawned, reaped, orphans, by_mode[MODES], signals_sent;
    long bytes;
    uint64_t checksum;
} kids;

static int write_all(int fd, const unsigned char *p, long n)
{
    while (n > 0) {
        long w = write(fd, p, (size_t)n);   /* SA_RESTART: a handler may shorten it, not fail it */
        if (w <= 0)
            return -1;
        p += w;
        n -= w;
    }
    return 0;
}

/* In the child: work, write, then end as chosen. */
static void child_body(struct child *c, int wr, uint64_t rng)
{
    /* Copy-on-write: some of the parent's pages written, and a fresh mapping. */
    for (unsigned i = below(&rng, COW_PAGES); i < COW_PAGES; i += 1 + below(&rng, 8))
        cow[i * 4096] ^= 1;
    long len = 4096L * (1 + below(&rng, 16));
    unsigned char *m = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        _exit(120);
    for (long i = 0; i < len; i += 4096)
        m[i] = 1;
    if (below(&rng, 2))
        munmap(m, (size_t)len);         /* else exit unmaps it */
    if (c->mode == ORPHAN) {
        pid_t g = fork();               /* the grandchild writes; its parent exits at once */
        if (g < 0)
            _exit(121);
        if (g > 0)
            _exit(c->status);
        int32_t me = getpid();
        if (write_all(wr, (unsigned char *)&me, sizeof me))
            _exit(122);
    }
    fill(buf, c->bytes, c->seed);
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &usr1, &old);  /* a SIGUSR1 may come in the middle of a write */
    if (write_all(wr, buf, c->bytes))
        _exit(123);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    close(wr);                          /* the parent reads to EOF before it signals */
    if (c->mode == KILLED) {
        signal(c->status, SIG_DFL);     /* not ignored, whatever the parent inherited */
        for (;;)
            pause();                    /* until the parent's signal */
    }
    if (c->mode == WAITS_USR1) {
        sigdelset(&old, SIGUSR1);
        while (!got_usr1)
            sigsuspend(&old);           /* a lost wake-up hangs here: the watchdog sees it */
    }
    _exit(c->status);
}

/* A child of a mode the PRNG picks, or of `warm` (>= 0: the warm-up's, with the most data). */
static void spawn(uint64_t *rng, int warm)
{
    struct child *c = &live[nlive];
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        printf("FAIL pipe2: %s\n", errname(errno));
        failures++;
        return;
    }
    c->mode = (enum mode)below(rng, MODES);
    static const int sigs[] = { SIGTERM, SIGKILL, SIGINT, SIGHUP };
    c->status = c->mode == KILLED ? sigs[below(rng, 4)] : (int)below(rng, 256);
    c->bytes = below(rng, 4) == 0 ? MAX_BYTES - (long)below(rng, 4096) : (long)below(rng, 8192);
    if (warm >= 0) {
        c->mode = (enum mode)warm;
        c->status = warm == KILLED ? SIGTERM : 0;
        c->bytes = MAX_BYTES;
    }
    c->seed = next(rng);
    c->signalled = 0;
    c->rd = p[0];
    uint64_t child_rng = next(rng);
    c->pid = fork();
    if (c->pid == 0) {
        close(p[0]);
        child_body(c, p[1], child_rng);
    }
    close(p[1]);
    if (c->pid < 0) {
        printf("FAIL fork: %s\n", errname(errno));
        failures++;
        close(p[0]);
        return;
    }
    live_pids[nlive] = c->pid;
    nlive++;
    kids.spawned++;
}

/* Wait for pid with SIGCHLD blocked, sleeping in sigsuspend until a SIGCHLD:
 * a lost SIGCHLD is a hang (the watchdog), not a busy loop. */
static int wait_for(pid_t pid, int *status)
{
    sigset_t unblocked;
    sigprocmask(SIG_BLOCK, NULL, &unblocked);
    sigdelset(&unblocked, SIGCHLD);
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r != 0)
            return r == pid;
        sigsuspend(&unblocked);
    }
}

static void signal_one(uint64_t *rng)
{
    int i = (int)below(rng, (unsigned)nlive);
    struct child *c = &live[i];
    if (c->mode != WAITS_USR1 || c->signalled)
        return;
    c->signalled = 1;
    kids.signals_sent++;
    if (kill(c->pid, SIGUSR1) != 0) {
        printf("FAIL kill SIGUSR1 to a child: %s\n", errname(errno));
        failures++;
    }
}

static void reap(int i, unsigned step)
{
    struct child *c = &live[i];
    int32_t grandchild = 0;
    long n = 0, r;
    if (c->mode == ORPHAN && read(c->rd, &grandchild, sizeof grandchild) != sizeof grandchild)
        grandchild = -1;
    while (n < MAX_BYTES && (r = read(c->rd, buf + n, (size_t)(MAX_BYTES - n))) > 0)
        n += r;
    close(c->rd);
    if (c->mode == WAITS_USR1 && !c->signalled) {
        c->signalled = 1;
        kids.signals_sent++;
        kill(c->pid, SIGUSR1);
    }
    if (c->mode == KILLED) {
        kids.signals_sent++;
        kill(c->pid, c->status);
    }
    int status = 0, ok = wait_for(c->pid, &status);
    ok &= c->mode == KILLED ? WIFSIGNALED(status) && WTERMSIG(status) == c->status
                            : WIFEXITED(status) && WEXITSTATUS(status) == c->status;
    if (c->mode == ORPHAN) {            /* reparented to us, the subreaper, when its parent exited */
        int gstatus = 0;
        ok &= grandchild > 0 && wait_for(grandchild, &gstatus) && WIFEXITED(gstatus) && WEXITSTATUS(gstatus) == c->status;
        kids.orphans++;
    }
    static unsigned char want[MAX_BYTES];
    fill(want, c->bytes, c->seed);
    ok &= n == c->bytes && memcmp(want, buf, (size_t)n) == 0;
    if (!ok) {
        printf("FAIL step %u: a child (%s, status %d) gave %ld of %ld bytes, wait status %#x\n",
               step, mode_names[c->mode], c->status, n, c->bytes, status);
        failures++;
    }
    kids.bytes += n;
    kids.checksum = fnv(kids.checksum, buf, n);
    kids.by_mode[c->mode]++;
    kids.reaped++;
    live[i] = live[--nlive];
    live_pids[i] = live_pids[nlive];
    live_pids[nlive] = 0;
}

/* --- threads handing a token around --- */

enum mech { FUTEX, CONDVAR, PIPE, MECHS };

static struct {
    int threads, hops;
    unsigned char to[MAX_HOPS], mech[MAX_HOPS], tgkill_first[MAX_HOPS];
    volatile int fbox[MAX_THREADS];
    int cbox[MAX_THREADS];
    pthread_mutex_t lock;
    pthread_cond_t cond[MAX_THREADS];
    int pipes[MAX_THREADS][2];
    volatile pid_t tids[MAX_THREADS];
    volatile int started, done;
    volatile int bad;                   /* a thread saw a wrong token or signal count */
    uint64_t sum;                       /* only the token's holder adds to it */
} ring;

static struct {
    int rounds, threads, hops, by_mech[MECHS], tgkills;
    uint64_t checksum;
} thr;

static __thread volatile int usr2_here;

static void on_usr2(int sig) { (void)sig; usr2_here++; }

static long futex(volatile int *addr, int op, int val)
{
    return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

static void hand(int h)
{
    int r = ring.to[h];
    if (ring.tgkill_first[h])
        syscall(SYS_tgkill, getpid(), ring.tids[r], SIGUSR2);
    switch (ring.mech[h]) {
    case FUTEX:
        __atomic_store_n(&ring.fbox[r], h + 1, __ATOMIC_SEQ_CST);
        futex(&ring.fbox[r], FUTEX_WAKE_PRIVATE, 1);
        break;
    case CONDVAR:
        pthread_mutex_lock(&ring.lock);
        ring.cbox[r] = h + 1;
        pthread_cond_signal(&ring.cond[r]);
        pthread_mutex_unlock(&ring.lock);
        break;
    default: {
        int v = h + 1;
        if (write(ring.pipes[r][1], &v, sizeof v) != sizeof v)
            ring.bad = 1;
    }
    }
}

static void take(int me, int h)
{
    switch (ring.mech[h]) {
    case FUTEX:
        for (int v; (v = __atomic_load_n(&ring.fbox[me], __ATOMIC_SEQ_CST)) != h + 1;)
            futex(&ring.fbox[me], FUTEX_WAIT_PRIVATE, v);   /* EINTR (a tgkill) or EAGAIN: look again */
        break;
    case CONDVAR:
        pthread_mutex_lock(&ring.lock);
        while (ring.cbox[me] != h + 1)
            pthread_cond_wait(&ring.cond[me], &ring.lock);
        pthread_mutex_unlock(&ring.lock);
        break;
    default: {
        int v = 0;
        if (read(ring.pipes[me][0], &v, sizeof v) != sizeof v || v != h + 1)
            ring.bad = 1;
    }
    }
}

static void *ring_thread(void *arg)
{
    int me = (int)(long)arg, signals = 0;
    ring.tids[me] = (pid_t)syscall(SYS_gettid);
    __atomic_add_fetch(&ring.started, 1, __ATOMIC_SEQ_CST);
    futex(&ring.started, FUTEX_WAKE_PRIVATE, 1);
    for (int h = 0; h < ring.hops; h++) {
        if (ring.to[h] != me)
            continue;
        signals += ring.tgkill_first[h];
        take(me, h);
        ring.sum = ring.sum * 31 + (uint64_t)(h + 1) * (uint64_t)(me + 7);
        if (h + 1 < ring.hops) {
            hand(h + 1);
        } else {
            __atomic_store_n(&ring.done, 1, __ATOMIC_SEQ_CST);
            futex(&ring.done, FUTEX_WAKE_PRIVATE, 1);
        }
    }
    /* Each tgkill's signal was taken by this thread before it could be handed
     * the token again (it is delivered on the way back to user mode). */
    if (usr2_here != signals)
        ring.bad = 1;
    return NULL;
}

static void thread_round(uint64_t *rng, int threads, int hops, unsigned step)
{
    ring.threads = threads;
    ring.hops = hops;
    int prev = -1;
    for (int h = 0; h < hops; h++) {
        int r;
        do
            r = (int)below(rng, (unsigned)threads);
        while (r == prev);
        ring.to[h] = (unsigned char)r;
        ring.mech[h] = (unsigned char)below(rng, MECHS);
        ring.tgkill_first[h] = h > 0 && below(rng, 4) == 0;
        prev = r;
        thr.by_mech[ring.mech[h]]++;
        thr.tgkills += ring.tgkill_first[h];
    }
    for (int t = 0; t < threads; t++) {
        ring.fbox[t] = ring.cbox[t] = 0;
        pthread_cond_init(&ring.cond[t], NULL);
        if (pipe(ring.pipes[t]) != 0)
            ring.bad = 1;
    }
    ring.started = ring.done = ring.bad = 0;
    ring.sum = 0;
    pthread_t ids[MAX_THREADS];
    int made = 0;
    for (int t = 0; t < threads; t++)
        made += pthread_create(&ids[t], NULL, ring_thread, (void *)(long)t) == 0;
    for (int s; made == threads && (s = ring.started) < threads;)
        futex(&ring.started, FUTEX_WAIT_PRIVATE, s);
    if (made == threads) {
        hand(0);
        while (!__atomic_load_n(&ring.done, __ATOMIC_SEQ_CST))
            futex(&ring.done, FUTEX_WAIT_PRIVATE, 0);
    }
    for (int t = 0; t < made; t++)
        pthread_join(ids[t], NULL);
    for (int t = 0; t < threads; t++) {
        pthread_cond_destroy(&ring.cond[t]);
        close(ring.pipes[t][0]);
        close(ring.pipes[t][1]);
    }
    if (made != threads || ring.bad) {
        printf("FAIL step %u: a round of %d threads (%d created), %d hand-offs went wrong\n",
               step, threads, made, hops);
        failures++;
    }
    thr.rounds++;
    thr.threads += threads;
    thr.hops += hops;
    thr.checksum = thr.checksum * 1000003 ^ ring.sum;
}

/* --- SA_RESTART (the tiny kernel returned EINTR from every interrupted call
 * until the stress test lost a token on KVM: a tgkill hit a blocked pipe read) --- */

static void pause_a_little(void)
{
    struct timespec t = { 0, 20 * 1000 * 1000 };
    nanosleep(&t, NULL);                /* only makes it likely that the other side is blocked */
}

static volatile int restart_word;
static pid_t main_tid;

static void *signal_then_wake(void *arg)
{
    (void)arg;
    pause_a_little();
    syscall(SYS_tgkill, getpid(), main_tid, SIGUSR2);
    pause_a_little();
    __atomic_store_n(&restart_word, 1, __ATOMIC_SEQ_CST);
    futex(&restart_word, FUTEX_WAKE_PRIVATE, 1);
    return NULL;
}

/* A handler with SA_RESTART interrupts a blocked pipe read, wait4 and futex
 * wait: each goes on as if nothing happened (Linux restarts them).  The
 * result is the same if the signal comes before the call blocks. */
static void restarts(void)
{
    int before = usr2_here, p[2], ok = pipe(p) == 0;
    pid_t pid = fork();
    if (pid == 0) {
        pause_a_little();
        kill(getppid(), SIGUSR2);
        pause_a_little();
        _exit(write(p[1], "x", 1) == 1 ? 0 : 1);
    }
    char c = 0;
    ok &= read(p[0], &c, 1) == 1 && c == 'x';
    int status = 0;
    ok &= waitpid(pid, &status, 0) == pid && status == 0;
    close(p[0]);
    close(p[1]);
    pid = fork();
    if (pid == 0) {
        pause_a_little();
        kill(getppid(), SIGUSR2);
        pause_a_little();
        _exit(5);
    }
    ok &= waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 5;
    main_tid = (pid_t)syscall(SYS_gettid);
    pthread_t t;
    ok &= pthread_create(&t, NULL, signal_then_wake, NULL) == 0;
    long r = futex(&restart_word, FUTEX_WAIT_PRIVATE, 0);
    ok &= r == 0 || errno == EAGAIN;    /* EAGAIN: restarted after the word changed */
    pthread_join(t, NULL);
    check(ok && usr2_here == before + 3,
          "SA_RESTART: a pipe read, wait4 and a futex wait interrupted by a handler go on");
}

/* --- memory --- */

/* MemTotal and MemFree from /proc/meminfo, in KiB; 0 when the file or a line is missing. */
static void meminfo(long *total, long *free_kib)
{
    char text[4096];
    int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
    long n = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
    if (fd >= 0)
        close(fd);
    *total = *free_kib = 0;
    if (n <= 0)
        return;
    text[n] = 0;
    char *t = strstr(text, "MemTotal:"), *f = strstr(text, "MemFree:");
    *total = t ? strtol(t + 9, NULL, 10) : 0;
    *free_kib = f ? strtol(f + 8, NULL, 10) : 0;
}

static long mem_free(void)
{
    long total, free_kib;
    meminfo(&total, &free_kib);
    return free_kib;
}


/* /proc/meminfo is there with true figures: everywhere, MemTotal >= MemFree > 0;
 * on our kernel, touching 1 MiB lowers MemFree by at least that and unmapping
 * gives it back to the page. */
static void meminfo_is_true(int ours)
{
    long total, before = 0, after_touch = 0, after_unmap = 0;
    meminfo(&total, &before);
    int ok = total > 0 && before > 0 && before <= total;
    /* Twice: the first mapping may leave a page table behind (as on Linux), the second must not. */
    for (int pass = 0; ok && ours && pass < 2; pass++) {
        before = mem_free();
        unsigned char *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        for (long i = 0; m != MAP_FAILED && i < (1 << 20); i += 4096)
            m[i] = 1;
        after_touch = mem_free();
        if (m != MAP_FAILED)
            munmap(m, 1 << 20);
        after_unmap = mem_free();
        ok = m != MAP_FAILED && before - after_touch >= 1024 && (pass == 0 || after_unmap == before);
    }
    if (!ok)
        printf("meminfo: MemFree %ld kB, %ld after touching 1 MiB, %ld after unmapping\n",
               before, after_touch, after_unmap);
    check(ok, "/proc/meminfo: MemTotal >= MemFree > 0 (on our kernel: 1 MiB touched and unmapped shows in MemFree)");
}

/* --- the steps --- */

static void run_steps(uint64_t seed, unsigned steps)
{
    uint64_t rng = seed;
    for (unsigned step = 1; step <= steps; step++) {
        progress++;
        unsigned what = below(&rng, 100);
        if (what < 40 && nlive < MAX_LIVE) {
            phase = "fork";
            spawn(&rng, -1);
        } else if (what < 75 && nlive > 0) {
            phase = "reap";
            reap((int)below(&rng, (unsigned)nlive), step);
        } else if (what < 85 && nlive > 0) {
            phase = "signal";
            signal_one(&rng);
        } else {
            phase = "threads";
            int threads = 2 + (int)below(&rng, MAX_THREADS - 1);
            thread_round(&rng, threads, 8 + (int)below(&rng, MAX_HOPS - 7), step);
        }
    }
    phase = "reap the rest";
    while (nlive > 0) {
        progress++;
        reap(nlive - 1, steps);
    }
}

/* The steps' peak of tasks and pipes, at once: MAX_LIVE orphan-mode children
 * (a zombie and a grandchild blocked on a full pipe each) while a round of
 * MAX_THREADS threads runs; then one child of each other mode.  So what grows once to
 * the peak and is kept (kernel stacks, slabs, a libc's cache of thread
 * stacks) has grown before the first MemFree reading. */
static void warm_up(void)
{
    uint64_t rng = 0x5eed;
    while (nlive < MAX_LIVE)
        spawn(&rng, ORPHAN);
    thread_round(&rng, MAX_THREADS, MAX_HOPS, 0);
    while (nlive > 0)
        reap(nlive - 1, 0);
    for (int mode = EXITS; mode < ORPHAN; mode++)
        spawn(&rng, mode);
    while (nlive > 0)
        reap(nlive - 1, 0);
    sigset_t pending, unblocked;        /* a SIGCHLD the warm-up left pending: taken now */
    sigpending(&pending);
    sigprocmask(SIG_BLOCK, NULL, &unblocked);
    sigdelset(&unblocked, SIGCHLD);
    if (sigismember(&pending, SIGCHLD))
        sigsuspend(&unblocked);
    sigchld_count = 0;
    memset(&kids, 0, sizeof kids);
    memset(&thr, 0, sizeof thr);
    kids.checksum = thr.checksum = FNV_START;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);   /* nothing buffered is copied into a child */
    unsigned steps = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : DEFAULT_STEPS;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0) : DEFAULT_SEED;
    if (steps == 0) {
        printf("usage: stress [STEPS [SEED]]  (STEPS > 0)\n");
        return 2;
    }
    printf("stress: seed %llu, %u steps\n", (unsigned long long)seed, steps);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_flags = SA_RESTART;
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    sa.sa_handler = on_chld;
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);           /* taken only inside wait_for's sigsuspend */
    sigaddset(&set, SIGUSR1);           /* the children's: each unblocks it itself */
    sigprocmask(SIG_BLOCK, &set, NULL);
    prctl(PR_SET_CHILD_SUBREAPER, 1);   /* orphans come back to us, as to PID 1 in the VM */

    pthread_t dog;
    check(pthread_create(&dog, NULL, watchdog, NULL) == 0, "a watchdog thread ends a hang with a FAIL line");
    int ours = our_kernel();
    meminfo_is_true(ours);
    restarts();

    warm_up();
    long before = mem_free();
    run_steps(seed, steps);
    long after = mem_free();

    printf("children: %d forked, %d reaped (%d exit, %d sigusr1, %d killed, %d orphan), %d grandchildren reaped\n",
           kids.spawned, kids.reaped, kids.by_mode[EXITS], kids.by_mode[WAITS_USR1], kids.by_mode[KILLED],
           kids.by_mode[ORPHAN], kids.orphans);
    printf("pipes: %ld bytes from children, checksum %016llx\n", kids.bytes, (unsigned long long)kids.checksum);
    printf("threads: %d rounds, %d threads, %d hand-offs (%d futex, %d condvar, %d pipe), %d tgkills, checksum %016llx\n",
           thr.rounds, thr.threads, thr.hops, thr.by_mech[FUTEX], thr.by_mech[CONDVAR], thr.by_mech[PIPE],
           thr.tgkills, (unsigned long long)thr.checksum);
    check(kids.spawned == kids.reaped && waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD,
          "every child and grandchild reaped, none left");
    check(sigchld_count >= 1 && sigchld_count <= kids.spawned + kids.orphans,
          "SIGCHLD woke every wait (at most one per child: they may merge)");
    /* On our kernel MemFree is checked; elsewhere it is everyone's, and this line
     * claims only what was checked there: that nothing failed. */
    int back = !ours || (before - after <= MEMORY_SLACK_KIB && after - before <= MEMORY_SLACK_KIB);
    if (!back)
        printf("memory: MemFree %ld kB before the steps, %ld after\n", before, after);
    check(back, "memory: MemFree back where it started, within 32 KiB (checked on our kernel only)");
    return finish("stress");
}
