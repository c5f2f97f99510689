//! `decide` against the HPA golden vectors of the Kubernetes documentation and KEP-853,
//! the dampening rules, the guards HPA lacks, and property tests of the invariants.

use std::time::Duration;

use proptest::prelude::*;

use super::behavior::{PolicyKind, RatePolicy, Select};
use super::*;

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn policy() -> Policy {
    Policy {
        min_replicas: 1,
        max_replicas: 100,
        tolerance: Tolerance::default(),
        behavior: Behavior::default(),
        cooldowns: Cooldowns::default(),
        flap_budget: None,
        connection_budget: None,
    }
}

fn ready(values: &[f64]) -> Vec<InstanceSample> {
    values
        .iter()
        .map(|value| InstanceSample {
            value: Some(*value),
            is_ready: true,
        })
        .collect()
}

fn observe(current: u32, samples: Vec<InstanceSample>, target: f64) -> Observation {
    Observation {
        current,
        ready: current,
        signals: vec![SignalReading {
            name: "utilisation".to_owned(),
            reading: Reading::PerInstance { samples, target },
        }],
        ..Observation::default()
    }
}

fn uniform(current: u32, value: f64, target: f64) -> Observation {
    observe(current, ready(&vec![value; current as usize]), target)
}

#[test]
fn ratio_rule_and_tolerance() {
    let history = History::default();
    // 50 replicas at 90 against 75: ceil(50 × 1.2) = 60.
    let decision = decide(&policy(), &history, &uniform(50, 90.0, 75.0), secs(100));
    assert_eq!(decision.recommendation, Some(60));
    assert_eq!(
        decision.desired, 60,
        "100 % or 4 per 15 s from 50 allows 100"
    );
    // Inside the tolerance (ratio 1.08): no change.
    let decision = decide(&policy(), &history, &uniform(10, 81.0, 75.0), secs(100));
    assert_eq!((decision.desired, decision.reason), (10, Reason::Steady));
}

#[test]
fn default_scale_up_takes_one_to_five() {
    let decision = decide(
        &policy(),
        &History::default(),
        &uniform(1, 1000.0, 10.0),
        secs(0),
    );
    assert_eq!(decision.desired, 5);
    assert_eq!(decision.reason, Reason::RateLimited);
}

#[test]
fn pods_4_percent_10_per_60s_goes_80_72_64() {
    let mut policy = policy();
    policy.behavior.down = Rules {
        window: Duration::ZERO,
        policies: vec![
            RatePolicy {
                kind: PolicyKind::Pods,
                value: 4,
                period: secs(60),
            },
            RatePolicy {
                kind: PolicyKind::Percent,
                value: 10,
                period: secs(60),
            },
        ],
        select: Select::Max,
    };
    let mut history = History::default();
    let mut current = 80;
    let mut seen = vec![current];
    for tick in 0..12 {
        let now = secs(tick * 15);
        let decision = decide(&policy, &history, &uniform(current, 1.0, 10.0), now);
        history.record_decision(&decision, now);
        if decision.desired != current {
            history.record_move(current, decision.desired, now);
            current = decision.desired;
            seen.push(current);
        }
    }
    assert_eq!(&seen[..3], &[80, 72, 64]);
}

#[test]
fn kep_853_down_window_holds_at_the_maximum() {
    // Recommendations [10,9,8,9,9,8,9,8,9,8] one per 30 s with a 300 s window: the count
    // stays at 10 while 10 is in the window, then 9.
    let mut history = History::default();
    let recommendations = [10, 9, 8, 9, 9, 8, 9, 8, 9, 8];
    for (index, replicas) in recommendations.iter().enumerate() {
        let decision = Decision {
            current: 10,
            desired: 10,
            recommendation: Some(*replicas),
            reason: Reason::Signals,
            proposals: Vec::new(),
        };
        history.record_decision(&decision, secs(index as u64 * 30));
    }
    let policy = policy();
    // At 290 s every recommendation is in the window: 10 holds.
    let held = decide(&policy, &history, &uniform(10, 8.0, 10.0), secs(290));
    assert_eq!(held.desired, 10);
    assert_eq!(held.reason, Reason::Stabilising);
    // At 301 s the 10 at 0 s left the window: the maximum is 9.
    let moved = decide(&policy, &history, &uniform(10, 8.0, 10.0), secs(301));
    assert_eq!(moved.desired, 9);
}

