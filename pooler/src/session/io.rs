//! Socket readiness and byte moves of a session: waiting for the client while no server
//! is linked, relaying both ways while one is, and counting every byte moved so the
//! serve loop can prove that each of its steps made progress or waited.

use std::time::Instant;

use protocol::pg::{FrontendTag, peek_header};
use tokio::io::{Interest, Ready};

use super::{BACKPRESSURE_BYTES, ClientSession, SessionError, sleep_until};

impl ClientSession {
    /// No server linked: wait for the client's next message (or for room to write what
    /// the pooler answered itself).
    pub(super) async fn idle_step(&mut self) -> Result<(), SessionError> {
        self.free_idle_buffers();
        let idle_deadline = self
            .settings
            .client_idle_timeout
            .map(|t| self.last_client_activity + t);
        let wanted = crate::net::interest(true, !self.client_out.is_empty());
        let ready = tokio::select! {
            biased;
            () = self.shutdown.cancelled() => return Err(SessionError::Shutdown),
            () = self.registration.killed() => return Err(self.killed_error()),
            r = self.client.ready(wanted.unwrap_or(Interest::READABLE)) => r.map_err(SessionError::ClientIo)?,
            () = sleep_until(idle_deadline), if idle_deadline.is_some() => {
                return Err(SessionError::Fatal("client_idle_timeout"));
            }
        };
        self.on_client_ready(ready)
    }

    /// An idle client holds no buffer memory: thousands of idle clients cost little. The
    /// next message allocates again (a few KiB from the allocator's thread cache).
    fn free_idle_buffers(&mut self) {
        for buf in [
            &mut self.client_in,
            &mut self.client_out,
            &mut self.server_out,
        ] {
            if buf.is_empty() && buf.capacity() > 0 {
                *buf = bytes::BytesMut::new();
            }
        }
    }

    /// Moves bytes to and from the client socket after a readiness event.
    fn on_client_ready(&mut self, ready: Ready) -> Result<(), SessionError> {
        if ready.is_writable() {
            self.write_client()?;
        }
        if ready.is_readable() || ready.is_read_closed() {
            let read = self
                .client
                .try_read_into_sized(&mut self.client_in, crate::net::CLIENT_READ_CHUNK);
            match read {
                Ok(None) => {}
                Ok(Some(n)) => self.on_client_read(Ok(n))?,
                Err(e) => self.on_client_read(Err(e))?,
            }
        }
        Ok(())
    }

    /// Accounts for a read from the client socket; end of file ends the session.
    pub(super) fn on_client_read(
        &mut self,
        read: std::io::Result<usize>,
    ) -> Result<(), SessionError> {
        match read {
            Ok(0) => Err(SessionError::ClientClosed),
            Ok(n) => {
                self.progress += n as u64;
                self.last_client_activity = Instant::now();
                self.registration.on_request(self.last_client_activity);
                crate::stats::PoolStats::add(&self.pool.stats().bytes_received, n as u64);
                Ok(())
            }
            Err(e) => Err(SessionError::ClientIo(e)),
        }
    }

    /// Writes what the client socket takes now of `client_out`.
    pub(super) fn write_client(&mut self) -> Result<(), SessionError> {
        let before = self.client_out.len();
        if before > 0 {
            self.client
                .try_write_buf(&mut self.client_out)
                .map_err(SessionError::ClientIo)?;
            self.progress += (before - self.client_out.len()) as u64;
        }
        Ok(())
    }

    /// Writes what the server socket takes now of `server_out`.
    fn write_server(&mut self) -> Result<(), SessionError> {
        let before = self.server_out.len();
        let Some(server) = self.server.as_deref_mut() else {
            return Ok(());
        };
        if before > 0 {
            server
                .stream
                .try_write_buf(&mut self.server_out)
                .map_err(SessionError::ServerClosed)?;
            let written = before - self.server_out.len();
            if written > 0 {
                self.progress += written as u64;
                self.last_request_at = Instant::now();
            }
        }
        Ok(())
    }

