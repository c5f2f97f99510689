# Owns the comparison of two runs of one script: per-command reply normalisation (TTL
# class, unordered replies, HELLO's server-specific fields, EXEC element-wise, UNSUBSCRIBE
# without arguments as a set), splitting a step's frames into per-command replies and
# pushes, finding the first difference in execution order, and the failure report's text.

from .runner import Failure

SHOW = 300


def ttl_class(tree):
    if tree[0] == ":":
        return (":", tree[1] if tree[1] < 0 else ">=0")
    return tree


def sort_key(tree):
    return repr(tree)


def unordered(tree):
    if tree[0] in "*~" and tree[1] is not None:
        return (tree[0], sorted(tree[1], key=sort_key))
    return tree


def pairs(tree):
    if tree[0] == "*" and tree[1] is not None and len(tree[1]) % 2 == 0:
        items = tree[1]
        return ("*", sorted(zip(items[0::2], items[1::2]), key=sort_key))
    if tree[0] == "%":
        return ("%", sorted(tree[1], key=sort_key))
    return tree


def hello(tree):
    """HELLO's reply carries server-specific fields: keep its type and 'proto' only."""
    if tree[0] == "*" and tree[1] is not None:
        items = tree[1]
        fields = list(zip(items[0::2], items[1::2]))
    elif tree[0] == "%":
        fields = tree[1]
    else:
        return tree
    proto = [v for k, v in fields if k[0] in "+$" and k[1] == b"proto"]
    return ("hello", tree[0], proto)


def normalise(tag, tree):
    if tree[0] in "-!":
        return tree  # errors compare in full
    if tag == "ttl":
        return ttl_class(tree)
    if tag == "unordered":
        return unordered(tree)
    if tag == "pairs":
        return pairs(tree)
    if tag == "hello":
        return hello(tree)
    if isinstance(tag, tuple) and tag[0] == "exec":
        tags = tag[1]
        if tree[0] == "*" and tree[1] is not None and len(tree[1]) == len(tags):
            return ("*", [normalise(t, e) for t, e in zip(tags, tree[1])])
    return tree


def same(tag, a, b):
    """a and b are (raw, tree) replies to one command."""
    if a[0] == b[0]:
        return True
    if tag is None:
        return False
    return normalise(tag, a[1]) == normalise(tag, b[1])


def unsub_kind(tree):
    if tree[0] in "*>" and tree[1] is not None and len(tree[1]) == 3:
        head = tree[1][0]
        if head[0] == "$" and head[1] in (b"unsubscribe", b"punsubscribe"):
            return (tree[0], head[1])
    return None


def unsub_set(frames):
    """Runs of (p)unsubscribe frames as (type, kind, sorted names, counts in order): the
    order of UNSUBSCRIBE without arguments is the server's hash order."""
    out = []
    for raw, tree in frames:
        kind = unsub_kind(tree)
        if kind is None:
            out.append(raw)
        elif out and isinstance(out[-1], list) and out[-1][0] == kind:
            out[-1][1].append(repr(tree[1][1]))
            out[-1][2].append(tree[1][2])
        else:
            out.append([kind, [repr(tree[1][1])], [tree[1][2]]])
    return [x if isinstance(x, bytes) else (x[0], sorted(x[1]), x[2]) for x in out]


def same_frames(a, b, unordered_unsub):
    if [f[0] for f in a] == [f[0] for f in b]:
        return True
    return unordered_unsub and unsub_set(a) == unsub_set(b)


def split(step, frames):
    """Returns (per command its non-push frames, the pushes). Frames beyond the commands'
    reply counts join the pushes; a partial list (a Failure's) gives short groups."""
    replies = [f for f in frames if f[1][0] != ">"]
    groups = []
    pos = 0
    for cmd in step.cmds:
        groups.append(replies[pos:pos + cmd.nrep])
        pos += cmd.nrep
    return groups, [f for f in frames if f[1][0] == ">"] + replies[pos:]


def show(data):
    text = repr(data)
    if len(text) > SHOW:
        text = text[:SHOW] + "...(%d chars)" % len(text)
    return text


def raws(frames):
    return [f[0] for f in frames]


def compare_step(where, step, a, b, names):
    """The difference between two completed (or partial) runs of one step, or None."""
    ga, pa = split(step, a.frames)
    gb, pb = split(step, b.frames)
    complete = not isinstance(a, Failure) and not isinstance(b, Failure)
    for i, cmd in enumerate(step.cmds):
        x, y = ga[i], gb[i]
        if len(x) < cmd.nrep or len(y) < cmd.nrep:
            if not complete:
                break  # a Failure's missing frames: reported by the caller
        if cmd.nrep == 1 and len(x) == len(y) == 1:
            if same(cmd.tag, x[0], y[0]):
                continue
            x, y = x[0][0], y[0][0]
        elif same_frames(x, y, cmd.tag == "unsub-all"):
            continue
        else:
            x, y = raws(x), raws(y)
        return ["%s, command %d): replies differ" % (where, i),
                "  request: %s" % show(cmd),
                "  %-7s %s" % (names[0] + ":", show(x)),
                "  %-7s %s" % (names[1] + ":", show(y))]
    if not complete:
        return None
    unsub = any(cmd.tag == "unsub-all" for cmd in step.cmds)
    if not same_frames(pa, pb, unsub):
        return ["%s): push messages differ" % where,
                "  request: %s" % show(step.cmds),
                "  %-7s %s" % (names[0] + ":", show(raws(pa))),
                "  %-7s %s" % (names[1] + ":", show(raws(pb)))]
    for (x, fa), (_, fb) in zip(a.delivered, b.delivered):
        if raws(fa) != raws(fb):
            return ["%s): messages delivered to client %d differ" % (where, x),
                    "  request: %s" % show(step.cmds),
                    "  %-7s %s" % (names[0] + ":", show(raws(fa))),
                    "  %-7s %s" % (names[1] + ":", show(raws(fb)))]
    return None


def first_difference(script, direct, proxy, names=("direct", "proxy")):
    """Returns None or the lines describing the first difference in execution order."""
    for c, j, step in script.ordered():
        a, b = direct[c][j], proxy[c][j]
        if a is None or b is None:
            continue  # not run: after a failure, which was reported above
        where = "client %d step %d (db %d, RESP%d" % (c, j, step.db, step.proto)
        where += ", pipeline of %d" % len(step.cmds) if len(step.cmds) > 1 else ""
        lines = compare_step(where, step, a, b, names)
        if lines:
            return lines
        for name, res, other in ((names[0], a, b), (names[1], b, a)):
            if isinstance(res, Failure):
                lines = ["%s: %s, command %d): %s" % (name, where, res.index, res.message)]
                if res.index < len(step.cmds):
                    lines.append("  request: %s" % show(step.cmds[res.index]))
                else:
                    lines.append("  request: %s, deliver %s" % (show(step.cmds),
                                                                 list(step.deliver)))
                other_name = names[1] if name == names[0] else names[0]
                lines.append("  %s frames: %s" % (name, show(raws(res.frames))))
                lines.append("  %s frames: %s" % (other_name, show(raws(other.frames))))
                return lines
    return None
