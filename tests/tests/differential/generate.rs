//! Random client scripts for the differential tester: mostly valid sequences of frontend
//! messages (simple and extended queries, pipelines with and without Sync, Flush,
//! errors, transaction blocks, COPY in and out, portals with row limits, Close of known
//! and unknown statements), each client on its own table so answers never depend on
//! another client.
//!
//! What is not generated, because transaction pooling changes it by design (PgBouncer's
//! documented limits): session state (`SET`, `PREPARE`, temporary tables, advisory
//! locks, LISTEN), the unnamed statement reused across Syncs, and a client reusing a
//! statement name it has not closed.

use bytes::BytesMut;
use protocol::pg::encode;

/// A small deterministic generator (SplitMix64): the same seed gives the same scripts.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// How the reader knows a step's answers are complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepEnd {
    /// The step ends with a Sync (or a simple Query): the runner appends an empty
    /// Query, whose EmptyQueryResponse + ReadyForQuery mark the end.
    Synced,
    /// The step ends with a Flush and leaves its batch open: answered with whatever
    /// PostgreSQL sends for it (counted on the direct run).
    Flushed,
}

/// One write of a client.
#[derive(Debug, Clone)]
pub struct Step {
    /// The messages, encoded.
    pub bytes: BytesMut,
    /// The messages in words, for failure reports.
    pub description: Vec<String>,
    /// How its answers end.
    pub end: StepEnd,
}

/// One client's messages, step by step.
#[derive(Debug, Clone)]
pub struct Script {
    /// The client number (its table is `t<client>`).
    pub client: usize,
    /// The steps, sent one at a time.
    pub steps: Vec<Step>,
}

/// A statement with the parameters it takes, for one client's table.
struct Sql {
    text: String,
    params: usize,
}

fn statements(table: &str) -> Vec<Sql> {
    let s = |text: &str, params: usize| Sql {
        text: text.replace("{t}", table),
        params,
    };
    vec![
        s("SELECT v FROM {t} WHERE id = $1", 1),
        s("SELECT count(*), coalesce(sum(id), 0) FROM {t}", 0),
        s("SELECT id, v FROM {t} ORDER BY id", 0),
        s("INSERT INTO {t} VALUES ($1, $2)", 2),
        s("UPDATE {t} SET v = $2 WHERE id = $1", 2),
        s("DELETE FROM {t} WHERE id = $1", 1),
        s("SELECT generate_series(1, $1::int) AS n", 1),
        s("SELECT $1::int + 1 AS next", 1),
        s("SELECT 1/0", 0),
        s("SELEC 1", 0),
        s("SELECT * FROM no_such_table", 0),
        s("BEGIN", 0),
        s("COMMIT", 0),
        s("ROLLBACK", 0),
        s("SAVEPOINT a", 0),
        s("ROLLBACK TO SAVEPOINT a", 0),
        s("SET LOCAL work_mem = '8MB'", 0),
        s("SELECT current_setting('work_mem')", 0),
    ]
}

/// Simple-protocol texts (some hold several statements).
fn simple_queries(table: &str) -> Vec<String> {
    [
        "SELECT count(*) FROM {t}",
        "INSERT INTO {t} VALUES (1, 'a'); SELECT v FROM {t} WHERE id = 1",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "BEGIN; INSERT INTO {t} VALUES (2, 'b'); COMMIT",
        "UPDATE {t} SET v = v || 'x' WHERE id < 5",
        "DELETE FROM {t} WHERE id > 10",
        "SELECT 1/0",
        "SELECT 1; SELECT 2/0; SELECT 3",
        "SELEC 1",
        "SELECT id, v FROM {t} ORDER BY id LIMIT 3",
        "SAVEPOINT a",
        "ROLLBACK TO SAVEPOINT a",
        "SET LOCAL work_mem = '16MB'",
        "SELECT current_setting('work_mem')",
        "SELECT repeat('x', 100000) AS big",
    ]
    .iter()
    .map(|q| q.replace("{t}", table))
    .collect()
}

/// Builds scripts; tracks which statement names a client holds so it never reuses one
/// it has not closed.
pub struct Generator {
    rng: Rng,
    table: String,
    statements: Vec<Sql>,
    simple: Vec<String>,
    /// Names the client may hold (created by a Parse it sent).
    held: Vec<String>,
    next_name: usize,
}

impl Generator {
    /// A generator for client `client` with `seed`.
    pub fn new(seed: u64, client: usize) -> Self {
        let table = format!("t{client}");
        Self {
            rng: Rng::new(seed ^ (client as u64).wrapping_mul(0xA24B_AED4_963E_E407)),
            statements: statements(&table),
            simple: simple_queries(&table),
            table,
            held: Vec::new(),
            next_name: 0,
        }
    }

