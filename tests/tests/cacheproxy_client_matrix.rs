//! Real Redis clients and a differential tester through cacheproxy (issue 12):
//! `tests/clients/redis_matrix.py` runs redis-py (sync and asyncio, RESP2 and RESP3,
//! pipelines, Pub/Sub, Lua, `Lock`, streams, a BRPOPLPUSH/BLMOVE job queue) and redis-cli;
//! `tests/clients/redis_differential.py` sends the same random command streams (types,
//! MULTI/WATCH, SELECT/HELLO switches, errors, pipelines, Lua, large and binary values)
//! to the master directly and through the proxy and compares the replies. Needs python3
//! with `tests/clients/requirements.txt`: a missing one fails the test with the install
//! command (the CI installs it), it never skips.

mod cacheproxy_support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use cacheproxy_support::TestProxy;
use integration_tests::{RedisOptions, RedisSet};

const INSTALL: &str = "pip install -r tests/clients/requirements.txt";
/// The whole run of one script; only reached if something hangs past its own timeouts.
const RUN_TIMEOUT: Duration = Duration::from_secs(10 * 60);

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join(name)
}

/// Runs `python3 <name> <args>` (blocking) and returns its output; panics with the
/// output when it failed, hung, or printed no line starting with `summary`.
fn run_python(name: &str, args: &[String], summary: &str) -> String {
    let probe = Command::new("python3")
        .args(["-c", "import redis"])
        .stdin(Stdio::null())
        .output();
    match probe {
        Err(error) => panic!("python3 is not runnable ({error}); install python3 and: {INSTALL}"),
        Ok(output) if !output.status.success() => panic!(
            "redis-py is missing:\n{}\ninstall it with: {INSTALL}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Ok(_) => {}
    }
    let mut command = Command::new("python3");
    command
        .arg(script(name))
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("REDISCLI_AUTH");
    let output = integration_tests::process::run_command(command, RUN_TIMEOUT)
        .unwrap_or_else(|error| panic!("{name}: {error:#}"));
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.lines().any(|line| line.starts_with(summary)),
        "{name} printed no summary:\n{output}"
    );
    output
}

/// Runs a script from a blocking thread so the in-process proxy keeps serving.
async fn python(name: &'static str, args: Vec<String>, summary: &'static str) -> String {
    tokio::task::spawn_blocking(move || run_python(name, &args, summary))
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_and_redis_cli_work_through_the_proxy() {
    let set = RedisSet::start_async(RedisOptions::default())
        .await
        .unwrap();
    let proxy = TestProxy::in_front_of(&set, |_| {}).await;
    let mut args = vec![
        "--host".to_owned(),
        "127.0.0.1".to_owned(),
        "--port".to_owned(),
        proxy.addr.port().to_string(),
        "--timeout".to_owned(),
        "30".to_owned(),
    ];
    // REDIS_MATRIX_ONLY=case,... runs a subset (to chase one failure).
    if let Ok(only) = std::env::var("REDIS_MATRIX_ONLY") {
        args.extend(["--only".to_owned(), only, "-v".to_owned()]);
    }
    let output = python("redis_matrix.py", args, "redis matrix: ").await;
    println!("{output}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_command_streams_get_the_replies_redis_gives() {
    let set = RedisSet::start_async(RedisOptions::default())
        .await
        .unwrap();
    let proxy = TestProxy::in_front_of(&set, |_| {}).await;
    let master = set.master().unwrap().addr();
    let seeds = std::env::var("REDIS_DIFF_SEEDS").unwrap_or_else(|_| "60".to_owned());
    let steps = std::env::var("REDIS_DIFF_STEPS").unwrap_or_else(|_| "40".to_owned());
    let args = vec![
        "--direct".to_owned(),
        master.to_string(),
        "--proxy".to_owned(),
        proxy.addr.to_string(),
        "--seeds".to_owned(),
        seeds,
        "--steps".to_owned(),
        steps,
        "--clients".to_owned(),
        "6".to_owned(),
    ];
    let output = python("redis_differential.py", args, "differential: ").await;
    println!("{output}");
    let stats = proxy.running().stats();
    assert_eq!(stats.upstream_errors, 0, "{stats:?}");
    proxy.stop().await;
}
