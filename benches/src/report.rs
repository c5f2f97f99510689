//! The markdown report: environment header and the result table with ratios.

use std::fmt::Write as _;
use std::process::Command;

use crate::pooler_compare::{Cell, Target};

/// Machine and version facts for the report header.
pub fn environment() -> String {
    let run = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_else(|_| "?".into())
    };
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "- date: {}",
        run("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    );
    let _ = writeln!(
        out,
        "- commit: {}",
        run("git", &["rev-parse", "--short", "HEAD"])
    );
    let _ = writeln!(
        out,
        "- machine: {cores} cores, kernel {}",
        run("uname", &["-r"])
    );
    let _ = writeln!(
        out,
        "- {}; {}",
        run("pgbouncer", &["--version"]),
        run("pgbench", &["--version"])
    );
    out
}

/// The pooler table: one row per (mode, clients) with each target's median tps, the
/// ratios pooler/pgbouncer and pooler/direct, latency and CPU per transaction.
pub fn pooler_table(cells: &[Cell]) -> String {
    let mut out = String::from(
        "| mode | clients | direct tps | pgbouncer tps | pooler tps | pooler/pgbouncer | pooler/direct | p50 ms (d/b/p) | p99 ms (d/b/p) | CPU µs/txn pgbouncer | CPU µs/txn pooler |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut keys: Vec<(String, u32)> = Vec::new();
    for c in cells {
        if !keys.contains(&(c.mode.clone(), c.clients)) {
            keys.push((c.mode.clone(), c.clients));
        }
    }
    for (mode, clients) in keys {
        let get = |t: Target| {
            cells
                .iter()
                .find(|c| c.mode == mode && c.clients == clients && c.target == t)
        };
        let (d, b, p) = (
            get(Target::Direct),
            get(Target::PgBouncer),
            get(Target::Pooler),
        );
        let tps = |c: Option<&Cell>| match c {
            Some(Cell { tps: Some(t), .. }) => format!("{t:.0}"),
            Some(Cell { error: Some(e), .. }) => format!("n/a ({})", e.replace('|', "/")),
            _ => "n/a".into(),
        };
        let ratio = |a: Option<&Cell>, b: Option<&Cell>| match (
            a.and_then(|c| c.tps),
            b.and_then(|c| c.tps),
        ) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "–".into(),
        };
        let lat = |c: Option<&Cell>, p99: bool| {
            c.filter(|c| c.tps.is_some()).map_or("–".into(), |c| {
                format!("{:.2}", if p99 { c.p99_ms } else { c.p50_ms })
            })
        };
        let cpu = |c: Option<&Cell>| {
            c.and_then(|c| c.cpu_us_per_txn)
                .map_or("–".into(), |v| format!("{v:.1}"))
        };
        let _ = writeln!(
            out,
            "| {mode} | {clients} | {} | {} | {} | {} | {} | {}/{}/{} | {}/{}/{} | {} | {} |",
            tps(d),
            tps(b),
            tps(p),
            ratio(p, b),
            ratio(p, d),
            lat(d, false),
            lat(b, false),
            lat(p, false),
            lat(d, true),
            lat(b, true),
            lat(p, true),
            cpu(b),
            cpu(p)
        );
    }
    out
}

/// The cacheproxy table: one row per (test, clients, pipeline, value size).
pub fn redis_table(cells: &[crate::redis_compare::Cell]) -> String {
    let mut out = String::from(
        "| test | clients | -P | value B | direct rps | twemproxy rps | cacheproxy rps | cacheproxy/twemproxy | cacheproxy/direct | p50 ms (d/t/c) | p99 ms (d/t/c) | CPU µs/req twemproxy | CPU µs/req cacheproxy |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut keys: Vec<(String, u32, u32, u32)> = Vec::new();
    for c in cells {
        let key = (c.test.clone(), c.clients, c.pipeline, c.value_size);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    for (test, clients, pipeline, size) in keys {
        let get = |t: &str| {
            cells.iter().find(|c| {
                c.test == test
                    && c.clients == clients
                    && c.pipeline == pipeline
                    && c.value_size == size
                    && c.target == t
            })
        };
        let (d, t, p) = (get("direct"), get("twemproxy"), get("cacheproxy"));
        let rps = |c: Option<&crate::redis_compare::Cell>| {
            c.map_or("n/a".into(), |c| format!("{:.0}", c.rps))
        };
        let ratio = |a: Option<&crate::redis_compare::Cell>,
                     b: Option<&crate::redis_compare::Cell>| match (a, b) {
            (Some(a), Some(b)) if b.rps > 0.0 => format!("{:.2}", a.rps / b.rps),
            _ => "–".into(),
        };
        let lat = |c: Option<&crate::redis_compare::Cell>, p99: bool| {
            c.map_or("–".into(), |c| {
                format!("{:.2}", if p99 { c.p99_ms } else { c.p50_ms })
            })
        };
        let cpu = |c: Option<&crate::redis_compare::Cell>| {
            c.and_then(|c| c.cpu_us_per_request)
                .map_or("–".into(), |v| format!("{v:.2}"))
        };
        let _ = writeln!(
            out,
            "| {test} | {clients} | {pipeline} | {size} | {} | {} | {} | {} | {} | {}/{}/{} | {}/{}/{} | {} | {} |",
            rps(d),
            rps(t),
            rps(p),
            ratio(p, t),
            ratio(p, d),
            lat(d, false),
            lat(t, false),
            lat(p, false),
            lat(d, true),
            lat(t, true),
            lat(p, true),
            cpu(t),
            cpu(p)
        );
    }
    out
}
