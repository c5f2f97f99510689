//! Linking a client to a server for its next transaction: the route (host groups), pool
//! checkout while watching the client, liveness and health checks of the server handed
//! out, and giving it back afterwards (with the WAL position read-your-writes needs).

use std::time::Instant;

use protocol::pg::{FrontendTag, TransactionStatus, encode};

use super::exchange::{Exchange, Pending};
use super::prepared::parse_name;
use super::routing::{CurrentRoute, SessionRouter, WriteLsn};
use super::{ClientSession, SessionError};
use crate::config::PoolMode;
use crate::pool::{PoolError, PooledServer};
use crate::router::topology::parse_lsn;
use crate::router::{Role, Want};
use crate::server::ServerConnection;

/// How often one transaction may move to another host after failures that reached no
/// client (connect failures, a replica lost before its first reply).
const MAX_REROUTES: u32 = 4;
/// Longest wait for the WAL-position queries of read-your-writes; a server that does
/// not answer in time is closed.
const EXTRA_QUERY_TIMEOUT: std::time::Duration = crate::router::monitor::PROBE_TIMEOUT;

impl ClientSession {
    /// Gets a server for the client's next transaction, watching the client meanwhile.
    pub(super) async fn link_server(&mut self) -> Result<(), SessionError> {
        if self.is_terminate_next() {
            return Err(SessionError::ClientClosed);
        }
        let mut server = match self.router.take() {
            Some(mut router) => {
                let result = self.checkout_routed(&mut router).await;
                self.router = Some(router);
                result?
            }
            None => self.checkout_checked().await?,
        };
        let stats = self.pool.stats();
        crate::stats::PoolStats::add(&stats.server_assignment_count, 1);
        crate::stats::PoolStats::add(&stats.wait_time_us, server.waited.as_micros() as u64);
        stats.wait_histogram.observe(server.waited);
        self.registration.on_link(&server);
        let synced = (self.params.fingerprint(), server.params.version());
        if server.params_synced == Some(synced) {
            // Same parameters as the last client this server matched: nothing to do.
        } else if let Some(sql) = self.params.sync_query(&mut server.params) {
            encode::query(&mut self.server_out, sql.as_bytes()).map_err(SessionError::Protocol)?;
            self.exchange
                .push(Pending::InjectedQuery, &mut self.client_out);
        } else {
            server.params_synced = Some(synced);
        }
        self.cancel.link(&server);
        self.linked_at = Instant::now();
        self.server = Some(server);
        self.arm_retry();
        Ok(())
    }

    /// Picks the host for the next transaction and checks a server out of its pool;
    /// a host that cannot be connected to is reported and another one chosen.
    async fn checkout_routed(
        &mut self,
        router: &mut SessionRouter,
    ) -> Result<PooledServer<ServerConnection>, SessionError> {
        let class = router.classify(
            &self.client_in,
            self.settings.max_packet_size,
            &self.statements,
        );
        let want = router.want(class, self.settings.pool_mode == PoolMode::Session);
        let started = Instant::now();
        for _ in 0..MAX_REROUTES {
            let limit = self
                .settings
                .route_wait_timeout
                .map(|t| t.saturating_sub(started.elapsed()));
            let choice = tokio::select! {
                host = router.choose(want, limit) => host,
                () = self.registration.killed() => return Err(self.killed_error()),
                () = self.shutdown.cancelled() => return Err(SessionError::Shutdown),
            };
            let Some(host) = choice else {
                break;
            };
            let topology = &router.group.topology;
            let role = topology.load().hosts.get(host).map(|h| h.role);
            if let Want::Replica { min_lsn, .. } = want
                && min_lsn > 0
                && role == Some(Role::Primary)
                && let Some((replica, server)) = self.replica_that_replayed(router, min_lsn).await
            {
                router.current = Some(CurrentRoute {
                    is_replica: true,
                    is_write: false,
                    lease: router.group.topology.lease(replica),
                });
                return Ok(server);
            }
            let topology = &router.group.topology;
            self.pool = router.group.hosts[host].pool.clone();
            match self.checkout_checked().await {
                Ok(server) => {
                    router.current = Some(CurrentRoute {
                        is_replica: role == Some(Role::Replica),
                        is_write: class.is_write,
                        lease: topology.lease(host),
                    });
                    return Ok(server);
                }
                Err(SessionError::Pool(PoolError::ServerLogin(f) | PoolError::LoginRetry(f)))
                    if !f.is_server_rejection() =>
                {
                    router.group.report_failure(host);
                }
                Err(e) => return Err(e),
            }
        }
        Err(SessionError::Pool(PoolError::QueryWaitTimeout))
    }

