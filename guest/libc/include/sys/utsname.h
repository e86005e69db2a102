/* uname(): the kernel's name, release and machine (Linux layout, 65-byte fields). */
#ifndef LIBC_SYS_UTSNAME_H
#define LIBC_SYS_UTSNAME_H

struct utsname {
    char sysname[65];
    char nodename[65];
    char release[65];
    char version[65];
    char machine[65];
    char domainname[65];
};

/* Returns 0 or -errno. */
int uname(struct utsname *buf);

#endif
