//! `SentinelWatcher`: finds and confirms the master (Sentinel client procedure, or a fixed
//! upstream), holds traffic during failovers, tracks healthy replicas, and publishes the
//! result as a [`Topology`] on a `watch` channel.

pub mod events;
pub mod resolve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::resp::Value;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{ReadFrom, UpstreamMode};
use crate::link::ControlLink;
use crate::shared::Shared;
use crate::stats::Stats;
use crate::topology::{MasterState, Topology};
use events::SentinelEvent;
use resolve::{
    ResolveSettings, Role, SentinelAnswer, ask_sentinels, is_being_replaced, lookup, newest_epoch,
    order_candidates, probe_role,
};

/// How often the watcher re-checks while there is no confirmed master.
const HOLD_POLL: Duration = Duration::from_millis(100);

/// Something that should make the watcher look again now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nudge {
    /// An upstream connection to this address was lost (re-resolve on every reconnect).
    UpstreamLost(SocketAddr),
    /// This address answered `-READONLY`: it is not a master.
    Readonly(SocketAddr),
    /// A Sentinel event about our master.
    Event(SentinelEvent),
    /// A Sentinel subscription was (re)established; events may have been missed.
    SubscriberConnected,
}

/// Cheap handle to nudge the watcher.
#[derive(Debug, Clone)]
pub struct ResolveHandle {
    tx: mpsc::UnboundedSender<Nudge>,
}

impl ResolveHandle {
    /// A handle and the receiving end for [`SentinelWatcher::new`].
    pub fn channel() -> (ResolveHandle, mpsc::UnboundedReceiver<Nudge>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ResolveHandle { tx }, rx)
    }

    /// Asks for a re-resolution (ignored once the watcher stopped).
    pub fn nudge(&self, nudge: Nudge) {
        let _ = self.tx.send(nudge);
    }
}

/// The outcome of one resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resolution {
    /// This address answered `ROLE master` and nothing says a failover is running.
    Confirmed(SocketAddr),
    /// No usable master (yet): why.
    Unavailable(String),
}

/// The task that owns the topology.
pub struct SentinelWatcher {
    shared: Arc<Shared>,
    topology: watch::Sender<Topology>,
    nudges: mpsc::UnboundedReceiver<Nudge>,
    sentinels: Vec<String>,
    /// Set while a failover is suspected: new commands wait, and candidates other than the
    /// current master are preferred.
    hold_reason: Option<String>,
    /// A `+switch-master` address to try first.
    hinted: Option<SocketAddr>,
    replicas_refreshed_at: Option<Instant>,
    are_replicas_due: bool,
    /// The Sentinel `config-epoch` under which the current master was confirmed. Answers
    /// with an older epoch come from Sentinels that missed a failover: the master they
    /// name is the replaced one (which answers `ROLE master` until it is demoted).
    confirmed_epoch: u64,
    /// Since when every answering Sentinel reports an epoch older than `confirmed_epoch`.
    older_epoch_since: Option<Instant>,
}

impl SentinelWatcher {
    /// A watcher publishing on `topology` and listening on `nudges`.
    pub fn new(
        shared: Arc<Shared>,
        topology: watch::Sender<Topology>,
        nudges: mpsc::UnboundedReceiver<Nudge>,
    ) -> SentinelWatcher {
        let sentinels = shared.config.load().sentinels.clone();
        SentinelWatcher {
            shared,
            topology,
            nudges,
            sentinels,
            hold_reason: None,
            hinted: None,
            replicas_refreshed_at: None,
            are_replicas_due: true,
            confirmed_epoch: 0,
            older_epoch_since: None,
        }
    }

