//! The admin console: the virtual database `pgbouncer`, spoken over the simple query
//! protocol only. A query is parsed ([`parse`]) into a command, run as a SHOW
//! ([`show`], [`sockets`]) or a control command ([`control`]), and answered with
//! PgBouncer's rows, tags and errors ([`rows`]).

pub mod columns;
pub mod control;
pub mod hosts;
mod login;
pub mod parse;
pub mod rows;
pub mod show;
pub mod sockets;
mod state;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use protocol::pg::{FrameSplitter, FrontendMessage, FrontendTag, sqlstate};
use tokio_util::sync::CancellationToken;

pub use login::{ConsoleLogin, endpoints, is_console_login, login};
pub use state::{ConsoleState, PauseMode, ShutdownMode};

use crate::cluster::Pooler;
use crate::config::Config;
use crate::net::Stream;
use crate::registry::ClientInfo;
use parse::{Command, ParseError};
use rows::{AdminError, Reply};

/// Console commands are short; anything bigger is not a console command.
const MAX_CONSOLE_PACKET: usize = 1024 * 1024;

/// What a console user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `admin_users`: every command.
    Admin,
    /// `stats_users`: SHOW only (not SHOW FDS).
    Stats,
}

/// Everything a command needs: the pooler, a config snapshot, who asks, and the query
/// text (for `invalid command` errors).
#[derive(Debug)]
pub struct Context<'a> {
    /// The pooler.
    pub pooler: &'a Arc<Pooler>,
    /// The config at the time of the command.
    pub config: Arc<Config>,
    /// The asking user's rights.
    pub access: Access,
    /// The query as received.
    pub query: &'a str,
    /// The console client itself.
    pub client: &'a Arc<ClientInfo>,
}

impl Context<'_> {
    /// Whether the user is in `admin_users` (or the Unix-socket `pgbouncer` user).
    pub fn is_admin(&self) -> bool {
        self.access == Access::Admin
    }

    /// PgBouncer's answer to anything it does not understand.
    pub fn syntax_error(&self) -> AdminError {
        AdminError::new(format!("invalid command '{}', use SHOW HELP;", self.query))
    }
}

/// Runs one console query.
pub async fn execute(ctx: &Context<'_>) -> Result<Reply, AdminError> {
    match parse::parse(ctx.query) {
        Err(ParseError::Syntax) => Err(ctx.syntax_error()),
        Err(ParseError::BadArguments) => Err(AdminError::new("bad arguments")),
        Ok(Command::Set { key, value }) => control::set(ctx, &key, &value),
        Ok(Command::Word { name, arg }) => {
            let name = name.to_ascii_lowercase();
            match name.as_str() {
                "show" | "select" => show::show(ctx, &arg),
                _ => control::run(ctx, &name, &arg)
                    .await
                    .unwrap_or_else(|| Err(ctx.syntax_error())),
            }
        }
    }
}

/// Why a console session ends.
enum End {
    /// Terminate or EOF.
    Closed,
    /// A FATAL error is sent first.
    Fatal(&'static str, String),
}

/// A logged-in console connection.
pub struct ConsoleSession {
    stream: Stream,
    input: BytesMut,
    pooler: Arc<Pooler>,
    login: ConsoleLogin,
    shutdown: CancellationToken,
    has_suspended: bool,
}

impl ConsoleSession {
    /// A session for a client that logged in; `input` may hold pipelined queries.
    pub fn new(
        stream: Stream,
        input: BytesMut,
        pooler: Arc<Pooler>,
        login: ConsoleLogin,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            stream,
            input,
            pooler,
            login,
            shutdown,
            has_suspended: false,
        }
    }

    /// Serves console queries until the client leaves, is killed or the pooler stops.
    pub async fn run(mut self) {
        let end = self.serve().await;
        if let End::Fatal(code, message) = end {
            let mut out = BytesMut::new();
            crate::session::fatal(&mut out, code, &message);
            let write = self.stream.write_all_buf(&mut out);
            let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
        }
        if self.has_suspended {
            let ctx = self.context("");
            control::resume_after_suspend(&ctx);
        }
    }

    fn context<'a>(&'a self, query: &'a str) -> Context<'a> {
        Context {
            pooler: &self.pooler,
            config: self.pooler.config(),
            access: self.login.access,
            query,
            client: self.login.registration.info(),
        }
    }

    async fn serve(&mut self) -> End {
        let splitter = FrameSplitter::new(MAX_CONSOLE_PACKET);
        loop {
            let frame = match splitter.split(&mut self.input) {
                Ok(frame) => frame,
                Err(e) => return End::Fatal(sqlstate::PROTOCOL_VIOLATION, e.to_string()),
            };
            if let Some(frame) = frame {
                match self.on_frame(&frame).await {
                    Ok(()) => continue,
                    Err(end) => return end,
                }
            }
            let info = Arc::clone(self.login.registration.info());
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    return End::Fatal(sqlstate::ADMIN_SHUTDOWN, "pooler is shutting down".into());
                }
                () = self.login.registration.killed() => {
                    return End::Fatal(sqlstate::PROTOCOL_VIOLATION, info.kill_reason().into());
                }
                read = self.stream.read_into(&mut self.input) => match read {
                    Ok(0) | Err(_) => return End::Closed,
                    Ok(_) => {}
                },
            }
        }
    }

    async fn on_frame(&mut self, frame: &protocol::pg::Frame) -> Result<(), End> {
        let mut out = BytesMut::new();
        let result = match frame.frontend_tag() {
            Some(FrontendTag::Query) => {
                let query = match FrontendMessage::decode(frame) {
                    Ok(FrontendMessage::Query(q)) => String::from_utf8_lossy(q.sql).into_owned(),
                    _ => {
                        return Err(End::Fatal(
                            sqlstate::PROTOCOL_VIOLATION,
                            "incomplete query".into(),
                        ));
                    }
                };
                tracing::debug!("got admin query: {query}");
                self.query(&query, &mut out).await;
                Ok(())
            }
            Some(FrontendTag::Terminate) => Err(End::Closed),
            Some(FrontendTag::Parse | FrontendTag::Bind | FrontendTag::Execute) => {
                let error =
                    AdminError::new("extended query protocol not supported by admin console");
                let _ = rows::encode_error(&mut out, &error);
                Err(End::Closed)
            }
            _ => {
                let error = AdminError::new(format!(
                    "unsupported packet type for admin console: {}",
                    frame.tag()
                ));
                let _ = rows::encode_error(&mut out, &error);
                Err(End::Closed)
            }
        };
        if !out.is_empty() && self.stream.write_all_buf(&mut out).await.is_err() {
            return Err(End::Closed);
        }
        result
    }

    async fn query(&mut self, query: &str, out: &mut BytesMut) {
        let ctx = self.context(query);
        let result = execute(&ctx).await;
        let is_suspend = matches!(parse::parse(query), Ok(Command::Word { ref name, .. }) if name.eq_ignore_ascii_case("suspend"));
        let encoded = match &result {
            Ok(reply) => rows::encode_reply(out, reply),
            Err(error) => {
                tracing::warn!("console: {error}");
                rows::encode_error(out, error)
            }
        };
        if let Err(e) = encoded {
            out.clear();
            let _ = rows::encode_error(out, &AdminError::new(e.to_string()));
        }
        if is_suspend && result.is_ok() {
            self.has_suspended = true;
        }
    }
}
