/* alarm, setitimer and getitimer (ITIMER_REAL), and SIGALRM: a handler run
 * by alarm, alarm's return values and rounding, alarm(0) cancelling, a
 * periodic timer firing N times then disarmed, getitimer of an armed timer,
 * a blocking pipe read interrupted (EINTR without SA_RESTART, continued
 * with it), the default action ending a child, a timer that survives exec
 * and is not inherited by fork, and one timer shared by a process's threads.
 * Each check waits for the signal itself, never for a time, and prints only
 * coarse facts (a remaining time within a range), so a slow engine prints
 * the same lines. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static volatile sig_atomic_t fired, last_code, wanted;
static int pipe_w = -1;
static const char *self;                        /* argv[0]: this program, for the exec check */

static void on_alarm(int sig, siginfo_t *info, void *ctx)
{
    (void)sig;
    (void)ctx;
    fired++;
    last_code = info->si_code;
    if (wanted && fired == wanted) {            /* the Nth: disarm from the handler */
        struct itimerval off = { { 0, 0 }, { 0, 0 } };
        setitimer(ITIMER_REAL, &off, NULL);
    }
    if (pipe_w >= 0)
        write(pipe_w, "x", 1);
}

static void handler(int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_alarm;
    sa.sa_flags = SA_SIGINFO | flags;
    sigaction(SIGALRM, &sa, NULL);
}

/* Wait (sigsuspend, SIGALRM blocked in between) until `fired` reaches n. */
static void wait_fired(int n)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGALRM);
    sigprocmask(SIG_BLOCK, &block, &old);
    while (fired < n)
        sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static void arm(long value_us, long interval_us)
{
    struct itimerval v = { { interval_us / 1000000, interval_us % 1000000 },
                           { value_us / 1000000, value_us % 1000000 } };
    setitimer(ITIMER_REAL, &v, NULL);
}

static long left_us(void)
{
    struct itimerval v;
    getitimer(ITIMER_REAL, &v);
    return v.it_value.tv_sec * 1000000L + v.it_value.tv_usec;
}

static void alarm_values(void)
{
    check(alarm(0) == 0, "alarm(0) with no timer returns 0");
    check(alarm(100) == 0, "alarm(100) returns 0 (none before)");
    check(alarm(50) == 100, "alarm(50) returns 100 (the old one's seconds, rounded)");
    unsigned left = alarm(0);
    check(left == 50, "alarm(0) cancels and returns 50");
    check(left_us() == 0, "getitimer: disarmed after alarm(0)");
    arm(300000, 0);
    check(alarm(0) == 1, "alarm(0) of a 0.3 s timer returns 1 (never 0 for an armed timer)");
    arm(2700000, 0);
    check(alarm(0) == 3, "alarm(0) of a 2.7 s timer returns 3 (from .5 up)");
    arm(2200000, 0);
    check(syscall(SYS_alarm, 0) == 2, "the alarm call of a 2.2 s timer returns 2 (musl's alarm() rounds up)");
}

static void alarm_fires(void)
{
    handler(0);
    fired = 0;
    alarm(1);
    wait_fired(1);
    check(fired == 1 && last_code == SI_KERNEL, "alarm(1) ran the SIGALRM handler (si_code SI_KERNEL)");
    check(alarm(0) == 0, "alarm(0) after it fired returns 0");
}

static void armed_timer(void)
{
    struct itimerval v = { { 2, 500000 }, { 10, 0 } }, got, old;
    check(setitimer(ITIMER_REAL, &v, &old) == 0 && old.it_value.tv_sec == 0 && old.it_value.tv_usec == 0,
          "setitimer(10 s, every 2.5 s): the old value was disarmed");
    getitimer(ITIMER_REAL, &got);
    check(got.it_interval.tv_sec == 2 && got.it_interval.tv_usec == 500000, "getitimer: interval 2.5 s");
    long left = got.it_value.tv_sec * 1000000L + got.it_value.tv_usec;
    check(left > 9000000 && left <= 10000000, "getitimer: value in (9, 10] s");
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, &old);
    left = old.it_value.tv_sec * 1000000L + old.it_value.tv_usec;
    check(old.it_interval.tv_sec == 2 && old.it_interval.tv_usec == 500000 && left > 9000000 && left <= 10000000,
          "setitimer(0) returns the old value and interval, and disarms");
    check(left_us() == 0, "getitimer: disarmed");
}