#[test]
fn missing_metrics_dampen_both_ways() {
    let history = History::default();
    let missing = InstanceSample {
        value: None,
        is_ready: true,
    };
    // Scale-down: 2 instances at 10 % of the target, one missing (counts as 100 %):
    // ratio (0.1 + 0.1 + 1) / 3 = 0.4 → ceil(0.4 × 3) = 2, instead of 1.
    let mut samples = ready(&[1.0, 1.0]);
    samples.push(missing);
    let decision = decide(&policy(), &history, &observe(3, samples, 10.0), secs(1000));
    assert_eq!(decision.recommendation, Some(2));
    // Scale-up: 2 instances at 200 %, one missing (counts as 0 %): (2 + 2 + 0) / 3 = 1.33
    // → 4, instead of 6.
    let mut samples = ready(&[20.0, 20.0]);
    samples.push(missing);
    let decision = decide(&policy(), &history, &observe(3, samples, 10.0), secs(1000));
    assert_eq!(decision.recommendation, Some(4));
    // Not-ready instances count as 0 % for a scale-up.
    let mut samples = ready(&[20.0, 20.0]);
    samples.push(InstanceSample {
        value: Some(50.0),
        is_ready: false,
    });
    let decision = decide(&policy(), &history, &observe(3, samples, 10.0), secs(1000));
    assert_eq!(decision.recommendation, Some(4));
    // Dampening that flips the direction: no change.
    let mut samples = ready(&[11.5]);
    samples.extend([missing, missing]);
    let decision = decide(&policy(), &history, &observe(3, samples, 10.0), secs(1000));
    assert_eq!(decision.recommendation, Some(3));
}

#[test]
fn no_data_holds_and_partial_data_never_scales_in() {
    let history = History::default();
    let mut observation = uniform(4, 1.0, 10.0);
    observation.signals[0].reading = Reading::PerInstance {
        samples: vec![
            InstanceSample {
                value: None,
                is_ready: true,
            };
            4
        ],
        target: 10.0,
    };
    let decision = decide(&policy(), &history, &observation, secs(1000));
    assert_eq!((decision.desired, decision.reason), (4, Reason::NoData));
    let mut observation = uniform(4, 1.0, 10.0);
    observation.signals.push(SignalReading {
        name: "latency".to_owned(),
        reading: Reading::External {
            value: None,
            target: Target::Value(0.05),
        },
    });
    let decision = decide(&policy(), &history, &observation, secs(1000));
    assert_eq!(
        (decision.desired, decision.reason),
        (4, Reason::PartialData)
    );
}

#[test]
fn guards_the_hpa_lacks() {
    let history = History::default();
    let mut idle_but_waiting = uniform(6, 1.0, 10.0);
    idle_but_waiting.clients_waiting = Some(3.0);
    let decision = decide(&policy(), &history, &idle_but_waiting, secs(1000));
    assert_eq!(
        (decision.desired, decision.reason),
        (6, Reason::ClientsWaiting)
    );

    let mut saturated = uniform(4, 30.0, 10.0);
    saturated.backend_saturated = Some("query p99 1.2 s > 0.5 s".to_owned());
    let decision = decide(&policy(), &history, &saturated, secs(1000));
    assert_eq!(
        (decision.desired, decision.reason),
        (4, Reason::BackendSaturated)
    );

    let mut budgeted = policy();
    budgeted.connection_budget = Some(ConnectionBudget {
        max_connections: 100,
        reserved: 10,
    });
    let mut busy = uniform(4, 30.0, 10.0);
    busy.connections_per_replica = Some(15);
    let decision = decide(&budgeted, &history, &busy, secs(1000));
    assert_eq!(
        (decision.desired, decision.reason),
        (6, Reason::ConnectionBudget)
    );
    // Already above the budget: back under it at once.
    let mut over = uniform(8, 10.0, 10.0);
    over.connections_per_replica = Some(15);
    let decision = decide(&budgeted, &history, &over, secs(1000));
    assert_eq!(
        (decision.desired, decision.reason),
        (6, Reason::ConnectionBudget)
    );
}

#[test]
fn cooldowns_and_flap_budget() {
    let mut policy = policy();
    policy.behavior.down.window = Duration::ZERO;
    policy.cooldowns = Cooldowns {
        up: secs(300),
        down: secs(600),
        after_opposite: secs(120),
    };
    let mut history = History::default();
    history.record_move(2, 4, secs(0));
    let decision = decide(&policy, &history, &uniform(4, 30.0, 10.0), secs(100));
    assert_eq!((decision.desired, decision.reason), (4, Reason::Cooldown));
    let decision = decide(&policy, &history, &uniform(4, 1.0, 10.0), secs(100));
    assert_eq!((decision.desired, decision.reason), (4, Reason::Cooldown));
    let decision = decide(&policy, &history, &uniform(4, 1.0, 10.0), secs(200));
    assert!(decision.desired < 4);

    let mut policy = self::policy();
    policy.behavior.down.window = Duration::ZERO;
    policy.flap_budget = Some(FlapBudget {
        reversals: 2,
        per: secs(3600),
    });
    let mut history = History::default();
    history.record_move(2, 4, secs(0));
    history.record_move(4, 2, secs(60));
    history.record_move(2, 4, secs(120));
    let decision = decide(&policy, &history, &uniform(4, 1.0, 10.0), secs(180));
    assert_eq!((decision.desired, decision.reason), (4, Reason::FlapBudget));
    // An hour later the reversals aged out.
    let decision = decide(&policy, &history, &uniform(4, 1.0, 10.0), secs(3800));
    assert!(decision.desired < 4);
}

