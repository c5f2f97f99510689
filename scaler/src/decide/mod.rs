//! `decide(policy, history, observation, now)`: the scaling decision, a pure function of
//! its inputs with the clock injected. Kubernetes' HPA rules first (see `hpa` and
//! `behavior`), then what HPA lacks: no scale-in while clients wait for a server
//! connection, no scale-out when the database is the bottleneck, the database connection
//! budget as a ceiling, cooldowns and a flap budget.

pub mod behavior;
pub mod hpa;

use std::time::Duration;

pub use behavior::{Behavior, Events, Recommendation, Rules, ScaleEvent};
pub use hpa::{InstanceSample, Target, Tolerance};

/// Seed-style cooldowns, beside the stabilisation windows (zero: off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cooldowns {
    /// After a scale-up, no other scale-up for this long.
    pub up: Duration,
    /// After a scale-down, no other scale-down for this long.
    pub down: Duration,
    /// After any move, no move the other way for this long.
    pub after_opposite: Duration,
}

/// More than `reversals` direction changes within `per` freeze scaling until they age out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapBudget {
    /// Allowed reversals.
    pub reversals: u32,
    /// The window (default one hour).
    pub per: Duration,
}

/// The database connections the instances may hold together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionBudget {
    /// The database's `max_connections`.
    pub max_connections: u32,
    /// Connections kept for others (superuser, replication, admin tools).
    pub reserved: u32,
}

/// Everything `decide` is configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Fewest instances.
    pub min_replicas: u32,
    /// Most instances.
    pub max_replicas: u32,
    /// Ratio tolerance.
    pub tolerance: Tolerance,
    /// Windows and rate policies.
    pub behavior: Behavior,
    /// Cooldowns.
    pub cooldowns: Cooldowns,
    /// Flap budget (`None`: off).
    pub flap_budget: Option<FlapBudget>,
    /// Connection budget (`None`: off).
    pub connection_budget: Option<ConnectionBudget>,
}

/// How a signal is read.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// One value per instance, averaged and compared with `target` (HPA Pods metric).
    PerInstance {
        /// One sample per known instance.
        samples: Vec<InstanceSample>,
        /// Target average.
        target: f64,
    },
    /// One value for the service (HPA External metric); `None` when it is missing.
    External {
        /// The value.
        value: Option<f64>,
        /// Its target.
        target: Target,
    },
}

/// A named signal's reading.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalReading {
    /// The signal's name (logs, `/metrics`).
    pub name: String,
    /// Its reading.
    pub reading: Reading,
}

/// What one tick saw.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    /// Instances the actuator reports now.
    pub current: u32,
    /// Of those, ready ones.
    pub ready: u32,
    /// Drive signals.
    pub signals: Vec<SignalReading>,
    /// Clients waiting for a server connection, summed over the instances (`None`: unknown).
    pub clients_waiting: Option<f64>,
    /// Why the database is the bottleneck, if it is (query latency over its limit).
    pub backend_saturated: Option<String>,
    /// Server connections one instance may open (`pool_size + reserve_pool`).
    pub connections_per_replica: Option<u32>,
}

/// The direction of a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// More instances.
    Up,
    /// Fewer instances.
    Down,
}

/// Why the decision is what it is (`scaler_decisions_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The signals ask for it.
    Signals,
    /// The signals are within their tolerance.
    Steady,
    /// No signal could be read: hold.
    NoData,
    /// A signal is missing and the others ask for fewer instances: hold.
    PartialData,
    /// Clients wait for a server connection: never scale in.
    ClientsWaiting,
    /// The database is the bottleneck: more instances would only add waiters.
    BackendSaturated,
    /// The database connection budget is the ceiling.
    ConnectionBudget,
    /// `min_replicas`/`max_replicas`.
    Bounds,
    /// The stabilisation window holds the count.
    Stabilising,
    /// A rate policy limits the change.
    RateLimited,
    /// A cooldown holds the count.
    Cooldown,
    /// Too many reversals: scaling is frozen.
    FlapBudget,
}

