//! The SQL read/write classifier: a non-allocating lexer that decides whether a
//! statement may run on a streaming replica (read) or must run on the primary.
//!
//! It never parses SQL. It skips what cannot hold a keyword that matters (whitespace,
//! `--` and nested `/* */` comments, `'…'`/`E'…'`/`"…"` literals and identifiers,
//! `$tag$…$tag$` bodies) and looks at keywords: a statement is a read only if it starts
//! with SELECT, WITH, VALUES, TABLE, SHOW or EXPLAIN and nothing in it writes or locks.
//! When unsure it says "primary": a read sent to the primary is slower, a write sent to a
//! replica is an error.

/// Where a statement may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Reads only: a replica may serve it.
    Read,
    /// Writes, locks, DDL, session state, or unknown: the primary.
    Write,
    /// `BEGIN` / `START TRANSACTION`; `is_read_only` for `READ ONLY` transactions.
    Begin {
        /// The transaction was opened `READ ONLY`.
        is_read_only: bool,
    },
    /// `SET TRANSACTION READ ONLY` (or `SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY`).
    SetReadOnly,
}

/// An explicit routing hint in a comment: `/* pooler: primary */` or `/* pooler: replica */`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// Force the primary.
    Primary,
    /// Allow a replica even if the classifier would not.
    Replica,
}

/// What the classifier says about a query string (all its statements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// The class of the whole string: any writing statement makes it a write.
    pub class: Class,
    /// A routing hint found in a comment, if any.
    pub hint: Option<Hint>,
}

/// Functions that write or lock although they appear in a SELECT; matched
/// case-insensitively on the function name. `pg_advisory_*`/`pg_try_advisory_*` match
/// by prefix.
pub const DEFAULT_VOLATILE_FUNCTIONS: &[&str] = &[
    "nextval",
    "setval",
    "lo_create",
    "lo_import",
    "lo_unlink",
    "pg_notify",
    "txid_current",
    "pg_current_xact_id",
    "set_config",
];

/// Classifies `sql` (one or more statements). `volatile` is the configured list of
/// functions that make a SELECT a write (see [`DEFAULT_VOLATILE_FUNCTIONS`]).
pub fn classify<S: AsRef<str>>(sql: &[u8], volatile: &[S]) -> Classification {
    let mut lexer = Lexer {
        sql,
        pos: 0,
        hint: None,
    };
    let mut class = None::<Class>;
    loop {
        let statement = classify_statement(&mut lexer, volatile);
        class = Some(match (class, statement) {
            (None, Some(s)) => s,
            (Some(c), None) => c,
            (None, None) => Class::Read, // empty query: nothing to route
            (Some(Class::Read), Some(Class::Read)) => Class::Read,
            (Some(first @ Class::Begin { .. }), Some(Class::Read)) => first,
            (Some(Class::Begin { .. }), Some(Class::SetReadOnly)) => {
                Class::Begin { is_read_only: true }
            }
            (Some(_), Some(_)) => Class::Write,
        });
        if lexer.pos >= sql.len() {
            break;
        }
    }
    Classification {
        class: class.unwrap_or(Class::Read),
        hint: lexer.hint,
    }
}

/// Classifies the next statement up to a top-level `;`. `None` for an empty statement.
fn classify_statement<S: AsRef<str>>(lexer: &mut Lexer<'_>, volatile: &[S]) -> Option<Class> {
    let first = match lexer.next()? {
        Token::Semicolon => return None,
        Token::Word(word) => word,
        Token::Other(_) => return Some(skip_statement(lexer, Class::Write)),
    };
    let class = match upper(first) {
        Keyword::Select | Keyword::With | Keyword::Values | Keyword::Table | Keyword::Show => {
            scan_read(lexer, volatile)
        }
        Keyword::Explain => scan_read(lexer, volatile),
        Keyword::Begin | Keyword::Start => scan_begin(lexer),
        Keyword::Set => scan_set(lexer),
        _ => skip_statement(lexer, Class::Write),
    };
    Some(class)
}

/// A statement that may read: look for anything that writes or locks.
fn scan_read<S: AsRef<str>>(lexer: &mut Lexer<'_>, volatile: &[S]) -> Class {
    let mut class = Class::Read;
    let mut previous: Option<&[u8]> = None;
    while let Some(token) = lexer.next() {
        match token {
            Token::Semicolon => break,
            Token::Word(word) => {
                match upper(word) {
                    Keyword::Insert
                    | Keyword::Update
                    | Keyword::Delete
                    | Keyword::Merge
                    | Keyword::Into
                    | Keyword::Nowait => class = Class::Write,
                    Keyword::Share | Keyword::No | Keyword::Key
                        if previous.is_some_and(|p| upper(p) == Keyword::For) =>
                    {
                        class = Class::Write
                    }
                    _ if is_volatile_call(word, lexer, volatile) => class = Class::Write,
                    _ => {}
                }
                previous = Some(word);
            }
            Token::Other(_) => previous = None,
        }
    }
    class
}

