//! The Kubernetes HPA replica calculator, copied rule for rule: the ratio rule with a
//! tolerance, missing-metric and not-ready dampening, and External Value/AverageValue.

/// One instance's reading of a per-instance signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceSample {
    /// The value, `None` when the instance could not be scraped (a missing metric).
    pub value: Option<f64>,
    /// False while the instance is not ready (warming up, `/ready` failing).
    pub is_ready: bool,
}

/// What a signal's value is compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Per-instance average (`AverageValue` of a Pods metric): each instance's value is
    /// averaged over the instances and compared with the target.
    AverageValue(f64),
    /// The sum over the instances divided by the target gives the replicas (`External`
    /// metric with an `AverageValue` target).
    TotalAverageValue(f64),
    /// One value for the whole service (`External` with a `Value` target).
    Value(f64),
}

/// The tolerances around a ratio of 1 inside which nothing changes (HPA: 0.1 both ways).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Scale-up tolerance.
    pub up: f64,
    /// Scale-down tolerance.
    pub down: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance { up: 0.1, down: 0.1 }
    }
}

impl Tolerance {
    fn holds(&self, ratio: f64) -> bool {
        if ratio >= 1.0 {
            ratio - 1.0 <= self.up
        } else {
            1.0 - ratio <= self.down
        }
    }
}

/// The replicas a per-instance signal asks for, or `None` when no instance reported it.
/// `current` is the replica count; `samples` one entry per known instance.
pub fn per_instance_replicas(
    current: u32,
    samples: &[InstanceSample],
    target: f64,
    tolerance: Tolerance,
) -> Option<u32> {
    if target <= 0.0 {
        return None;
    }
    let ready: Vec<f64> = samples
        .iter()
        .filter(|sample| sample.is_ready)
        .filter_map(|sample| sample.value)
        .collect();
    let unready = samples
        .iter()
        .filter(|sample| !sample.is_ready && sample.value.is_some())
        .count();
    let missing = samples
        .iter()
        .filter(|sample| sample.value.is_none())
        .count();
    if ready.is_empty() && unready == 0 {
        return None;
    }
    let ready_count = ready.len();
    let ratio = if ready_count == 0 {
        // Only unready instances reported: they count as 0 % for a scale-up.
        0.0
    } else {
        ready.iter().sum::<f64>() / ready_count as f64 / target
    };
    let is_scale_up = ratio > 1.0;
    if missing == 0 && (unready == 0 || !is_scale_up) {
        if tolerance.holds(ratio) {
            return Some(current);
        }
        return Some(ceil_u32(ratio * ready_count as f64));
    }
    // Dampening: missing instances count as 100 % of the target for a scale-down and 0 %
    // for a scale-up; unready ones count as 0 % for a scale-up.
    let mut values = ready;
    let filler = if is_scale_up { 0.0 } else { target };
    values.extend(std::iter::repeat_n(filler, missing));
    if is_scale_up {
        values.extend(std::iter::repeat_n(0.0, unready));
    }
    let new_ratio = values.iter().sum::<f64>() / values.len() as f64 / target;
    let flipped = (ratio > 1.0 && new_ratio < 1.0) || (ratio < 1.0 && new_ratio > 1.0);
    if tolerance.holds(new_ratio) || flipped {
        return Some(current);
    }
    let proposed = ceil_u32(new_ratio * values.len() as f64);
    if (new_ratio < 1.0 && proposed > current) || (new_ratio > 1.0 && proposed < current) {
        return Some(current);
    }
    Some(proposed)
}

/// External metrics: `TotalAverageValue` gives `ceil(sum/target)` (inside the tolerance
/// of `sum/(target × current)`: no change); `Value` gives `ceil(value/target × ready)`.
pub fn external_replicas(
    current: u32,
    ready: u32,
    value: f64,
    target: Target,
    tolerance: Tolerance,
) -> Option<u32> {
    match target {
        Target::TotalAverageValue(per_replica) if per_replica > 0.0 => {
            let ratio = value / (per_replica * f64::from(current.max(1)));
            if tolerance.holds(ratio) {
                return Some(current);
            }
            Some(ceil_u32(value / per_replica))
        }
        Target::Value(goal) if goal > 0.0 => {
            let ratio = value / goal;
            if tolerance.holds(ratio) {
                return Some(current);
            }
            Some(ceil_u32(ratio * f64::from(ready)))
        }
        _ => None,
    }
}

fn ceil_u32(value: f64) -> u32 {
    let rounded = value.ceil();
    if rounded <= 0.0 {
        0
    } else if rounded >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        rounded as u32
    }
}
