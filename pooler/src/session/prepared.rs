//! Named prepared statements in transaction and statement pooling (PgBouncer 1.21+
//! style): one server-side name per distinct statement, the client's own names mapped to
//! it, and a per-server LRU of the statements each server holds.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use protocol::ProtocolError;
use protocol::pg::{Frame, rename_statement};

/// A distinct statement (query text + parameter types) and the Parse that creates it
/// on a server under its pooler-wide name.
#[derive(Debug)]
pub struct Statement {
    /// Pooler-wide id; the server-side name is `POOLER_<id>`.
    pub id: u64,
    /// The client's Parse with the name replaced by the server-side name.
    pub parse: Bytes,
    /// Read/write class of the query, computed on first use by a routed session, with
    /// the fingerprint of the volatile-function list it was computed with.
    pub class: std::sync::OnceLock<(u64, crate::router::Classification)>,
    /// A server completed this Parse once: later Parses of it while no server is linked
    /// are answered by the pooler (the statement is prepared lazily where it is used).
    is_valid: AtomicBool,
}

/// Statements are the same statement when they have the same pooler id.
impl PartialEq for Statement {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Statement {}

impl Statement {
    /// A statement with pooler id `id` created by the (renamed) Parse `parse`.
    pub fn new(id: u64, parse: Bytes) -> Self {
        Self {
            id,
            parse,
            class: std::sync::OnceLock::new(),
            is_valid: AtomicBool::new(false),
        }
    }

    /// A server answered this statement's Parse with ParseComplete.
    pub fn mark_valid(&self) {
        self.is_valid.store(true, Ordering::Relaxed);
    }

    /// Whether a server has ever completed this statement's Parse.
    pub fn is_valid(&self) -> bool {
        self.is_valid.load(Ordering::Relaxed)
    }

    /// The server-side statement name.
    pub fn server_name(id: u64) -> String {
        format!("POOLER_{id}")
    }
}

/// Every distinct statement any client prepared, shared by all sessions so 100 clients
/// preparing the same query on a pool of 20 servers parse it at most 20 times.
#[derive(Debug, Default)]
pub struct StatementRegistry {
    by_key: Mutex<HashMap<u64, Vec<Arc<Statement>>>>,
    next_id: AtomicU64,
}

impl StatementRegistry {
    /// The statement for a Parse body (`query_and_types`, after the name), if any client
    /// prepared it before.
    pub fn find(&self, query_and_types: &[u8]) -> Option<Arc<Statement>> {
        let map = self.by_key.lock();
        map.get(&body_key(query_and_types))?
            .iter()
            .find(|s| statement_body(&s.parse) == Some(query_and_types))
            .cloned()
    }

    /// Takes `statement` out of the registry: the next Parse of the same text gets a new
    /// statement, prepared afresh on every server (the old one's plan is stale). Clients
    /// holding the old one keep it until they prepare again, as on PostgreSQL.
    pub fn retire(&self, statement: &Statement) {
        let key = body_key(statement_body(&statement.parse).unwrap_or_default());
        let mut map = self.by_key.lock();
        if let Some(bucket) = map.get_mut(&key) {
            bucket.retain(|s| s.id != statement.id);
            if bucket.is_empty() {
                map.remove(&key);
            }
        }
    }

