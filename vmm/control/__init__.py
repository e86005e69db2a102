"""Control of a running VM over a Unix socket (`vmm run --control PATH`).

    server.py    the socket: mode 0600, one thread per client, line-delimited JSON
    commands.py  what each request does to the Machine, and its reply

Imported only when --control is given.
"""