impl Reason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Signals => "signals",
            Reason::Steady => "steady",
            Reason::NoData => "no_data",
            Reason::PartialData => "partial_data",
            Reason::ClientsWaiting => "clients_waiting",
            Reason::BackendSaturated => "backend_saturated",
            Reason::ConnectionBudget => "connection_budget",
            Reason::Bounds => "bounds",
            Reason::Stabilising => "stabilising",
            Reason::RateLimited => "rate_limited",
            Reason::Cooldown => "cooldown",
            Reason::FlapBudget => "flap_budget",
        }
    }
}

/// One decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Instances now.
    pub current: u32,
    /// Instances wanted.
    pub desired: u32,
    /// The recommendation to remember for the stabilisation windows (after the guards,
    /// before windows, rates and bounds), `None` when no signal was read.
    pub recommendation: Option<u32>,
    /// Why.
    pub reason: Reason,
    /// Each signal's own proposal (`None`: missing).
    pub proposals: Vec<(String, Option<u32>)>,
}

impl Decision {
    /// The move this decision asks for, if any.
    pub fn direction(&self) -> Option<Direction> {
        match self.desired.cmp(&self.current) {
            std::cmp::Ordering::Greater => Some(Direction::Up),
            std::cmp::Ordering::Less => Some(Direction::Down),
            std::cmp::Ordering::Equal => None,
        }
    }
}

/// What past ticks leave for the next: recommendations and carried-out moves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    recommendations: Vec<Recommendation>,
    ups: Vec<ScaleEvent>,
    downs: Vec<ScaleEvent>,
    moves: Vec<(Duration, Direction)>,
}

impl History {
    /// Remembers a decision's recommendation (every tick).
    pub fn record_decision(&mut self, decision: &Decision, now: Duration) {
        if let Some(replicas) = decision.recommendation {
            self.recommendations
                .push(Recommendation { at: now, replicas });
        }
    }

    /// Remembers a move the actuator carried out.
    pub fn record_move(&mut self, from: u32, to: u32, now: Duration) {
        if to > from {
            self.ups.push(ScaleEvent {
                at: now,
                change: to - from,
            });
            self.moves.push((now, Direction::Up));
        } else if to < from {
            self.downs.push(ScaleEvent {
                at: now,
                change: from - to,
            });
            self.moves.push((now, Direction::Down));
        }
    }

    /// Forgets what no rule can look at any more (older than `keep`).
    pub fn prune(&mut self, keep: Duration, now: Duration) {
        let Some(cutoff) = now.checked_sub(keep) else {
            return;
        };
        self.recommendations.retain(|item| item.at >= cutoff);
        self.ups.retain(|item| item.at >= cutoff);
        self.downs.retain(|item| item.at >= cutoff);
        self.moves.retain(|(at, _)| *at >= cutoff);
    }

    /// Direction changes between consecutive moves within `per` before `now`.
    pub fn reversals(&self, per: Duration, now: Duration) -> u32 {
        let cutoff = now.checked_sub(per);
        let recent: Vec<Direction> = self
            .moves
            .iter()
            .filter(|(at, _)| cutoff.is_none_or(|cutoff| *at > cutoff))
            .map(|(_, direction)| *direction)
            .collect();
        recent.windows(2).filter(|pair| pair[0] != pair[1]).count() as u32
    }
}

/// The proposal of one signal.
fn propose(reading: &Reading, observation: &Observation, policy: &Policy) -> Option<u32> {
    match reading {
        Reading::PerInstance { samples, target } => {
            hpa::per_instance_replicas(observation.current, samples, *target, policy.tolerance)
        }
        Reading::External { value, target } => hpa::external_replicas(
            observation.current,
            observation.ready,
            (*value)?,
            *target,
            policy.tolerance,
        ),
    }
}

