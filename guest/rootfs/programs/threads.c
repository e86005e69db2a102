/* threads: POSIX threads as the C libraries make them (clone with
 * CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|
 * CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID): mutexes, a
 * condition variable, joins (the kernel clears and wakes the thread ID at
 * exit), thread-local storage, one process ID and distinct thread IDs,
 * futex wake-ups and requeues between threads, a signal to one thread
 * (pthread_kill: tgkill) and to the process (taken by the thread that does
 * not block it), a futex wait interrupted by a signal (EINTR), a robust
 * mutex whose owner died (EOWNERDEAD: the robust list walked at exit), 100
 * threads in turn, and threads in processes: a child forked by a thread is
 * the process's (main reaps it), exit() in a thread ends its process while
 * main waits in a join, and exec ends the other threads. */
#include <pthread.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common.h"

#define NTHREADS 4
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129
#define FUTEX_CMP_REQUEUE_PRIVATE 132

static long futex(volatile uint32_t *uaddr, int op, uint32_t val, long val2, volatile uint32_t *uaddr2,
                  uint32_t val3)
{
    return syscall(SYS_futex, uaddr, op, val, val2, uaddr2, val3);
}

static pid_t tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

static void pause_ms(int ms)
{
    struct timespec t = { 0, ms * 1000000L };
    nanosleep(&t, NULL);
}

/* ---- mutexes, TLS, identities ------------------------------------------------ */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static __thread long mine = 100;
static pid_t tids[NTHREADS];
static pid_t pids[NTHREADS];

static void *adder(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < 10000; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
        mine++;
    }
    tids[id] = tid();
    pids[id] = getpid();
    return (void *)(mine + id);
}

static void mutexes(void)
{
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], NULL, adder, (void *)i))
            check(0, "pthread_create");
    long sum = 0;
    for (int i = 0; i < NTHREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += (long)r;
    }
    printf("mutex: counter %ld\n", counter);
    printf("join: each thread's TLS counted 10000 from 100: %ld\n", sum);
    check(mine == 100, "main's TLS untouched");
    int same_pid = 1, distinct = 1;
    for (int i = 0; i < NTHREADS; i++) {
        same_pid &= pids[i] == getpid();
        distinct &= tids[i] != getpid() && tids[i] > 0;
        for (int j = 0; j < i; j++)
            distinct &= tids[i] != tids[j];
    }
    check(same_pid, "getpid is the same in every thread");
    check(distinct, "gettid differs in every thread");
}

/* ---- a condition variable: one-slot producer/consumer ----------------------- */

static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int slot, full, finished;

static void *producer(void *arg)
{
    (void)arg;
    for (int i = 1; i <= 200; i++) {
        pthread_mutex_lock(&lock);
        while (full)
            pthread_cond_wait(&changed, &lock);
        slot = i;
        full = 1;
        pthread_cond_broadcast(&changed);
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    while (full)
        pthread_cond_wait(&changed, &lock);
    finished = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void condvar(void)
{
    pthread_t t;
    long sum = 0, items = 0;
    pthread_create(&t, NULL, producer, NULL);
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!full && !finished)
            pthread_cond_wait(&changed, &lock);
        if (!full)
            break;
        sum += slot;
        items++;
        full = 0;
        pthread_cond_broadcast(&changed);
    }
    pthread_mutex_unlock(&lock);
    pthread_join(t, NULL);
    printf("condvar: %ld items, sum %ld\n", items, sum);
}

/* ---- futexes between threads ------------------------------------------------- */

static volatile uint32_t word_a, word_b, waiting, done;
static long results[3];

