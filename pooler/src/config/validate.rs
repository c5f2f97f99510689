//! Cross-field validation of a loaded config: errors and advice with file:line.

use super::*;

impl Config {
    fn error(&self, origin: &str, kind: ConfigErrorKind) -> ConfigError {
        match self.origins.get(origin) {
            Some(at) => ConfigError::at(at, kind),
            None => ConfigError::new(self.source.clone(), None, kind),
        }
    }

    fn advice(&self, origin: &str, message: String) -> ConfigWarning {
        let kind = ConfigWarningKind::Advice { message };
        match self.origins.get(origin) {
            Some(at) => ConfigWarning::new(at.file.clone(), Some(at.line), kind),
            None => ConfigWarning::new(self.source.clone(), None, kind),
        }
    }

    /// Cross-field rules. Errors: unsupported auth_type or TLS mode, no source of user secrets,
    /// nothing to listen on, bad `metrics_addr`/`peer_id`. Warnings: settings PgBouncer
    /// accepts but that do not do what they seem to.
    pub fn validate(&self) -> Result<Vec<ConfigWarning>, Vec<ConfigError>> {
        let g = &self.general;
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        if !g.auth_type.is_supported() {
            let what = format!("auth_type = {}", g.auth_type);
            errors.push(self.error("pgbouncer/auth_type", ConfigErrorKind::Unsupported { what }));
        }
        for (key, mode) in [
            ("client_tls_sslmode", g.client_tls_sslmode),
            ("server_tls_sslmode", g.server_tls_sslmode),
        ] {
            // Accepting these without TLS would silently downgrade security.
            if mode.requires_tls() {
                let kind = ConfigErrorKind::Unsupported {
                    what: format!("{key} = {mode}"),
                };
                errors.push(self.error(&format!("pgbouncer/{key}"), kind));
            }
        }
        let has_secret_source = g.auth_file.is_some()
            || g.auth_user.is_some()
            || !self.static_users.is_empty()
            || self.databases.values().any(|db| db.auth_user.is_some());
        if !has_secret_source {
            let message = format!(
                "auth_type = {} needs auth_file (or auth_user with auth_query) to know users",
                g.auth_type
            );
            match g.auth_type {
                AuthType::Plain | AuthType::Md5 | AuthType::ScramSha256 => {
                    let kind = ConfigErrorKind::Invalid { message };
                    errors.push(self.error("pgbouncer/auth_type", kind));
                }
                AuthType::Trust => warnings.push(self.advice("pgbouncer/auth_type", message)),
                _ => {}
            }
        }
        if g.listen_addr.is_empty() && g.unix_socket_dir.is_empty() {
            let message = "nothing to listen on: listen_addr and unix_socket_dir are both empty";
            let kind = ConfigErrorKind::Invalid {
                message: message.to_owned(),
            };
            errors.push(self.error("pgbouncer/listen_addr", kind));
        }
        if g.peer_id > 16383 {
            let kind = invalid_value("peer_id", &g.peer_id.to_string(), "0..=16383");
            errors.push(self.error("pgbouncer/peer_id", kind));
        }
        if let Some(addr) = &g.metrics_addr
            && !is_host_port(addr)
        {
            let kind = invalid_value("metrics_addr", addr, "host:port");
            errors.push(self.error("pgbouncer/metrics_addr", kind));
        }
        self.advise(&mut warnings);
        if errors.is_empty() {
            Ok(warnings)
        } else {
            Err(errors)
        }
    }

    fn advise(&self, warnings: &mut Vec<ConfigWarning>) {
        let g = &self.general;
        if g.reserve_pool_size > 0 && g.reserve_pool_timeout.is_zero() {
            let message = "reserve_pool_size is set but reserve_pool_timeout = 0: the reserve pool is never used";
            warnings.push(self.advice("pgbouncer/reserve_pool_timeout", message.to_owned()));
        }
        if g.default_pool_size > 0 && g.min_pool_size > g.default_pool_size {
            let message = "min_pool_size is larger than default_pool_size";
            warnings.push(self.advice("pgbouncer/min_pool_size", message.to_owned()));
        }
        for db in self.databases.values().chain(&self.fallback_database) {
            let origin = format!("databases/{}", db.name);
            if g.auth_type == AuthType::Any && db.user.is_none() {
                let message = format!(
                    "auth_type = any but database \"{}\" forces no user=: clients log into the server with their own name and no password",
                    db.name
                );
                warnings.push(self.advice(&origin, message));
            }
            if db.routing.read_write_split && db.hosts.len() < 2 {
                let message = format!(
                    "read_write_split is on for database \"{}\" but host= lists fewer than 2 hosts",
                    db.name
                );
                warnings.push(self.advice(&origin, message));
            }
        }
    }
}

fn invalid_value(key: &str, value: &str, expected: &str) -> ConfigErrorKind {
    ConfigErrorKind::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

/// Whether `text` is `host:port` or `[v6]:port` with a non-empty host and a port 1..=65535.
fn is_host_port(text: &str) -> bool {
    text.rsplit_once(':').is_some_and(|(host, port)| {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port != 0)
    })
}
