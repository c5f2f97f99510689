//! The `pooler` binary: PgBouncer's command line, logging, and signals mapped to actions
//! (SIGHUP reload, SIGINT/SIGTERM graceful shutdown, SIGUSR1 pause, SIGUSR2 resume).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use pooler::config::{self, Loaded, PoolMode, SidecarArgs};
use tokio::signal::unix::{SignalKind, signal};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A drop-in PgBouncer replacement: reads pgbouncer.ini and userlist.txt.
#[derive(Debug, Parser)]
#[command(name = "pooler", version, about, long_about = None)]
struct Cli {
    /// pgbouncer.ini to load (not needed with --database-url).
    config: Option<PathBuf>,
    /// Run in the background; needs `pidfile` and `logfile` (as PgBouncer).
    #[arg(short = 'd', long = "daemon")]
    daemon: bool,
    /// Online restart (deprecated in PgBouncer; not supported, use so_reuseport).
    #[arg(short = 'R', long = "reboot", hide = true)]
    reboot: bool,
    /// Switch to this Unix user at startup.
    #[arg(short = 'u', long = "user")]
    user: Option<String>,
    /// Increase verbosity (repeatable).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    verbose: u8,
    /// Do not log to stderr.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Validate the configuration, print every error with file:line, and exit.
    #[arg(long)]
    check: bool,
    /// Sidecar mode without a file: postgres://user:pass@host:port/db
    #[arg(long, env = "POOLER_DATABASE_URL")]
    database_url: Option<String>,
    /// Sidecar mode: address to listen on (HOST:PORT or PORT).
    #[arg(long, env = "POOLER_LISTEN", default_value = "127.0.0.1:6432")]
    listen: String,
    /// Sidecar mode: session, transaction or statement.
    #[arg(long, env = "POOLER_POOL_MODE")]
    pool_mode: Option<String>,
    /// Sidecar mode: server connections per pool.
    #[arg(long, env = "POOLER_POOL_SIZE")]
    pool_size: Option<u32>,
    /// Sidecar mode: serve /metrics, /health, /ready on this HOST:PORT (for the scaler,
    /// Prometheus and probes; off when unset).
    #[arg(long, env = "POOLER_METRICS_ADDR")]
    metrics_addr: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pooler: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(cli: &Cli) -> anyhow::Result<Result<Loaded, Vec<config::ConfigError>>> {
    if let Some(url) = &cli.database_url {
        let mut args = SidecarArgs::new(url.clone(), cli.listen.clone());
        if let Some(mode) = &cli.pool_mode {
            args.pool_mode = Some(
                PoolMode::parse(mode)
                    .context("--pool-mode must be session, transaction or statement")?,
            );
        }
        args.pool_size = cli.pool_size;
        args.metrics_addr = cli.metrics_addr.clone();
        return Ok(config::sidecar_config(&args));
    }
    let path = cli
        .config
        .as_ref()
        .context("no configuration file specified")?;
    Ok(config::load(path).and_then(|loaded| {
        loaded.config.validate().map(|warnings| Loaded {
            warnings: loaded.warnings.into_iter().chain(warnings).collect(),
            config: loaded.config,
        })
    }))
}

fn load_secrets(config: &config::Config) -> anyhow::Result<config::UserSecrets> {
    let Some(path) = config.auth_file_path() else {
        return Ok(Default::default());
    };
    let (secrets, warnings) = config::load_auth_file(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(secrets)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if cli.reboot {
        anyhow::bail!(
            "-R (online restart) is not supported; use so_reuseport for rolling restarts"
        );
    }
    let loaded = match load(&cli)? {
        Ok(loaded) => loaded,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("pooler: {} configuration error(s)", errors.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    if cli.check {
        for w in &loaded.warnings {
            eprintln!("warning: {w}");
        }
        println!("configuration OK");
        return Ok(ExitCode::SUCCESS);
    }
    if cli.daemon {
        daemonize(&loaded.config)?;
    }
    init_logging(&cli, &loaded.config)?;
    let _pidfile = PidFile::create(&loaded.config.general.pidfile)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    if let Some(user) = cli.user.as_ref().or(loaded.config.general.user.as_ref()) {
        switch_user(user)?;
    }
    let workers = match loaded.config.general.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let watchdog =
        pooler::watchdog::ShutdownWatchdog::start(loaded.config.general.shutdown_timeout)
            .context("cannot start the shutdown watchdog")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    let result = runtime.block_on(serve(cli, loaded, watchdog));
    // Tasks still running (clients past the deadline) are dropped, not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    cli: Cli,
    loaded: Loaded,
    watchdog: pooler::watchdog::ShutdownWatchdog,
) -> anyhow::Result<()> {
    let secrets = load_secrets(&loaded.config)?;
    let running = pooler::start(loaded.config, secrets)
        .await
        .context("cannot listen")?;
    for addr in &running.tcp_addrs {
        tracing::info!("listening on {addr}");
    }
    if let Some(path) = &running.unix_path {
        tracing::info!("listening on unix:{}", path.display());
    }
    if let Some(addr) = running.metrics_addr {
        tracing::info!(
            "metrics, health and readiness on http://{addr}/ (/metrics, /health, /ready)"
        );
    }
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let mut console_requests = running.shutdown_requests();
    loop {
        tokio::select! {
            _ = hup.recv() => {
                reload(&cli, &running);
                watchdog.set_limit(running.pooler.config().general.shutdown_timeout);
            }
            _ = usr1.recv() => { tracing::info!("SIGUSR1: pausing"); running.pause() }
            _ = usr2.recv() => { tracing::info!("SIGUSR2: resuming"); running.resume() }
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down after clients finish"); break }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break }
            Ok(()) = console_requests.changed() => {
                match *console_requests.borrow() {
                    Some(pooler::admin::ShutdownMode::Immediate) => {
                        watchdog.set_limit(std::time::Duration::ZERO);
                    }
                    Some(_) => {}
                    None => continue,
                }
                break;
            }
        }
    }
    watchdog.request();
    let grace = match *console_requests.borrow() {
        Some(pooler::admin::ShutdownMode::Immediate) => std::time::Duration::ZERO,
        _ => running.pooler.config().general.shutdown_timeout,
    };
    let shutdown = running.shutdown(grace);
    tokio::pin!(shutdown);
    // A second SIGTERM or SIGINT ends the process at once (PgBouncer: "fast exit").
    tokio::select! {
        () = &mut shutdown => {}
        _ = term.recv() => tracing::info!("got SIGTERM while shutting down, fast exit"),
        _ = int.recv() => tracing::info!("got SIGINT while shutting down, fast exit"),
    }
    Ok(())
}

/// SIGHUP: reload config and auth_file; a bad file keeps the old config running.
fn reload(cli: &Cli, running: &pooler::Running) {
    let loaded = match load(cli) {
        Ok(Ok(loaded)) => loaded,
        Ok(Err(errors)) => {
            for e in errors {
                tracing::error!("config file loading failed: {e}");
            }
            return;
        }
        Err(e) => {
            tracing::error!("config file loading failed: {e:#}");
            return;
        }
    };
    let mut config = loaded.config;
    for key in config.retain_restart_settings(&running.pooler.config()) {
        tracing::warn!("{key} changes only at restart");
    }
    match load_secrets(&config) {
        Ok(secrets) => {
            config.general.conffile = Some(config.source.display().to_string());
            running.pooler.reload(config, secrets);
            tracing::info!("configuration reloaded");
        }
        Err(e) => tracing::error!("auth file loading failed, keeping the old config: {e:#}"),
    }
}

fn init_logging(cli: &Cli, config: &config::Config) -> anyhow::Result<()> {
    use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
    let level = match cli.verbose as u32 + config.general.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("POOLER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let logfile = match config.general.logfile.as_str() {
        "" => None,
        path => Some(std::sync::Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open logfile {path}"))?,
        )),
    };
    let writer = match (cli.quiet, logfile) {
        (true, None) => BoxMakeWriter::new(std::io::sink),
        (true, Some(file)) => BoxMakeWriter::new(file),
        (false, None) => BoxMakeWriter::new(std::io::stderr),
        (false, Some(file)) => BoxMakeWriter::new(std::io::stderr.and(file)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer);
    if config.general.log_format == config::keys::LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

/// Writes `pidfile` and removes it when dropped.
struct PidFile(Option<PathBuf>);

impl PidFile {
    fn create(path: &str) -> anyhow::Result<Self> {
        if path.is_empty() {
            return Ok(Self(None));
        }
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write pidfile {path}"))?;
        Ok(Self(Some(PathBuf::from(path))))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `-d`: detach from the terminal before any thread exists. Like PgBouncer it needs a
/// pidfile and a logfile, since nothing is written to stderr afterwards.
fn daemonize(config: &config::Config) -> anyhow::Result<()> {
    if config.general.pidfile.is_empty() {
        anyhow::bail!("daemon needs pidfile configured");
    }
    if config.general.logfile.is_empty() {
        anyhow::bail!("daemon needs logfile configured");
    }
    // nochdir: relative paths in the config keep working.
    nix::unistd::daemon(true, false).context("cannot daemonize")?;
    Ok(())
}

fn switch_user(name: &str) -> anyhow::Result<()> {
    let user =
        nix::unistd::User::from_name(name)?.with_context(|| format!("no such user: {name}"))?;
    nix::unistd::setgid(user.gid)?;
    nix::unistd::setuid(user.uid)?;
    Ok(())
}
