"""Where the unicorn package's C library is, and loading it early.

find_library() finds libunicorn.so.2 without importing the unicorn package (its Python
binding costs about 30 ms; engines/unicorn_lib.py declares the C calls the engine makes).
preload() loads the library on another thread while this one goes on importing the VMM:
dlopen of libunicorn (24 MB, mostly relocations: about 8 ms here) runs without the GIL, so on
a second core the two overlap, and unicorn_lib's own load then finds the library in memory.
"""
import os
import sys

LIBRARY = "libunicorn.so.2"


def find_library() -> str:
    """The package's libunicorn: $LIBUNICORN_PATH/LIBRARY (a folder, as for the binding),
    else unicorn/lib/LIBRARY in a sys.path folder."""
    folders = [os.environ["LIBUNICORN_PATH"]] if os.environ.get("LIBUNICORN_PATH") else []
    folders += [os.path.join(entry or ".", "unicorn", "lib") for entry in sys.path]
    for folder in folders:
        path = os.path.join(folder, LIBRARY)
        if os.path.exists(path):
            return path
    raise ImportError(f"{LIBRARY} not found: the unicorn package (unicorn==2.1.4) is not installed")


def preload() -> None:
    """Start loading the library on another thread (a missing library is left to the
    engine's own load to report)."""
    import _ctypes
    import _thread

    def load():
        try:
            _ctypes.dlopen(find_library(), os.RTLD_NOW)     # ctypes.CDLL's own call and mode
        except (ImportError, OSError):
            pass
    _thread.start_new_thread(load, ())
