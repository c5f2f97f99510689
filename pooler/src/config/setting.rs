//! What one setting is: its spec in the key table (reload flag, support, syntax), the
//! Rust types a value parses into, and the value parsers PgBouncer's `cfparser.c` defines
//! (strtol integers, strtod seconds, booleans, lists, case-insensitive lookups).

use std::time::Duration;

/// Declares a case-insensitive string enum (PgBouncer's `CfLookup`) usable as a setting.
macro_rules! choice_enum {
    ($(#[$meta:meta])* $name:ident default $default:ident {
        $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every accepted name, in canonical spelling.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The canonical spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// Parses a name, case-insensitively.
            pub fn parse(text: &str) -> Option<Self> {
                $(if text.eq_ignore_ascii_case($text) {
                    return Some(Self::$variant);
                })+
                None
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::$default
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::config::keys::SettingValue for $name {
            const KIND: $crate::config::keys::ValueKind =
                $crate::config::keys::ValueKind::Choice(Self::NAMES);

            fn parse_setting(
                raw: Option<&str>,
            ) -> Result<Self, $crate::config::keys::ValueError> {
                raw.map_or(Ok(Self::default()), |raw| {
                    Self::parse(raw).ok_or_else(|| $crate::config::keys::ValueError {
                        expected: format!("one of {}", Self::NAMES.join(", ")),
                    })
                })
            }
        }
    };
}

/// Whether a changed value takes effect on RELOAD / SIGHUP / `SET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// Applied on reload.
    Online,
    /// PgBouncer's `CF_NO_RELOAD` ("changeable = no"): kept until restart, silently.
    Restart,
}

/// How far pooler supports a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Implemented with PgBouncer's meaning.
    Implemented,
    /// Accepted and type-checked but not implemented yet: a non-default value gets a warning.
    Planned,
    /// Tunes a PgBouncer internal (libevent buffers, ...) with no counterpart in pooler:
    /// accepted, a non-default value gets a warning.
    NoEffect,
    /// A pooler extension; PgBouncer itself would reject the key.
    Extension,
}

/// The value syntax of a key, as PgBouncer parses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `strtol(base 0)`: decimal, `0x` hex, leading-`0` octal; partial parses rejected.
    Integer,
    /// An integer where non-zero means on; pooler also accepts on/off, true/false, yes/no.
    Boolean,
    /// Decimal seconds (`strtod`): fractions allowed, no units, negative rejected.
    Seconds,
    /// Free text, taken verbatim.
    Text,
    /// Comma-separated list; items are trimmed and empty items dropped.
    List,
    /// One of the listed names, case-insensitive.
    Choice(&'static [&'static str]),
}

/// One row of the key table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// Key name, case-sensitive.
    pub name: &'static str,
    /// Default as PgBouncer spells it; `None` = unset (NULL).
    pub default: Option<&'static str>,
    /// Value syntax.
    pub kind: ValueKind,
    /// Reload behaviour.
    pub reload: Reload,
    /// Implementation status in pooler.
    pub support: Support,
    /// One-line description.
    pub doc: &'static str,
}

impl KeySpec {
    /// Whether pooler acts on this key (implemented or an extension).
    pub fn is_implemented(&self) -> bool {
        matches!(self.support, Support::Implemented | Support::Extension)
    }
}

/// Why a raw value does not parse; Display is the expectation, e.g. "an integer in 0..=65535".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{expected}")]
pub struct ValueError {
    /// What the value should have looked like.
    pub expected: String,
}

impl ValueError {
    fn expected(text: impl Into<String>) -> Self {
        ValueError {
            expected: text.into(),
        }
    }
}

/// A `[pgbouncer]` value that did not parse, before a file location is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The key.
    pub key: &'static str,
    /// The raw value.
    pub value: String,
    /// What was expected.
    pub error: ValueError,
}

