//! Built-in rows, kept apart for review: the fallback flags used until the live `COMMAND`
//! reply is in, and the commands the proxy treats specially whatever the server says.

use super::{CommandFlags, with_lowercase};

/// One built-in row.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinRow {
    /// Lowercase name (or `container|sub`).
    pub name: &'static str,
    /// Flags as Redis 7 reports them.
    pub flags: CommandFlags,
    /// Arity.
    pub arity: i32,
    /// First key index.
    pub first: i32,
    /// Last key index.
    pub last: i32,
    /// Key step.
    pub step: i32,
}

const R: CommandFlags = CommandFlags::READONLY;
const W: CommandFlags = CommandFlags::WRITE;
const B: CommandFlags = CommandFlags::BLOCKING;
const P: CommandFlags = CommandFlags::PUBSUB;
const WB: CommandFlags = CommandFlags::WRITE.union(CommandFlags::BLOCKING);
const RB: CommandFlags = CommandFlags::READONLY.union(CommandFlags::BLOCKING);
const N: CommandFlags = CommandFlags::NONE;

const fn row(
    name: &'static str,
    flags: CommandFlags,
    arity: i32,
    keys: (i32, i32, i32),
) -> BuiltinRow {
    BuiltinRow {
        name,
        flags,
        arity,
        first: keys.0,
        last: keys.1,
        step: keys.2,
    }
}

/// Fallback rows: the common read-only commands (so replica routing and retries work before
/// `COMMAND` answered), the blocking and pub/sub families, and writes the proxy must never retry.
/// Anything missing is treated as a write that goes to the master.
pub static BUILTIN: &[BuiltinRow] = &[
    row("get", R, 2, (1, 1, 1)),
    row("mget", R, -2, (1, -1, 1)),
    row("getrange", R, 4, (1, 1, 1)),
    row("strlen", R, 2, (1, 1, 1)),
    row("exists", R, -2, (1, -1, 1)),
    row("type", R, 2, (1, 1, 1)),
    row("ttl", R, 2, (1, 1, 1)),
    row("pttl", R, 2, (1, 1, 1)),
    row("hget", R, 3, (1, 1, 1)),
    row("hmget", R, -3, (1, 1, 1)),
    row("hgetall", R, 2, (1, 1, 1)),
    row("hkeys", R, 2, (1, 1, 1)),
    row("hvals", R, 2, (1, 1, 1)),
    row("hlen", R, 2, (1, 1, 1)),
    row("hexists", R, 3, (1, 1, 1)),
    row("lrange", R, 4, (1, 1, 1)),
    row("llen", R, 2, (1, 1, 1)),
    row("lindex", R, 3, (1, 1, 1)),
    row("smembers", R, 2, (1, 1, 1)),
    row("sismember", R, 3, (1, 1, 1)),
    row("scard", R, 2, (1, 1, 1)),
    row("zrange", R, -4, (1, 1, 1)),
    row("zscore", R, 3, (1, 1, 1)),
    row("zcard", R, 2, (1, 1, 1)),
    row("zrank", R, -3, (1, 1, 1)),
    row("xrange", R, -4, (1, 1, 1)),
    row("xlen", R, 2, (1, 1, 1)),
    row("scan", R, -2, (0, 0, 0)),
    row("keys", R, 2, (0, 0, 0)),
    row("dbsize", R, 1, (0, 0, 0)),
    row("eval_ro", R, -3, (0, 0, 0)),
    row("evalsha_ro", R, -3, (0, 0, 0)),
    row("fcall_ro", R, -3, (0, 0, 0)),
    row("sort_ro", R, -2, (1, 1, 1)),
    row("set", W, -3, (1, 1, 1)),
    row("incr", W, 2, (1, 1, 1)),
    row("del", W, -2, (1, -1, 1)),
    row("eval", N, -3, (0, 0, 0)),
    row("evalsha", N, -3, (0, 0, 0)),
    row("fcall", N, -3, (0, 0, 0)),
    row("blpop", WB, -3, (1, -2, 1)),
    row("brpop", WB, -3, (1, -2, 1)),
    row("brpoplpush", WB, 4, (1, 2, 1)),
    row("blmove", WB, 6, (1, 2, 1)),
    row("blmpop", WB, -5, (0, 0, 0)),
    row("bzpopmin", WB, -3, (1, -2, 1)),
    row("bzpopmax", WB, -3, (1, -2, 1)),
    row("bzmpop", WB, -5, (0, 0, 0)),
    row("wait", B, 3, (0, 0, 0)),
    row("waitaof", B, 4, (0, 0, 0)),
    row("xread", RB, -4, (0, 0, 0)),
    row("xreadgroup", WB, -7, (0, 0, 0)),
    row("subscribe", P, -2, (0, 0, 0)),
    row("psubscribe", P, -2, (0, 0, 0)),
    row("ssubscribe", P, -2, (1, -1, 1)),
    row("unsubscribe", P, -1, (0, 0, 0)),
    row("punsubscribe", P, -1, (0, 0, 0)),
    row("sunsubscribe", P, -1, (1, -1, 1)),
    row("publish", P, 3, (0, 0, 0)),
];

