/* futex: each operation of futex(2) as the C libraries' threads use it,
 * called directly: a value that does not match (EAGAIN), timeouts relative
 * (FUTEX_WAIT) and absolute (FUTEX_WAIT_BITSET, on CLOCK_MONOTONIC and with
 * FUTEX_CLOCK_REALTIME), wakes with no waiter, REQUEUE and CMP_REQUEUE,
 * WAKE_OP's update of the second word, private and shared futexes (a
 * MAP_SHARED page), and the errors Linux gives for bad arguments.  A
 * timeout must never end early: the clock is read after each one. */
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "common.h"

/* linux/futex.h's values (musl-gcc has no kernel headers). */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_REQUEUE 3
#define FUTEX_CMP_REQUEUE 4
#define FUTEX_WAKE_OP 5
#define FUTEX_WAIT_BITSET 9
#define FUTEX_WAKE_BITSET 10
#define FUTEX_PRIVATE_FLAG 128
#define FUTEX_CLOCK_REALTIME 256
#define FUTEX_BITSET_MATCH_ANY 0xffffffffu
#define FUTEX_WAIT_PRIVATE (FUTEX_WAIT | FUTEX_PRIVATE_FLAG)
#define FUTEX_WAKE_PRIVATE (FUTEX_WAKE | FUTEX_PRIVATE_FLAG)
#define FUTEX_REQUEUE_PRIVATE (FUTEX_REQUEUE | FUTEX_PRIVATE_FLAG)
#define FUTEX_CMP_REQUEUE_PRIVATE (FUTEX_CMP_REQUEUE | FUTEX_PRIVATE_FLAG)
#define FUTEX_WAKE_OP_PRIVATE (FUTEX_WAKE_OP | FUTEX_PRIVATE_FLAG)
#define FUTEX_WAIT_BITSET_PRIVATE (FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG)
#define FUTEX_WAKE_BITSET_PRIVATE (FUTEX_WAKE_BITSET | FUTEX_PRIVATE_FLAG)
#define FUTEX_OP_ADD 1
#define FUTEX_OP_OR 2
#define FUTEX_OP_ANDN 3
#define FUTEX_OP_CMP_EQ 0
#define FUTEX_OP_CMP_NE 1
#define FUTEX_OP_CMP_LT 2
#define FUTEX_OP(op, oparg, cmp, cmparg) \
    ((((op) & 0xf) << 28) | (((cmp) & 0xf) << 24) | (((oparg) & 0xfff) << 12) | ((cmparg) & 0xfff))

static long futex(uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts, uint32_t *uaddr2,
                  uint32_t val3)
{
    return syscall(SYS_futex, uaddr, op, val, ts, uaddr2, val3);
}

