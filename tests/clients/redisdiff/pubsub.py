# Owns the Pub/Sub family: the channel and pattern vocabulary of each client, its
# subscriptions as the server sees them, and the generation of SUBSCRIBE / PSUBSCRIBE /
# UNSUBSCRIBE / PUNSUBSCRIBE / PUBLISH / PUBSUB / RESET with the exact number of frames each
# command produces and the messages a PUBLISH delivers to other clients' connections.
"""Deterministic because steps run one at a time in schedule order (script.py generates them
in that order too, so the model below is the server's state when each command runs).

Client N subscribes only to its own channels `{cN}:S:name` (S the seed, so a subscription
left by a failed run cannot receive a later seed's messages) and patterns `{cN}:S:pat`. The
patterns never overlap on the vocabulary and never match another client's channel, so every
message frame's order is fixed: Redis sends `message` before `pmessage`, and one pattern at
most matches. Any client may PUBLISH to any client's channel; PUBLISH's integer is the number
of frames sent. A message for another client X is read from X's connection right after the
publishing step (Step.deliver); one for the publisher itself (RESP3) is a push read with the
step's own replies (Cmd.npush). While subscribed in RESP2 the client is limited to (P)SUBSCRIBE,
(P)UNSUBSCRIBE, PING and RESET, plus an occasional refused command (its error); in RESP3 it
runs everything, but no Pub/Sub command is ever queued inside MULTI. UNSUBSCRIBE without
arguments answers in the server's hash order, so its frames compare as a set ('unsub-all')."""

from .commands import Cmd

CHANNELS = [b"ch1", b"ch2", b"news", b"nx", b"pa", b"pay", b"q*"]
PATTERNS = {b"n*": (b"news", b"nx"), b"p?": (b"pa",), b"pa[xy]": (b"pay",), b"q\\*": (b"q*",)}
PATTERN_NAMES = sorted(PATTERNS)
# Refused in a RESP2 subscribed context, with the same error text for all of them.
REFUSED = [[b"GET", b"s1"], [b"SET", b"s1", b"v"], [b"PUBLISH", b"ch1", b"m"], [b"MULTI"],
           [b"SELECT", b"1"], [b"HELLO", b"3"], [b"ECHO", b"x"], [b"CLIENT", b"GETNAME"]]


class Subs:
    """One client's subscriptions (names without the prefix)."""

    def __init__(self, cid, seed):
        self.prefix = b"{c%d}:%d:" % (cid, seed)
        self.channels = set()
        self.patterns = set()

    def count(self):
        return len(self.channels) + len(self.patterns)

    def name(self, suffix):
        return self.prefix + suffix

    def frames_for(self, channel):
        """How many frames a PUBLISH to `channel` (a full name) sends this client."""
        if not channel.startswith(self.prefix):
            return 0
        name = channel[len(self.prefix):]
        n = 1 if name in self.channels else 0
        return n + sum(1 for p in self.patterns if name in PATTERNS[p])


def confirms(cg, args, n, tag=None):
    """A command answered by n subscription frames: replies in RESP2, pushes in RESP3."""
    if cg.proto == 3:
        return Cmd(args, tag=tag, nrep=0, npush=n)
    return Cmd(args, tag=tag, nrep=n)


def some(r, names, most):
    out = [r.choice(names) for _ in range(r.randint(1, most))]
    if len(out) > 1 and r.random() < 0.7:
        out = list(dict.fromkeys(out))  # mostly distinct; a duplicate answers twice
    return out


def subscribe(cg):
    s = cg.subs
    names = some(cg.r, CHANNELS, 3)
    s.channels.update(names)
    return confirms(cg, [b"SUBSCRIBE"] + [s.name(n) for n in names], len(names))


def psubscribe(cg):
    s = cg.subs
    names = some(cg.r, PATTERN_NAMES, 2)
    s.patterns.update(names)
    return confirms(cg, [b"PSUBSCRIBE"] + [s.name(n) for n in names], len(names))


