# Owns the per-seed script: each client's session state machine (current db, RESP
# protocol, MULTI state, subscriptions and the tags EXEC needs), the mix of command
# families, how commands are grouped into steps (single exchanges or pipelined batches) and
# the seeded interleaving of the clients.
"""A Script holds, per client, a list of Steps and a schedule: the order in which the
clients' steps run. A Step is one write (one command, or a pipelined batch of 2-5) followed
by reading all of its frames (sum of the commands' nrep + npush); `db` and `proto` are the
client's state when it starts. `deliver` lists (client, frames): the Pub/Sub messages the
step's PUBLISHes sent to other clients, read from their connections right after the step.
Steps are generated in schedule order, so PUBLISH knows every client's subscriptions."""

import random
from collections import namedtuple

from .blocking import BLOCKING, STREAM, c_filled
from .commands import DATA, Cmd, Ctx, STRING_KEYS
from .pubsub import Subs, leave, pubsub_cmd, subscribed_resp2

Step = namedtuple("Step", "db proto cmds deliver")

# A blocking command on an empty key waits ~100 ms (its timeout, rounded up to the server's
# hz): rare outside MULTI, where it blocks; common inside, where it never blocks.
OUTSIDE = DATA + STREAM + [(w * 0.01, fn) for w, fn in BLOCKING] + [(1.5, c_filled)]
INSIDE = DATA + STREAM + [(w * 0.5, fn) for w, fn in BLOCKING]
MIXES = {False: ([fn for _, fn in OUTSIDE], [w for w, _ in OUTSIDE]),
         True: ([fn for _, fn in INSIDE], [w for w, _ in INSIDE])}


def data_cmd(g, in_multi):
    """One data, stream or blocking command (all valid inside MULTI); outside MULTI it can
    be a list of commands to send in a row (c_filled)."""
    fns, weights = MIXES[in_multi]
    return g.r.choices(fns, weights)[0](g)


class Script:
    def __init__(self, seed, clients, schedule):
        self.seed = seed
        self.clients = clients  # [[Step, ...] per client]
        self.schedule = schedule  # [client index, ...], each client `steps` times

    def ordered(self):
        """Yields (client, step index, Step) in execution order."""
        pos = [0] * len(self.clients)
        for c in self.schedule:
            j = pos[c]
            pos[c] += 1
            yield c, j, self.clients[c][j]