/// The decision for `observation` at `now`.
pub fn decide(
    policy: &Policy,
    history: &History,
    observation: &Observation,
    now: Duration,
) -> Decision {
    let current = observation.current;
    let proposals: Vec<(String, Option<u32>)> = observation
        .signals
        .iter()
        .map(|signal| {
            (
                signal.name.clone(),
                propose(&signal.reading, observation, policy),
            )
        })
        .collect();
    let ceiling = budget_ceiling(policy, observation);
    // The budget wins over `min_replicas`: never more connections than the database takes.
    let max = policy.max_replicas.min(ceiling);
    let bounds = (policy.min_replicas.min(max), max);
    let finish = |desired: u32, reason: Reason, recommendation: Option<u32>| Decision {
        current,
        desired,
        recommendation,
        reason,
        proposals: proposals.clone(),
    };
    // Bounds first: an instance count outside [min, max] (or above the budget) moves at
    // once, whatever the signals.
    if current < bounds.0 || current > bounds.1 {
        let reason = if current > bounds.1 && bounds.1 < policy.max_replicas {
            Reason::ConnectionBudget
        } else {
            Reason::Bounds
        };
        return finish(current.clamp(bounds.0, bounds.1), reason, None);
    }
    let read: Vec<u32> = proposals
        .iter()
        .filter_map(|(_, proposal)| *proposal)
        .collect();
    let Some(&max_proposal) = read.iter().max() else {
        return finish(current, Reason::NoData, None);
    };
    let mut reason = Reason::Signals;
    let mut recommendation = max_proposal;
    if read.len() < proposals.len() && recommendation < current {
        recommendation = current;
        reason = Reason::PartialData;
    }
    if recommendation < current
        && observation
            .clients_waiting
            .is_some_and(|waiting| waiting > 0.0)
    {
        recommendation = current;
        reason = Reason::ClientsWaiting;
    }
    if recommendation > current && observation.backend_saturated.is_some() {
        recommendation = current;
        reason = Reason::BackendSaturated;
    }
    if recommendation == current && reason == Reason::Signals {
        reason = Reason::Steady;
    }
    let stabilised = behavior::stabilise(
        current,
        recommendation,
        &history.recommendations,
        &policy.behavior,
        now,
    );
    if stabilised != recommendation {
        reason = Reason::Stabilising;
    }
    let events = Events {
        ups: &history.ups,
        downs: &history.downs,
    };
    let (mut desired, is_limited) =
        behavior::limit_rate(current, stabilised, bounds, events, &policy.behavior, now);
    if is_limited {
        reason = if desired == bounds.1 && stabilised > bounds.1 {
            if bounds.1 < policy.max_replicas {
                Reason::ConnectionBudget
            } else {
                Reason::Bounds
            }
        } else if desired == bounds.0 && stabilised < bounds.0 {
            Reason::Bounds
        } else {
            Reason::RateLimited
        };
    }
    if let Some(hold) = held_by_cooldown_or_flaps(policy, history, current, desired, now) {
        desired = current;
        reason = hold;
    }
    finish(desired, reason, Some(recommendation))
}

/// The most instances the connection budget allows (`u32::MAX` without a budget).
fn budget_ceiling(policy: &Policy, observation: &Observation) -> u32 {
    match (
        policy.connection_budget,
        observation.connections_per_replica,
    ) {
        (Some(budget), Some(per_replica)) if per_replica > 0 => {
            budget.max_connections.saturating_sub(budget.reserved) / per_replica
        }
        _ => u32::MAX,
    }
}

fn held_by_cooldown_or_flaps(
    policy: &Policy,
    history: &History,
    current: u32,
    desired: u32,
    now: Duration,
) -> Option<Reason> {
    let direction = match desired.cmp(&current) {
        std::cmp::Ordering::Greater => Direction::Up,
        std::cmp::Ordering::Less => Direction::Down,
        std::cmp::Ordering::Equal => return None,
    };
    let since = |at: Duration| now.saturating_sub(at);
    let last_of = |wanted: Direction| {
        history
            .moves
            .iter()
            .rev()
            .find(|(_, direction)| *direction == wanted)
            .map(|(at, _)| *at)
    };
    let cooldown = match direction {
        Direction::Up => policy.cooldowns.up,
        Direction::Down => policy.cooldowns.down,
    };
    if last_of(direction).is_some_and(|at| since(at) < cooldown) {
        return Some(Reason::Cooldown);
    }
    if let Some(&(at, last)) = history.moves.last()
        && last != direction
        && since(at) < policy.cooldowns.after_opposite
    {
        return Some(Reason::Cooldown);
    }
    if let Some(budget) = policy.flap_budget {
        let reverses = history
            .moves
            .last()
            .is_some_and(|(_, last)| *last != direction);
        let reversals = history.reversals(budget.per, now) + u32::from(reverses);
        if reversals > budget.reversals {
            return Some(Reason::FlapBudget);
        }
    }
    None
}

#[cfg(test)]
mod tests;