def unsubscribe(cg, pattern=False):
    """With names (mostly current ones) or, one time in three, without arguments."""
    r, s = cg.r, cg.subs
    word = b"PUNSUBSCRIBE" if pattern else b"UNSUBSCRIBE"
    held = s.patterns if pattern else s.channels
    if r.random() < 0.35:
        n = max(1, len(held))
        held.clear()
        return confirms(cg, [word], n, tag="unsub-all")
    pool = sorted(held) if held and r.random() < 0.8 else (PATTERN_NAMES if pattern
                                                           else CHANNELS)
    names = some(r, pool, 3)
    held.difference_update(names)
    return confirms(cg, [word] + [s.name(n) for n in names], len(names))


def publish(cg, mine):
    """PUBLISH to one of the client's own channels or (mostly a subscribed one of) another's;
    records the frames every subscriber receives."""
    r = cg.r
    if mine:
        target = cg.subs
    else:
        others = [x for x in cg.world if x is not cg.subs]
        busy = [x for x in others if x.count()]
        target = r.choice(busy if busy and r.random() < 0.8 else others or [cg.subs])
    pool = CHANNELS
    if target.count() and r.random() < 0.8:
        pool = sorted(target.channels) + [c for p in sorted(target.patterns)
                                          for c in PATTERNS[p]]
    channel = target.name(r.choice(pool))
    own = 0
    for x, subs in enumerate(cg.world):
        n = subs.frames_for(channel)
        if subs is cg.subs:
            own = n  # RESP3 only: a RESP2 subscriber cannot PUBLISH
        elif n:
            cg.deliver[x] = cg.deliver.get(x, 0) + n
    return Cmd([b"PUBLISH", channel, cg.g.value(big=0.01)], npush=own)


def pubsub_query(cg):
    r = cg.r
    subs = r.choice(cg.world)
    if r.random() < 0.6:
        names = [subs.name(n) for n in some(r, CHANNELS, 3)]
        return Cmd([b"PUBSUB", b"NUMSUB"] + names)
    return Cmd([b"PUBSUB", b"CHANNELS", subs.name(b"*")], tag="unordered")


def reset(cg):
    cg.reset()
    return Cmd([b"RESET"])


def ping(cg):
    args = [b"PING"] + ([cg.g.word()] if cg.r.random() < 0.4 else [])
    return Cmd(args, inline=cg.r.random() < 0.15)


def subscribed_resp2(cg):
    """The next command of a client in the RESP2 subscribed context."""
    x = cg.r.random()
    if x < 0.22:
        return ping(cg)
    if x < 0.38:
        return subscribe(cg)
    if x < 0.48:
        return psubscribe(cg)
    if x < 0.8:
        return unsubscribe(cg, pattern=bool(cg.subs.patterns) and cg.r.random() < 0.45)
    if x < 0.9:
        return reset(cg)
    refused = cg.r.choice(REFUSED)
    if len(refused) > 1 and refused[0] in (b"GET", b"SET", b"PUBLISH"):
        refused = [refused[0], cg.g.prefix + refused[1]] + refused[2:]
    return Cmd(refused)


def pubsub_cmd(cg):
    """A Pub/Sub command outside MULTI, for a client not in the RESP2 subscribed context."""
    r, s = cg.r, cg.subs
    x = r.random()
    if x < 0.25:
        return subscribe(cg)
    if x < 0.37:
        return psubscribe(cg)
    if x < 0.67:
        return publish(cg, mine=r.random() < 0.3)
    if x < 0.77 or (x < 0.85 and s.count()):
        return unsubscribe(cg, pattern=bool(s.patterns) and r.random() < 0.45)
    if x < 0.93:
        return pubsub_query(cg)
    return reset(cg)


def leave(cg):
    """Commands that end every subscription (the client's last step)."""
    if not cg.subs.count():
        return []
    if cg.r.random() < 0.5:
        return [reset(cg)]
    return [unsubscribe_all(cg, False), unsubscribe_all(cg, True)]


def unsubscribe_all(cg, pattern):
    held = cg.subs.patterns if pattern else cg.subs.channels
    n = max(1, len(held))
    held.clear()
    return confirms(cg, [b"PUNSUBSCRIBE" if pattern else b"UNSUBSCRIBE"], n, tag="unsub-all")
