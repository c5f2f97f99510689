//! `CommandTable`: name → `CommandSpec` (flags, key positions), built from the live server's
//! `COMMAND` reply, with a built-in fallback ([`table`]) until that reply is in.

pub mod table;

use std::collections::HashMap;

use protocol::resp::{KeySpec, Request, Value};

pub use table::{PubSubKind, Special, special};

/// The `COMMAND INFO` flags the proxy looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CommandFlags(u16);

impl CommandFlags {
    /// `readonly`: may run on a replica and may be retried.
    pub const READONLY: CommandFlags = CommandFlags(1);
    /// `write`.
    pub const WRITE: CommandFlags = CommandFlags(1 << 1);
    /// `blocking`: may block the connection.
    pub const BLOCKING: CommandFlags = CommandFlags(1 << 2);
    /// `pubsub`.
    pub const PUBSUB: CommandFlags = CommandFlags(1 << 3);
    /// `admin`.
    pub const ADMIN: CommandFlags = CommandFlags(1 << 4);
    /// `noscript`.
    pub const NOSCRIPT: CommandFlags = CommandFlags(1 << 5);
    /// `movablekeys`.
    pub const MOVABLE_KEYS: CommandFlags = CommandFlags(1 << 6);
    /// `no_auth`.
    pub const NO_AUTH: CommandFlags = CommandFlags(1 << 7);
    /// `fast`.
    pub const FAST: CommandFlags = CommandFlags(1 << 8);
    /// `no_multi`.
    pub const NO_MULTI: CommandFlags = CommandFlags(1 << 9);

    /// No flags.
    pub const NONE: CommandFlags = CommandFlags(0);

    /// The flag named `name` in a `COMMAND` reply (unknown names are no flag).
    pub fn from_name(name: &[u8]) -> CommandFlags {
        match name {
            b"readonly" => Self::READONLY,
            b"write" => Self::WRITE,
            b"blocking" => Self::BLOCKING,
            b"pubsub" => Self::PUBSUB,
            b"admin" => Self::ADMIN,
            b"noscript" => Self::NOSCRIPT,
            b"movablekeys" => Self::MOVABLE_KEYS,
            b"no_auth" => Self::NO_AUTH,
            b"fast" => Self::FAST,
            b"no_multi" => Self::NO_MULTI,
            _ => Self::NONE,
        }
    }

    /// True when every flag of `other` is set.
    pub fn contains(self, other: CommandFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets of flags.
    pub const fn union(self, other: CommandFlags) -> CommandFlags {
        CommandFlags(self.0 | other.0)
    }
}

/// What the proxy knows about one command (or `container|subcommand`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// Flags from `COMMAND`.
    pub flags: CommandFlags,
    /// Legacy key positions (first, last, step).
    pub keys: KeySpec,
    /// Arity as Redis reports it (negative: at least that many arguments).
    pub arity: i32,
    /// True for containers (CLIENT, CONFIG …) whose subcommands carry their own flags.
    pub has_subcommands: bool,
}

/// The broad class of a command, derived from its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// Read-only: may go to a replica, may be retried.
    Read,
    /// Writes data: master only, never retried after it may have run.
    Write,
    /// May block its connection: needs a pinned connection.
    Blocking,
    /// Pub/Sub.
    PubSub,
    /// Administrative.
    Admin,
    /// None of the above (EVAL, PING, CLIENT …): master only.
    Other,
}

impl CommandSpec {
    /// The command's class; blocking and pubsub win over read/write.
    pub fn kind(&self) -> CommandKind {
        let flags = self.flags;
        if flags.contains(CommandFlags::PUBSUB) {
            CommandKind::PubSub
        } else if flags.contains(CommandFlags::BLOCKING) {
            CommandKind::Blocking
        } else if flags.contains(CommandFlags::WRITE) {
            CommandKind::Write
        } else if flags.contains(CommandFlags::READONLY) {
            CommandKind::Read
        } else if flags.contains(CommandFlags::ADMIN) {
            CommandKind::Admin
        } else {
            CommandKind::Other
        }
    }
}

