# Owns running one script against one endpoint: opening the clients' connections (and
# AUTH), FLUSHALL on a separate connection, executing the steps in schedule order,
# recording every frame's raw bytes and tree per client per step (with the Pub/Sub messages
# read from the subscribers' connections), and the final check that nothing was left unread.

from .resp import Conn, ConnectionClosed, ProtocolError, ReplyTimeout


class SetupError(Exception):
    """The endpoint could not be prepared (connect, AUTH or FLUSHALL failed)."""


class Failure:
    """A step that did not complete: `index` is the command whose frame was missing (the
    number of commands when a delivered message or the final check failed); `frames` are the
    step's frames read before that."""

    def __init__(self, index, message, frames):
        self.index = index
        self.message = message
        self.frames = frames

    def __repr__(self):
        return "Failure(%d, %r)" % (self.index, self.message)


class Outcome:
    """A completed step: its own frames in arrival order (replies and RESP3 pushes mixed)
    and `delivered`, [(client, [frame, ...])] for each entry of Step.deliver."""

    def __init__(self, frames, delivered):
        self.frames = frames
        self.delivered = delivered


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


ERRORS = (ReplyTimeout, ConnectionClosed, ProtocolError)


def missing_index(step, got):
    """The command the frame number `got` (counting from 0) belongs to."""
    end = 0
    for i, cmd in enumerate(step.cmds):
        end += cmd.nrep + cmd.npush
        if got < end:
            return i
    return len(step.cmds)


def receivers(step, frames):
    """(what the step's PUBLISH replies count, what the script expects them to count)."""
    replies = [f for f in frames if f[1][0] != ">"]
    got = want = pos = 0
    for cmd in step.cmds:
        if cmd.args[0].upper() == b"PUBLISH":
            want += cmd.npush
            if pos < len(replies) and replies[pos][1][0] == ":":
                got += replies[pos][1][1]
        pos += cmd.nrep
    return got, want + sum(n for _, n in step.deliver)


def run_step(conns, c, step):
    """Returns the step's Outcome or Failure. Once every reply is in, PUBLISH's counts must
    match the script's, else the step fails at once (no wait for messages never sent)."""
    conn = conns[c]
    frames = []
    want = sum(cmd.nrep + cmd.npush for cmd in step.cmds)
    nrep = sum(cmd.nrep for cmd in step.cmds)
    check = bool(step.deliver) or any(cmd.args[0].upper() == b"PUBLISH" for cmd in step.cmds)
    replies = 0
    try:
        conn.send(b"".join(cmd.wire() for cmd in step.cmds))
        while True:
            if check and replies == nrep:
                check = False
                got, expected = receivers(step, frames)
                if got != expected:
                    return Failure(len(step.cmds), "PUBLISH replies count %d receivers, the "
                                   "script expects %d: messages not read" % (got, expected),
                                   frames)
            if len(frames) >= want:
                break
            frames.append(conn.read_reply())
            replies += frames[-1][1][0] != ">"
    except ERRORS as err:
        return Failure(missing_index(step, len(frames)), str(err), frames)
    delivered = []
    for x, n in step.deliver:
        got = []
        try:
            while len(got) < n:
                got.append(conns[x].read_reply())
        except ERRORS as err:
            return Failure(len(step.cmds), "message %d of %d published to client %d: %s"
                           % (len(got) + 1, n, x, err), frames)
        delivered.append((x, got))
    return Outcome(frames, delivered)


def final_check(conns, script, results):
    """PING on every connection must answer +PONG: no frame was left unread (the script
    ends every client outside MULTI and without subscriptions)."""
    for c, conn in enumerate(conns):
        last = len(script.clients[c]) - 1
        if last < 0:
            continue
        try:
            raw, _ = conn.call([b"PING"])
        except ERRORS as err:
            raw = ("no answer: %s" % err).encode()
        if raw != b"+PONG\r\n":
            res = results[c][last]
            results[c][last] = Failure(len(script.clients[c][last].cmds),
                                       "after the last step PING read %r (unread frames?)"
                                       % raw[:200], res.frames)
            return


def run(endpoint, script):
    """Returns results[client][step]: an Outcome, a Failure, or None for steps not run.
    The run stops at its first Failure: every later step in execution order is None (the
    report names the first difference, which cannot come later)."""
    conns = []
    try:
        for _ in script.clients:
            conns.append(endpoint.connect())
        endpoint.flushall()
        results = [[None] * len(steps) for steps in script.clients]
        for c, j, step in script.ordered():
            results[c][j] = run_step(conns, c, step)
            if isinstance(results[c][j], Failure):
                return results
        final_check(conns, script, results)
        return results
    finally:
        for conn in conns:
            conn.close()
