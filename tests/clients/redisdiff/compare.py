# Owns the comparison of two runs of one script: per-command reply normalisation (TTL
# class, unordered replies, HELLO's server-specific fields, EXEC element-wise), finding the
# first difference in execution order, and the text of the failure report.

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


def show(data):
    text = repr(data)
    if len(text) > SHOW:
        text = text[:SHOW] + "...(%d chars)" % len(text)
    return text


def replies_of(res):
    return res.replies if isinstance(res, Failure) else res


def first_difference(script, direct, proxy, names=("direct", "proxy")):
    """Returns None or the lines describing the first difference in execution order."""
    for c, j, step in script.ordered():
        a, b = direct[c][j], proxy[c][j]
        if a is None or b is None:
            continue  # not run: after a failure, which was reported above
        where = "client %d step %d (db %d, RESP%d" % (c, j, step.db, step.proto)
        where += ", pipeline of %d" % len(step.cmds) if len(step.cmds) > 1 else ""
        ra, rb = replies_of(a), replies_of(b)
        for i, cmd in enumerate(step.cmds[: min(len(ra), len(rb), len(step.cmds))]):
            if not same(cmd.tag, ra[i], rb[i]):
                return ["%s, command %d): replies differ" % (where, i),
                        "  request: %s" % show(cmd),
                        "  %-7s %s" % (names[0] + ":", show(ra[i][0])),
                        "  %-7s %s" % (names[1] + ":", show(rb[i][0]))]
        n = len(step.cmds)
        if not isinstance(a, Failure) and not isinstance(b, Failure):
            pa, pb = [r[0] for r in a[n:]], [r[0] for r in b[n:]]
            if pa != pb:
                return ["%s): push messages differ" % where,
                        "  request: %s" % show(step.cmds),
                        "  %-7s %s" % (names[0] + ":", show(pa)),
                        "  %-7s %s" % (names[1] + ":", show(pb))]
        for name, res, other in ((names[0], a, rb), (names[1], b, ra)):
            if isinstance(res, Failure):
                lines = ["%s: %s, command %d): %s" % (name, where, res.index, res.message),
                         "  request: %s" % show(step.cmds[res.index])]
                if res.index < len(other):
                    other_name = names[1] if name == names[0] else names[0]
                    lines.append("  %s reply: %s" % (other_name, show(other[res.index][0])))
                return lines
    return None