    /// Resolves until `shutdown`: at once, on every nudge, and periodically.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            self.resolve_and_publish().await;
            let is_waiting = self.hold_reason.is_some() || self.current_master().is_none();
            let poll = if is_waiting {
                HOLD_POLL
            } else {
                self.shared.config.load().refresh_interval
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                nudge = self.nudges.recv() => {
                    let Some(nudge) = nudge else { return };
                    self.on_nudge(nudge);
                    while let Ok(nudge) = self.nudges.try_recv() {
                        self.on_nudge(nudge);
                    }
                }
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    fn current_master(&self) -> Option<SocketAddr> {
        self.topology.borrow().master_addr()
    }

    fn last_master(&self) -> Option<SocketAddr> {
        match &self.topology.borrow().master {
            MasterState::Ready(addr) => Some(*addr),
            MasterState::Unavailable { last, .. } => *last,
        }
    }

    fn on_nudge(&mut self, nudge: Nudge) {
        let last = self.last_master();
        match nudge {
            Nudge::Readonly(addr) if Some(addr) == last => {
                self.start_hold(format!(
                    "{addr} answered READONLY: it is no longer the master"
                ));
            }
            Nudge::Event(event) => {
                if event.is_hold() {
                    let name = match &event {
                        SentinelEvent::FailoverStep(name) | SentinelEvent::MasterDown(name) => {
                            name.as_str()
                        }
                        _ => "event",
                    };
                    self.start_hold(format!("failover in progress (Sentinel event {name})"));
                }
                if let SentinelEvent::SwitchMaster { host, port } = &event {
                    self.hinted = format!("{host}:{port}").parse().ok();
                }
                self.are_replicas_due = true;
            }
            Nudge::UpstreamLost(_) | Nudge::Readonly(_) | Nudge::SubscriberConnected => {}
        }
    }

    fn start_hold(&mut self, reason: String) {
        if self.hold_reason.is_none() {
            info!(%reason, "holding commands until the master is confirmed");
        }
        self.hold_reason = Some(reason.clone());
        self.publish_unavailable(reason);
    }

    async fn resolve_and_publish(&mut self) {
        let resolution = self.resolve().await;
        match resolution {
            Resolution::Confirmed(addr) => {
                self.hold_reason = None;
                self.hinted = None;
                self.publish_master(addr);
            }
            Resolution::Unavailable(reason) => {
                if self.hold_reason.is_none() {
                    self.hold_reason = Some(reason.clone());
                }
                self.publish_unavailable(reason);
            }
        }
        if self.should_refresh_replicas() {
            self.refresh_replicas().await;
        }
        self.topology
            .send_modify(|topology| topology.generation += 1);
    }

    async fn resolve(&mut self) -> Resolution {
        let config = self.shared.config.load_full();
        let settings = ResolveSettings {
            timeout: config.sentinel_timeout,
            sentinel_credentials: config.sentinel_credentials(),
            upstream_credentials: config.upstream_credentials(),
            master_name: config.master_name.clone(),
        };
        match config.mode() {
            UpstreamMode::Single(upstream) => resolve_single(upstream, &settings).await,
            UpstreamMode::Sentinel { .. } => self.resolve_with_sentinels(&settings).await,
        }
    }

    async fn resolve_with_sentinels(&mut self, settings: &ResolveSettings) -> Resolution {
        let results = ask_sentinels(&self.sentinels, settings).await;
        let mut answers: Vec<SentinelAnswer> = Vec::new();
        let mut problems: Vec<String> = Vec::new();
        for result in results {
            match result {
                Ok(answer) => answers.push(answer),
                Err((index, error)) => {
                    let addr = self.sentinels.get(index).map(String::as_str).unwrap_or("?");
                    problems.push(format!("sentinel {addr}: {error}"));
                }
            }
        }
        if answers.is_empty() {
            return Resolution::Unavailable(format!(
                "no Sentinel reachable ({})",
                problems.join("; ")
            ));
        }
        let current = self.last_master();
        let newest = newest_epoch(&answers);
        let mut candidates = order_candidates(&answers, current, self.hold_reason.is_some());
        let mut epoch = newest.unwrap_or_default();
        if let Some(newest) = newest.filter(|newest| *newest < self.confirmed_epoch) {
            // Only Sentinels that missed the last failover answered: the newest configuration
            // known is still the confirmed master's. Epochs only go back when an operator
            // re-monitors the master; accept that once it has lasted `failover_timeout`.
            let since = *self.older_epoch_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.shared.config.load().failover_timeout {
                warn!(
                    confirmed = self.confirmed_epoch,
                    reported = newest,
                    "the Sentinels report an older configuration epoch than the confirmed master's; accepting it"
                );
                self.confirmed_epoch = newest;
            } else {
                candidates = current.into_iter().collect();
                epoch = self.confirmed_epoch;
            }
        } else {
            self.older_epoch_since = None;
        }
        if candidates.is_empty() {
            return Resolution::Unavailable(format!(
                "the Sentinels do not know master '{}'",
                settings.master_name
            ));
        }
        if let Some(hint) = self.hinted.filter(|hint| candidates.contains(hint)) {
            candidates.retain(|addr| *addr != hint);
            candidates.insert(0, hint);
        }
        for candidate in candidates {
            if is_being_replaced(&answers, candidate, current) {
                // It still answers ROLE master, but a Sentinel is replacing it.
                problems.push(format!("a Sentinel is failing {candidate} over"));
                continue;
            }
            match probe_role(
                candidate,
                settings.timeout,
                settings.upstream_credentials.as_ref(),
            )
            .await
            {
                // The confirmed master running a long script: still the master.
                Ok(Role::Busy) if Some(candidate) == current => {
                    self.confirmed_epoch = epoch;
                    return Resolution::Confirmed(candidate);
                }
                Ok(Role::Master) => {
                    self.promote_sentinel(&answers, candidate);
                    self.confirmed_epoch = epoch;
                    return Resolution::Confirmed(candidate);
                }
                Ok(role) => problems.push(format!(
                    "{candidate} reported by Sentinel is not a master ({role:?})"
                )),
                Err(error) => problems.push(format!("master {candidate}: {error}")),
            }
        }
        Resolution::Unavailable(format!("no master confirmed ({})", problems.join("; ")))
    }

    /// Moves the first Sentinel that named `master` to the front (client procedure step 1).
    fn promote_sentinel(&mut self, answers: &[SentinelAnswer], master: SocketAddr) {
        let Some(index) = answers
            .iter()
            .find(|answer| answer.master == Some(master))
            .map(|answer| answer.index)
        else {
            return;
        };
        if index > 0 && index < self.sentinels.len() {
            let sentinel = self.sentinels.remove(index);
            self.sentinels.insert(0, sentinel);
        }
    }

    fn publish_master(&mut self, addr: SocketAddr) {
        let previous = self.topology.borrow().clone();
        let is_new = previous.master_addr() != Some(addr)
            && !matches!(&previous.master, MasterState::Unavailable { last: Some(last), .. } if *last == addr);
        if previous.master == MasterState::Ready(addr) {
            return;
        }
        if is_new && previous.epoch == 0 {
            info!(master = %addr, "master found");
            self.are_replicas_due = true;
        } else if is_new {
            info!(master = %addr, previous = ?previous.master, "master switched");
            self.are_replicas_due = true;
            if previous.epoch > 0 {
                Stats::bump(&self.shared.stats.failovers);
            }
        } else {
            info!(master = %addr, "master confirmed");
        }
        self.topology.send_modify(|topology| {
            topology.master = MasterState::Ready(addr);
            if is_new {
                topology.epoch += 1;
                topology.replicas = Arc::from(Vec::new());
            }
        });
    }

    fn publish_unavailable(&mut self, reason: String) {
        let last = self.last_master();
        let unchanged = matches!(
            &self.topology.borrow().master,
            MasterState::Unavailable { reason: old, .. } if **old == *reason
        );
        if unchanged {
            return;
        }
        if matches!(self.topology.borrow().master, MasterState::Ready(_)) {
            warn!(%reason, "master unavailable");
        }
        self.topology.send_modify(|topology| {
            topology.master = MasterState::Unavailable {
                last,
                reason: Arc::from(reason),
            };
        });
    }

    fn should_refresh_replicas(&self) -> bool {
        let config = self.shared.config.load();
        if config.read_from == ReadFrom::Master || self.current_master().is_none() {
            return false;
        }
        if !matches!(config.mode(), UpstreamMode::Sentinel { .. }) {
            return false;
        }
        self.are_replicas_due
            || self
                .replicas_refreshed_at
                .is_none_or(|at| at.elapsed() >= config.refresh_interval)
    }

    async fn refresh_replicas(&mut self) {
        let Some(master) = self.current_master() else {
            return;
        };
        let config = self.shared.config.load_full();
        let Some(sentinel) = self.sentinels.first().cloned() else {
            return;
        };
        let listed = match list_replicas(&sentinel, &config.master_name, &config).await {
            Ok(listed) => listed,
            Err(error) => {
                warn!(%sentinel, %error, "cannot list replicas");
                return;
            }
        };
        let mut healthy = Vec::new();
        for replica in listed {
            let role = probe_role(
                replica,
                config.sentinel_timeout,
                config.upstream_credentials().as_ref(),
            )
            .await;
            if let Ok(Role::Replica {
                master_port,
                is_connected: true,
                ..
            }) = role
                && master_port == master.port()
            {
                healthy.push(replica);
            }
        }
        self.replicas_refreshed_at = Some(Instant::now());
        self.are_replicas_due = false;
        let changed = *self.topology.borrow().replicas != *healthy;
        if changed {
            info!(replicas = ?healthy, "replicas");
            self.topology
                .send_modify(|topology| topology.replicas = Arc::from(healthy));
        }
    }
}

/// Single-upstream mode: the configured address, confirmed reachable with `ROLE`.
async fn resolve_single(upstream: &str, settings: &ResolveSettings) -> Resolution {
    let Some((host, port)) = upstream.rsplit_once(':') else {
        return Resolution::Unavailable(format!("`{upstream}` is not host:port"));
    };
    let port = port.parse::<u16>().unwrap_or_default();
    let addr = match lookup(host.trim_start_matches('[').trim_end_matches(']'), port).await {
        Ok(addr) => addr,
        Err(error) => return Resolution::Unavailable(format!("upstream {upstream}: {error}")),
    };
    match probe_role(
        addr,
        settings.timeout,
        settings.upstream_credentials.as_ref(),
    )
    .await
    {
        Ok(_) => Resolution::Confirmed(addr),
        // A server that refuses ROLE (ACL) still answered: it is reachable.
        Err(crate::error::LinkError::Unexpected { .. }) => Resolution::Confirmed(addr),
        Err(error) => Resolution::Unavailable(format!("upstream {upstream}: {error}")),
    }
}

/// `SENTINEL replicas`, keeping only replicas without down/disconnected flags and with
/// their master link up.
async fn list_replicas(
    sentinel: &str,
    master_name: &str,
    config: &crate::config::Config,
) -> Result<Vec<SocketAddr>, crate::error::LinkError> {
    let mut link = ControlLink::connect(
        sentinel,
        config.sentinel_timeout,
        config.sentinel_credentials().as_ref(),
    )
    .await?;
    let reply = link
        .command(&[b"SENTINEL", b"replicas", master_name.as_bytes()])
        .await?;
    let mut replicas = Vec::new();
    for entry in reply.as_array().unwrap_or_default() {
        let field = |name: &str| entry.get(name).and_then(Value::as_str).unwrap_or_default();
        let flags = field("flags");
        let is_down = flags
            .split(',')
            .any(|flag| matches!(flag, "s_down" | "o_down" | "disconnected"));
        if is_down || field("master-link-status") != "ok" {
            continue;
        }
        let Ok(port) = field("port").parse::<u16>() else {
            continue;
        };
        if let Ok(addr) = lookup(field("ip"), port).await {
            replicas.push(addr);
        }
    }
    Ok(replicas)
}