    /// Read-your-writes found no replica known to have replayed `min_lsn`: asks one
    /// (one round trip) before sending the read to the primary.
    async fn replica_that_replayed(
        &mut self,
        router: &SessionRouter,
        min_lsn: u64,
    ) -> Option<(usize, PooledServer<ServerConnection>)> {
        let topology = &router.group.topology;
        let replica = topology.choose(Want::Replica {
            min_lsn: 0,
            fallback: false,
        })?;
        self.pool = router.group.hosts[replica].pool.clone();
        let mut server = self.checkout_checked().await.ok()?;
        let max = self.settings.max_packet_size;
        let lsn = query_lsn(
            &mut server,
            "SELECT pg_catalog.pg_last_wal_replay_lsn()",
            max,
        )
        .await?;
        topology.note_replayed(replica, lsn);
        if lsn >= min_lsn {
            Some((replica, server))
        } else {
            server.checkin();
            None
        }
    }

    /// A server from the current pool that is still connected and passes
    /// `server_check_query` when it is due.
    async fn checkout_checked(&mut self) -> Result<PooledServer<ServerConnection>, SessionError> {
        loop {
            let mut server = self.checkout().await?;
            if is_alive(&mut server) && self.is_healthy(&mut server).await? {
                return Ok(server);
            }
        }
    }

    async fn checkout(&mut self) -> Result<PooledServer<ServerConnection>, SessionError> {
        let waiting = self.pool.checkout();
        if waiting.is_ready() {
            return Ok(waiting.wait().await?);
        }
        let started = Instant::now();
        self.registration.on_wait(started);
        // query_timeout covers the wait too, a slow server login included (as
        // PgBouncer's janitor checks waiting clients against it).
        let deadline = self.settings.query_timeout.map(|t| started + t);
        let wait = waiting.wait();
        tokio::pin!(wait);
        loop {
            // Keep reading (to notice a client that leaves) until a client that
            // pipelines without end has filled its buffer.
            let can_read = self.client_in.len() < super::BACKPRESSURE_BYTES;
            tokio::select! {
                server = &mut wait => return Ok(server?),
                () = self.registration.killed() => return Err(self.killed_error()),
                () = super::sleep_until(deadline), if deadline.is_some() => {
                    return Err(SessionError::Fatal("query_timeout"));
                }
                r = self.client.read_into(&mut self.client_in), if can_read => self.on_client_read(r)?,
            }
        }
    }

    /// `server_check_query` on a server idle longer than `server_check_delay`; a server
    /// that fails it is closed (dropped) and the caller takes another.
    async fn is_healthy(
        &self,
        server: &mut PooledServer<ServerConnection>,
    ) -> Result<bool, SessionError> {
        let Some((delay, query)) = &self.settings.server_check else {
            return Ok(true);
        };
        if server.idle_since().elapsed() < *delay {
            return Ok(true);
        }
        let check = server.simple_query(query, self.settings.max_packet_size);
        Ok(matches!(check.await, Ok(r) if r.status == Some(TransactionStatus::Idle)))
    }

    pub(super) fn is_terminate_next(&self) -> bool {
        self.client_in.first() == Some(&protocol::pg::FrontendTag::Terminate.as_byte())
    }

    /// Gives the server back after a completed transaction. After a write on the
    /// primary it first reads the WAL position this client's reads must wait for.
    pub(super) async fn release(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        self.cancel.unlink();
        self.retry = None;
        let stats = self.pool.stats();
        let is_cancel_done = server
            .cancels
            .wait_finished(crate::cancel::CANCEL_TIMEOUT)
            .await;
        let xact_time = self.linked_at.elapsed();
        crate::stats::PoolStats::add(&stats.xact_time_us, xact_time.as_micros() as u64);
        stats.xact_histogram.observe(xact_time);
        self.registration.on_release(&server, self.statements.len());
        if let Some(router) = self.router.as_mut() {
            let outcome = if router.needs_write_lsn() && !is_cancel_done {
                router.finish_transaction(WriteLsn::Unknown);
                return;
            } else if router.needs_write_lsn() {
                let sql = "SELECT pg_catalog.pg_current_wal_insert_lsn()";
                match query_lsn(&mut server, sql, self.settings.max_packet_size).await {
                    Some(lsn) => WriteLsn::Known(lsn),
                    // The server is not in a state to hand on: close it; this client's
                    // reads stay on the primary for a while instead.
                    None => {
                        router.finish_transaction(WriteLsn::Unknown);
                        return;
                    }
                }
            } else {
                WriteLsn::NotNeeded
            };
            router.finish_transaction(outcome);
        }
        if !is_cancel_done {
            return; // closed: a cancel may still hit whatever runs on it next
        }
        // The pool closes it instead if a RECONNECT or server_lifetime retired it.
        server.checkin();
    }

