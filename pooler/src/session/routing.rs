//! A routed client's side of read/write splitting: classifies each transaction from its
//! first message, remembers the client's route override and read-your-writes position,
//! and turns that into a host of its [`HostGroup`], waiting for one when none is usable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::pg::{FrontendTag, peek_header};

use super::prepared::{ClientStatements, bind_statement_name, parse_query, until_nul};
use crate::config::ReadYourWrites;
use crate::router::topology::HostLease;
use crate::router::{Class, Classification, Hint, HostGroup, Want, classify};

/// `SET pooler.route = ...`: the client's own choice for its next transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteOverride {
    /// Route by statement (the default).
    #[default]
    Auto,
    /// Every transaction to the primary.
    Primary,
    /// Every transaction to a replica (the primary when none is usable).
    Replica,
}

/// What the classifier said about a transaction's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionClass {
    /// May run on a replica.
    pub is_read: bool,
    /// May write data: read-your-writes starts after it (`SET`/`RESET` do not).
    pub is_write: bool,
}

impl TransactionClass {
    /// Adds one statement's class (`None`: unknown, the primary).
    fn add(&mut self, unit: Option<Classification>, is_session_command: bool) {
        let is_unit_read = unit.is_some_and(is_read);
        self.is_read &= is_unit_read;
        self.is_write |= !is_unit_read && !is_session_command;
    }
}

/// The host a transaction was routed to.
#[derive(Debug)]
pub struct CurrentRoute {
    /// The transaction went to a replica.
    pub is_replica: bool,
    /// The transaction may write: read-your-writes starts after it.
    pub is_write: bool,
    /// Counts the link for `least-connections`; carries the host index.
    pub lease: HostLease,
}

/// The primary's WAL position after a transaction, for read-your-writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteLsn {
    /// The transaction did not write, or LSN tracking is off.
    NotNeeded,
    /// The position to wait for.
    Known(u64),
    /// It wrote but the position could not be read: reads stay on the primary for
    /// [`UNKNOWN_LSN_HOLD`].
    Unknown,
}

/// How long a client's reads stay on the primary after a write whose WAL position
/// could not be read.
pub const UNKNOWN_LSN_HOLD: Duration = Duration::from_secs(5);

/// Per-client routing state.
#[derive(Debug)]
pub struct SessionRouter {
    /// The client's host group.
    pub group: Arc<HostGroup>,
    route_override: RouteOverride,
    /// Replay position a replica must have reached before this client reads there.
    min_lsn: u64,
    /// When the client last wrote (read-your-writes by time window).
    wrote_at: Option<Instant>,
    /// Reads stay on the primary until then (a write's position was not read).
    primary_until: Option<Instant>,
    /// The current transaction's route.
    pub current: Option<CurrentRoute>,
}

impl SessionRouter {
    /// Routing state for a client of `group`.
    pub fn new(group: Arc<HostGroup>) -> Self {
        Self {
            group,
            route_override: RouteOverride::Auto,
            min_lsn: 0,
            wrote_at: None,
            primary_until: None,
            current: None,
        }
    }

    /// Classifies the transaction at the start of `input` (the client's pending bytes):
    /// a simple Query, or every Parse and Bind of an extended-protocol batch up to its
    /// Sync, as far as it has arrived. Close, Describe, Execute and Flush say nothing.
    pub fn classify(
        &mut self,
        input: &[u8],
        max_packet_size: usize,
        statements: &ClientStatements,
    ) -> TransactionClass {
        let mut class = TransactionClass {
            is_read: true,
            is_write: false,
        };
        let mut rest = input;
        while let Ok(Some(header)) = peek_header(rest, max_packet_size) {
            let Some(frame) = rest.get(..header.len) else {
                break;
            };
            rest = &rest[header.len..];
            match FrontendTag::from_byte(header.tag) {
                Some(FrontendTag::Query) => {
                    let sql = until_nul(frame.get(5..).unwrap_or_default());
                    if let Some(choice) = parse_route_override(sql) {
                        self.route_override = choice;
                    }
                    let unit = self.classify_frame(frame, statements);
                    class.add(unit, is_session_command(sql));
                    break;
                }
                Some(FrontendTag::Sync) => break,
                Some(
                    FrontendTag::Close
                    | FrontendTag::Describe
                    | FrontendTag::Execute
                    | FrontendTag::Flush,
                ) => {}
                _ => class.add(self.classify_frame(frame, statements), false),
            }
        }
        class
    }