/// Which of the three Pub/Sub namespaces a (un)subscribe command works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PubSubKind {
    /// `SUBSCRIBE` channels.
    Channel,
    /// `PSUBSCRIBE` patterns.
    Pattern,
    /// `SSUBSCRIBE` shard channels.
    Shard,
}

/// Commands the proxy handles itself or treats specially, whatever the server's flags say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// `MULTI`: starts a pinned transaction.
    Multi,
    /// `EXEC`.
    Exec,
    /// `DISCARD`.
    Discard,
    /// `WATCH`: pins until EXEC/DISCARD/UNWATCH.
    Watch,
    /// `UNWATCH`.
    Unwatch,
    /// `SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE`.
    Subscribe(PubSubKind),
    /// `UNSUBSCRIBE`, `PUNSUBSCRIBE`, `SUNSUBSCRIBE`.
    Unsubscribe(PubSubKind),
    /// `SELECT`.
    Select,
    /// `HELLO`.
    Hello,
    /// `AUTH`.
    Auth,
    /// `PING`.
    Ping,
    /// `ECHO`.
    Echo,
    /// `QUIT`.
    Quit,
    /// `RESET`.
    Reset,
    /// `INFO`: forwarded, plus a `# Proxy` section.
    Info,
    /// `MONITOR`.
    Monitor,
    /// `CLIENT …`: per-subcommand handling.
    Client,
    /// `XREAD`/`XREADGROUP`: blocking only with `BLOCK`.
    StreamRead,
    /// `EVAL`, `EVALSHA`, `FCALL`: always the master.
    Script,
    /// `SCRIPT …`, `FUNCTION …`: `KILL` goes on a control connection.
    ScriptAdmin,
    /// `WAIT`, `WAITAOF`: count the client's own writes.
    Wait,
    /// Refused through the proxy, with the reason given to the client.
    Refused(&'static str),
}

const REPLICATION_REFUSED: &str = "replication is managed by Sentinel, not through the proxy";

/// The special handling of `name` (any case), if any.
pub fn special(name: &[u8]) -> Option<Special> {
    with_lowercase(name, |lower| {
        Some(match lower {
            b"multi" => Special::Multi,
            b"exec" => Special::Exec,
            b"discard" => Special::Discard,
            b"watch" => Special::Watch,
            b"unwatch" => Special::Unwatch,
            b"subscribe" => Special::Subscribe(PubSubKind::Channel),
            b"psubscribe" => Special::Subscribe(PubSubKind::Pattern),
            b"ssubscribe" => Special::Subscribe(PubSubKind::Shard),
            b"unsubscribe" => Special::Unsubscribe(PubSubKind::Channel),
            b"punsubscribe" => Special::Unsubscribe(PubSubKind::Pattern),
            b"sunsubscribe" => Special::Unsubscribe(PubSubKind::Shard),
            b"select" => Special::Select,
            b"hello" => Special::Hello,
            b"auth" => Special::Auth,
            b"ping" => Special::Ping,
            b"echo" => Special::Echo,
            b"quit" => Special::Quit,
            b"reset" => Special::Reset,
            b"info" => Special::Info,
            b"monitor" => Special::Monitor,
            b"client" => Special::Client,
            b"xread" | b"xreadgroup" => Special::StreamRead,
            b"eval" | b"evalsha" | b"fcall" => Special::Script,
            b"script" | b"function" => Special::ScriptAdmin,
            b"wait" | b"waitaof" => Special::Wait,
            b"shutdown" => Special::Refused("stop the server directly, not through the proxy"),
            b"replicaof" | b"slaveof" | b"failover" => Special::Refused(REPLICATION_REFUSED),
            b"sync" | b"psync" | b"replconf" => Special::Refused(REPLICATION_REFUSED),
            b"debug" => Special::Refused("DEBUG can stall or crash the shared master"),
            b"cluster" | b"asking" => {
                Special::Refused("the proxy fronts a standalone master/replica set, not a cluster")
            }
            _ => return None,
        })
    })
    .flatten()
}

/// The error line for a refused command: `ERR command 'x' is not allowed through cacheproxy: why`.
pub fn refusal(name: &[u8], reason: &str) -> String {
    format!(
        "ERR command '{}' is not allowed through cacheproxy: {reason}",
        String::from_utf8_lossy(name).to_ascii_lowercase()
    )
}
