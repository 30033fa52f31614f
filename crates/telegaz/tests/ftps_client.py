"""An FTPS client that misbehaves on purpose, for tests/ftps.rs.

Usage: ftps_client.py HOST PORT USER PASSWORD PAYLOAD_FILE

Prints one line per step, `STEP <name> <reply line>`, so that the Rust test
can assert each reply. Uses only the standard library (socket, ssl).
"""

import os
import socket
import ssl
import sys
import time

host, port, user, password, payload_file = sys.argv[1:6]
port = int(port)
payload = open(payload_file, "rb").read()

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


class Control:
    def __init__(self, sock):
        self.set(sock)

    def set(self, sock):
        self.sock = sock
        self.file = sock.makefile("rb")

    def reply(self):
        line = self.file.readline().decode("latin-1").rstrip("\r\n")
        if len(line) >= 4 and line[3] == "-":
            code = line[:3]
            while True:
                more = self.file.readline().decode("latin-1").rstrip("\r\n")
                line += " | " + more
                if more.startswith(code + " ") or not more:
                    break
        return line

    def cmd(self, name, text):
        self.sock.sendall(text.encode("latin-1") + b"\r\n")
        r = self.reply()
        print("STEP", name, r, flush=True)
        return r


def pasv_connect(c):
    r = c.cmd("PASV", "PASV")
    nums = r[r.index("(") + 1 : r.index(")")].split(",")
    dport = int(nums[4]) * 256 + int(nums[5])
    return socket.create_connection((host, dport), timeout=30)


def login_tls(with_session_check=True):
    s = socket.create_connection((host, port), timeout=30)
    c = Control(s)
    print("STEP greeting", c.reply(), flush=True)
    c.cmd("FEAT", "FEAT")
    c.cmd("PBSZ-early", "PBSZ 0")
    c.cmd("AUTH", "AUTH TLS")
    t = ctx.wrap_socket(s, server_hostname="localhost")
    c.set(t)
    c.cmd("USER", "USER " + user)
    c.cmd("PASS", "PASS " + password)
    c.cmd("PBSZ", "PBSZ 0")
    c.cmd("PROT", "PROT P")
    return c, t


# 1. A data connection that aborts its TLS handshake: 425, and the session goes on.
c, t = login_tls()
d = pasv_connect(c)
c.cmd("STOR-broken", "STOR broken.bin")
d.sendall(b"this is not a TLS ClientHello\r\n" * 8)
d.close()
print("STEP broken-end", c.reply(), flush=True)
c.cmd("NOOP", "NOOP")
c.cmd("CCC", "CCC")

# 2. A TLS error in the middle of an upload: 426, the bytes that came are kept.
d = pasv_connect(c)
c.cmd("STOR-mid", "STOR mid.bin")
dt = ctx.wrap_socket(d, server_hostname="localhost", session=t.session)
dt.sendall(payload)
time.sleep(0.2)
os.write(dt.fileno(), b"\x17\x03\x03\x00\x10garbage-garbage!")
print("STEP mid-end", c.reply(), flush=True)
try:
    dt.close()
except OSError:
    pass
c.cmd("NOOP-2", "NOOP")

# 3. A clean upload on the same session, resuming the control connection's TLS session.
d = pasv_connect(c)
c.cmd("STOR-ok", "STOR ok.bin")
dt = ctx.wrap_socket(d, server_hostname="localhost", session=t.session)
dt.sendall(payload)
dt = dt.unwrap()
dt.close()
print("STEP ok-end", c.reply(), flush=True)
c.cmd("QUIT", "QUIT")

# 4. A control connection whose handshake fails: the session ends, the server goes on.
s = socket.create_connection((host, port), timeout=30)
c = Control(s)
c.reply()
c.cmd("AUTH-2", "AUTH TLS")
s.sendall(b"GARBAGE INSTEAD OF A HANDSHAKE\r\n")
rest = s.recv(100)
print("STEP bad-handshake-closed", len(rest) >= 0, flush=True)
s.close()