fn is_volatile_call<S: AsRef<str>>(word: &[u8], lexer: &Lexer<'_>, volatile: &[S]) -> bool {
    if !lexer.next_is_open_paren() {
        return false;
    }
    let starts_with = |prefix: &[u8]| {
        word.len() >= prefix.len() && word[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    starts_with(b"pg_advisory_")
        || starts_with(b"pg_try_advisory_")
        || volatile
            .iter()
            .any(|f| word.eq_ignore_ascii_case(f.as_ref().as_bytes()))
}

/// `BEGIN [WORK|TRANSACTION] [READ ONLY|READ WRITE|ISOLATION …]` / `START TRANSACTION …`.
fn scan_begin(lexer: &mut Lexer<'_>) -> Class {
    let mut is_read_only = false;
    let mut previous: Option<&[u8]> = None;
    while let Some(token) = lexer.next() {
        match token {
            Token::Semicolon => break,
            Token::Word(word) => {
                if upper(word) == Keyword::Only
                    && previous.is_some_and(|p| upper(p) == Keyword::Read)
                {
                    is_read_only = true;
                }
                previous = Some(word);
            }
            Token::Other(_) => previous = None,
        }
    }
    Class::Begin { is_read_only }
}

/// `SET TRANSACTION READ ONLY` is a routing signal; every other SET is session state.
fn scan_set(lexer: &mut Lexer<'_>) -> Class {
    let mut words = 0;
    let mut is_transaction = false;
    let mut is_read_only = false;
    let mut previous: Option<&[u8]> = None;
    while let Some(token) = lexer.next() {
        match token {
            Token::Semicolon => break,
            Token::Word(word) => {
                words += 1;
                let keyword = upper(word);
                if words <= 5 && keyword == Keyword::Transaction {
                    is_transaction = true;
                }
                if keyword == Keyword::Only && previous.is_some_and(|p| upper(p) == Keyword::Read) {
                    is_read_only = true;
                }
                previous = Some(word);
            }
            Token::Other(_) => previous = None,
        }
    }
    if is_transaction && is_read_only {
        Class::SetReadOnly
    } else {
        Class::Write
    }
}

fn skip_statement(lexer: &mut Lexer<'_>, class: Class) -> Class {
    while let Some(token) = lexer.next() {
        if token == Token::Semicolon {
            break;
        }
    }
    class
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a [u8]),
    Semicolon,
    Other(u8),
}

struct Lexer<'a> {
    sql: &'a [u8],
    pos: usize,
    hint: Option<Hint>,
}