static int64_t now_ns(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static struct timespec at(int64_t ns)
{
    struct timespec t = { ns / 1000000000, ns % 1000000000 };
    return t;
}

static uint32_t word = 7, other = 1;

static void timeouts(void)
{
    struct timespec zero = { 0, 0 }, ms20 = at(20000000);
    check_error(futex(&word, FUTEX_WAIT_PRIVATE, 7, &zero, NULL, 0), ETIMEDOUT, "WAIT, timeout 0");
    int64_t start = now_ns(CLOCK_MONOTONIC);
    check_error(futex(&word, FUTEX_WAIT_PRIVATE, 7, &ms20, NULL, 0), ETIMEDOUT, "WAIT, relative 20 ms");
    check(now_ns(CLOCK_MONOTONIC) - start >= 20000000, "... and 20 ms passed");
    check_error(futex(&word, FUTEX_WAIT, 7, &ms20, NULL, 0), ETIMEDOUT, "WAIT (shared), relative 20 ms");
    check_error(futex(&word, FUTEX_WAIT_PRIVATE | FUTEX_CLOCK_REALTIME, 7, &ms20, NULL, 0), ENOSYS,
                "WAIT with FUTEX_CLOCK_REALTIME (only WAIT_BITSET takes it)");

    int64_t deadline = now_ns(CLOCK_MONOTONIC) + 20000000;
    struct timespec abs = at(deadline);
    check_error(futex(&word, FUTEX_WAIT_BITSET_PRIVATE, 7, &abs, NULL, FUTEX_BITSET_MATCH_ANY), ETIMEDOUT,
                "WAIT_BITSET, absolute CLOCK_MONOTONIC");
    check(now_ns(CLOCK_MONOTONIC) >= deadline, "... not before the deadline");
    deadline = now_ns(CLOCK_REALTIME) + 20000000;
    abs = at(deadline);
    check_error(futex(&word, FUTEX_WAIT_BITSET_PRIVATE | FUTEX_CLOCK_REALTIME, 7, &abs, NULL,
                      FUTEX_BITSET_MATCH_ANY), ETIMEDOUT, "WAIT_BITSET, absolute CLOCK_REALTIME");
    check(now_ns(CLOCK_REALTIME) >= deadline, "... not before the deadline");
    abs = at(now_ns(CLOCK_MONOTONIC) / 2);             /* (a VM has not been up long: no negative time) */
    check_error(futex(&word, FUTEX_WAIT_BITSET_PRIVATE, 7, &abs, NULL, 1), ETIMEDOUT,
                "WAIT_BITSET, a deadline passed already");
    abs = at(1);
    check_error(futex(&word, FUTEX_WAIT_BITSET_PRIVATE | FUTEX_CLOCK_REALTIME, 7, &abs, NULL, 1), ETIMEDOUT,
                "WAIT_BITSET, CLOCK_REALTIME 1970");
}

static void mismatches(void)
{
    struct timespec ms20 = at(20000000);
    check_error(futex(&word, FUTEX_WAIT_PRIVATE, 8, NULL, NULL, 0), EAGAIN, "WAIT, value differs");
    check_error(futex(&word, FUTEX_WAIT_PRIVATE, 8, &ms20, NULL, 0), EAGAIN,
                "WAIT, value differs, with a timeout");
    check_error(futex(&word, FUTEX_WAIT_BITSET_PRIVATE, 6, NULL, NULL, 1), EAGAIN, "WAIT_BITSET, value differs");
    check_error(futex(&word, FUTEX_WAIT, 0, NULL, NULL, 0), EAGAIN, "WAIT (shared), value differs");
    check_error(futex(&word, FUTEX_CMP_REQUEUE_PRIVATE, 1, (void *)1, &other, 6), EAGAIN,
                "CMP_REQUEUE, value differs");
}

static void wakes(void)
{
    printf("WAKE, no waiter: %ld\n", futex(&word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0));
    printf("WAKE (shared), no waiter: %ld\n", futex(&word, FUTEX_WAKE, 10, NULL, NULL, 0));
    printf("WAKE_BITSET, no waiter: %ld\n", futex(&word, FUTEX_WAKE_BITSET_PRIVATE, 1, NULL, NULL, 4));
    printf("REQUEUE, no waiter: %ld\n", futex(&word, FUTEX_REQUEUE_PRIVATE, 1, (void *)1, &other, 0));
    printf("CMP_REQUEUE, value matches, no waiter: %ld\n",
           futex(&word, FUTEX_CMP_REQUEUE_PRIVATE, 1, (void *)1, &other, 7));
    other = 5;
    /* op ADD 3, compare old value == 5: */
    long r = futex(&word, FUTEX_WAKE_OP_PRIVATE, 1, (void *)1, &other, FUTEX_OP(FUTEX_OP_ADD, 3, FUTEX_OP_CMP_EQ, 5));
    printf("WAKE_OP ADD 3: %ld, the second word %u\n", r, other);
    r = futex(&word, FUTEX_WAKE_OP_PRIVATE, 1, (void *)1, &other, FUTEX_OP(FUTEX_OP_OR, 5, FUTEX_OP_CMP_LT, 0));
    printf("WAKE_OP OR 5: %ld, the second word %u\n", r, other);
    r = futex(&word, FUTEX_WAKE_OP_PRIVATE, 0, 0, &other, FUTEX_OP(FUTEX_OP_ANDN | 8, 3, FUTEX_OP_CMP_NE, 0));
    printf("WAKE_OP ANDN 1<<3: %ld, the second word %u\n", r, other);
}

static void shared_page(void)
{
    uint32_t *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        check(0, "mmap MAP_SHARED");
        return;
    }
    page[5] = 3;
    struct timespec ms10 = at(10000000);
    check_error(futex(&page[5], FUTEX_WAIT, 4, NULL, NULL, 0), EAGAIN, "shared page: WAIT, value differs");
    check_error(futex(&page[5], FUTEX_WAIT, 3, &ms10, NULL, 0), ETIMEDOUT, "shared page: WAIT times out");
    printf("shared page: WAKE, no waiter: %ld\n", futex(&page[5], FUTEX_WAKE, 1, NULL, NULL, 0));
    munmap(page, 4096);
}

static void bad_arguments(void)
{
    struct timespec bad = { 0, 1000000000 }, negative = { -1, 0 };
    check_error(futex((uint32_t *)((char *)&word + 1), FUTEX_WAIT_PRIVATE, 7, NULL, NULL, 0), EINVAL,
                "WAIT, misaligned");
    check_error(futex((uint32_t *)((char *)&word + 2), FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0), EINVAL,
                "WAKE, misaligned");
    check_error(futex(NULL, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0), EFAULT, "WAIT, NULL");
    check_error(futex(NULL, FUTEX_WAIT, 0, NULL, NULL, 0), EFAULT, "WAIT (shared), NULL");
    check_error(futex(&word, FUTEX_WAIT_PRIVATE, 7, &bad, NULL, 0), EINVAL, "WAIT, tv_nsec 1e9");
    check_error(futex(&word, FUTEX_WAIT_PRIVATE, 7, &negative, NULL, 0), EINVAL, "WAIT, tv_sec -1");
    check_error(futex(&word, FUTEX_WAIT_PRIVATE, 7, (void *)8, NULL, 0), EFAULT, "WAIT, timeout at 8");
    check_error(futex(&word, FUTEX_WAIT_BITSET_PRIVATE, 7, NULL, NULL, 0), EINVAL, "WAIT_BITSET, bitset 0");
    check_error(futex(&word, FUTEX_WAKE_BITSET_PRIVATE, 1, NULL, NULL, 0), EINVAL, "WAKE_BITSET, bitset 0");
    check_error(futex(&word, FUTEX_WAKE_PRIVATE | FUTEX_CLOCK_REALTIME, 1, NULL, NULL, 0), ENOSYS,
                "WAKE with FUTEX_CLOCK_REALTIME");
    check_error(futex(&word, 99, 1, NULL, NULL, 0), ENOSYS, "operation 99");
    check_error(futex(&word, FUTEX_CMP_REQUEUE_PRIVATE, 1, (void *)1, (uint32_t *)((char *)&other + 1), 7),
                EINVAL, "CMP_REQUEUE, second word misaligned");
    check_error(futex(&word, FUTEX_CMP_REQUEUE_PRIVATE, (uint32_t)-1, (void *)1, &other, 7), EINVAL,
                "CMP_REQUEUE, negative count");
    check_error(futex(&word, FUTEX_WAKE_OP_PRIVATE, 1, (void *)1, (uint32_t *)8, 0), EFAULT,
                "WAKE_OP, second word at 8");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    mismatches();
    timeouts();
    wakes();
    shared_page();
    bad_arguments();
    return finish("futex");
}