    /// The class of one Query, Parse or Bind (of a known statement); `None` for
    /// anything else (the primary).
    pub fn classify_frame(
        &self,
        frame: &[u8],
        statements: &ClientStatements,
    ) -> Option<Classification> {
        let volatile = &self.group.volatile;
        let body = frame.get(5..).unwrap_or_default();
        match FrontendTag::from_byte(frame.first().copied().unwrap_or(0)) {
            Some(FrontendTag::Query) => Some(classify(until_nul(body), volatile)),
            Some(FrontendTag::Parse) => Some(classify(parse_query(frame), volatile)),
            Some(FrontendTag::Bind) => {
                let statement = statements.get(bind_statement_name(frame))?;
                let fingerprint = self.group.volatile_fingerprint;
                let compute = || classify(parse_query(&statement.parse), volatile);
                // Cached once per statement, for the volatile list it was computed with.
                Some(match statement.class.get() {
                    Some((cached_for, class)) if *cached_for == fingerprint => *class,
                    Some(_) => compute(),
                    None => statement.class.get_or_init(|| (fingerprint, compute())).1,
                })
            }
            _ => None,
        }
    }

    /// Whether a Query pipelined after a replica's read batch may run there too.
    pub fn stays_on_replica(&self, query: &[u8], statements: &ClientStatements) -> bool {
        match self.route_override {
            RouteOverride::Primary => false,
            RouteOverride::Replica => true,
            RouteOverride::Auto => self.classify_frame(query, statements).is_some_and(is_read),
        }
    }

    /// On the primary, a transaction first classified as a read may write later in the
    /// same link (pipelined statements): read-your-writes must then track it.
    pub fn note_forwarded(&mut self, frame: &[u8], statements: &ClientStatements) {
        let is_untracked_read = self
            .current
            .as_ref()
            .is_some_and(|c| !c.is_replica && !c.is_write);
        if !is_untracked_read {
            return;
        }
        let unit = self.classify_frame(frame, statements);
        let sql = until_nul(frame.get(5..).unwrap_or_default());
        let is_session =
            frame.first() == Some(&FrontendTag::Query.as_byte()) && is_session_command(sql);
        if !unit.is_some_and(is_read)
            && !is_session
            && let Some(current) = self.current.as_mut()
        {
            current.is_write = true;
        }
    }

    /// What the next transaction wants, given its class and the client's state.
    pub fn want(&self, class: TransactionClass, is_session_mode: bool) -> Want {
        let is_read = match self.route_override {
            _ if is_session_mode => false,
            RouteOverride::Primary => false,
            RouteOverride::Replica => true,
            RouteOverride::Auto => class.is_read,
        };
        let rules = self.group.topology.options().read_your_writes;
        let is_recent_writer = match (rules, self.wrote_at) {
            (ReadYourWrites::Window(window), Some(at)) => at.elapsed() < window,
            _ => false,
        } || self
            .primary_until
            .is_some_and(|until| Instant::now() < until);
        self.group.want(is_read && !is_recent_writer, self.min_lsn)
    }

    /// Whether read-your-writes needs the primary's WAL position after a write.
    pub fn needs_write_lsn(&self) -> bool {
        self.group.is_split
            && self.group.topology.options().read_your_writes == ReadYourWrites::Lsn
            && self
                .current
                .as_ref()
                .is_some_and(|c| c.is_write && !c.is_replica)
    }

    /// The current transaction ended; `lsn` is the primary's WAL position after it when
    /// it wrote and LSN tracking is on.
    pub fn finish_transaction(&mut self, lsn: WriteLsn) {
        if let Some(current) = self.current.take()
            && current.is_write
            && !current.is_replica
        {
            self.wrote_at = Some(Instant::now());
            match lsn {
                WriteLsn::Known(lsn) => self.min_lsn = self.min_lsn.max(lsn),
                WriteLsn::Unknown => self.primary_until = Some(Instant::now() + UNKNOWN_LSN_HOLD),
                WriteLsn::NotNeeded => {}
            }
        }
    }

