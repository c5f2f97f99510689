//! Config errors and warnings: where (file, line) and what, worded like PgBouncer. No
//! variant ever holds a password or secret.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a config file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// The file (the included file for lines that come from a `%include`).
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
}

/// A fatal config problem, displayed as `<file>:<line>: <what>` (or `<file>: <what>`).
#[derive(Debug)]
pub struct ConfigError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

impl ConfigError {
    /// Builds an error.
    pub fn new(file: PathBuf, line: Option<usize>, kind: ConfigErrorKind) -> Self {
        ConfigError { file, line, kind }
    }

    pub(crate) fn at(at: &Location, kind: ConfigErrorKind) -> Self {
        ConfigError::new(at.file.clone(), Some(at.line), kind)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_place(f, &self.file, self.line)?;
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for ConfigError {}

fn write_place(f: &mut fmt::Formatter<'_>, file: &Path, line: Option<usize>) -> fmt::Result {
    match line {
        Some(line) => write!(f, "{}:{line}: ", file.display()),
        None => write!(f, "{}: ", file.display()),
    }
}

/// What a [`ConfigError`] is about. Wording follows PgBouncer where it has one. No variant
/// ever holds a password or secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigErrorKind {
    /// The file cannot be read.
    #[error("could not load file: {error}")]
    Read {
        /// The I/O error.
        error: std::io::Error,
    },
    /// An `%include` target cannot be read.
    #[error("could not load included file \"{}\": {error}", path.display())]
    Include {
        /// The resolved include path.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// `%include` nested deeper than [`super::MAX_INCLUDE_DEPTH`].
    #[error("include nesting level too deep (more than {max} levels)")]
    IncludeDepth {
        /// The limit.
        max: usize,
    },
    /// A line that is not a comment, section header, `%include` or `key = value`.
    #[error("syntax error in configuration: {detail}")]
    Syntax {
        /// What was expected.
        detail: &'static str,
    },
    /// A line that is not valid UTF-8.
    #[error("syntax error in configuration: line is not valid UTF-8")]
    NotUtf8,
    /// A section other than pgbouncer, databases, users, peers.
    #[error("invalid section \"{name}\"")]
    InvalidSection {
        /// The section name.
        name: String,
    },
    /// A `key = value` line before any section header.
    #[error("value without section: {key}")]
    ValueWithoutSection {
        /// The key.
        key: String,
    },
    /// The file (with its includes) has no `[pgbouncer]` section.
    #[error("main section [pgbouncer] missing from config file")]
    MissingMainSection,
    /// A `[pgbouncer]` key PgBouncer does not know either.
    #[error("unknown parameter: {section}/{key}")]
    UnknownParameter {
        /// Always "pgbouncer".
        section: &'static str,
        /// The key.
        key: String,
    },
    /// A value that does not parse for its key.
    #[error("invalid value \"{value}\" for parameter {key}: expected {expected}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The raw value.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// An unknown key in a `[databases]` or `[peers]` connection string.
    #[error("unrecognized connection parameter: {key}")]
    UnrecognizedConnectionParameter {
        /// The key.
        key: String,
    },
    /// An unknown key in a `[users]` entry.
    #[error("unrecognized user parameter: {key}")]
    UnrecognizedUserParameter {
        /// The key.
        key: String,
    },
    /// A connection string that does not tokenize.
    #[error("syntax error in {section}: {detail}")]
    ConnectionStringSyntax {
        /// "connection string" or "user settings" (PgBouncer's wording).
        section: &'static str,
        /// What was wrong.
        detail: &'static str,
    },
    /// A `[databases]` entry named `pgbouncer`.
    #[error("database name \"{name}\" is reserved")]
    ReservedDatabase {
        /// The name.
        name: String,
    },
    /// `port=` that is not 1..=65535.
    #[error("invalid port: {value}")]
    InvalidPort {
        /// The raw value.
        value: String,
    },
    /// A `[peers]` key that is not a peer id.
    #[error("ids of peers must be a number larger than 0 and at most 65535: {name}")]
    InvalidPeerId {
        /// The key.
        name: String,
    },
    /// A `[peers]` entry without `host=`.
    #[error("host was not provided for peer {peer_id}")]
    PeerHostMissing {
        /// The peer id.
        peer_id: u16,
    },
    /// A setting pooler cannot honour yet, e.g. "auth_type = hba".
    #[error("{what} is not supported by pooler yet")]
    Unsupported {
        /// The setting and value.
        what: String,
    },
    /// A cross-field rule of [`super::Config::validate`].
    #[error("{message}")]
    Invalid {
        /// The rule that is broken.
        message: String,
    },
    /// A sidecar database URL that does not parse (the URL itself is never echoed).
    #[error("invalid database URL: {reason}")]
    InvalidUrl {
        /// What is wrong.
        reason: String,
    },
}

/// A non-fatal config finding; displayed like [`ConfigError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when there is one.
    pub line: Option<usize>,
    /// What was found.
    pub kind: ConfigWarningKind,
}

impl ConfigWarning {
    /// Builds a warning.
    pub fn new(file: PathBuf, line: Option<usize>, kind: ConfigWarningKind) -> Self {
        ConfigWarning { file, line, kind }
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_place(f, &self.file, self.line)?;
        write!(f, "{}", self.kind)
    }
}

/// What a [`ConfigWarning`] is about. No variant ever holds a password or secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigWarningKind {
    /// A key pooler does not implement yet, set to a non-default value.
    #[error("parameter {key} is not implemented by pooler yet; value \"{value}\" is ignored")]
    NotImplemented {
        /// The key.
        key: &'static str,
        /// The raw value.
        value: String,
    },
    /// A key tuning a PgBouncer internal, set to a non-default value.
    #[error("parameter {key} has no effect in pooler; value \"{value}\" is ignored")]
    NoEffect {
        /// The key.
        key: &'static str,
        /// The raw value.
        value: String,
    },
    /// `[pgbouncer]` started again: PgBouncer resets its keys to defaults at each start.
    #[error(
        "[pgbouncer] section starts again: {count} parameter(s) set before are reset to defaults, as PgBouncer does"
    )]
    SectionRestarted {
        /// How many keys were set before.
        count: usize,
    },
    /// A `[databases]`/`[users]`/`[peers]` integer read with C `atoi` leniency.
    #[error("value \"{value}\" for {key} is read as {parsed} (PgBouncer reads it with atoi)")]
    LenientInteger {
        /// The key.
        key: String,
        /// The raw value.
        value: String,
        /// What it was read as.
        parsed: i64,
    },
    /// A malformed auth_file line; the rest of the file is not read (PgBouncer's behaviour).
    #[error("broken auth file; lines from here on are ignored")]
    BrokenAuthFile,
    /// A user name of [`super::MAX_USERNAME`] bytes or more; reading stops.
    #[error("username too long in auth file; lines from here on are ignored")]
    UsernameTooLong,
    /// A secret of [`super::MAX_PASSWORD`] bytes or more; reading stops.
    #[error("password too long in auth file; lines from here on are ignored")]
    PasswordTooLong,
    /// An auth_file field that is not UTF-8; reading stops.
    #[error("auth file line is not valid UTF-8; lines from here on are ignored")]
    AuthFileNotUtf8,
    /// A `SCRAM-SHA-256$` secret that does not parse: PostgreSQL's rule makes it a plain password.
    #[error(
        "secret of user \"{user}\" looks like SCRAM but is malformed; it is used as a plain-text password"
    )]
    MalformedScramSecret {
        /// The user.
        user: String,
    },
    /// A sidecar URL query parameter pooler does not use.
    #[error("database URL parameter \"{name}\" is ignored")]
    UrlParameterIgnored {
        /// The parameter name.
        name: String,
    },
    /// A legal but probably unintended combination found by [`super::Config::validate`].
    #[error("{message}")]
    Advice {
        /// The explanation.
        message: String,
    },
}