    /// The shared statement for `parse` (a client's Parse frame whose name is
    /// non-empty); `query_and_types` is the body after the name, which identifies it.
    pub fn intern(
        &self,
        parse: &Frame,
        query_and_types: &[u8],
    ) -> Result<Arc<Statement>, ProtocolError> {
        let key = body_key(query_and_types);
        let mut map = self.by_key.lock();
        let bucket = map.entry(key).or_default();
        for existing in bucket.iter() {
            if statement_body(&existing.parse) == Some(query_and_types) {
                return Ok(Arc::clone(existing));
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let parse = rename_statement(parse, Statement::server_name(id).as_bytes())?;
        let statement = Arc::new(Statement::new(id, parse));
        bucket.push(Arc::clone(&statement));
        Ok(statement)
    }
}

fn body_key(query_and_types: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    query_and_types.hash(&mut hasher);
    hasher.finish()
}

/// The part of a Parse frame after the statement name: query text and parameter types.
pub fn statement_body(parse: &[u8]) -> Option<&[u8]> {
    let body = parse.get(5..)?;
    let nul = memchr::memchr(0, body)?;
    body.get(nul + 1..)
}

/// `bytes` up to its first NUL (a C string of the protocol), or all of it.
pub fn until_nul(bytes: &[u8]) -> &[u8] {
    memchr::memchr(0, bytes).map_or(bytes, |n| &bytes[..n])
}

/// The statement name of a Parse frame (empty for the unnamed statement).
pub fn parse_name(parse: &[u8]) -> &[u8] {
    until_nul(parse.get(5..).unwrap_or_default())
}

/// The query text of a Parse frame.
pub fn parse_query(parse: &[u8]) -> &[u8] {
    statement_body(parse).map_or(&[][..], until_nul)
}

/// The statement name a Bind frame binds (after its portal name).
pub fn bind_statement_name(bind: &[u8]) -> &[u8] {
    let body = bind.get(5..).unwrap_or_default();
    let portal_end = memchr::memchr(0, body).map_or(body.len(), |n| n + 1);
    until_nul(body.get(portal_end..).unwrap_or_default())
}

/// The statements one client prepared, by the client's names.
#[derive(Debug, Default)]
pub struct ClientStatements {
    by_name: HashMap<Box<[u8]>, Arc<Statement>>,
}

impl ClientStatements {
    /// Adds a mapping; false if the client already uses `name`.
    pub fn insert(&mut self, name: &[u8], statement: Arc<Statement>) -> bool {
        if self.by_name.contains_key(name) {
            return false;
        }
        self.by_name.insert(name.into(), statement);
        true
    }

    /// The statement a client name refers to.
    pub fn get(&self, name: &[u8]) -> Option<&Arc<Statement>> {
        self.by_name.get(name)
    }

    /// Whether the client uses `name`.
    pub fn contains(&self, name: &[u8]) -> bool {
        self.by_name.contains_key(name)
    }

    /// Forgets a name (client Close).
    pub fn remove(&mut self, name: &[u8]) {
        self.by_name.remove(name);
    }

    /// Forgets `name` if it still names statement `id` (its Parse never completed).
    pub fn remove_if(&mut self, name: &[u8], id: u64) {
        if self.by_name.get(name).is_some_and(|s| s.id == id) {
            self.by_name.remove(name);
        }
    }

    /// Forgets every name (DEALLOCATE ALL / DISCARD ALL).
    pub fn clear(&mut self) {
        self.by_name.clear();
    }

    /// How many statements the client holds.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether the client holds none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The statements one server holds, with least-recently-used eviction at
/// `max_prepared_statements`.
#[derive(Debug)]
pub struct ServerStatements {
    /// id → last use tick.
    last_used: HashMap<u64, u64>,
    tick: u64,
    capacity: usize,
}

impl ServerStatements {
    /// An empty cache holding at most `capacity` statements (0 = no tracking).
    pub fn new(capacity: usize) -> Self {
        Self {
            last_used: HashMap::new(),
            tick: 0,
            capacity,
        }
    }

    /// Whether the server has statement `id`; marks it used.
    pub fn touch(&mut self, id: u64) -> bool {
        self.tick += 1;
        match self.last_used.get_mut(&id) {
            Some(t) => {
                *t = self.tick;
                true
            }
            None => false,
        }
    }

    /// Records that `id` was prepared on the server; returns the id to close first if the
    /// cache was full.
    pub fn insert(&mut self, id: u64) -> Option<u64> {
        self.tick += 1;
        let evicted = if self.last_used.len() >= self.capacity.max(1) {
            let oldest = self
                .last_used
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(id, _)| *id);
            if let Some(old) = oldest {
                self.last_used.remove(&old);
            }
            oldest
        } else {
            None
        };
        self.last_used.insert(id, self.tick);
        evicted
    }

    /// Takes back an eviction the server never carried out (its Close was discarded
    /// after an error): the server still holds `id`. The cache may exceed its capacity
    /// by these until the next [`ServerStatements::insert`] evicts again.
    pub fn restore(&mut self, id: u64) {
        self.tick += 1;
        self.last_used.insert(id, self.tick);
    }

    /// Forgets a statement (its Parse failed).
    pub fn remove(&mut self, id: u64) {
        self.last_used.remove(&id);
    }

    /// Forgets everything (DISCARD ALL / DEALLOCATE ALL ran on the server).
    pub fn clear(&mut self) {
        self.last_used.clear();
    }

    /// How many statements the server holds.
    pub fn len(&self) -> usize {
        self.last_used.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.last_used.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_statement_is_evicted() {
        let mut cache = ServerStatements::new(2);
        assert_eq!(cache.insert(1), None);
        assert_eq!(cache.insert(2), None);
        assert!(cache.touch(1));
        assert_eq!(cache.insert(3), Some(2));
        assert!(cache.touch(1));
        assert!(!cache.touch(2));
    }

    #[test]
    fn a_client_name_cannot_be_reused() {
        let mut names = ClientStatements::default();
        let s = Arc::new(Statement::new(1, Bytes::new()));
        assert!(names.insert(b"s1", Arc::clone(&s)));
        assert!(!names.insert(b"s1", s));
        names.remove(b"s1");
        assert!(names.is_empty());
    }
}
