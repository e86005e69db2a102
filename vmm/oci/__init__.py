"""The OCI runtime: `vmm-oci`, runc's command line over the project's container launcher, or a microVM.

Modules, by job:
  cli          the command line (runc's), the log, exit statuses       errors, log
  spec         config.json read and checked                           state   ROOT/ID, status
  create       `create`, the runtime's side; init   the container's init (set-up, FIFO wait, exec)
  channel      the runtime <-> init messages                          process the process's identity and exec
  lifecycle    start, state, kill, delete, pause, resume, list, ps    hooks   the OCI hooks
  execute      `exec`                                                 run     `run` (create, start, wait, delete)
  modes        namespaces or VM; vm   the VM mode                     features `features`, `spec`
The Linux mechanisms (namespaces, mounts, devices, cgroups, capabilities, seccomp, ptys) are in
vmm/container/, shared with `vmm container run`.
"""
