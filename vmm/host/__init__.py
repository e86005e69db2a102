"""Host system calls that are not KVM, through ctypes: the one libc handle and small
wrappers over what the os module lacks (rust-vmm's vmm-sys-util plays this part).

    libc.py             the C library handle, typed prototypes, errno -> OSError
    timerfd.py          CLOCK_MONOTONIC timerfds (the software engine's watchdog)
    process.py          malloc_trim, the parent-death signal, prctl (capability sets, no_new_privs, subreaper)
    container_calls.py  unshare, setns, mount, mount_setattr, pivot_root, sethostname, capget/capset
    tty.py              pseudoterminal ioctls (unlock, number, window size, controlling terminal)
    seccomp.py          the libseccomp binding (a filter built and loaded; the OCI policy is in vmm/container)

KVM's own ioctls are in vmm/kvm (on the same libc handle); guest RAM's pointers in
vmm/memory.py. Nothing else in the VMM imports ctypes, except the unicorn engine's binding
(engines/unicorn_binding.py); tests/test_import_graph.py checks it.
"""