fn arbitrary_observation() -> impl Strategy<Value = (u32, Vec<Option<f64>>, Option<f64>, bool)> {
    (
        1u32..40,
        prop::collection::vec(prop::option::weighted(0.9, 0.0f64..100.0), 1..40),
        prop::option::of(0.0f64..5.0),
        any::<bool>(),
    )
}

proptest! {
    /// Whatever the readings: within [min, max] and the budget, no scale-in while clients
    /// wait, no scale-out when the backend is saturated, no move against the last one
    /// inside the cooldown.
    #[test]
    fn invariants(ticks in prop::collection::vec(arbitrary_observation(), 1..40)) {
        let mut policy = policy();
        policy.min_replicas = 2;
        policy.max_replicas = 20;
        policy.cooldowns.after_opposite = secs(120);
        policy.connection_budget = Some(ConnectionBudget { max_connections: 200, reserved: 20 });
        let mut history = History::default();
        let mut current = 2;
        for (tick, (_, values, waiting, saturated)) in ticks.into_iter().enumerate() {
            let now = secs(tick as u64 * 15);
            let samples: Vec<InstanceSample> = values
                .iter()
                .take(current as usize)
                .map(|value| InstanceSample { value: *value, is_ready: true })
                .collect();
            let mut observation = observe(current, samples, 50.0);
            observation.clients_waiting = waiting;
            observation.backend_saturated = saturated.then(|| "saturated".to_owned());
            observation.connections_per_replica = Some(12);
            let decision = decide(&policy, &history, &observation, now);
            prop_assert!(decision.desired >= 2 && decision.desired <= 15, "{decision:?}");
            let in_bounds = (2..=15).contains(&current);
            if in_bounds && waiting.is_some_and(|waiting| waiting > 0.0) {
                prop_assert!(decision.desired >= current, "{decision:?}");
            }
            if in_bounds && saturated {
                prop_assert!(decision.desired <= current, "{decision:?}");
            }
            history.record_decision(&decision, now);
            if decision.desired != current {
                if in_bounds {
                    let last = history.moves.last().copied();
                    if let (Some((at, last)), Some(direction)) = (last, decision.direction()) {
                        prop_assert!(last == direction || now - at >= secs(120), "{decision:?}");
                    }
                }
                history.record_move(current, decision.desired, now);
                current = decision.desired;
            }
        }
    }
}

/// Replays a square-wave load (20 s busy, 20 s idle) for an hour at one tick per 5 s,
/// the actuator carrying out every decision at once; returns (moves, scale-downs, times).
fn square_wave(policy: &Policy) -> (usize, usize, Vec<u64>) {
    let mut history = History::default();
    let mut current = 2;
    let (mut moves, mut downs, mut down_times) = (0, 0, Vec::new());
    for tick in 0..720u64 {
        let now = secs(tick * 5);
        let busy = (tick * 5 / 20) % 2 == 0;
        // Demand in whole instances' worth of work, spread over the instances.
        let demand = if busy { 3.0 } else { 0.3 };
        let observation = uniform(current, (demand / f64::from(current)).min(1.0), 0.7);
        let decision = decide(policy, &history, &observation, now);
        history.record_decision(&decision, now);
        if decision.desired != current {
            moves += 1;
            if decision.desired < current {
                downs += 1;
                down_times.push(tick * 5);
            }
            history.record_move(current, decision.desired, now);
            current = decision.desired;
        }
        history.prune(secs(3600), now);
    }
    (moves, downs, down_times)
}

#[test]
fn square_wave_shorter_than_the_window_does_not_flap() {
    let mut policy = policy();
    policy.max_replicas = 10;
    let (moves, downs, _) = square_wave(&policy);
    // The 300 s down-window holds the busy half's count: it scales out and stays.
    assert_eq!(downs, 0, "moves {moves}");
    assert!(moves <= 3, "{moves} moves");
    // Without the window (and a 60 s one), at most one scale-down per window.
    policy.behavior.down.window = secs(60);
    let (_, downs, times) = square_wave(&policy);
    assert!(
        times.windows(2).all(|pair| pair[1] - pair[0] >= 60),
        "{times:?}"
    );
    // With no window at all the wave moves the count every half period; the flap budget
    // (4 reversals an hour) freezes it.
    policy.behavior.down.window = Duration::ZERO;
    let (free_moves, _, _) = square_wave(&policy);
    policy.flap_budget = Some(FlapBudget {
        reversals: 4,
        per: secs(3600),
    });
    let (budgeted_moves, _, _) = square_wave(&policy);
    assert!(free_moves > 100, "{free_moves}");
    // Each busy half takes a few rate-limited steps up; five direction segments at most.
    assert!(
        budgeted_moves <= 15 && budgeted_moves * 10 < free_moves,
        "{budgeted_moves}"
    );
    println!(
        "square wave: window 300 s → {moves} moves; 60 s → {downs} scale-downs; no window → {free_moves} moves, with a flap budget of 4 → {budgeted_moves}"
    );
}
