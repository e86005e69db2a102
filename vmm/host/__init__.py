"""Host system calls that are not KVM, through ctypes: the one libc handle and small
wrappers over what the os module lacks (rust-vmm's vmm-sys-util plays this part).

    libc.py             the C library handle, typed prototypes, errno -> OSError
    timerfd.py          CLOCK_MONOTONIC timerfds (the software engine's watchdog)
    process.py          malloc_trim, the parent-death signal
    container_calls.py  unshare, setns, mount, umount2, pivot_root, sethostname (vmm/container)

KVM's own ioctls are in vmm/kvm (on the same libc handle); guest RAM's pointers in
vmm/memory.py. Nothing else in the VMM imports ctypes, except the unicorn engine's binding
(engines/unicorn_binding.py); tests/test_import_graph.py checks it.
"""
