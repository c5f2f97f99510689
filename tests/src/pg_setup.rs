//! PostgreSQL installation lookup and cluster setup steps: initdb, configuration and
//! pg_hba.conf text, roles, base backups.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::postgres::{AuthMethod, PasswordEncryption, PgOptions};
use crate::process::{RunAs, run_command};

/// Timeout for setup commands (initdb, pg_basebackup).
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

/// The directory holding the PostgreSQL server binaries: `HARNESS_PG_BINDIR`, else the
/// newest `/usr/lib/postgresql/<major>/bin`, else `pg_config --bindir`. Cached.
pub fn pg_bindir() -> anyhow::Result<PathBuf> {
    static BINDIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINDIR
        .get_or_init(|| find_bindir().map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(|error| anyhow!(error))
}

fn find_bindir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("HARNESS_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    versioned.sort();
    if let Some((_, bin)) = versioned.pop() {
        return Ok(bin);
    }
    let output = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .context("no /usr/lib/postgresql/*/bin and pg_config is not runnable")?;
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !dir.join("initdb").is_file() {
        bail!("no initdb in {} (from pg_config --bindir)", dir.display());
    }
    Ok(dir)
}

/// Full path of a PostgreSQL program (`psql`, `pgbench`, `pg_ctl`…) from [`pg_bindir`].
pub fn pg_tool(name: &str) -> anyhow::Result<PathBuf> {
    let path = pg_bindir()?.join(name);
    if !path.is_file() {
        bail!("{} does not exist", path.display());
    }
    Ok(path)
}

/// A command for a PostgreSQL program with a clean environment: no inherited `PG*`
/// variable (PGHOST, PGPORT, PGPASSWORD, PGSERVICE… could point it at the system
/// server), C messages, a connect timeout, and a working directory the server user can
/// read. `run_as` switches user (see [`RunAs`]).
pub(crate) fn pg_command(tool: &str, run_as: RunAs, cwd: &Path) -> anyhow::Result<Command> {
    let mut command = Command::new(pg_tool(tool)?);
    prepare_pg_command(&mut command, run_as, cwd);
    Ok(command)
}

/// Applies the clean environment of [`pg_command`] to an existing command (used for the
/// postmaster, which is built with [`crate::process::server_command`]).
pub(crate) fn prepare_pg_command(command: &mut Command, run_as: RunAs, cwd: &Path) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            command.env_remove(&key);
        }
    }
    command
        .env("LC_ALL", "C")
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGAPPNAME", "integration-tests-harness")
        .current_dir(cwd);
    run_as.apply(command);
}

/// `initdb` a new data directory with the `postgres` superuser and trust auth (the
/// harness overwrites pg_hba.conf right after).
pub(crate) fn initdb(data_dir: &Path, run_as: RunAs, cwd: &Path) -> anyhow::Result<()> {
    let mut command = pg_command("initdb", run_as, cwd)?;
    command.arg("-D").arg(data_dir).args([
        "-U",
        "postgres",
        "-A",
        "trust",
        "--no-locale",
        "-E",
        "UTF8",
        "--no-sync",
    ]);
    run_command(command, SETUP_TIMEOUT).context("initdb")?;
    Ok(())
}

/// `pg_basebackup` from the primary on `primary_port` into `data_dir`, writing
/// `standby.signal` and `primary_conninfo` (with `application_name`).
pub(crate) fn base_backup(
    primary_port: u16,
    data_dir: &Path,
    application_name: &str,
    run_as: RunAs,
    cwd: &Path,
) -> anyhow::Result<()> {
    let mut command = pg_command("pg_basebackup", run_as, cwd)?;
    let conninfo = format!(
        "host=127.0.0.1 port={primary_port} user=postgres application_name={application_name}"
    );
    command
        .arg("-d")
        .arg(conninfo)
        .arg("-D")
        .arg(data_dir)
        .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"]);
    run_command(command, SETUP_TIMEOUT).context("pg_basebackup")?;
    Ok(())
}

/// Quotes an SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal (standard_conforming_strings is on).
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn encryption_name(encryption: PasswordEncryption) -> &'static str {
    match encryption {
        PasswordEncryption::Md5 => "md5",
        PasswordEncryption::ScramSha256 => "scram-sha-256",
    }
}

fn hba_method(method: AuthMethod) -> &'static str {
    match method {
        AuthMethod::Trust => "trust",
        AuthMethod::Md5 => "md5",
        AuthMethod::ScramSha256 => "scram-sha-256",
    }
}

