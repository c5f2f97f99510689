//! Free TCP ports on 127.0.0.1 and the retry-on-`EADDRINUSE` loop around server starts.
//!
//! A port is found by binding `127.0.0.1:0` and releasing it at once, so another process
//! can take it before our child binds. The harness therefore never trusts a port blindly:
//! every start checks that the child itself bound it (its own pid answers, or its pid
//! file says so) and [`with_free_port`] retries the whole start with a fresh port when
//! the child reports "Address already in use".

use std::collections::HashSet;
use std::fmt;
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, bail};

/// How many fresh ports [`with_free_port`] tries before giving up.
pub const START_ATTEMPTS: usize = 8;

/// Ports of the well-known system servers on this machine; never handed out, even if
/// the kernel's ephemeral range were configured to include them.
const FORBIDDEN_PORTS: [u16; 2] = [5432, 6379];

/// Error marker: the child could not bind its port because something else holds it.
///
/// Return it (wrapped in `anyhow::Error`) from a launch closure to make
/// [`with_free_port`] retry with another port.
#[derive(Debug)]
pub struct AddrInUse {
    /// The port that was already taken.
    pub port: u16,
}

impl fmt::Display for AddrInUse {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "port {} is already in use", self.port)
    }
}

impl std::error::Error for AddrInUse {}

/// Ports already handed out by this process. The kernel may return the same ephemeral
/// port twice in a row once it is released; remembering them keeps two tests of the
/// same binary from racing for one port. (A global is the right tool here: the set
/// must span every cluster and thread of the test process.)
fn issued_ports() -> &'static Mutex<HashSet<u16>> {
    static ISSUED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    ISSUED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Returns a port that was free on 127.0.0.1 a moment ago and that this process has
/// never handed out before. The port is released before returning: bind it soon.
pub fn free_port() -> anyhow::Result<u16> {
    for _ in 0..64 {
        let listener =
            TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0 to find a free port")?;
        let port = listener.local_addr()?.port();
        drop(listener);
        if port < 1024 || FORBIDDEN_PORTS.contains(&port) {
            continue;
        }
        let mut issued = issued_ports()
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if issued.insert(port) {
            return Ok(port);
        }
    }
    bail!("could not find a free port that was not handed out before")
}

/// True when a server log says its listening socket could not be bound
/// (PostgreSQL and Redis both print the `strerror` text).
pub fn log_says_addr_in_use(log_text: &str) -> bool {
    log_text.contains("Address already in use")
}

/// Calls `launch` with fresh free ports until it succeeds, returns an error that is not
/// [`AddrInUse`], or [`START_ATTEMPTS`] ports were tried.
pub fn with_free_port<T>(mut launch: impl FnMut(u16) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let mut attempt = 1;
    loop {
        let port = free_port()?;
        match launch(port) {
            Ok(value) => return Ok(value),
            Err(error) if error.is::<AddrInUse>() && attempt < START_ATTEMPTS => attempt += 1,
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{AddrInUse, free_port, with_free_port};

    #[test]
    fn free_ports_are_unique_and_not_system_ports() {
        let first = free_port().unwrap();
        let second = free_port().unwrap();
        assert_ne!(first, second);
        for port in [first, second] {
            assert!(port != 5432 && port != 6379 && port >= 1024);
        }
    }

    #[test]
    fn retries_only_on_addr_in_use() {
        let mut calls = 0;
        let port = with_free_port(|port| {
            calls += 1;
            if calls < 3 {
                return Err(AddrInUse { port }.into());
            }
            Ok(port)
        })
        .unwrap();
        assert_eq!(calls, 3);
        assert!(port > 0);

        let mut calls = 0;
        let result: anyhow::Result<()> = with_free_port(|_| {
            calls += 1;
            anyhow::bail!("boom")
        });
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }
}