    /// A host for `want`, waiting up to `limit` for the health monitor to find one
    /// (no primary during a failover, nothing checked yet at start).
    pub async fn choose(&self, want: Want, limit: Option<Duration>) -> Option<usize> {
        let topology = &self.group.topology;
        let mut changes = topology.subscribe();
        let deadline = limit.map(|l| tokio::time::Instant::now() + l);
        loop {
            if let Some(host) = topology.choose(want) {
                return Some(host);
            }
            let changed = changes.changed();
            let result = match deadline {
                Some(at) => tokio::time::timeout_at(at, changed).await.ok(),
                None => Some(changed.await),
            };
            if !matches!(result, Some(Ok(()))) {
                return None;
            }
        }
    }
}

fn is_read(c: Classification) -> bool {
    match c.hint {
        Some(Hint::Primary) => false,
        Some(Hint::Replica) => true,
        None => matches!(
            c.class,
            Class::Read | Class::SetReadOnly | Class::Begin { is_read_only: true }
        ),
    }
}

/// One `SET …` / `RESET …` statement (not `SET TRANSACTION`, a read or write by
/// itself): session state, not a write. Several statements count as a write.
fn is_session_command(sql: &[u8]) -> bool {
    let text = sql.trim_ascii();
    let text = text.strip_suffix(b";").unwrap_or(text);
    if text.contains(&b';') {
        return false;
    }
    let word_end = text
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let word = &text[..word_end];
    word.eq_ignore_ascii_case(b"reset")
        || (word.eq_ignore_ascii_case(b"set")
            && !text[word_end..]
                .trim_ascii_start()
                .get(..11)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"transaction")))
}

/// Recognises `SET [SESSION] pooler.route {=|TO} {primary|replica|auto|default}` and
/// `RESET pooler.route` (quotes optional, any case, trailing `;` allowed).
pub fn parse_route_override(sql: &[u8]) -> Option<RouteOverride> {
    let text = std::str::from_utf8(sql).ok()?;
    let mut words = text
        .split(|c: char| c.is_whitespace() || c == '=' || c == ';')
        .filter(|w| !w.is_empty());
    let first = words.next()?.to_ascii_lowercase();
    let mut name = words.next()?.to_ascii_lowercase();
    if first == "reset" {
        return (name == "pooler.route" && words.next().is_none()).then_some(RouteOverride::Auto);
    }
    if first != "set" {
        return None;
    }
    if name == "session" {
        name = words.next()?.to_ascii_lowercase();
    }
    if name != "pooler.route" {
        return None;
    }
    let mut value = words.next()?.to_ascii_lowercase();
    if value == "to" {
        value = words.next()?.to_ascii_lowercase();
    }
    if words.next().is_some() {
        return None;
    }
    match value.trim_matches(|c| c == '\'' || c == '"') {
        "primary" => Some(RouteOverride::Primary),
        "replica" | "standby" => Some(RouteOverride::Replica),
        "auto" | "default" => Some(RouteOverride::Auto),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_overrides_parse_in_every_documented_form() {
        let cases: &[(&str, Option<RouteOverride>)] = &[
            ("SET pooler.route = 'primary'", Some(RouteOverride::Primary)),
            ("set pooler.route to replica;", Some(RouteOverride::Replica)),
            ("SET SESSION pooler.route='auto'", Some(RouteOverride::Auto)),
            ("SET pooler.route TO DEFAULT", Some(RouteOverride::Auto)),
            ("RESET pooler.route", Some(RouteOverride::Auto)),
            ("SET pooler.route = 'elsewhere'", None),
            ("SET search_path = public", None),
            ("SET LOCAL pooler.route = primary", None),
            ("SELECT 1", None),
        ];
        for (sql, expected) in cases {
            assert_eq!(parse_route_override(sql.as_bytes()), *expected, "{sql}");
        }
    }
}