/// A Rust type a `[pgbouncer]` value parses into.
pub trait SettingValue: Sized + Default + PartialEq {
    /// The syntax, for the key table.
    const KIND: ValueKind;
    /// Parses a raw value; `None` (unset) yields the type's "nothing" (0, empty, `None`).
    fn parse_setting(raw: Option<&str>) -> Result<Self, ValueError>;
}

/// Parses like C `strtol(text, &end, 0)` and rejects a partial parse: optional blanks and sign,
/// then `0x`/`0X` hex, `0` octal, or decimal. `None` on junk or overflow of `i64`.
pub fn parse_c_integer(text: &str) -> Option<i64> {
    let s = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, unsigned) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (radix, digits) = if let Some(hex) = unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    {
        (16, hex)
    } else if unsigned.len() > 1 && unsigned.starts_with('0') {
        (8, unsigned.get(1..).unwrap_or(""))
    } else {
        (10, unsigned)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from(u64::from_str_radix(digits, radix).ok()?);
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// Parses decimal seconds like PgBouncer's `cf_set_time_usec`: fractions and exponents allowed,
/// negative, NaN and infinite rejected, truncated to whole microseconds.
pub fn parse_seconds(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim_start().parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    // `as` saturates: an absurdly large value becomes u64::MAX microseconds, not a panic.
    Some(Duration::from_micros((seconds * 1e6) as u64))
}

/// Parses a boolean: any C integer (non-zero = on, as PgBouncer) or, as a pooler extension,
/// `on`/`off`, `true`/`false`, `yes`/`no` in any case.
pub fn parse_bool(text: &str) -> Option<bool> {
    if let Some(number) = parse_c_integer(text) {
        return Some(number != 0);
    }
    match text.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Some(true),
        "off" | "false" | "no" => Some(false),
        _ => None,
    }
}

macro_rules! integer_setting {
    ($($ty:ty),*) => {$(
        impl SettingValue for $ty {
            const KIND: ValueKind = ValueKind::Integer;
            fn parse_setting(raw: Option<&str>) -> Result<Self, ValueError> {
                let Some(raw) = raw else { return Ok(0) };
                parse_c_integer(raw)
                    .and_then(|n| <$ty>::try_from(n).ok())
                    .ok_or_else(|| ValueError::expected(format!(
                        "an integer in {}..={}", <$ty>::MIN, <$ty>::MAX
                    )))
            }
        }
    )*};
}
integer_setting!(u16, u32, u64, usize);

impl SettingValue for bool {
    const KIND: ValueKind = ValueKind::Boolean;
    fn parse_setting(raw: Option<&str>) -> Result<Self, ValueError> {
        raw.map_or(Ok(false), |raw| {
            parse_bool(raw).ok_or_else(|| ValueError::expected("0 or 1 (or on/off, true/false)"))
        })
    }
}

impl SettingValue for Duration {
    const KIND: ValueKind = ValueKind::Seconds;
    fn parse_setting(raw: Option<&str>) -> Result<Self, ValueError> {
        raw.map_or(Ok(Duration::ZERO), |raw| {
            parse_seconds(raw)
                .ok_or_else(|| ValueError::expected("a non-negative number of seconds"))
        })
    }
}

impl SettingValue for String {
    const KIND: ValueKind = ValueKind::Text;
    fn parse_setting(raw: Option<&str>) -> Result<Self, ValueError> {
        Ok(raw.unwrap_or_default().to_owned())
    }
}

/// Unset and empty are both `None`: PgBouncer treats an empty optional string as absent.
impl SettingValue for Option<String> {
    const KIND: ValueKind = ValueKind::Text;
    fn parse_setting(raw: Option<&str>) -> Result<Self, ValueError> {
        Ok(raw.filter(|s| !s.is_empty()).map(str::to_owned))
    }
}

impl SettingValue for Vec<String> {
    const KIND: ValueKind = ValueKind::List;
    fn parse_setting(raw: Option<&str>) -> Result<Self, ValueError> {
        Ok(split_list(raw.unwrap_or_default()))
    }
}

/// Splits a comma-separated list, trimming items and dropping empty ones.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}
