# Owns the RESP wire format: request encoding (RESP arrays and inline lines), one TCP
# connection with a hard per-reply deadline, and the RESP2/RESP3 reply reader that returns
# every reply's raw bytes together with a parsed tree.
"""Parsed trees are tuples whose first element is the RESP type byte as a str:

    ('+', b'OK')  ('-', b'ERR ...')  ('!', b'blob error')  (':', 42)
    ('$', b'bulk') / ('$', None)      ('*', [tree, ...]) / ('*', None)
    ('~', [tree, ...])  ('>', [tree, ...])  ('%', [(key, value), ...])
    ('_', None)  (',', b'3.5')  ('#', True)  ('(', b'1234...')  ('=', (b'txt', b'...'))
    ('|', [(key, value), ...], tree)   -- an attribute map and the reply it decorates
"""

import socket
import time


class ReplyTimeout(Exception):
    """No complete reply (or the request could not be written) before the deadline."""


class ConnectionClosed(Exception):
    """The server closed the connection."""


class ProtocolError(Exception):
    """The server sent bytes that are not RESP."""


def encode(args):
    """A request as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class Conn:
    """One client connection. Every read_reply() has its own deadline of `timeout` s."""

    def __init__(self, host, port, timeout):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0
        self.deadline = 0.0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        """Writes `data` in one sendall (a pipeline is one write)."""
        self.sock.settimeout(self.timeout)
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise ReplyTimeout("request not written within %g s" % self.timeout) from None
        except OSError as err:
            raise ConnectionClosed("write failed: %s" % err) from None

    def call(self, args):
        """One request/reply exchange; returns (raw, tree)."""
        self.send(encode(args))
        return self.read_reply()

    def read_reply(self):
        """Reads exactly one reply; returns (raw bytes, parsed tree)."""
        self.deadline = time.monotonic() + self.timeout
        start = self.pos
        tree = self._value()
        raw = bytes(self.buf[start:self.pos])
        del self.buf[: self.pos]
        self.pos = 0
        return raw, tree

    # -- buffer ---------------------------------------------------------------------------

    def _fill(self):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise ReplyTimeout("no reply within %g s" % self.timeout)
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 18)
        except socket.timeout:
            raise ReplyTimeout("no reply within %g s" % self.timeout) from None
        except OSError as err:
            raise ConnectionClosed("read failed: %s" % err) from None
        if not chunk:
            raise ConnectionClosed("connection closed by the server")
        self.buf += chunk

    def _line(self):
        scan = self.pos
        while True:
            i = self.buf.find(b"\r\n", scan)
            if i >= 0:
                line = bytes(self.buf[self.pos : i])
                self.pos = i + 2
                return line
            scan = max(self.pos, len(self.buf) - 1)
            self._fill()

    def _exact(self, n):
        while len(self.buf) - self.pos < n + 2:
            self._fill()
        end = self.pos + n
        if self.buf[end : end + 2] != b"\r\n":
            raise ProtocolError("bulk payload of %d bytes not followed by CRLF" % n)
        data = bytes(self.buf[self.pos : end])
        self.pos = end + 2
        return data

    # -- parser ---------------------------------------------------------------------------

    def _int(self, text, what):
        try:
            return int(text)
        except ValueError:
            raise ProtocolError("bad %s %r" % (what, text)) from None

    def _pairs(self, n):
        return [(self._value(), self._value()) for _ in range(n)]

    def _value(self):
        line = self._line()
        if not line:
            raise ProtocolError("empty line where a reply type was expected")
        kind = chr(line[0])
        rest = line[1:]
        if kind in "+-":
            return (kind, rest)
        if kind == ":":
            return (kind, self._int(rest, "integer"))
        if kind in "$!=":
            n = self._int(rest, "length")
            if n < 0:
                if kind != "$":
                    raise ProtocolError("negative length for %r" % kind)
                return ("$", None)
            data = self._exact(n)
            if kind == "=":
                if len(data) < 4 or data[3:4] != b":":
                    raise ProtocolError("verbatim string without a format: %r" % data[:8])
                return ("=", (data[:3], data[4:]))
            return (kind, data)
        if kind in "*~>":
            n = self._int(rest, "count")
            if n < 0:
                return (kind, None)
            return (kind, [self._value() for _ in range(n)])
        if kind == "%":
            return ("%", self._pairs(self._int(rest, "count")))
        if kind == "|":
            attrs = self._pairs(self._int(rest, "count"))
            return ("|", attrs, self._value())
        if kind == "_":
            return ("_", None)
        if kind == ",":
            return (",", rest)
        if kind == "#":
            if rest not in (b"t", b"f"):
                raise ProtocolError("bad boolean %r" % rest)
            return ("#", rest == b"t")
        if kind == "(":
            return ("(", rest)
        raise ProtocolError("unknown reply type in line %r" % line[:40])