    /// A script of `steps` steps.
    pub fn script(mut self, client: usize, steps: usize) -> Script {
        let mut out = Vec::with_capacity(steps);
        let mut is_batch_open = false;
        for index in 0..steps {
            let is_last = index + 1 == steps;
            let step = self.step(is_batch_open, is_last);
            is_batch_open = step.end == StepEnd::Flushed;
            out.push(step);
        }
        Script { client, steps: out }
    }

    fn step(&mut self, is_batch_open: bool, is_last: bool) -> Step {
        let mut step = Step {
            bytes: BytesMut::new(),
            description: Vec::new(),
            end: StepEnd::Synced,
        };
        if is_batch_open {
            // Go on with the open batch, then end it (possibly with a delayed Sync).
            let units = 1 + self.rng.below(2) as usize;
            self.extended_units(&mut step, units);
            self.sync(&mut step);
            return step;
        }
        match self.rng.below(100) {
            0..=24 => {
                let sql = self.rng.pick(&self.simple).clone();
                self.query(&mut step, &sql);
            }
            25..=64 => {
                let units = 1 + self.rng.below(4) as usize;
                self.extended_units(&mut step, units);
                if !is_last && self.rng.chance(25) {
                    self.flush(&mut step);
                    step.end = StepEnd::Flushed;
                } else {
                    self.sync(&mut step);
                }
            }
            65..=71 => self.close_held(&mut step),
            72..=77 => self.copy_in(&mut step),
            78..=81 => self.copy_out(&mut step),
            82..=85 => self.unknown_statement(&mut step),
            86..=89 => self.sync(&mut step),
            90..=93 => {
                self.flush(&mut step);
                self.sync(&mut step);
            }
            _ => self.portal_in_steps(&mut step),
        }
        step
    }

    fn query(&mut self, step: &mut Step, sql: &str) {
        encode::query(&mut step.bytes, sql.as_bytes()).unwrap();
        step.description.push(format!("Query({sql:?})"));
    }

    fn sync(&mut self, step: &mut Step) {
        encode::sync(&mut step.bytes);
        step.description.push("Sync".into());
    }

    fn flush(&mut self, step: &mut Step) {
        encode::flush(&mut step.bytes);
        step.description.push("Flush".into());
    }

    /// Parse/Bind/Describe/Execute units of an extended batch, now and then with a
    /// Flush between them.
    fn extended_units(&mut self, step: &mut Step, units: usize) {
        for _ in 0..units {
            self.extended_unit(step);
            if self.rng.chance(15) {
                self.flush(step);
            }
        }
    }

    fn extended_unit(&mut self, step: &mut Step) {
        let index = self.rng.below(self.statements.len() as u64) as usize;
        let (text, params) = (
            self.statements[index].text.clone(),
            self.statements[index].params,
        );
        let name = self.statement_name();
        encode::parse(&mut step.bytes, name.as_bytes(), text.as_bytes(), &[]).unwrap();
        step.description.push(format!("Parse({name:?}, {text:?})"));
        let uses = if name.is_empty() {
            1
        } else {
            1 + self.rng.below(3)
        };
        for _ in 0..uses {
            if self.rng.chance(20) {
                encode::describe_statement(&mut step.bytes, name.as_bytes()).unwrap();
                step.description.push(format!("Describe(S {name:?})"));
            }
            self.bind_execute(step, &name, params);
        }
    }

    /// A new name (now and then the unnamed statement), remembered as held.
    fn statement_name(&mut self) -> String {
        if self.rng.chance(35) {
            return String::new();
        }
        self.next_name += 1;
        let name = format!("s{}", self.next_name);
        self.held.push(name.clone());
        name
    }

    fn bind_execute(&mut self, step: &mut Step, statement: &str, params: usize) {
        let values: Vec<String> = (0..params)
            .map(|i| match i {
                0 => (1 + self.rng.below(12)).to_string(),
                _ => format!("v{}", self.rng.below(1000)),
            })
            .collect();
        let mut bound: Vec<Option<&[u8]>> = values.iter().map(|v| Some(v.as_bytes())).collect();
        if self.rng.chance(4) {
            bound.pop(); // a wrong parameter count: PostgreSQL's own error
        }
        let portal = if self.rng.chance(20) { "p1" } else { "" };
        let binary: &[i16] = if self.rng.chance(15) { &[1] } else { &[] };
        encode::bind(
            &mut step.bytes,
            portal.as_bytes(),
            statement.as_bytes(),
            &[],
            &bound,
            binary,
        )
        .unwrap();
        step.description.push(format!(
            "Bind({portal:?}, {statement:?}, {values:?}, formats {binary:?})"
        ));
        if self.rng.chance(25) {
            encode::describe_portal(&mut step.bytes, portal.as_bytes()).unwrap();
            step.description.push(format!("Describe(P {portal:?})"));
        }
        let max_rows = if self.rng.chance(20) { 1 } else { 0 };
        encode::execute(&mut step.bytes, portal.as_bytes(), max_rows).unwrap();
        step.description
            .push(format!("Execute({portal:?}, {max_rows})"));
        if max_rows > 0 && self.rng.chance(60) {
            encode::execute(&mut step.bytes, portal.as_bytes(), 0).unwrap();
            step.description.push(format!("Execute({portal:?}, 0)"));
        }
    }