class ClientGen:
    """Generates one client's steps and tracks the session state those steps leave."""

    def __init__(self, rng, cid, seed, world):
        self.r = rng
        self.g = Ctx(rng, cid)
        self.db = 0
        self.proto = 2
        self.multi = None  # tags of the queued commands while inside MULTI
        self.target = 0  # how many commands to queue before EXEC/DISCARD
        self.subs = Subs(cid, seed)  # this client's channels and patterns
        self.world = world  # every client's Subs, by client index
        self.deliver = {}  # client -> frames this step's PUBLISHes sent it
        self.pending = []  # the rest of a command sequence (c_filled), sent next

    def step(self, last):
        r = self.r
        start = (self.db, self.proto)
        self.deliver = {}
        n = 1 if r.random() < 0.6 else r.randint(2, 5)
        if last:
            n = min(n, 4)
        cmds = [self.next_cmd() for _ in range(n)]
        if last:
            cmds += self.pending
            self.pending = []
        if last and self.multi is not None:
            cmds.append(self.end_multi(force_exec=True))
        if last:
            cmds += leave(self)  # the next seed starts without subscriptions
        return Step(start[0], start[1], cmds, tuple(sorted(self.deliver.items())))

    def reset(self):
        """RESET: database 0, RESP2, no MULTI, no subscriptions."""
        self.db = 0
        self.proto = 2
        self.multi = None
        self.subs.channels.clear()
        self.subs.patterns.clear()

    def next_cmd(self):
        r = self.r
        if self.pending:
            return self.pending.pop(0)
        if self.multi is not None:
            if len(self.multi) >= self.target:
                return self.end_multi()
            if r.random() < 0.02:
                # Refused with an error, but neither queued nor aborting the transaction.
                return Cmd([b"WATCH", self.g.key(STRING_KEYS)])
            cmd = data_cmd(self.g, True)
            self.multi.append(cmd.tag)
            return cmd
        if self.subs.count():
            if self.proto == 2:
                return subscribed_resp2(self)
            kind = r.choices(KINDS, KIND_WEIGHTS_SUBSCRIBED)[0]
        else:
            kind = r.choices(KINDS, KIND_WEIGHTS)[0]
        return getattr(self, "k_" + kind)()

    def end_multi(self, force_exec=False):
        tags = tuple(self.multi)
        self.multi = None
        if not force_exec and self.r.random() < 0.2:
            return Cmd([b"DISCARD"])
        return Cmd([b"EXEC"], tag=("exec", tags))

    # -- command kinds outside MULTI --------------------------------------------------------

    def k_data(self):
        cmd = data_cmd(self.g, False)
        if isinstance(cmd, list):
            self.pending = cmd[1:]
            cmd = cmd[0]
        return cmd

    def k_pubsub(self):
        return pubsub_cmd(self)

    def k_multi(self):
        self.multi = []
        self.target = self.r.choice([0, 1, 2, 2, 3, 3, 4, 5])
        return Cmd([b"MULTI"])

    def k_watch(self):
        return Cmd([b"WATCH"] + self.g.keys(STRING_KEYS + [b"list", b"h"], 1, 2))

    def k_stray(self):
        return Cmd([self.r.choice([b"EXEC", b"DISCARD", b"UNWATCH"])])

    def k_select(self):
        r = self.r
        if r.random() < 0.1:
            return Cmd([b"SELECT", r.choice([b"99", b"-1", b"abc"])])
        self.db = r.randint(0, 3)
        return Cmd([b"SELECT", b"%d" % self.db])

    def k_hello(self):
        r = self.r
        x = r.random()
        if x < 0.1:
            return Cmd([b"HELLO"], tag="hello")
        if x < 0.15:
            return Cmd([b"HELLO", b"4"])  # NOPROTO error, compared in full
        self.proto = 3 if r.random() < 0.6 else 2
        args = [b"HELLO", b"%d" % self.proto]
        if r.random() < 0.2:
            args += [b"SETNAME", b"hello-" + self.g.word().replace(b" ", b"_")]
        return Cmd(args, tag="hello")

    def k_misc(self):
        r = self.r
        x = r.random()
        if x < 0.25:
            return Cmd([b"PING"] + ([self.g.value(big=0)] if r.random() < 0.5 else []))
        if x < 0.5:
            return Cmd([b"ECHO", self.g.value()])
        if x < 0.7:
            name = r.choice([b"worker", b"cli-%d" % r.randint(0, 9), b"bad name", b""])
            return Cmd([b"CLIENT", b"SETNAME", name])
        return Cmd([b"CLIENT", b"GETNAME"])

    def k_inline(self):
        r = self.r
        g = self.g
        line = r.choice([[b"PING"], [b"ECHO", g.word()], [b"GET", g.key(STRING_KEYS)],
                         [b"EXISTS", g.key(), g.key()], [b"INCR", g.prefix + b"n"],
                         [b"SET", g.prefix + b"s3", b"inline"]])
        return Cmd(line, inline=True)


KINDS = ["data", "multi", "watch", "stray", "select", "hello", "misc", "inline", "pubsub"]
KIND_WEIGHTS = [60, 4, 2, 1, 4, 3, 5, 2, 3]
KIND_WEIGHTS_SUBSCRIBED = [60, 4, 2, 1, 4, 3, 5, 2, 10]  # RESP3: mostly publish, unsubscribe


def generate(seed, clients, steps):
    rng = random.Random(seed)
    schedule = [c for c in range(clients) for _ in range(steps)]
    rng.shuffle(schedule)
    world = []
    gens = []
    for c in range(clients):
        gens.append(ClientGen(rng, c, seed, world))
        world.append(gens[-1].subs)
    per_client = [[] for _ in range(clients)]
    for c in schedule:  # in execution order: PUBLISH sees the subscriptions of that moment
        per_client[c].append(gens[c].step(len(per_client[c]) == steps - 1))
    return Script(seed, per_client, schedule)