static void *futex_waiter(void *arg)
{
    long i = (long)arg;
    __atomic_add_fetch(&waiting, 1, __ATOMIC_SEQ_CST);
    long r;
    while ((r = futex(&word_a, FUTEX_WAIT_PRIVATE, 0, 0, NULL, 0)) == -1 && errno == EAGAIN && !word_a)
        ;
    results[i] = r;
    __atomic_add_fetch(&done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Waiters queue on word_a; CMP_REQUEUE wakes none and moves them to
 * word_b, retried until all three have moved (a waiter not yet asleep is
 * not there to move: the sum is exact once each has been moved once).
 * Then WAKE 1 on word_b, and WAKE all. */
static void futexes(void)
{
    pthread_t t[3];
    for (long i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, futex_waiter, (void *)i);
    while (waiting < 3)
        pause_ms(1);
    long requeued = 0, woken;
    while (requeued < 3) {
        long r = futex(&word_a, FUTEX_CMP_REQUEUE_PRIVATE, 0, 10, &word_b, 0);
        if (r < 0) {
            printf("FAIL CMP_REQUEUE: %s\n", errname(errno));
            failures++;
            break;
        }
        requeued += r;
        pause_ms(1);
    }
    printf("CMP_REQUEUE wake 0, requeue the rest: %ld in all\n", requeued);
    printf("WAKE on the old word: %ld\n", futex(&word_a, FUTEX_WAKE_PRIVATE, 10, 0, NULL, 0));
    word_a = 1;
    woken = futex(&word_b, FUTEX_WAKE_PRIVATE, 1, 0, NULL, 0);
    printf("WAKE 1 on the new word: %ld\n", woken);
    while (done < 1)
        pause_ms(1);
    printf("WAKE all on the new word: %ld\n", futex(&word_b, FUTEX_WAKE_PRIVATE, 10, 0, NULL, 0));
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    check(results[0] == 0 && results[1] == 0 && results[2] == 0, "each waiter's FUTEX_WAIT returned 0");
}

/* ---- signals to threads ------------------------------------------------------ */

static volatile pid_t handled_by;
static volatile int handled;
static volatile uint32_t interrupted_word;

static void note_thread(int sig)
{
    (void)sig;
    handled_by = tid();
    handled++;
}

static volatile pid_t worker_tid;
static volatile int stop_worker;
static volatile long wait_result, wait_errno;

static void *signal_target(void *arg)
{
    (void)arg;
    worker_tid = tid();
    while (!stop_worker)
        pause_ms(1);
    return NULL;
}

static void *interrupted_waiter(void *arg)
{
    (void)arg;
    worker_tid = tid();
    wait_result = futex(&interrupted_word, FUTEX_WAIT_PRIVATE, 0, 0, NULL, 0);
    wait_errno = errno;
    stop_worker = 1;
    return NULL;
}

static void signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = note_thread;            /* no SA_RESTART: a futex wait ends with EINTR */
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);

    pthread_t t;
    worker_tid = 0;
    stop_worker = 0;
    pthread_create(&t, NULL, signal_target, NULL);
    while (!worker_tid)
        pause_ms(1);
    pthread_kill(t, SIGUSR1);
    while (!handled)
        pause_ms(1);
    check(handled_by == worker_tid, "pthread_kill: the handler ran in that thread");

    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    handled = 0;
    kill(getpid(), SIGUSR2);
    while (!handled)
        pause_ms(1);
    check(handled_by == worker_tid, "kill to the process: taken by the thread that does not block it");
    pthread_sigmask(SIG_UNBLOCK, &block, NULL);
    stop_worker = 1;
    pthread_join(t, NULL);

    worker_tid = 0;
    stop_worker = 0;
    pthread_create(&t, NULL, interrupted_waiter, NULL);
    while (!worker_tid)
        pause_ms(1);
    while (!stop_worker) {                  /* until one signal finds it asleep */
        pthread_kill(t, SIGUSR1);
        pause_ms(2);
    }
    pthread_join(t, NULL);
    printf("FUTEX_WAIT interrupted by a handler: %ld %s\n", wait_result, errname((int)wait_errno));
}

/* ---- a robust mutex whose owner exits ----------------------------------------- */

static pthread_mutex_t robust;

static void *take_and_die(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&robust);
    return NULL;                            /* still holding it */
}

static void robust_mutex(void)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &attr);
    pthread_t t;
    pthread_create(&t, NULL, take_and_die, NULL);
    pthread_join(t, NULL);
    int r = pthread_mutex_lock(&robust);
    printf("robust mutex after its owner exited: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : errname(r));
    pthread_mutex_consistent(&robust);
    pthread_mutex_unlock(&robust);
    check(pthread_mutex_lock(&robust) == 0, "consistent again: locks");
    pthread_mutex_unlock(&robust);
}

/* ---- processes with threads: fork from a thread, exit and exec ---------------- */

static void *forker(void *arg)
{
    (void)arg;
    pid_t child = fork();
    if (child == 0)
        _exit(7);
    return (void *)(long)child;
}

static void *ender(void *arg)
{
    (void)arg;
    exit(5);                                /* exit_group: the whole process ends */
}

static void *sleeper(void *arg)
{
    for (;;)
        pause();
    return arg;
}

static int reap(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void processes(void)
{
    pthread_t t;
    void *r;
    pthread_create(&t, NULL, forker, NULL);
    pthread_join(t, &r);
    printf("a child forked by a thread, reaped by main: status %d\n", reap((pid_t)(long)r));

    pid_t child = fork();
    if (child == 0) {
        pthread_create(&t, NULL, ender, NULL);
        pthread_join(t, NULL);
        _exit(1);                           /* never: the thread's exit ended us */
    }
    printf("exit() in a thread while main waits in join: status %d\n", reap(child));

    child = fork();
    if (child == 0) {
        pthread_create(&t, NULL, sleeper, NULL);
        execl("/bin/echo", "echo", "exec from a process with two threads", (char *)NULL);
        _exit(1);
    }
    printf("... its status %d\n", reap(child));
}

/* ---- many threads in turn ---------------------------------------------------------- */

static void *nothing(void *arg)
{
    return arg;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    mutexes();
    condvar();
    futexes();
    signals();
    robust_mutex();
    long ok = 0;
    for (long i = 0; i < 100; i++) {
        pthread_t t;
        void *r;
        pthread_create(&t, NULL, nothing, (void *)i);
        pthread_join(t, &r);
        ok += (long)r == i;
    }
    printf("100 threads created and joined in turn: %ld\n", ok);
    processes();
    return finish("threads");
}
