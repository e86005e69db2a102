/* strerrorname_np: errno numbers back to their names, for test output. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#define NAME(e) [e] = #e

static const char *const names[] = {
    NAME(EPERM), NAME(ENOENT), NAME(EINTR), NAME(EIO), NAME(ENXIO), NAME(EBADF),
    NAME(EAGAIN), NAME(ENOMEM), NAME(EACCES), NAME(EFAULT), NAME(EEXIST),
    NAME(ENOTDIR), NAME(EISDIR), NAME(EINVAL), NAME(EMFILE), NAME(ENOTTY),
    NAME(ENOSPC), NAME(ESPIPE), NAME(EROFS), NAME(ERANGE), NAME(ENOSYS),
    NAME(EOPNOTSUPP),
};

const char *strerrorname_np(int err)
{
    if (err <= 0 || (size_t)err >= sizeof names / sizeof names[0])
        return NULL;
    return names[err];
}
