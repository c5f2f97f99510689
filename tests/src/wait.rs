//! Poll-until-with-timeout helpers, shared by the harness and by tests.
//!
//! Timeouts are generous (a loaded 2-core CI box is slow) while polling is frequent, so
//! waits end as soon as the condition holds. Every timeout is multiplied by
//! `HARNESS_TIMEOUT_SCALE` (default 1).

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

/// Interval between two probes of a wait.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Returns the `HARNESS_TIMEOUT_SCALE` factor (at least 1).
pub fn timeout_scale() -> f64 {
    std::env::var("HARNESS_TIMEOUT_SCALE")
        .ok()
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|scale| scale.is_finite() && *scale >= 1.0)
        .unwrap_or(1.0)
}

/// Multiplies `timeout` by [`timeout_scale`].
pub fn scaled(timeout: Duration) -> Duration {
    timeout.mul_f64(timeout_scale())
}

/// Error marker that ends a wait at once instead of retrying until the timeout
/// (for example: the server being waited for has exited). Build it with [`give_up`].
#[derive(Debug)]
pub struct GaveUp;

impl fmt::Display for GaveUp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("stopped waiting: the condition can no longer become true")
    }
}

impl std::error::Error for GaveUp {}

/// Marks `error` as final: a probe returning it stops [`wait_for`] immediately. The
/// original error stays in the chain (`error.is::<E>()` still works).
pub fn give_up(error: impl Into<anyhow::Error>) -> anyhow::Error {
    error.into().context(GaveUp)
}

fn timed_out(what: &str, timeout: Duration, last_error: Option<anyhow::Error>) -> anyhow::Error {
    match last_error {
        Some(error) => error.context(format!("timed out after {timeout:?} waiting for {what}")),
        None => anyhow::anyhow!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Calls `probe` every [`POLL_INTERVAL`] until it returns `Ok(Some(value))`, then
/// returns the value.
///
/// `Ok(None)` and ordinary errors mean "not yet" (the last error is reported if the
/// wait times out); an error built with [`give_up`] is returned at once. `what` names
/// the condition in the timeout message ("replica to catch up"). `timeout` is scaled
/// by [`timeout_scale`].
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let timeout = scaled(timeout);
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match probe() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) if error.is::<GaveUp>() => return Err(error),
            Err(error) => last_error = Some(error),
        }
        if Instant::now() >= deadline {
            return Err(timed_out(what, timeout, last_error));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Like [`wait_for`] for a plain condition: polls until `condition()` is true.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    wait_for(what, timeout, || Ok(condition().then_some(())))
}

/// Async [`wait_for`]: awaits `probe()` every [`POLL_INTERVAL`] (sleeping with
/// `tokio::time::sleep`, so the runtime keeps running other tasks).
pub async fn wait_for_async<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let timeout = scaled(timeout);
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) if error.is::<GaveUp>() => return Err(error),
            Err(error) => last_error = Some(error),
        }
        if Instant::now() >= deadline {
            return Err(timed_out(what, timeout, last_error));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{give_up, wait_for, wait_until};

    #[test]
    fn returns_value_once_ready_and_reports_timeouts() {
        let mut polls = 0;
        let value = wait_for("counter", Duration::from_secs(5), || {
            polls += 1;
            Ok((polls >= 3).then_some(polls))
        })
        .unwrap();
        assert_eq!(value, 3);

        let error = wait_until("never", Duration::from_millis(60), || false).unwrap_err();
        assert!(format!("{error:#}").contains("waiting for never"));
    }

    #[test]
    fn give_up_stops_immediately() {
        let mut polls = 0;
        let result: anyhow::Result<()> = wait_for("doomed", Duration::from_secs(30), || {
            polls += 1;
            Err(give_up(anyhow::anyhow!("server exited")))
        });
        assert_eq!(polls, 1);
        assert!(format!("{:#}", result.unwrap_err()).contains("server exited"));
    }
}
