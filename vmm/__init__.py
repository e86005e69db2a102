"""A small hosted VMM on Linux KVM, with a unicorn software engine where KVM is missing.

The public API is imported lazily, so that `vmm container ...` and other commands that do
not build a VM do not pay for importing the machine (start-up time is benchmarked).
"""
import time

# When the package started to load, for `vmm run --stats`: the wall clock (imports are measured
# from here) and the process's CPU time so far (the interpreter's own start-up).
IMPORT_STARTED = time.monotonic()
INTERPRETER_CPU_SECONDS = time.process_time()

__all__ = ["Machine", "MachineConfig", "RunResult", "VmmError"]

_EXPORTS = {"Machine": "machine", "RunResult": "machine", "MachineConfig": "config", "VmmError": "errors"}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'vmm' has no attribute {name!r}")
