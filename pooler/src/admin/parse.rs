//! The console grammar, as PgBouncer's three regexes (src/admin.c): `CMD [ARG] [;]`,
//! `SET key = word` and `SET key = 'string'` (`TO` for `=`), words being `[0-9a-z_]+`
//! (any case) or double-quoted with `""` for a quote.

/// A parsed console command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `CMD [ARG]`; `arg` is empty when absent, unquoted otherwise.
    Word {
        /// Command word as typed (matched case-insensitively).
        name: String,
        /// Argument, case preserved.
        arg: String,
    },
    /// `SET key = value`.
    Set {
        /// Setting name.
        key: String,
        /// Value, unquoted.
        value: String,
    },
}

/// Why a query is not a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Matches no form: `invalid command '<query>', use SHOW HELP;`.
    #[error("invalid command")]
    Syntax,
    /// A part is too long for PgBouncer's buffers, or the SET key is empty.
    #[error("bad arguments")]
    BadArguments,
}

/// PgBouncer's buffer sizes: a part whose raw text is this long or longer is refused.
const MAX_COMMAND: usize = 16;
const MAX_ARGUMENT: usize = 64;
const MAX_VALUE: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A word: `(text, raw length, was quoted)`.
    Word(String, usize, bool),
    /// A single-quoted string: `(text, raw length)`.
    Str(String, usize),
    Equals,
    Semicolon,
}

/// One token and whether whitespace came before it.
type Spaced = (Token, bool);

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Reads a quoted part starting at `quote`; returns the unquoted text and the byte
/// length consumed, or `None` if the closing quote is missing.
fn quoted(text: &str, quote: char) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            if chars.peek().is_some_and(|(_, next)| *next == quote) {
                chars.next();
                out.push(quote);
            } else {
                return Some((out, i + c.len_utf8()));
            }
        } else {
            out.push(c);
        }
    }
    None
}

fn tokenize(query: &str) -> Result<Vec<Spaced>, ParseError> {
    let mut tokens = Vec::new();
    let mut rest = query;
    loop {
        let trimmed = rest.trim_start_matches(is_space);
        let spaced = trimmed.len() != rest.len();
        rest = trimmed;
        let Some(first) = rest.chars().next() else {
            return Ok(tokens);
        };
        let (token, used) = match first {
            '"' => {
                let (text, used) = quoted(rest, '"').ok_or(ParseError::Syntax)?;
                (Token::Word(text, used, true), used)
            }
            '\'' => {
                let (text, used) = quoted(rest, '\'').ok_or(ParseError::Syntax)?;
                (Token::Str(text, used), used)
            }
            '=' => (Token::Equals, 1),
            ';' => (Token::Semicolon, 1),
            c if is_word_char(c) => {
                let used = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
                let word = rest.get(..used).unwrap_or_default().to_owned();
                (Token::Word(word, used, false), used)
            }
            _ => return Err(ParseError::Syntax),
        };
        tokens.push((token, spaced));
        rest = rest.get(used..).unwrap_or_default();
    }
}

/// Parses one console query.
pub fn parse(query: &str) -> Result<Command, ParseError> {
    let mut tokens = tokenize(query)?;
    if matches!(tokens.last(), Some((Token::Semicolon, _))) {
        tokens.pop();
    }
    if tokens.iter().any(|(t, _)| *t == Token::Semicolon) {
        return Err(ParseError::Syntax);
    }
    match tokens.as_slice() {
        [(Token::Word(name, name_len, _), _)] => word_command(name, *name_len, "", 0),
        [
            (Token::Word(name, name_len, _), _),
            (Token::Word(arg, arg_len, _), true),
        ] => word_command(name, *name_len, arg, *arg_len),
        [
            (Token::Word(set, _, false), _),
            (Token::Word(key, key_len, _), true),
            (separator, _),
            (value, _),
        ] if set.eq_ignore_ascii_case("set") && is_set_separator(separator) => {
            set_command(key, *key_len, value)
        }
        _ => Err(ParseError::Syntax),
    }
}

fn is_set_separator(token: &Token) -> bool {
    match token {
        Token::Equals => true,
        Token::Word(word, _, false) => word.eq_ignore_ascii_case("to"),
        _ => false,
    }
}

fn word_command(
    name: &str,
    name_len: usize,
    arg: &str,
    arg_len: usize,
) -> Result<Command, ParseError> {
    if name_len >= MAX_COMMAND || arg_len >= MAX_ARGUMENT {
        return Err(ParseError::BadArguments);
    }
    Ok(Command::Word {
        name: name.to_owned(),
        arg: arg.to_owned(),
    })
}

fn set_command(key: &str, key_len: usize, value: &Token) -> Result<Command, ParseError> {
    let (value, value_len) = match value {
        Token::Word(text, len, _) | Token::Str(text, len) => (text, *len),
        _ => return Err(ParseError::Syntax),
    };
    if key_len >= MAX_ARGUMENT || key.is_empty() || value_len >= MAX_VALUE {
        return Err(ParseError::BadArguments);
    }
    Ok(Command::Set {
        key: key.to_owned(),
        value: value.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(name: &str, arg: &str) -> Result<Command, ParseError> {
        Ok(Command::Word {
            name: name.into(),
            arg: arg.into(),
        })
    }

    fn set(key: &str, value: &str) -> Result<Command, ParseError> {
        Ok(Command::Set {
            key: key.into(),
            value: value.into(),
        })
    }

    #[test]
    fn commands_with_and_without_argument() {
        assert_eq!(parse("SHOW POOLS;"), word("SHOW", "POOLS"));
        assert_eq!(parse("  show\tpools ; "), word("show", "pools"));
        assert_eq!(parse("RELOAD"), word("RELOAD", ""));
        assert_eq!(parse("pause \"my\"\"db\""), word("pause", "my\"db"));
        assert_eq!(parse("KILL_CLIENT 42"), word("KILL_CLIENT", "42"));
    }

    #[test]
    fn set_takes_a_word_or_a_string() {
        assert_eq!(
            parse("SET default_pool_size = 30"),
            set("default_pool_size", "30")
        );
        assert_eq!(parse("set x TO 'it''s';"), set("x", "it's"));
        assert_eq!(parse("SET a=b"), set("a", "b"));
    }

    #[test]
    fn anything_else_is_a_syntax_error() {
        for query in [
            "",
            "SHOW POOLS EXTRA",
            "SHOW;;",
            "SHOW pools; SHOW clients",
            "SELECT 1.5",
            "SET x = 1.5",
            "SET x",
            "SHOW 'pools'",
            "pause \"unterminated",
        ] {
            if query == "SET x" {
                assert_eq!(parse(query), word("SET", "x"));
                continue;
            }
            assert_eq!(parse(query), Err(ParseError::Syntax), "{query}");
        }
    }

    #[test]
    fn long_parts_are_bad_arguments() {
        assert_eq!(parse(&"a".repeat(16)), Err(ParseError::BadArguments));
        assert_eq!(
            parse(&format!("pause {}", "d".repeat(64))),
            Err(ParseError::BadArguments)
        );
        assert_eq!(parse("SET \"\" = 1"), Err(ParseError::BadArguments));
        assert_eq!(
            parse(&format!("SET k = '{}'", "v".repeat(300))),
            Err(ParseError::BadArguments)
        );
    }
}
