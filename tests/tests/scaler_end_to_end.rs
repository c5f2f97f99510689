//! The scaler end to end with real processes (issue 13): a real PostgreSQL, pooler
//! instances (in this process) each serving its `/metrics`, a load generator spreading its
//! workers over the instances that exist, and the scaler's `exec` actuator, whose command
//! writes the desired count for a supervisor that starts and stops instances and rewrites
//! the scaler's targets file (as systemd or a compose wrapper would). Under load the
//! scaler scales out and the clients' latency falls; without load it scales back in after
//! its window; with the database saturated it refuses to scale out.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestPooler;
use integration_tests::{AuthMethod, PgCluster, PgOptions, PgUser};
use scaler::Scaler;
use scaler::config::Config;

const USER: &str = "app";
const PASSWORD: &str = "app-secret";
/// Two server connections per instance, so a handful of clients saturate one.
const INSTANCE: &str = "pool_mode = transaction\ndefault_pool_size = 2\nauth_type = md5\n\
     max_client_conn = 500\n";

/// Instances the supervisor runs, and what the load generator may connect to.
struct Fleet {
    instances: Mutex<Vec<TestPooler>>,
    ports: Mutex<Vec<u16>>,
}

impl Fleet {
    fn ports(&self) -> Vec<u16> {
        self.ports.lock().unwrap().clone()
    }
}

/// Starts or stops instances until `desired` run; rewrites the targets file and the count.
async fn converge(fleet: &Fleet, pg: &PgCluster, desired: usize, dir: &Path) {
    let userlist = format!("\"{USER}\" \"{PASSWORD}\"\n");
    loop {
        let count = fleet.instances.lock().unwrap().len();
        if count < desired {
            let metrics_port = integration_tests::ports::free_port().unwrap();
            let general = format!("{INSTANCE}metrics_addr = 127.0.0.1:{metrics_port}\n");
            let instance = TestPooler::start(pg.primary(), &general, &userlist).await;
            fleet.instances.lock().unwrap().push(instance);
        } else if count > desired {
            let stopped = fleet.instances.lock().unwrap().pop();
            if let Some(instance) = stopped {
                // Clients leave it first (the load generator re-reads the list).
                let port = instance.port;
                fleet.ports.lock().unwrap().retain(|p| *p != port);
                tokio::time::sleep(Duration::from_millis(200)).await;
                instance.stop().await;
            }
        } else {
            break;
        }
    }
    let (ports, urls): (Vec<u16>, Vec<String>) = fleet
        .instances
        .lock()
        .unwrap()
        .iter()
        .map(|instance| {
            let metrics = instance.metrics_addr().expect("metrics_addr");
            (instance.port, format!("http://{metrics}/metrics"))
        })
        .unzip();
    *fleet.ports.lock().unwrap() = ports;
    std::fs::write(dir.join("targets"), urls.join("\n")).unwrap();
    std::fs::write(dir.join("count"), desired.to_string()).unwrap();
}

/// Client-side latencies of the last second, for the timeline.
#[derive(Default)]
struct Load {
    latencies: Mutex<Vec<Duration>>,
    transactions: AtomicUsize,
    running: AtomicBool,
}

impl Load {
    fn take_p99(&self) -> Option<Duration> {
        let mut latencies = std::mem::take(&mut *self.latencies.lock().unwrap());
        latencies.sort();
        let index = (latencies.len() * 99 / 100).min(latencies.len().checked_sub(1)?);
        latencies.get(index).copied()
    }
}

/// One worker: batches of 10 transactions of `sql` on an instance chosen from the live list.
async fn worker(index: usize, fleet: Arc<Fleet>, load: Arc<Load>, sql: Arc<Mutex<String>>) {
    let mut round = 0;
    while load.running.load(Ordering::Relaxed) {
        let ports = fleet.ports();
        if ports.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let port = ports[(index + round) % ports.len()];
        round += 1;
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user(USER)
            .password(PASSWORD)
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(5));
        let Ok((client, connection)) = config.connect(tokio_postgres::NoTls).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let _ = connection.await;
        });
        for _ in 0..10 {
            let statement = sql.lock().unwrap().clone();
            let started = Instant::now();
            if client.simple_query(&statement).await.is_err() {
                break;
            }
            load.latencies.lock().unwrap().push(started.elapsed());
            load.transactions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The 12 load clients.
fn spawn_workers(
    fleet: &Arc<Fleet>,
    load: &Arc<Load>,
    sql: &Arc<Mutex<String>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..12)
        .map(|index| {
            tokio::spawn(worker(
                index,
                Arc::clone(fleet),
                Arc::clone(load),
                Arc::clone(sql),
            ))
        })
        .collect()
}

fn scaler_config(dir: &Path, query_limit: &str) -> Config {
    let text = format!(
        r#"
interval = "1s"
min_replicas = 1
max_replicas = 6
[targets]
file = "{dir}/targets"
warmup = "0s"
timeout = "1s"
[signals.utilisation]
kind = "pool_utilisation"
target = 0.7
[signals.wait_p99]
kind = "client_wait_p99"
target = 0.05
[guards]
query_p99_limit = "{query_limit}"
max_connections = 200
reserved_connections = 10
[scale_down]
window = "5s"
policies = [{{ kind = "percent", value = 100, period = "15s" }}]
[actuator]
kind = "exec"
command = ["sh", "-c", "echo $0 > {dir}/desired", "{{desired}}"]
count_command = ["cat", "{dir}/count"]
"#,
        dir = dir.display()
    );
    let config = Config::from_toml(&text, "e2e").unwrap();
    config.validate().unwrap();
    config
}

