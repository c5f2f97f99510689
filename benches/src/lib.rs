//! Shared pieces of the end-to-end comparison harness: running load tools, reading a
//! process's CPU time and memory from /proc, medians and the markdown report.
#![forbid(unsafe_code)]

pub mod memory;
pub mod pgbench;
pub mod pooler_compare;
pub mod redis_compare;
pub mod report;
pub mod split_compare;

use std::time::Duration;

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    // utime and stime: fields 14 and 15 of the line.
    stat_cpu(pid, 14, 15)
}

/// CPU time (user + system) of a process's children that exited and were waited for
/// (`cutime` + `cstime` of `/proc/<pid>/stat`).
pub fn children_cpu_time(pid: u32) -> anyhow::Result<Duration> {
    // cutime and cstime: fields 16 and 17 of the line.
    stat_cpu(pid, 16, 17)
}

/// The sum of two clock-tick fields of `/proc/<pid>/stat` (1-based field numbers of
/// proc(5)), as a duration.
fn stat_cpu(pid: u32, user_field: usize, system_field: usize) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (field 2), which is in parentheses and may contain
    // spaces: field n is at index n - 3 after ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |field: usize| {
        fields
            .get(field - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let hz = 100; // USER_HZ is 100 on Linux
    Ok(Duration::from_millis(
        (ticks(user_field) + ticks(system_field)) * 1000 / hz,
    ))
}

/// Resident memory of a process in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Ok(kb * 1024)
}

/// The median of `values` (0 for none).
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}
