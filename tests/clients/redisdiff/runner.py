# Owns running one script against one endpoint: opening the clients' connections (and
# AUTH), FLUSHALL on a separate connection, executing the steps in schedule order and
# recording every reply's raw bytes and tree per client per step.

from .resp import Conn, ConnectionClosed, ProtocolError, ReplyTimeout


class SetupError(Exception):
    """The endpoint could not be prepared (connect, AUTH or FLUSHALL failed)."""


class Failure:
    """A step that did not complete: `index` is the command whose reply was missing."""

    def __init__(self, index, message, replies):
        self.index = index
        self.message = message
        self.replies = replies

    def __repr__(self):
        return "Failure(%d, %r)" % (self.index, self.message)


class Endpoint:
    def __init__(self, text, password, timeout):
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError("expected HOST:PORT, got %r" % text)
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self.text = text
        self.password = password
        self.timeout = timeout

    def connect(self):
        try:
            conn = Conn(self.host, self.port, self.timeout)
        except OSError as err:
            raise SetupError("cannot connect to %s: %s" % (self.text, err)) from None
        if self.password is not None:
            self._expect_ok(conn, [b"AUTH", self.password.encode()], "AUTH")
        return conn

    def flushall(self):
        conn = self.connect()
        try:
            self._expect_ok(conn, [b"FLUSHALL"], "FLUSHALL")
        finally:
            conn.close()

    def _expect_ok(self, conn, args, what):
        try:
            raw, _ = conn.call(args)
        except (ReplyTimeout, ConnectionClosed, ProtocolError) as err:
            conn.close()
            raise SetupError("%s on %s: %s" % (what, self.text, err)) from None
        if raw != b"+OK\r\n":
            conn.close()
            raise SetupError("%s on %s answered %r" % (what, self.text, raw[:200]))


def run(endpoint, script):
    """Returns results[client][step]: a list of (raw, tree) per command (followed by any
    push messages that arrived while reading them), a Failure, or None
    for steps not run. The run stops at its first Failure: every later step in execution
    order is None (the report names the first difference, which cannot come later)."""
    conns = []
    try:
        for _ in script.clients:
            conns.append(endpoint.connect())
        endpoint.flushall()
        results = [[None] * len(steps) for steps in script.clients]
        for c, j, step in script.ordered():
            conn = conns[c]
            replies = []
            pushes = []  # out-of-band RESP3 pushes ('>'), kept after the replies
            try:
                conn.send(b"".join(cmd.wire() for cmd in step.cmds))
                while len(replies) < len(step.cmds):
                    reply = conn.read_reply()
                    (pushes if reply[1][0] == ">" else replies).append(reply)
            except (ReplyTimeout, ConnectionClosed, ProtocolError) as err:
                results[c][j] = Failure(len(replies), str(err), replies)
                break
            results[c][j] = replies + pushes
        return results
    finally:
        for conn in conns:
            conn.close()