/// One timeline row per second: (t, replicas, reason, utilisation, wait p99, client p99).
type Row = (
    u64,
    u32,
    &'static str,
    Option<f64>,
    Option<f64>,
    Option<Duration>,
);

/// What every phase works on.
struct Rig<'a> {
    fleet: &'a Fleet,
    pg: &'a PgCluster,
    dir: &'a Path,
    load: &'a Load,
    started: Instant,
}

async fn phase(rig: &Rig<'_>, scaler: &mut Scaler, seconds: u64, timeline: &mut Vec<Row>) {
    let Rig {
        fleet,
        pg,
        dir,
        load,
        started,
    } = rig;
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let report = scaler.tick().await;
        if let Ok(desired) = std::fs::read_to_string(dir.join("desired")) {
            let desired: usize = desired.trim().parse().unwrap();
            converge(fleet, pg, desired, dir).await;
        }
        let value = |name: &str| {
            report
                .signals
                .iter()
                .find(|signal| signal.name == name)
                .and_then(|signal| signal.value)
        };
        let row = (
            started.elapsed().as_secs(),
            report.current_replicas,
            report.reason,
            value("utilisation"),
            value("wait_p99"),
            load.take_p99(),
        );
        println!("{row:?}");
        timeline.push(row);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_out_under_load_in_when_idle_and_not_into_a_saturated_database() {
    let pg = PgCluster::start(PgOptions {
        users: vec![PgUser::new(USER, PASSWORD, AuthMethod::Md5)],
        ..PgOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dir_path: PathBuf = dir.path().to_path_buf();
    let fleet = Arc::new(Fleet {
        instances: Mutex::new(Vec::new()),
        ports: Mutex::new(Vec::new()),
    });
    converge(&fleet, &pg, 1, &dir_path).await;
    let load = Arc::new(Load::default());
    load.running.store(true, Ordering::Relaxed);
    let sql = Arc::new(Mutex::new("SELECT pg_sleep(0.01)".to_owned()));
    let workers = spawn_workers(&fleet, &load, &sql);
    let started = Instant::now();
    let mut timeline = Vec::new();
    let mut scaler = Scaler::new(scaler_config(&dir_path, "500ms"));
    // SCALER_RECORD=path writes the trace replayed by scaler/tests/replay.rs.
    if let Ok(path) = std::env::var("SCALER_RECORD") {
        scaler.record_trace(Path::new(&path)).unwrap();
    }
    let rig = Rig {
        fleet: &fleet,
        pg: &pg,
        dir: &dir_path,
        load: &load,
        started,
    };

    // Load: 12 clients of 10 ms transactions on one instance of 2 servers.
    phase(&rig, &mut scaler, 20, &mut timeline).await;
    let peak = timeline.iter().map(|row| row.1).max().unwrap();
    assert!(peak >= 4, "scaled out under load: {timeline:?}");
    // Client p99 per second is noisy on 2 cores: compare medians of the first three
    // seconds (one instance) and of the last five.
    let median = |rows: &[Row]| {
        let mut values: Vec<Duration> = rows.iter().filter_map(|row| row.5).collect();
        values.sort();
        values[values.len() / 2]
    };
    let early = median(&timeline[..3]);
    let late = median(&timeline[timeline.len() - 5..]);
    assert!(
        late < early,
        "client p99 fell after scaling out ({early:?} → {late:?}): {timeline:?}"
    );

    // Idle: back to one instance once the 5 s window passed.
    load.running.store(false, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.await;
    }
    phase(&rig, &mut scaler, 15, &mut timeline).await;
    assert_eq!(timeline.last().unwrap().1, 1, "scaled in: {timeline:?}");

    // The database is the bottleneck (every query 150 ms, over the 100 ms query p99 limit):
    // no scale-out, however busy the pools.
    let mut scaler_saturated = Scaler::new(scaler_config(&dir_path, "100ms"));
    *sql.lock().unwrap() = "SELECT pg_sleep(0.15)".to_owned();
    load.running.store(true, Ordering::Relaxed);
    let workers = spawn_workers(&fleet, &load, &sql);
    let before = timeline.len();
    phase(&rig, &mut scaler_saturated, 8, &mut timeline).await;
    let saturated = &timeline[before..];
    assert!(
        saturated.iter().all(|row| row.1 == 1),
        "no scale-out into a saturated database: {saturated:?}"
    );
    assert!(
        saturated.iter().any(|row| row.2 == "backend_saturated"),
        "the veto is reported: {saturated:?}"
    );
    load.running.store(false, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.await;
    }
    println!(
        "transactions: {}; timeline (t s, replicas, reason, utilisation, wait p99 s, client p99):",
        load.transactions.load(Ordering::Relaxed)
    );
    for row in &timeline {
        println!("{row:?}");
    }
    let instances = std::mem::take(&mut *fleet.instances.lock().unwrap());
    for instance in instances {
        instance.stop().await;
    }
}
