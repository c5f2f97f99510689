//! Hand-written pgbouncer.ini reader following libusual's `cfparser.c` exactly: line-start
//! comments only, `%include` (nesting ≤ 10), quoted or `[A-Za-z0-9_.*-]` keys, trimmed values.
//!
//! It only tokenizes: sections and keys are interpreted by the loader in `mod.rs`. Unlike
//! PgBouncer it does not stop at the first problem: every bad line is reported and skipped.

use std::path::{Path, PathBuf};

use super::{ConfigError, ConfigErrorKind, Location};

/// PgBouncer's `MAX_INCLUDE`: a file at this depth may not `%include` further.
pub const MAX_INCLUDE_DEPTH: usize = 10;

/// One meaningful line of an INI file, with where it came from, in file order (included
/// files inline).
#[derive(Debug)]
pub enum IniItem {
    /// `[name]`: the name between the brackets, verbatim.
    Section {
        /// Section name.
        name: String,
        /// Where the header is.
        at: Location,
    },
    /// `key = value`, key unquoted, value trimmed.
    Entry {
        /// Key (the text between quotes for a quoted key).
        key: String,
        /// Value: rest of the line, trailing whitespace removed.
        value: String,
        /// Where the line is.
        at: Location,
    },
    /// A line that could not be read (or an unreadable file, with no line).
    Error(ConfigError),
}

/// Reads `path` and its includes into items; every problem is an [`IniItem::Error`].
pub fn read_ini(path: &Path) -> Vec<IniItem> {
    let mut reader = Reader::default();
    match std::fs::read(path) {
        Ok(bytes) => reader.parse_file(path, &bytes, 0),
        Err(error) => reader.items.push(IniItem::Error(ConfigError::new(
            path.to_path_buf(),
            None,
            ConfigErrorKind::Read { error },
        ))),
    }
    reader.items
}

/// Parses INI text as if it were the file `path` (includes are still read from disk).
pub fn parse_ini_text(path: &Path, text: &str) -> Vec<IniItem> {
    let mut reader = Reader::default();
    reader.parse_file(path, text.as_bytes(), 0);
    reader.items
}

#[derive(Default)]
struct Reader {
    items: Vec<IniItem>,
}

impl Reader {
    fn parse_file(&mut self, path: &Path, bytes: &[u8], depth: usize) {
        for (index, raw_line) in bytes.split(|&b| b == b'\n').enumerate() {
            let at = Location {
                file: path.to_path_buf(),
                line: index + 1,
            };
            match std::str::from_utf8(raw_line) {
                Ok(line) => self.parse_line(line, &at, depth),
                Err(_) => self.error(&at, ConfigErrorKind::NotUtf8),
            }
        }
    }

    fn error(&mut self, at: &Location, kind: ConfigErrorKind) {
        let error = ConfigError::new(at.file.clone(), Some(at.line), kind);
        self.items.push(IniItem::Error(error));
    }

    fn syntax(&mut self, at: &Location, detail: &'static str) {
        self.error(at, ConfigErrorKind::Syntax { detail });
    }

    /// Parses one line (or the rest of a line after a section header, as cfparser does).
    fn parse_line(&mut self, line: &str, at: &Location, depth: usize) {
        let text = line.trim_ascii_start();
        if let Some(target) = include_target(text) {
            return self.include(target, at, depth);
        }
        if text.is_empty() || text.starts_with(';') || text.starts_with('#') {
            return;
        }
        if let Some(header) = text.strip_prefix('[') {
            let Some((name, rest)) = header.split_once(']') else {
                return self.syntax(at, "missing ']' in section header");
            };
            self.items.push(IniItem::Section {
                name: name.to_owned(),
                at: at.clone(),
            });
            // cfparser keeps scanning after ']': a trailing comment or even a key may follow.
            return self.parse_line(rest, at, depth);
        }
        match split_entry(text) {
            Ok((key, value)) => self.items.push(IniItem::Entry {
                key: key.to_owned(),
                value: value.to_owned(),
                at: at.clone(),
            }),
            Err(detail) => self.syntax(at, detail),
        }
    }

    fn include(&mut self, target: &str, at: &Location, depth: usize) {
        if depth >= MAX_INCLUDE_DEPTH {
            return self.error(
                at,
                ConfigErrorKind::IncludeDepth {
                    max: MAX_INCLUDE_DEPTH,
                },
            );
        }
        let path = resolve_include(&at.file, target);
        match std::fs::read(&path) {
            Ok(bytes) => self.parse_file(&path, &bytes, depth + 1),
            Err(error) => self.error(at, ConfigErrorKind::Include { path, error }),
        }
    }
}

/// The file name of a `%include <file>` line: `%include` then at least one blank. `None` for
/// other lines (a `%include` without a blank is then a syntax error, as in cfparser).
fn include_target(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("%include")?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    Some(rest.trim_ascii())
}

/// Relative include paths are resolved against the including file's directory, so a config
/// tree can be moved as a whole.
fn resolve_include(including: &Path, target: &str) -> PathBuf {
    let target = Path::new(target);
    match including.parent() {
        Some(dir) if target.is_relative() => dir.join(target),
        _ => target.to_path_buf(),
    }
}

fn is_bare_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '*')
}

/// Splits `key = value`: key single-quoted (no escapes, not empty) or a run of
/// `[A-Za-z0-9_.*-]`; `=` with optional blanks around; value trimmed at the end.
fn split_entry(text: &str) -> Result<(&str, &str), &'static str> {
    let (key, rest) = if let Some(quoted) = text.strip_prefix('\'') {
        let (key, rest) = quoted.split_once('\'').ok_or("unterminated quoted key")?;
        if key.is_empty() {
            return Err("empty quoted key");
        }
        (key, rest)
    } else {
        let end = text.find(|c| !is_bare_key_char(c)).unwrap_or(text.len());
        let (key, rest) = text.split_at(end);
        if key.is_empty() {
            return Err("expected a key (letters, digits, _ . * - or a 'quoted name')");
        }
        (key, rest)
    };
    let value = rest
        .trim_start_matches([' ', '\t'])
        .strip_prefix('=')
        .ok_or("expected '=' after the key")?;
    Ok((key, value.trim_start_matches([' ', '\t']).trim_ascii_end()))
}
