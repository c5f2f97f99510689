//! Real-server test harness: PostgreSQL, Redis and Sentinel processes on free ports.
//!
//! Everything here starts real processes from the installed binaries (no mocks), each in
//! its own temporary directory and on ports chosen at run time, so tests in different
//! threads and binaries never share a server and never reach the system PostgreSQL (5432)
//! or Redis (6379).
//!
//! # Quick tour
//!
//! ```no_run
//! use integration_tests::{AuthMethod, PgCluster, PgOptions, PgUser, RedisOptions, RedisSet};
//!
//! # fn main() -> anyhow::Result<()> {
//! let pg = PgCluster::start(PgOptions {
//!     replicas: 1,
//!     users: vec![PgUser::new("alice", "secret", AuthMethod::ScramSha256)],
//!     ..PgOptions::default()
//! })?;
//! pg.primary().psql("CREATE TABLE t (id int)")?;
//! pg.wait_for_replication()?;
//! let url = pg.primary().url("alice", Some("secret"), "postgres");
//!
//! let redis = RedisSet::start(RedisOptions::default())?; // master + 1 replica + 3 sentinels
//! let old = redis.master_addr()?;
//! redis.failover()?;
//! let new = redis.wait_for_switch_master(old, std::time::Duration::from_secs(30))?;
//! # let _ = (url, new); Ok(()) }
//! ```
//!
//! # Using it from `#[tokio::test]`
//!
//! The API is blocking. Constructors have `start_async` variants; for other slow calls
//! (stop, promote, waits) use `#[tokio::test(flavor = "multi_thread")]` and wrap them in
//! `tokio::task::block_in_place(|| ...)`, or move a cloned node handle ([`PgNode`] and
//! [`RedisServer`] are cheap `Clone` handles) into `tokio::task::spawn_blocking`.
//!
//! # Process lifetime
//!
//! Servers are stopped when their [`PgCluster`] / [`RedisSet`] is dropped, whatever
//! handle clones remain. If the test process dies without running destructors (Ctrl-C,
//! a CI timeout), the kernel SIGKILLs the servers too: they are started through
//! `setpriv --pdeathsig KILL` from one long-lived spawner thread (see
//! [`process::server_command`]). Only the temporary directory is then left behind.
//!
//! # Failures and logs
//!
//! Every process writes stdout and stderr to a `*.log` file in its temporary directory.
//! When a [`PgCluster`] or [`RedisSet`] is dropped while the test is panicking, the directory
//! is kept and its path plus the last lines of every log are printed to stderr.
//!
//! # Environment variables
//!
//! - `HARNESS_KEEP_DIRS=1`: keep temporary directories even when tests pass.
//! - `HARNESS_TIMEOUT_SCALE=<float>`: multiply every wait timeout (slow CI machines).
//! - `HARNESS_PG_BINDIR=<dir>`: PostgreSQL binaries to use instead of the newest
//!   `/usr/lib/postgresql/*/bin` (or `pg_config --bindir`).
//! - `HARNESS_REDIS_BINDIR=<dir>`: directory holding `redis-server` and `redis-cli`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod faults;
pub mod pg_node;
mod pg_setup;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod redis_server;
pub mod sentinel;
pub mod test_dir;
mod url;
pub mod wait;

pub use faults::TcpProxy;
pub use pg_node::PgNode;
pub use pg_setup::{pg_bindir, pg_tool};
pub use postgres::{AuthMethod, PasswordEncryption, PgCluster, PgOptions, PgUser};
pub use process::{ChildProcess, RunAs};
pub use redis_server::{RedisServer, redis_tool};
pub use sentinel::{RedisOptions, RedisSet};
pub use test_dir::TestDir;

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_can_cross_threads() {
        assert_send_sync::<crate::PgCluster>();
        assert_send_sync::<crate::PgNode>();
        assert_send_sync::<crate::RedisSet>();
        assert_send_sync::<crate::RedisServer>();
        assert_send_sync::<crate::TcpProxy>();
    }
}