static void periodic(void)
{
    handler(0);
    fired = 0;
    wanted = 5;
    arm(20000, 20000);
    wait_fired(5);
    check(fired == 5, "a 20 ms periodic timer fired 5 times; the handler disarmed it");
    struct itimerval v;
    getitimer(ITIMER_REAL, &v);
    check(!v.it_value.tv_sec && !v.it_value.tv_usec && !v.it_interval.tv_sec && !v.it_interval.tv_usec,
          "getitimer: value and interval 0");
    wanted = 0;
}

static void interrupted_read(void)
{
    int p[2];
    char c;
    pipe(p);
    handler(0);
    fired = 0;
    arm(30000, 0);
    long n = read(p[0], &c, 1);
    check_error(n, EINTR, "SIGALRM without SA_RESTART: a blocked pipe read");
    check(fired == 1, "the handler ran");
    handler(SA_RESTART);
    fired = 0;
    pipe_w = p[1];                              /* the handler writes the byte the read gets */
    arm(30000, 0);
    n = read(p[0], &c, 1);
    pipe_w = -1;
    check(n == 1 && c == 'x' && fired == 1, "with SA_RESTART the read goes on and gets the handler's byte");
    close(p[0]);
    close(p[1]);
}

static void default_kills(void)
{
    signal(SIGALRM, SIG_DFL);
    pid_t pid = fork();
    if (pid == 0) {
        arm(20000, 0);
        for (;;)
            pause();
    }
    int status;
    waitpid(pid, &status, 0);
    check(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM, "the default action ends a child: WTERMSIG SIGALRM");
}

static void across_fork_and_exec(void)
{
    arm(10000000, 0);
    pid_t pid = fork();
    if (pid == 0)
        _exit(left_us() == 0 ? 0 : 1);
    int status;
    waitpid(pid, &status, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a fork child has no timer");
    check(left_us() > 0, "the parent's timer is still armed");
    alarm(0);
    pid = fork();
    if (pid == 0) {
        signal(SIGALRM, SIG_IGN);               /* in case: the check is the exit status */
        arm(10000000, 0);
        execlp(self, self, "--after-exec", (char *)0);
        _exit(2);
    }
    waitpid(pid, &status, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the timer survives exec (getitimer in the new program)");
}

static void *thread_cancels(void *arg)
{
    (void)arg;
    return (void *)(long)alarm(0);
}

static void threads_share(void)
{
    alarm(30);
    pthread_t t;
    void *ret;
    pthread_create(&t, NULL, thread_cancels, NULL);
    pthread_join(t, &ret);
    check((long)ret == 30, "a thread's alarm(0) returns the process's 30 s");
    check(left_us() == 0, "and the process's timer is disarmed");
}

static void bad_calls(void)
{
    struct itimerval v = { { 0, 0 }, { 0, 1000000 } }, got;
    check_error(setitimer(ITIMER_REAL, &v, NULL), EINVAL, "setitimer with tv_usec 1000000");
    v.it_value.tv_usec = -1;
    check_error(setitimer(ITIMER_REAL, &v, NULL), EINVAL, "setitimer with tv_usec -1");
    check_error(getitimer(7, &got), EINVAL, "getitimer(7)");
    check(getitimer(ITIMER_VIRTUAL, &got) == 0 && !got.it_value.tv_sec && !got.it_value.tv_usec,
          "getitimer(ITIMER_VIRTUAL): never armed, 0");
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--after-exec")) {
        long left = left_us();
        return left > 0 && left <= 10000000 ? 0 : 1;
    }
    self = argv[0];
    setvbuf(stdout, NULL, _IONBF, 0);           /* nothing buffered is copied into a child */
    alarm_values();
    alarm_fires();
    armed_timer();
    periodic();
    interrupted_read();
    default_kills();
    across_fork_and_exec();
    threads_share();
    bad_calls();
    return finish("timers");
}
