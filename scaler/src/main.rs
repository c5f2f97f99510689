//! The `scaler` binary: command line, logging, signals (SIGHUP reloads, SIGTERM/SIGINT stop).
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::Parser;
use scaler::config::Config;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Scales application instances from the pooler's and cacheproxy's pool metrics.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML config file (see deploy/config/scaler.example.toml).
    #[arg(short, long, env = "SCALER_CONFIG")]
    config: PathBuf,
    /// Only validate the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Run one tick, print the decision as JSON and exit (cron, debugging).
    #[arg(long)]
    once: bool,
    /// `/metrics /keda /health /ready` address (overrides `listen`).
    #[arg(long, env = "SCALER_LISTEN")]
    listen: Option<String>,
    /// Log format.
    #[arg(long, env = "SCALER_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(&cli.config)
        .map_err(|error| anyhow::anyhow!("{}: {error}", cli.config.display()))?;
    let mut config = Config::from_toml(&text, &cli.config.display().to_string())?;
    config.apply_seed_env(|name| std::env::var(name).ok())?;
    if let Some(listen) = &cli.listen {
        config.listen = Some(listen.clone());
    }
    config
        .validate()
        .map_err(|error| anyhow::anyhow!("{}: {error}", cli.config.display()))?;
    Ok(config)
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("scaler: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    let config = load(&cli)?;
    if cli.check {
        println!("{}: OK", cli.config.display());
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        if cli.once {
            let report = scaler::Scaler::new(config).tick().await;
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }
        let shutdown = CancellationToken::new();
        let (reload_tx, reload_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = hangup.recv() => match load(&cli) {
                        Ok(config) => { let _ = reload_tx.send(config); }
                        Err(error) => tracing::error!("reload refused, keeping the running configuration: {error}"),
                    },
                    _ = terminate.recv() => { stopper.cancel(); return; }
                    _ = tokio::signal::ctrl_c() => { stopper.cancel(); return; }
                }
            }
        });
        scaler::run(config, reload_rx, shutdown).await
    })
}
