//! The shutdown deadline that holds whatever the runtime is doing: a plain thread that
//! notices SIGTERM/SIGINT (or a SHUTDOWN from the console) by itself and ends the
//! process once the graceful shutdown has had its time, even if every runtime worker
//! were stuck.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Added to `shutdown_timeout` before the watchdog steps in: the orderly path (drain,
/// then the runtime's own shutdown) normally ends the process first.
pub const MARGIN: Duration = Duration::from_secs(5);

/// How often the watchdog thread looks at the flag.
const TICK: Duration = Duration::from_millis(100);

/// Handle to the watchdog thread.
#[derive(Debug, Clone)]
pub struct ShutdownWatchdog {
    requested: Arc<AtomicBool>,
    limit_ms: Arc<AtomicU64>,
}

impl ShutdownWatchdog {
    /// Starts the thread; after SIGTERM or SIGINT (or [`ShutdownWatchdog::request`]) the
    /// process exits with status 1 once `limit` plus [`MARGIN`] has passed.
    pub fn start(limit: Duration) -> std::io::Result<Self> {
        let watchdog = Self {
            requested: Arc::new(AtomicBool::new(false)),
            limit_ms: Arc::new(AtomicU64::new(0)),
        };
        watchdog.set_limit(limit);
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(signal, Arc::clone(&watchdog.requested))?;
        }
        let thread = watchdog.clone();
        std::thread::Builder::new()
            .name("shutdown-watchdog".into())
            .spawn(move || thread.watch())?;
        Ok(watchdog)
    }

    /// A shutdown began for another reason (the console's SHUTDOWN).
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Changes the time a shutdown may take (RELOAD of `shutdown_timeout`, SHUTDOWN's
    /// immediate mode).
    pub fn set_limit(&self, limit: Duration) {
        let with_margin = limit.saturating_add(MARGIN).as_millis();
        self.limit_ms.store(
            u64::try_from(with_margin).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    fn watch(&self) {
        let mut since: Option<Instant> = None;
        loop {
            std::thread::sleep(TICK);
            if !self.requested.load(Ordering::SeqCst) {
                continue;
            }
            let started = *since.get_or_insert_with(Instant::now);
            let limit = Duration::from_millis(self.limit_ms.load(Ordering::SeqCst));
            if started.elapsed() >= limit {
                // Not through tracing: its writer may be what is stuck.
                eprintln!(
                    "pooler: shutdown did not finish within {}s; exiting",
                    limit.as_secs()
                );
                std::process::exit(1);
            }
        }
    }
}
