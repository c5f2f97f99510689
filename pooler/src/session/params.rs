//! Client parameters that must follow a client from server to server: its startup
//! values and what the server reported after the client's own SETs, and the SET query
//! that makes a shared server match them.

use crate::server::ServerParams;

/// Parameters every client carries, with the spelling the server reports them in.
/// `search_path` is not reported by PostgreSQL before 18, so only its startup value is
/// applied (a later `SET search_path` stays on that server until it is reset).
pub const TRACKED: &[&str] = &[
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "IntervalStyle",
    "standard_conforming_strings",
    "application_name",
    "search_path",
];

/// Parameters the server does not report with ParameterStatus.
const NOT_REPORTED: &[&str] = &["search_path"];

/// The canonical spelling of a tracked parameter, matched case-insensitively.
pub fn canonical_name<'a>(name: &str, extra: &'a [String]) -> Option<&'a str>
where
    'static: 'a,
{
    TRACKED
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .find(|t| t.eq_ignore_ascii_case(name))
}

/// What one client expects its server session to look like.
#[derive(Debug, Clone, Default)]
pub struct ClientParams {
    /// (canonical name, value); `None` = the server default (RESET).
    values: Vec<(String, Option<String>)>,
    /// Hash of `values`: clients with equal parameters have equal fingerprints.
    fingerprint: u64,
}

impl ClientParams {
    /// Starts from the pool's default server values overlaid with the client's startup
    /// values (`(canonical name, value)`).
    pub fn new(defaults: &ServerParams, startup: &[(String, String)], extra: &[String]) -> Self {
        let mut values: Vec<(String, Option<String>)> = TRACKED
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
            .map(|name| (name.to_owned(), defaults.get(name).map(str::to_owned)))
            .collect();
        for (name, value) in startup {
            if let Some(slot) = values
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                slot.1 = Some(value.clone());
            }
        }
        let mut params = Self {
            values,
            fingerprint: 0,
        };
        params.refresh_fingerprint();
        params
    }

    fn refresh_fingerprint(&mut self) {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.values.hash(&mut hasher);
        self.fingerprint = hasher.finish();
    }

    /// Equal for clients whose parameters are equal.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The client's value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Every tracked value the client has, for its welcome ParameterStatus messages.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .iter()
            .filter_map(|(n, v)| v.as_deref().map(|v| (n.as_str(), v)))
    }

    /// The server reported a new value while linked to this client (the client ran SET).
    pub fn set_reported(&mut self, name: &str, value: &str) {
        if let Some(slot) = self.values.iter_mut().find(|(n, _)| n == name)
            && slot.1.as_deref() != Some(value)
        {
            slot.1 = Some(value.to_owned());
            self.refresh_fingerprint();
        }
    }

    /// The query that makes `server` match this client, or `None` when it already does.
    /// Case-only differences are ignored, as PgBouncer does. Values of parameters the
    /// server does not report are recorded in `server` as applied.
    pub fn sync_query(&self, server: &mut ServerParams) -> Option<String> {
        let mut query = String::new();
        for (name, wanted) in &self.values {
            let current = server.get(name);
            match wanted {
                Some(value) if !current.is_some_and(|c| c.eq_ignore_ascii_case(value)) => {
                    query.push_str(&format!("SET {name} = {};", quote(value)));
                    if NOT_REPORTED.contains(&name.as_str()) {
                        server.set(name, value);
                    }
                }
                None if current.is_some() && NOT_REPORTED.contains(&name.as_str()) => {
                    query.push_str(&format!("RESET {name};"));
                    server.remove(name);
                }
                _ => {}
            }
        }
        (!query.is_empty()).then_some(query)
    }
}

/// Quotes a parameter value. `search_path` lists keep their own quoting (PgBouncer does
/// not re-quote it): a value that already contains quotes or commas is sent verbatim.
fn quote(value: &str) -> String {
    if value.contains(',') || value.contains('"') {
        return value.to_owned();
    }
    crate::server::quote_literal(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(pairs: &[(&str, &str)]) -> ServerParams {
        let mut p = ServerParams::default();
        for (k, v) in pairs {
            p.set(k, v);
        }
        p
    }

    #[test]
    fn startup_values_override_the_server_defaults() {
        let defaults = server(&[("TimeZone", "UTC"), ("client_encoding", "UTF8")]);
        let client = ClientParams::new(
            &defaults,
            &[("timezone".into(), "Europe/Paris".into())],
            &[],
        );
        assert_eq!(client.get("TimeZone"), Some("Europe/Paris"));
        assert_eq!(client.get("client_encoding"), Some("UTF8"));
    }

    #[test]
    fn only_differences_are_set_and_case_is_ignored() {
        let defaults = server(&[("TimeZone", "UTC"), ("DateStyle", "ISO, MDY")]);
        let client = ClientParams::new(&defaults, &[("DateStyle".into(), "iso, mdy".into())], &[]);
        let mut other = server(&[("TimeZone", "Asia/Tokyo"), ("DateStyle", "ISO, MDY")]);
        assert_eq!(
            client.sync_query(&mut other).unwrap(),
            "SET TimeZone = E'UTC';"
        );
        let mut same = defaults.clone();
        assert_eq!(client.sync_query(&mut same), None);
    }

    #[test]
    fn an_unreported_parameter_is_reset_for_a_client_without_it() {
        let defaults = server(&[]);
        let with = ClientParams::new(&defaults, &[("search_path".into(), "app".into())], &[]);
        let without = ClientParams::new(&defaults, &[], &[]);
        let mut shared = server(&[]);
        assert_eq!(
            with.sync_query(&mut shared).unwrap(),
            "SET search_path = E'app';"
        );
        assert_eq!(
            without.sync_query(&mut shared).unwrap(),
            "RESET search_path;"
        );
        assert_eq!(without.sync_query(&mut shared), None);
    }
}
