//! What the console changed about the whole pooler: PAUSE / SUSPEND mode, paused and
//! disabled databases, and a SHUTDOWN request for the process owner (the binary) to act on.

use std::collections::BTreeSet;

use parking_lot::Mutex;
use tokio::sync::watch;

/// PgBouncer's `cf_pause_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PauseMode {
    /// Serving normally.
    #[default]
    Running,
    /// PAUSE without a database: no server is handed out.
    Paused,
    /// SUSPEND.
    Suspended,
}

/// How the console asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// `SHUTDOWN`: exit now.
    Immediate,
    /// `SHUTDOWN WAIT_FOR_SERVERS` (as SIGINT): stop accepting, let transactions finish.
    WaitForServers,
    /// `SHUTDOWN WAIT_FOR_CLIENTS` (as SIGTERM): stop accepting, let clients leave.
    WaitForClients,
}

#[derive(Debug, Default)]
struct Flags {
    mode: PauseMode,
    paused: BTreeSet<String>,
    disabled: BTreeSet<String>,
}

/// Console-controlled state shared by every session.
#[derive(Debug)]
pub struct ConsoleState {
    flags: Mutex<Flags>,
    shutdown: watch::Sender<Option<ShutdownMode>>,
}

impl Default for ConsoleState {
    fn default() -> Self {
        Self {
            flags: Mutex::new(Flags::default()),
            shutdown: watch::Sender::new(None),
        }
    }
}

impl ConsoleState {
    /// The global mode.
    pub fn mode(&self) -> PauseMode {
        self.flags.lock().mode
    }

    /// Sets the global mode.
    pub fn set_mode(&self, mode: PauseMode) {
        self.flags.lock().mode = mode;
    }

    /// Whether `database` itself was paused (PAUSE db, KILL db).
    pub fn is_database_flagged_paused(&self, database: &str) -> bool {
        self.flags.lock().paused.contains(database)
    }

    /// Whether new transactions of `database` must wait: global PAUSE/SUSPEND or a
    /// paused database.
    pub fn is_database_paused(&self, database: &str) -> bool {
        let flags = self.flags.lock();
        flags.mode != PauseMode::Running || flags.paused.contains(database)
    }

    /// Marks `database` paused or not.
    pub fn set_database_paused(&self, database: &str, is_paused: bool) {
        let mut flags = self.flags.lock();
        if is_paused {
            flags.paused.insert(database.to_owned());
        } else {
            flags.paused.remove(database);
        }
    }

    /// How many databases are paused on their own.
    pub fn paused_database_count(&self) -> usize {
        self.flags.lock().paused.len()
    }

    /// Whether new logins to `database` are refused (DISABLE).
    pub fn is_database_disabled(&self, database: &str) -> bool {
        self.flags.lock().disabled.contains(database)
    }

    /// Marks `database` disabled or not.
    pub fn set_database_disabled(&self, database: &str, is_disabled: bool) {
        let mut flags = self.flags.lock();
        if is_disabled {
            flags.disabled.insert(database.to_owned());
        } else {
            flags.disabled.remove(database);
        }
    }

    /// Records a SHUTDOWN request; the process owner sees it through
    /// [`ConsoleState::shutdown_requests`].
    pub fn request_shutdown(&self, mode: ShutdownMode) {
        self.shutdown.send_replace(Some(mode));
    }

    /// Whether a SHUTDOWN was requested.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.borrow().is_some()
    }

    /// A receiver that changes when the console asks for a shutdown.
    pub fn shutdown_requests(&self) -> watch::Receiver<Option<ShutdownMode>> {
        self.shutdown.subscribe()
    }
}