    /// One round of relaying while a server is linked: forwards what the client sent,
    /// writes what is queued, and returns at once when the server can be released;
    /// otherwise waits for one of the sockets, a deadline or a kill.
    pub(super) async fn active_step(&mut self) -> Result<(), SessionError> {
        self.relay_client_frames()?;
        self.write_server()?;
        self.write_client()?;
        if self.is_releasable() {
            return Ok(()); // the caller releases the server
        }
        // Stop reading the client while the server is slow to take its bytes, or while
        // whole messages wait in `client_in` (a replica runs one transaction at a time);
        // a partial message is always read to its end, whatever its size.
        let is_client_in_full =
            self.client_in.len() >= BACKPRESSURE_BYTES && self.has_complete_frame()?;
        let can_read_client = self.server_out.len() < BACKPRESSURE_BYTES && !is_client_in_full;
        let can_read_server = self.client_out.len() < BACKPRESSURE_BYTES;
        let client_wants = crate::net::interest(can_read_client, !self.client_out.is_empty());
        let server_wants = crate::net::interest(can_read_server, !self.server_out.is_empty());
        let deadline = self.deadline();
        let Some(server) = self.server.as_deref() else {
            return Ok(());
        };
        tokio::select! {
            r = server.stream.ready(server_wants.unwrap_or(Interest::READABLE)), if server_wants.is_some() => {
                let ready = r.map_err(SessionError::ServerClosed)?;
                self.on_server_ready(ready)?;
            }
            r = self.client.ready(client_wants.unwrap_or(Interest::READABLE)), if client_wants.is_some() => {
                let ready = r.map_err(SessionError::ClientIo)?;
                self.on_client_ready(ready)?;
            }
            () = sleep_until(deadline), if deadline.is_some() => return Err(self.timeout_error()),
            () = self.registration.killed() => return Err(self.killed_error()),
        }
        Ok(())
    }

    /// KILL_CLIENT or KILL ended this client: PgBouncer's reason, as FATAL.
    pub(super) fn killed_error(&self) -> SessionError {
        SessionError::Fatal(self.registration.info().kill_reason())
    }

    /// Moves bytes to and from the server socket after a readiness event.
    fn on_server_ready(&mut self, ready: Ready) -> Result<(), SessionError> {
        if ready.is_writable() {
            self.write_server()?;
        }
        if !(ready.is_readable() || ready.is_read_closed()) {
            return Ok(());
        }
        let Some(server) = self.server.as_deref_mut() else {
            return Ok(());
        };
        match server.stream.try_read_into(&mut server.read_buf) {
            Ok(None) => Ok(()),
            Ok(Some(0)) => Err(SessionError::ServerClosed(
                std::io::ErrorKind::UnexpectedEof.into(),
            )),
            Ok(Some(n)) => {
                self.progress += n as u64;
                self.last_server_activity = Instant::now();
                crate::stats::PoolStats::add(&self.pool.stats().bytes_sent, n as u64);
                self.relay_server_frames()?;
                // Most replies fit the socket buffer: send now, not after another trip
                // through the event loop.
                self.write_client()
            }
            Err(e) => Err(SessionError::ServerClosed(e)),
        }
    }

    /// Whether `client_in` starts with a whole message.
    pub(super) fn has_complete_frame(&self) -> Result<bool, SessionError> {
        match peek_header(&self.client_in, self.settings.max_packet_size) {
            Ok(Some(header)) => {
                check_frame_len(header.tag, header.len)?;
                Ok(self.client_in.len() >= header.len)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(SessionError::Protocol(e)),
        }
    }
}

/// PostgreSQL ends a connection whose Sync, Close, Describe, Execute, Flush or copy-end
/// message is longer than its small-message limit; the pooler does the same, with a
/// FATAL that says why, before such a message reaches a server or is answered locally.
pub(super) fn check_frame_len(tag: u8, len: usize) -> Result<(), SessionError> {
    let limit = FrontendTag::from_byte(tag).and_then(FrontendTag::max_frame_len);
    match limit {
        Some(limit) if len > limit => Err(SessionError::protocol("message length")),
        _ => Ok(()),
    }
}