/// Settings appended to postgresql.conf: fast and unsafe (no fsync), replication
/// ready, listening on 127.0.0.1 only; `extra_conf` comes last so it wins.
pub(crate) fn server_conf(options: &PgOptions) -> String {
    let wal_senders = 10 + 2 * options.replicas;
    let mut settings: Vec<(String, String)> = [
        ("listen_addresses", "127.0.0.1".to_owned()),
        ("max_connections", options.max_connections.to_string()),
        ("shared_buffers", "16MB".to_owned()),
        ("huge_pages", "off".to_owned()),
        ("fsync", "off".to_owned()),
        ("synchronous_commit", "off".to_owned()),
        ("full_page_writes", "off".to_owned()),
        ("wal_level", "replica".to_owned()),
        ("max_wal_senders", wal_senders.to_string()),
        ("max_replication_slots", "10".to_owned()),
        ("wal_keep_size", "128MB".to_owned()),
        ("hot_standby", "on".to_owned()),
        ("hot_standby_feedback", "on".to_owned()),
        ("wal_receiver_status_interval", "1s".to_owned()),
        ("wal_retrieve_retry_interval", "500ms".to_owned()),
        (
            "password_encryption",
            encryption_name(options.password_encryption).to_owned(),
        ),
        ("unix_socket_permissions", "0777".to_owned()),
        ("logging_collector", "off".to_owned()),
        ("log_destination", "stderr".to_owned()),
        ("log_line_prefix", "%m [%p] %q%u@%d/%a ".to_owned()),
        ("log_connections", "on".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    settings.extend(options.extra_conf.iter().cloned());
    let mut text = String::from("\n# --- integration-tests harness ---\n");
    for (key, value) in settings {
        text.push_str(&format!("{key} = {}\n", quote_literal(&value)));
    }
    text
}

/// The whole pg_hba.conf: `postgres` and replication trusted, then one `local` and one
/// `host 127.0.0.1/32` line per user with exactly its method, then `hba_extra`.
/// First match wins, so a user cannot log in with any other method.
pub(crate) fn hba_conf(options: &PgOptions) -> String {
    let mut text = String::from(
        "# generated by the integration-tests harness; first match wins\n\
         local all         postgres              trust\n\
         host  all         postgres 127.0.0.1/32 trust\n\
         local replication all                   trust\n\
         host  replication all      127.0.0.1/32 trust\n",
    );
    for user in &options.users {
        let name = format!("\"{}\"", user.name);
        let method = hba_method(user.method);
        text.push_str(&format!("local all         {name} {method}\n"));
        text.push_str(&format!("host  all         {name} 127.0.0.1/32 {method}\n"));
    }
    for line in &options.hba_extra {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Statements run in `template1` and `postgres` so every role can use schema `public`
/// and the tables, sequences and functions `postgres` creates there (PG 15 no longer
/// grants CREATE on public by default). Databases created later copy template1.
pub(crate) fn public_schema_grants() -> Vec<String> {
    vec![
        "GRANT ALL ON SCHEMA public TO PUBLIC".to_owned(),
        "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public \
         GRANT ALL ON TABLES TO PUBLIC"
            .to_owned(),
        "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public \
         GRANT ALL ON SEQUENCES TO PUBLIC"
            .to_owned(),
    ]
}

/// One statement per user: hash the password the way its method needs (md5 auth only
/// works against an md5 hash), then create the login role.
pub(crate) fn create_role_statements(options: &PgOptions) -> Vec<String> {
    options
        .users
        .iter()
        .map(|user| {
            let encryption = match user.method {
                AuthMethod::Md5 => PasswordEncryption::Md5,
                AuthMethod::ScramSha256 => PasswordEncryption::ScramSha256,
                AuthMethod::Trust => options.password_encryption,
            };
            let superuser = if user.superuser { " SUPERUSER" } else { "" };
            format!(
                "SET password_encryption = {}; CREATE ROLE {} LOGIN{superuser} PASSWORD {}",
                quote_literal(encryption_name(encryption)),
                quote_ident(&user.name),
                quote_literal(&user.password),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{create_role_statements, hba_conf, quote_ident, quote_literal, server_conf};
    use crate::postgres::{AuthMethod, PgOptions, PgUser};

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn hba_gives_each_user_exactly_its_method() {
        let options = PgOptions {
            users: vec![
                PgUser::new("m", "pw", AuthMethod::Md5),
                PgUser::new("s", "pw", AuthMethod::ScramSha256),
            ],
            hba_extra: vec!["host all all 127.0.0.1/32 reject".to_owned()],
            ..PgOptions::default()
        };
        let hba = hba_conf(&options);
        assert!(hba.contains("host  all         \"m\" 127.0.0.1/32 md5\n"));
        assert!(hba.contains("local all         \"s\" scram-sha-256\n"));
        assert!(hba.ends_with("reject\n"));
        let roles = create_role_statements(&options);
        assert!(roles[0].starts_with("SET password_encryption = 'md5'; CREATE ROLE \"m\""));
        assert!(roles[1].contains("'scram-sha-256'"));
    }

    #[test]
    fn extra_conf_comes_last() {
        let options = PgOptions {
            extra_conf: vec![("max_connections".to_owned(), "500".to_owned())],
            ..PgOptions::default()
        };
        let conf = server_conf(&options);
        assert!(conf.trim_end().ends_with("max_connections = '500'"));
        assert!(conf.contains("listen_addresses = '127.0.0.1'"));
    }
}
