/* rt_sigaction and a sigaction() that supplies the x86-64 restorer. */
#include <signal.h>
#include <syscall.h>

int rt_sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
    return (int)syscall6(SYS_rt_sigaction, sig, (long)act, (long)oldact,
                         sizeof(sigset_t), 0, 0);
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
    struct sigaction copy;

    if (act && !(act->sa_flags & SA_RESTORER)) {
        copy = *act;
        copy.sa_flags |= SA_RESTORER;
        copy.sa_restorer = __restore_rt;
        act = &copy;
    }
    return rt_sigaction(sig, act, oldact);
}