impl<'a> Lexer<'a> {
    fn peek_byte(&self, offset: usize) -> Option<u8> {
        self.sql.get(self.pos + offset).copied()
    }

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            let byte = self.peek_byte(0)?;
            match byte {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => self.pos += 1,
                b'-' if self.peek_byte(1) == Some(b'-') => self.skip_line_comment(),
                b'/' if self.peek_byte(1) == Some(b'*') => self.skip_block_comment(),
                b'\'' => self.skip_quoted(b'\'', false),
                b'"' => self.skip_quoted(b'"', false),
                b'$' => {
                    if !self.skip_dollar_quote() {
                        self.pos += 1;
                        return Some(Token::Other(b'$'));
                    }
                }
                b';' => {
                    self.pos += 1;
                    return Some(Token::Semicolon);
                }
                b if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                    let start = self.pos;
                    if (b == b'e' || b == b'E') && self.peek_byte(1) == Some(b'\'') {
                        self.pos += 1;
                        self.skip_quoted(b'\'', true);
                        continue;
                    }
                    while let Some(c) = self.peek_byte(0) {
                        if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
                            self.pos += 1;
                        } else {
                            break;
                        }
                    }
                    return Some(Token::Word(&self.sql[start..self.pos]));
                }
                other => {
                    self.pos += 1;
                    return Some(Token::Other(other));
                }
            }
        }
    }

    /// Whether the next significant byte is `(` (a function call).
    fn next_is_open_paren(&self) -> bool {
        let rest = self.sql.get(self.pos..).unwrap_or_default();
        rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'(')
    }

    fn skip_line_comment(&mut self) {
        let rest = &self.sql[self.pos..];
        self.pos += memchr::memchr(b'\n', rest).map_or(rest.len(), |n| n + 1);
    }

    fn skip_block_comment(&mut self) {
        let start = self.pos;
        let mut depth = 0usize;
        while self.pos < self.sql.len() {
            match (self.peek_byte(0), self.peek_byte(1)) {
                (Some(b'/'), Some(b'*')) => {
                    depth += 1;
                    self.pos += 2;
                }
                (Some(b'*'), Some(b'/')) => {
                    depth -= 1;
                    self.pos += 2;
                    if depth == 0 {
                        break;
                    }
                }
                _ => self.pos += 1,
            }
        }
        self.read_hint(&self.sql[start..self.pos]);
    }

    fn read_hint(&mut self, comment: &[u8]) {
        let text = comment.trim_ascii();
        let text = text.strip_prefix(b"/*").unwrap_or(text);
        let text = text.strip_suffix(b"*/").unwrap_or(text).trim_ascii();
        let Some(rest) = strip_prefix_ignore_case(text, b"pooler:") else {
            return;
        };
        let rest = rest.trim_ascii();
        if rest.eq_ignore_ascii_case(b"primary") {
            self.hint = Some(Hint::Primary);
        } else if rest.eq_ignore_ascii_case(b"replica") {
            self.hint.get_or_insert(Hint::Replica);
        }
    }

    /// Skips a quoted literal or identifier; `''` (or `""`) is an escaped quote, and in
    /// `E'…'` literals a backslash escapes the next byte.
    fn skip_quoted(&mut self, quote: u8, has_backslash_escapes: bool) {
        self.pos += 1;
        while let Some(byte) = self.peek_byte(0) {
            self.pos += 1;
            if has_backslash_escapes && byte == b'\\' {
                self.pos += 1;
            } else if byte == quote {
                if self.peek_byte(0) == Some(quote) {
                    self.pos += 1;
                } else {
                    return;
                }
            }
        }
    }

    /// Skips `$tag$ … $tag$`; false (nothing consumed) for `$1` parameters and the like.
    fn skip_dollar_quote(&mut self) -> bool {
        let rest = &self.sql[self.pos..];
        let tag_len = rest[1..]
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
            .map(|n| n + 1);
        let Some(tag_len) = tag_len else { return false };
        if rest.get(tag_len) != Some(&b'$') || rest.get(1).is_some_and(u8::is_ascii_digit) {
            return false;
        }
        let tag = &rest[..=tag_len];
        let body = &rest[tag.len()..];
        let end = memchr::memmem::find(body, tag).map_or(body.len(), |n| n + tag.len());
        self.pos += tag.len() + end;
        true
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &text[prefix.len()..])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    Select,
    With,
    Values,
    Table,
    Show,
    Explain,
    Begin,
    Start,
    Set,
    Insert,
    Update,
    Delete,
    Merge,
    Into,
    Nowait,
    For,
    Share,
    No,
    Key,
    Read,
    Only,
    Transaction,
    Other,
}

/// The keyword a word is, ASCII case-insensitively, without allocating.
fn upper(word: &[u8]) -> Keyword {
    const KEYWORDS: &[(&[u8], Keyword)] = &[
        (b"SELECT", Keyword::Select),
        (b"WITH", Keyword::With),
        (b"VALUES", Keyword::Values),
        (b"TABLE", Keyword::Table),
        (b"SHOW", Keyword::Show),
        (b"EXPLAIN", Keyword::Explain),
        (b"BEGIN", Keyword::Begin),
        (b"START", Keyword::Start),
        (b"SET", Keyword::Set),
        (b"INSERT", Keyword::Insert),
        (b"UPDATE", Keyword::Update),
        (b"DELETE", Keyword::Delete),
        (b"MERGE", Keyword::Merge),
        (b"INTO", Keyword::Into),
        (b"NOWAIT", Keyword::Nowait),
        (b"FOR", Keyword::For),
        (b"SHARE", Keyword::Share),
        (b"NO", Keyword::No),
        (b"KEY", Keyword::Key),
        (b"READ", Keyword::Read),
        (b"ONLY", Keyword::Only),
        (b"TRANSACTION", Keyword::Transaction),
    ];
    if word.len() > 11 {
        return Keyword::Other;
    }
    KEYWORDS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(word))
        .map_or(Keyword::Other, |(_, keyword)| *keyword)
}

#[cfg(test)]
mod tests;