    /// Close of a statement the client holds (or of one it never had), alone in its
    /// batch so it is never discarded: afterwards the name may be used again.
    fn close_held(&mut self, step: &mut Step) {
        let name = if !self.held.is_empty() && self.rng.chance(80) {
            let index = self.rng.below(self.held.len() as u64) as usize;
            self.held.swap_remove(index)
        } else {
            "never_prepared".to_owned()
        };
        if self.rng.chance(20) {
            encode::close_portal(&mut step.bytes, b"p1").unwrap();
            step.description.push("Close(P \"p1\")".into());
        }
        encode::close_statement(&mut step.bytes, name.as_bytes()).unwrap();
        step.description.push(format!("Close(S {name:?})"));
        self.sync(step);
    }

    /// Bind or Describe of a statement the client never prepared.
    fn unknown_statement(&mut self, step: &mut Step) {
        if self.rng.chance(50) {
            encode::describe_statement(&mut step.bytes, b"unknown").unwrap();
            step.description.push("Describe(S \"unknown\")".into());
        } else {
            encode::bind(&mut step.bytes, b"", b"unknown", &[], &[], &[]).unwrap();
            step.description.push("Bind(\"\", \"unknown\")".into());
            encode::execute(&mut step.bytes, b"", 0).unwrap();
            step.description.push("Execute(\"\", 0)".into());
        }
        self.sync(step);
    }

    /// COPY FROM STDIN in the simple or the extended protocol, ended by CopyDone or
    /// CopyFail, with rows that may break the primary key.
    fn copy_in(&mut self, step: &mut Step) {
        let sql = format!("COPY {} (id, v) FROM STDIN", self.table);
        let is_extended = self.rng.chance(50);
        if is_extended {
            encode::parse(&mut step.bytes, b"", sql.as_bytes(), &[]).unwrap();
            encode::bind(&mut step.bytes, b"", b"", &[], &[], &[]).unwrap();
            encode::execute(&mut step.bytes, b"", 0).unwrap();
            // libpq sends Sync with the query: the server ignores it during COPY.
            encode::sync(&mut step.bytes);
            step.description
                .push(format!("Parse/Bind/Execute({sql:?}) Sync"));
        } else {
            self.query(step, &sql);
        }
        for _ in 0..1 + self.rng.below(3) {
            let row = format!("{}\tc{}\n", 20 + self.rng.below(10), self.rng.below(100));
            encode::copy_data(&mut step.bytes, row.as_bytes()).unwrap();
            step.description.push(format!("CopyData({row:?})"));
        }
        if self.rng.chance(20) {
            encode::copy_fail(&mut step.bytes, b"client gave up").unwrap();
            step.description.push("CopyFail".into());
        } else {
            encode::copy_done(&mut step.bytes);
            step.description.push("CopyDone".into());
        }
        if is_extended {
            self.sync(step);
        }
    }

    fn copy_out(&mut self, step: &mut Step) {
        let sql = format!(
            "COPY (SELECT id, v FROM {} ORDER BY id) TO STDOUT",
            self.table
        );
        if self.rng.chance(50) {
            self.query(step, &sql);
        } else {
            encode::parse(&mut step.bytes, b"", sql.as_bytes(), &[]).unwrap();
            encode::bind(&mut step.bytes, b"", b"", &[], &[], &[]).unwrap();
            encode::execute(&mut step.bytes, b"", 0).unwrap();
            step.description
                .push(format!("Parse/Bind/Execute({sql:?})"));
            self.sync(step);
        }
    }

    /// A named portal read a row at a time inside a transaction block.
    fn portal_in_steps(&mut self, step: &mut Step) {
        self.query(step, "BEGIN");
        let sql = b"SELECT generate_series(1, 3) AS n";
        encode::parse(&mut step.bytes, b"", sql, &[]).unwrap();
        encode::bind(&mut step.bytes, b"p1", b"", &[], &[], &[]).unwrap();
        for _ in 0..4 {
            encode::execute(&mut step.bytes, b"p1", 1).unwrap();
        }
        step.description
            .push("Parse/Bind(p1) Execute(p1, 1) x4".into());
        self.sync(step);
        let end = if self.rng.chance(50) {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        self.query(step, end);
    }
}
