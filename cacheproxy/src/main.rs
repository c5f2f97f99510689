//! The `cacheproxy` binary: command line, logging, signals (SIGHUP reload, SIGTERM/SIGINT drain).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use cacheproxy::cli::{Cli, LogFormat};
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.load_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("cacheproxy: {error}");
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!("cacheproxy: configuration OK");
        return ExitCode::SUCCESS;
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => subscriber.init(),
        LogFormat::Json => subscriber.json().init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cacheproxy: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli, config: cacheproxy::Config) -> anyhow::Result<()> {
    let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let running = cacheproxy::start(config).await?;
    loop {
        tokio::select! {
            _ = hangup.recv() => match cli.load_config() {
                Ok(config) => {
                    if let Err(error) = running.reload(config) {
                        error!(%error, "reload refused");
                    }
                }
                Err(error) => error!(%error, "reload failed; keeping the current configuration"),
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    info!("draining clients");
    running.shutdown().await;
    Ok(())
}
