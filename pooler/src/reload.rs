//! RELOAD from the console (and SIGHUP in library use): re-read the config file the
//! running config came from and the auth_file, keep restart-only settings, swap them in.
//! A file that does not load leaves the running config untouched.

use crate::cluster::Pooler;
use crate::config::{self, ConfigError, SIDECAR_SOURCE};

/// Why a reload was refused; the running config stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config file has errors.
    #[error("config file loading failed: {}", first_error(.0))]
    Config(Vec<ConfigError>),
    /// The auth_file could not be read.
    #[error("auth file loading failed: {0}")]
    AuthFile(ConfigError),
}

fn first_error(errors: &[ConfigError]) -> String {
    errors
        .first()
        .map_or_else(|| "unknown error".to_owned(), ToString::to_string)
}

/// Reloads `pooler` from its config's source file. A sidecar config (built from a
/// database URL) has no file: the current config is kept and the auth_file, if any, is
/// re-read.
pub fn reload_from_source(pooler: &Pooler) -> Result<(), ReloadError> {
    let running = pooler.config();
    let mut config = if running.source == std::path::Path::new(SIDECAR_SOURCE) {
        config::Config::clone(&running)
    } else {
        let loaded = config::load(&running.source).map_err(ReloadError::Config)?;
        for warning in &loaded.warnings {
            tracing::warn!("{warning}");
        }
        let mut config = loaded.config;
        config.static_users = running.static_users.clone();
        for key in config.retain_restart_settings(&running) {
            tracing::warn!("{key} changes only at restart");
        }
        config
    };
    let secrets = match config.auth_file_path() {
        Some(path) => {
            let (secrets, warnings) =
                config::load_auth_file(&path).map_err(ReloadError::AuthFile)?;
            for warning in warnings {
                tracing::warn!("{warning}");
            }
            secrets
        }
        None => config::UserSecrets::new(),
    };
    config.general.conffile = Some(config.source.display().to_string());
    pooler.reload(config, secrets);
    tracing::info!("configuration reloaded");
    Ok(())
}
