"""A container's terminal: a pseudoterminal from the container's own devpts, its master sent away.

As runc does (docs/terminals.md): the pair is opened *inside* the container, after pivot_root,
through /dev/ptmx (a symlink to the container's devpts instance), so the process sees its
terminal as /dev/pts/0 of its own /dev/pts. The master end goes to the caller through an AF_UNIX
console socket (SCM_RIGHTS), which is how conmon and `podman run -it` receive it; the slave end
becomes the process's controlling terminal and its stdin, stdout and stderr, and is bind-mounted
on /dev/console. The ioctls are in vmm/host/tty.py.
"""
import os
import socket

from ..host import tty


def open_pair(ptmx: str = "/dev/ptmx") -> tuple[int, int, str]:
    """(master fd, slave fd, slave path) of a new pseudoterminal from `ptmx`."""
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        tty.unlock(master)
        real = os.path.realpath(ptmx)       # a container's /dev/pts/ptmx, or the host's /dev/ptmx node
        pts = os.path.dirname(real) if os.path.basename(os.path.dirname(real)) == "pts" else \
            os.path.join(os.path.dirname(real), "pts")
        path = os.path.join(pts, str(tty.number(master)))
        slave = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    return master, slave, path


def set_size(fd: int, rows: int, columns: int) -> None:
    tty.set_window_size(fd, rows, columns)


def connect(socket_path: str) -> socket.socket:
    """Connect to a console socket (done by the runtime before the container's root changes)."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(socket_path)
    except OSError:
        connection.close()
        raise
    return connection


def send_master(connection: socket.socket, master: int, name: str) -> None:
    """Send the master fd over a connected console socket (its name rides as the data)."""
    socket.send_fds(connection, [name.encode()], [master])


def receive_master(listener: socket.socket) -> int:
    """The receiving side (for `run` in a terminal and the tests): accept, take one fd."""
    connection, _ = listener.accept()
    with connection:
        _, fds, _, _ = socket.recv_fds(connection, 4096, 1)
    if not fds:
        raise OSError("the console socket received no file descriptor")
    return fds[0]


def become_controlling(slave: int) -> None:
    """New session, `slave` as its controlling terminal, and as fds 0, 1 and 2."""
    os.setsid()
    tty.make_controlling(slave)
    for target in (0, 1, 2):
        os.dup2(slave, target)
