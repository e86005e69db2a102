"""OCI hooks: programs run at points of a container's life, with its state JSON on stdin.

A hook is {path, args, env, timeout}: `path` is executed with `args` as its whole argv (args[0]
included; just [path] when absent) and `env` as its whole environment (empty when absent), as
execve does. The runtime-spec's points (config.md "POSIX-platform Hooks"):
  prestart, createRuntime   by `create`, in the runtime's namespaces, after the container's
                            namespaces and mounts exist, before pivot_root
  createContainer           by the container's init, in the container's namespaces, before pivot_root
  startContainer            by the init, in the container, after `start`, before the program runs
  poststart                 by `start`, in the runtime's namespaces, after the program was started
  poststop                  by `delete`, after the container is gone
A failing hook (non-zero status, a signal, its timeout, a path that cannot run) is an error,
except poststop, whose failures are warnings (the spec: "the remaining hooks and lifecycle
continue"). Its stdout and stderr are kept, and shown in the error.
"""
import json

from .errors import SetupFailed


def run(hooks: list, kind: str, state: dict) -> None:
    """Run every hook of one kind in order; SetupFailed at the first that fails."""
    if not hooks:
        return
    import subprocess                   # only when there are hooks: it costs start-up time
    payload = json.dumps(state).encode()
    for index, hook in enumerate(hooks):
        argv = hook.get("args") or [hook["path"]]
        env = dict(entry.split("=", 1) for entry in hook.get("env") or ())
        where = f"{kind} hook {index} ({hook['path']})"
        try:
            result = subprocess.run(argv, executable=hook["path"], env=env, input=payload, capture_output=True,
                                    timeout=hook.get("timeout"), close_fds=True)
        except subprocess.TimeoutExpired:
            raise SetupFailed(f"{where} did not finish within its timeout of {hook['timeout']} s") from None
        except OSError as error:
            raise SetupFailed(f"{where} cannot run: {error.strerror}") from None
        if result.returncode != 0:
            how = f"was killed by signal {-result.returncode}" if result.returncode < 0 else \
                f"exited with status {result.returncode}"
            output = (result.stderr or result.stdout).decode(errors="replace").strip()
            raise SetupFailed(f"{where} {how}" + (f": {output[-500:]}" if output else ""))


def run_all_warning(hooks: list, kind: str, state: dict, warn) -> None:
    """Run every hook of one kind; a failure is passed to warn() and the next hook still runs."""
    for hook in hooks or ():
        try:
            run([hook], kind, state)
        except SetupFailed as error:
            warn(str(error))
