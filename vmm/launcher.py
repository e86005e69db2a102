"""A `vmm` command that starts Python with less work than pip's console script.

pip writes `#!PYTHON` scripts: the interpreter then runs `site`, which reads every .pth file
of the environment (setuptools' own imports a module) and sitecustomize, about 3 ms of each
`vmm run` here, and honours PYTHONPATH and the other PYTHON* variables. This launcher starts
the same interpreter with -I -S instead:

  -S  no `site`: the launcher itself puts on sys.path the two folders `vmm` needs, the one
      holding the vmm package and the environment's site-packages (unicorn, capstone);
  -I  isolated: PYTHON* variables, the user's site-packages and the current directory do not
      change which code runs (what system tools want; `python -m vmm` still honours them).

`make venv` replaces pip's script with it: `python -m vmm.launcher .venv/bin/vmm`.
"""
import os
import sys
import sysconfig

TEMPLATE = """#!{python} -IS
# Written by `python -m vmm.launcher` (vmm/launcher.py says why): `vmm` without site, isolated.
import sys
sys.path[:0] = {path!r}
from vmm.cli import launch
launch()
"""


DEPENDENCIES = ("unicorn", "capstone")


def launcher_text(python: str = sys.executable) -> str:
    """The launcher for `python`: its sys.path holds the folder of the vmm package and those of
    its dependencies as this process finds them (else the environment's site-packages)."""
    package_root = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    path = [package_root]
    for package in DEPENDENCIES:
        folder = next((entry for entry in sys.path if entry and os.path.isdir(os.path.join(entry, package))),
                      sysconfig.get_paths()["purelib"])
        if folder not in path:
            path.append(folder)
    return TEMPLATE.format(python=python, path=path)


def write_launcher(target: str) -> None:
    """Write the launcher to `target` (mode 755), replacing what is there."""
    temporary = f"{target}.tmp{os.getpid()}"
    with open(temporary, "w") as file:
        file.write(launcher_text())
    os.chmod(temporary, 0o755)
    os.replace(temporary, target)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m vmm.launcher PATH   (writes the `vmm` command to PATH)", file=sys.stderr)
        raise SystemExit(64)
    write_launcher(sys.argv[1])
