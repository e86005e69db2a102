"""Which way a container runs: in namespaces (the default) or in a microVM.

The mode comes from the config's annotation `org.pyvmm.runtime` ("namespaces" or "vm"), else
from the command's default (`vmm-oci`: namespaces, `vmm-oci-vm`: vm), and is recorded in the
state, so that `start`, `kill`, `delete` and `state` treat the container the same way later.
"""
from . import spec as spec_module
from .errors import ConfigError

MODE_ANNOTATION = "org.pyvmm.runtime"
MODES = ("namespaces", "vm")


def mode_of(spec, default_mode: str) -> str:
    mode = spec.annotations.get(MODE_ANNOTATION, default_mode)
    if mode not in MODES:
        raise ConfigError(f"annotation {MODE_ANNOTATION}={mode!r}: use one of {', '.join(MODES)}")
    return mode


def create_any(runtime, args, detached=True):
    spec = spec_module.load(args.bundle)
    options = dict(pid_file=args.pid_file, console_socket=args.console_socket, no_pivot=args.no_pivot,
                   preserve_fds=args.preserve_fds, detached=detached)
    if mode_of(spec, runtime.default_mode) == "vm":
        from .vm import create_vm
        return create_vm(runtime, args.container_id, spec, **options)
    from .create import create
    return create(runtime, args.container_id, spec, **options)


def start_any(runtime, container_id: str) -> None:
    from .lifecycle import start
    start(runtime, container_id)