    /// Reads that went to a replica may be moved to another host if that replica fails
    /// before the client saw any reply: remember the client frames sent meanwhile.
    fn arm_retry(&mut self) {
        let is_replica = self
            .router
            .as_ref()
            .and_then(|r| r.current.as_ref())
            .is_some_and(|c| c.is_replica);
        let reroutes = self.retry.take().map_or(0, |r| r.reroutes);
        self.retry = (is_replica && reroutes < MAX_REROUTES).then(|| super::Retry {
            frames: bytes::BytesMut::new(),
            reroutes,
        });
    }

    /// Whether `error` ended a replica transaction that can run again elsewhere.
    pub(super) fn can_reroute(&self, error: &SessionError) -> bool {
        let is_lost = matches!(
            error,
            SessionError::ServerClosed(_) | SessionError::ServerRetryable(_)
        );
        is_lost
            && self
                .retry
                .as_ref()
                .is_some_and(|r| r.reroutes < MAX_REROUTES)
    }

    /// Drops the failed replica's server, puts the client's frames back so the next
    /// link sends them to another host, and reports the host when the connection
    /// itself was lost (a FATAL or recovery conflict of one backend bans nothing).
    pub(super) fn reroute(&mut self, error: &SessionError) {
        let Some(mut retry) = self.retry.take() else {
            return;
        };
        if let Some(current) = self.router.as_mut().and_then(|r| r.current.take()) {
            if let Some(router) = &self.router
                && matches!(error, SessionError::ServerClosed(_))
            {
                router.group.report_failure(current.lease.host());
            }
            tracing::warn!(
                host = current.lease.host(),
                %error,
                "replica failed before its first reply; moving the transaction"
            );
        }
        self.server = None;
        self.cancel.unlink();
        self.exchange = Exchange::default();
        self.status = TransactionStatus::Idle;
        self.server_out.clear();
        // Named statements those frames create are created again when they are resent.
        let splitter = protocol::pg::FrameSplitter::new(self.settings.max_packet_size);
        let mut frames = retry.frames.clone();
        while let Ok(Some(frame)) = splitter.split(&mut frames) {
            if frame.frontend_tag() == Some(FrontendTag::Parse) {
                let name = parse_name(frame.as_bytes());
                if !name.is_empty() {
                    self.statements.remove(name);
                }
            }
        }
        retry.frames.extend_from_slice(&self.client_in);
        self.client_in = retry.frames;
        self.retry = Some(super::Retry {
            frames: bytes::BytesMut::new(),
            reroutes: retry.reroutes + 1,
        });
    }
}

/// Runs a one-value query that returns a `pg_lsn` (read-your-writes), bounded by
/// [`EXTRA_QUERY_TIMEOUT`]; `None` when it failed, timed out or left the server busy.
async fn query_lsn(
    server: &mut PooledServer<ServerConnection>,
    sql: &str,
    max_packet_size: usize,
) -> Option<u64> {
    let query = server.simple_query(sql, max_packet_size);
    let result = tokio::time::timeout(EXTRA_QUERY_TIMEOUT, query)
        .await
        .ok()?
        .ok()
        .filter(|r| r.status == Some(TransactionStatus::Idle))?;
    let text = result.rows.first()?.first()?.clone()?;
    parse_lsn(&text)
}

/// An idle server that the server closed (shutdown, crash, `pg_terminate_backend`)
/// has an end-of-file or a FATAL ErrorResponse waiting: it must not be handed out.
fn is_alive(server: &mut PooledServer<ServerConnection>) -> bool {
    let connection = &mut **server;
    match connection.stream.try_read_into(&mut connection.read_buf) {
        Ok(None) => true,
        Ok(Some(0)) | Err(_) => false,
        Ok(Some(_)) => connection.read_buf.first() != Some(&b'E'),
    }
}
