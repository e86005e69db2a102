/* exit() and abort(). There are no atexit handlers and no stdio buffers to
 * flush, so exit() is just exit_group. */
#include <stdlib.h>
#include <unistd.h>

void exit(int status)
{
    exit_group(status);
}

void abort(void)
{
    exit_group(128 + 6); /* the status a SIGABRT death would give */
}
