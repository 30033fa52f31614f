#!/usr/bin/env python3
"""pyftpdlib peer of the Telegaz FTP benchmark (bench/ftp).

One shared user, its home directory the upload directory, the default
asynchronous (epoll) server. Durability equal to Telegaz's: pyftpdlib replies
226 *before* it calls on_file_received (DTPHandler.close() responds, then calls
the hook), so an fsync there would come too late. Instead the filesystem's
open() returns a file whose close() flushes, fsyncs the file and fsyncs its
directory; DTPHandler.close() closes the file before it sends 226.

Usage: pyftpd_server.py PORT ROOT USER PASSWORD
Prints "ready" on standard output when listening.
"""
import os
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


class SyncedFile:
    """A file object whose close() makes the bytes and the name durable."""

    def __init__(self, f, path):
        self._f = f
        self._path = path

    def close(self):
        if self._f.closed:
            return
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        d = os.open(os.path.dirname(self._path) or ".", os.O_RDONLY)
        try:
            os.fsync(d)
        finally:
            os.close(d)

    def __getattr__(self, name):
        return getattr(self._f, name)


class SyncFS(AbstractedFS):
    def open(self, filename, mode):
        f = super().open(filename, mode)
        if "w" in mode or "a" in mode or "+" in mode:
            return SyncedFile(f, filename)
        return f


def main():
    port, root, user, password = sys.argv[1:5]
    auth = DummyAuthorizer()
    auth.add_user(user, password, root, perm="elradfmw")
    handler = FTPHandler
    handler.authorizer = auth
    handler.abstracted_fs = SyncFS
    handler.banner = "pyftpdlib ready"
    handler.passive_ports = None  # any free port
    handler.timeout = 600
    server = FTPServer(("127.0.0.1", int(port)), handler, backlog=1024)
    server.max_cons = 0  # unlimited (default 512)
    server.max_cons_per_ip = 0
    print("ready", flush=True)
    server.serve_forever(handle_exit=True)


if __name__ == "__main__":
    main()