/// Why a `COMMAND` reply could not be turned into a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unusable COMMAND reply: {0}")]
pub struct CommandTableError(&'static str);

/// Lowercase command name (or `container|sub`) → spec.
#[derive(Debug, Clone)]
pub struct CommandTable {
    commands: HashMap<Box<[u8]>, CommandSpec>,
    is_live: bool,
}

/// Longest command name looked up without allocating.
const NAME_BUFFER: usize = 64;

impl CommandTable {
    /// The built-in fallback table ([`table::BUILTIN`]).
    pub fn builtin() -> CommandTable {
        let commands = table::BUILTIN
            .iter()
            .map(|row| {
                let spec = CommandSpec {
                    flags: row.flags,
                    keys: KeySpec {
                        first: row.first,
                        last: row.last,
                        step: row.step,
                    },
                    arity: row.arity,
                    has_subcommands: false,
                };
                (Box::from(row.name.as_bytes()), spec)
            })
            .collect();
        CommandTable {
            commands,
            is_live: false,
        }
    }

    /// Builds the table from a `COMMAND` (or `COMMAND INFO …`) reply, subcommands included.
    /// Commands missing from the reply keep their built-in rows.
    pub fn from_command_reply(reply: &Value) -> Result<CommandTable, CommandTableError> {
        let entries = reply.as_array().ok_or(CommandTableError("not an array"))?;
        let mut table = CommandTable::builtin();
        table.is_live = true;
        for entry in entries.iter().filter(|entry| !entry.is_null()) {
            table.insert_entry(entry)?;
        }
        Ok(table)
    }

    fn insert_entry(&mut self, entry: &Value) -> Result<(), CommandTableError> {
        let fields = entry
            .as_array()
            .ok_or(CommandTableError("entry is not an array"))?;
        let [name, arity, flags, first, last, step, rest @ ..] = fields else {
            return Err(CommandTableError("entry has fewer than 6 fields"));
        };
        let name = name
            .as_bytes()
            .ok_or(CommandTableError("command name is not a string"))?
            .to_ascii_lowercase();
        let int = |value: &Value| -> Result<i32, CommandTableError> {
            value
                .as_integer()
                .and_then(|number| i32::try_from(number).ok())
                .ok_or(CommandTableError("arity or key position is not an integer"))
        };
        let flags = flags
            .as_array()
            .ok_or(CommandTableError("flags are not an array"))?
            .iter()
            .filter_map(Value::as_bytes)
            .fold(CommandFlags::NONE, |all, flag| {
                all.union(CommandFlags::from_name(&flag.to_ascii_lowercase()))
            });
        // Index 9 (after acl categories, tips and key specs) lists subcommands (Redis ≥ 7).
        let subcommands = rest
            .get(3)
            .and_then(Value::as_array)
            .filter(|list| !list.is_empty());
        let spec = CommandSpec {
            flags,
            keys: KeySpec {
                first: int(first)?,
                last: int(last)?,
                step: int(step)?,
            },
            arity: int(arity)?,
            has_subcommands: subcommands.is_some(),
        };
        self.commands.insert(name.into_boxed_slice(), spec);
        for subcommand in subcommands.unwrap_or_default() {
            self.insert_entry(subcommand)?;
        }
        Ok(())
    }

    /// True when built from a live server's reply.
    pub fn is_live(&self) -> bool {
        self.is_live
    }

    /// Number of entries (commands and subcommands).
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// True when the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// The spec of `name` (any case).
    pub fn get(&self, name: &[u8]) -> Option<&CommandSpec> {
        with_lowercase(name, |lower| self.commands.get(lower)).flatten()
    }

    /// The spec of a request: its `container|subcommand` entry when there is one, else the
    /// command's own entry. `None` for commands the server does not know.
    pub fn lookup(&self, request: &Request) -> Option<&CommandSpec> {
        let spec = self.get(request.name())?;
        if !spec.has_subcommands {
            return Some(spec);
        }
        let Some(sub) = request.arg(1) else {
            return Some(spec);
        };
        let mut joined = [0u8; NAME_BUFFER];
        let name = request.name();
        let total = name.len() + 1 + sub.len();
        let Some(slot) = joined.get_mut(..total) else {
            return Some(spec);
        };
        let (head, tail) = slot.split_at_mut(name.len());
        head.copy_from_slice(name);
        if let Some((bar, sub_slot)) = tail.split_first_mut() {
            *bar = b'|';
            sub_slot.copy_from_slice(sub);
        }
        Some(self.get(slot).unwrap_or(spec))
    }
}

/// Calls `f` with `name` in ASCII lowercase, without allocating for names up to 64 bytes;
/// `None` for longer names (no command is that long).
pub fn with_lowercase<R>(name: &[u8], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    let mut buffer = [0u8; NAME_BUFFER];
    let slot = buffer.get_mut(..name.len())?;
    for (target, byte) in slot.iter_mut().zip(name) {
        *target = byte.to_ascii_lowercase();
    }
    Some(f(slot))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
