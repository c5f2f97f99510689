//! HPA `behavior`, copied rule for rule: stabilisation windows over past recommendations
//! (up: the minimum, down: the maximum) and rate policies over past scale events.

use std::time::Duration;

use serde::Deserialize;

/// How one rate policy limits a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// At most `value` instances per period.
    Pods,
    /// At most `value` percent of the instances at the period's start.
    Percent,
}

/// One rate policy (`{type, value, periodSeconds}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatePolicy {
    /// Pods or Percent.
    pub kind: PolicyKind,
    /// Instances or percent.
    pub value: u32,
    /// The period (≤ 1800 s).
    #[serde(with = "humantime_serde")]
    pub period: Duration,
}

/// Which policy wins (`selectPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// The one allowing the largest change (default).
    #[default]
    Max,
    /// The one allowing the smallest change.
    Min,
    /// No change in this direction.
    Disabled,
}

/// `behavior.scaleUp` or `behavior.scaleDown`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Stabilisation window.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Rate policies.
    pub policies: Vec<RatePolicy>,
    /// Which policy wins.
    #[serde(default)]
    pub select: Select,
}

impl Rules {
    /// HPA's scale-up default: no window; 100 % or 4 instances per 15 s, the larger.
    pub fn default_up() -> Rules {
        Rules {
            window: Duration::ZERO,
            policies: vec![
                RatePolicy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period: Duration::from_secs(15),
                },
                RatePolicy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period: Duration::from_secs(15),
                },
            ],
            select: Select::Max,
        }
    }

    /// HPA's scale-down default: a 300 s window; 100 % per 15 s.
    pub fn default_down() -> Rules {
        Rules {
            window: Duration::from_secs(300),
            policies: vec![RatePolicy {
                kind: PolicyKind::Percent,
                value: 100,
                period: Duration::from_secs(15),
            }],
            select: Select::Max,
        }
    }
}

/// A past recommendation (the desired count before stabilisation) at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recommendation {
    /// When.
    pub at: Duration,
    /// Desired instances.
    pub replicas: u32,
}

/// A scale event that the actuator carried out: `change` instances added or removed at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleEvent {
    /// When.
    pub at: Duration,
    /// Instances added (scale-up) or removed (scale-down).
    pub change: u32,
}

/// Stabilises `desired`: within `[min over the up-window, max over the down-window]` of
/// the past recommendations, starting from `current` (HPA's
/// `stabilizeRecommendationWithBehaviors`).
pub fn stabilise(
    current: u32,
    desired: u32,
    history: &[Recommendation],
    behavior: &Behavior,
    now: Duration,
) -> u32 {
    let up_cutoff = now.checked_sub(behavior.up.window);
    let down_cutoff = now.checked_sub(behavior.down.window);
    let after = |at: Duration, cutoff: Option<Duration>| cutoff.is_none_or(|cutoff| at > cutoff);
    let mut up_recommendation = desired;
    let mut down_recommendation = desired;
    for recommendation in history {
        if after(recommendation.at, up_cutoff) {
            up_recommendation = up_recommendation.min(recommendation.replicas);
        }
        if after(recommendation.at, down_cutoff) {
            down_recommendation = down_recommendation.max(recommendation.replicas);
        }
    }
    current.max(up_recommendation).min(down_recommendation)
}

fn change_in_period(events: &[ScaleEvent], period: Duration, now: Duration) -> u32 {
    let cutoff = now.checked_sub(period);
    events
        .iter()
        .filter(|event| cutoff.is_none_or(|cutoff| event.at > cutoff))
        .map(|event| event.change)
        .sum()
}

/// The limit the policies of one direction allow now (HPA's
/// `calculateScaleUpLimitWithScalingRules` and `calculateScaleDownLimitWithBehaviors`).
/// Each policy proposes a count from the count at its period's start; `Max` picks the
/// largest change (the highest count up, the lowest down), `Min` the smallest.
fn limit(current: u32, events: Events<'_>, rules: &Rules, is_up: bool, now: Duration) -> u32 {
    let mut result: Option<i64> = None;
    for policy in &rules.policies {
        let start = i64::from(current)
            - i64::from(change_in_period(events.ups, policy.period, now))
            + i64::from(change_in_period(events.downs, policy.period, now));
        let value = i64::from(policy.value);
        let fraction = f64::from(policy.value) / 100.0;
        let proposed = match (policy.kind, is_up) {
            (PolicyKind::Pods, true) => start + value,
            (PolicyKind::Pods, false) => start - value,
            // Rounded up so that a small count can grow at all.
            (PolicyKind::Percent, true) => (start as f64 * (1.0 + fraction)).ceil() as i64,
            // Go's int32(float64) truncates toward zero.
            (PolicyKind::Percent, false) => (start as f64 * (1.0 - fraction)) as i64,
        };
        let wants_larger_count = (rules.select == Select::Min) != is_up;
        result = Some(match result {
            None => proposed,
            Some(best) if wants_larger_count => best.max(proposed),
            Some(best) => best.min(proposed),
        });
    }
    match (rules.select, result) {
        (Select::Disabled, _) | (_, None) => current,
        (_, Some(limit)) => clamp_u32(limit),
    }
}

/// The most instances the up-policies allow now.
pub fn scale_up_limit(current: u32, events: Events<'_>, rules: &Rules, now: Duration) -> u32 {
    limit(current, events, rules, true, now)
}

/// The fewest instances the down-policies allow now.
pub fn scale_down_limit(current: u32, events: Events<'_>, rules: &Rules, now: Duration) -> u32 {
    limit(current, events, rules, false, now)
}

fn clamp_u32(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

/// `behavior`: the up and down rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behavior {
    /// Scale-up rules.
    pub up: Rules,
    /// Scale-down rules.
    pub down: Rules,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            up: Rules::default_up(),
            down: Rules::default_down(),
        }
    }
}

/// Scale events carried out, by direction.
#[derive(Debug, Clone, Copy)]
pub struct Events<'a> {
    /// Scale-ups.
    pub ups: &'a [ScaleEvent],
    /// Scale-downs.
    pub downs: &'a [ScaleEvent],
}

/// Applies min/max and the rate policies to a stabilised `desired` (HPA's
/// `convertDesiredReplicasWithBehaviorRate`); returns the count and whether a rate policy
/// or a bound limited it.
pub fn limit_rate(
    current: u32,
    desired: u32,
    bounds: (u32, u32),
    events: Events<'_>,
    behavior: &Behavior,
    now: Duration,
) -> (u32, bool) {
    let (min, max) = bounds;
    if desired > current {
        let limit = scale_up_limit(current, events, &behavior.up, now).max(current);
        let allowed = max.min(limit);
        if desired > allowed {
            return (allowed, true);
        }
    } else if desired < current {
        let limit = scale_down_limit(current, events, &behavior.down, now).min(current);
        let allowed = min.max(limit);
        if desired < allowed {
            return (allowed, true);
        }
    }
    (desired, false)
}
