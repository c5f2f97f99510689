//! `PgCluster`: a PostgreSQL primary plus streaming replicas in a temporary directory.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::pg_node::{NodeLayout, PgNode};
use crate::pg_setup::{
    base_backup, create_role_statements, hba_conf, initdb, public_schema_grants, quote_ident,
    server_conf,
};
use crate::process::RunAs;
use crate::test_dir::TestDir;

/// How a user must authenticate over TCP and the unix socket (its pg_hba.conf method).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// No password asked.
    Trust,
    /// MD5 challenge; the role's password is stored as an md5 hash.
    Md5,
    /// SCRAM-SHA-256; the role's password is stored as a SCRAM verifier.
    ScramSha256,
}

/// The server's default `password_encryption`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PasswordEncryption {
    /// `md5`
    Md5,
    /// `scram-sha-256` (PostgreSQL's default).
    #[default]
    ScramSha256,
}

/// A login role created at cluster start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgUser {
    /// Role name (must not contain `"` or whitespace, and must not be `postgres`).
    pub name: String,
    /// Password, hashed as `method` needs (for `Trust`, with the cluster default).
    pub password: String,
    /// The only method this user may log in with.
    pub method: AuthMethod,
    /// Create the role with SUPERUSER.
    pub superuser: bool,
}

impl PgUser {
    /// A non-superuser login role.
    pub fn new(name: &str, password: &str, method: AuthMethod) -> Self {
        Self {
            name: name.to_owned(),
            password: password.to_owned(),
            method,
            superuser: false,
        }
    }

    /// Makes the role a superuser.
    pub fn superuser(mut self) -> Self {
        self.superuser = true;
        self
    }
}

/// What [`PgCluster::start`] builds. `Default` is a lone primary with only the trusted
/// `postgres` superuser.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Streaming replicas to create with pg_basebackup.
    pub replicas: usize,
    /// Login roles; each gets pg_hba.conf lines for its method only.
    pub users: Vec<PgUser>,
    /// Databases to create (owned by `postgres`, usable by everyone).
    pub databases: Vec<String>,
    /// Server default `password_encryption`.
    pub password_encryption: PasswordEncryption,
    /// `max_connections` (default 200).
    pub max_connections: u32,
    /// Extra postgresql.conf settings, written after the harness's own (so they win).
    /// Values are quoted by the harness: write `("work_mem", "8MB")`.
    pub extra_conf: Vec<(String, String)>,
    /// Extra pg_hba.conf lines appended after the generated ones (first match wins, so
    /// they apply to users not listed in `users`).
    pub hba_extra: Vec<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            replicas: 0,
            users: Vec::new(),
            databases: Vec::new(),
            password_encryption: PasswordEncryption::default(),
            max_connections: 200,
            extra_conf: Vec::new(),
            hba_extra: Vec::new(),
        }
    }
}

impl PgOptions {
    fn validate(&self) -> anyhow::Result<()> {
        let mut names: Vec<&str> = self.users.iter().map(|user| user.name.as_str()).collect();
        for name in &names {
            if name.is_empty() || name.contains(|c: char| c == '"' || c.is_whitespace()) {
                bail!("invalid user name {name:?}");
            }
            if *name == "postgres" {
                bail!("user `postgres` is created by the harness (trusted superuser)");
            }
        }
        names.sort_unstable();
        if names.windows(2).any(|pair| pair[0] == pair[1]) {
            bail!("duplicate user names in {names:?}");
        }
        Ok(())
    }
}

/// A running PostgreSQL primary and its replicas, each on a free port of 127.0.0.1
/// with its unix socket in the cluster's temporary directory.
///
/// The `postgres` superuser is trusted over TCP and the socket; the harness itself uses
/// it (through psql on the socket). Drop stops every node (fast shutdown, SIGKILL after
/// a grace period), even if node handles were cloned, then removes the directory unless
/// the test is failing.
#[derive(Debug)]
pub struct PgCluster {
    nodes: Vec<PgNode>,
    options: PgOptions,
    run_as: RunAs,
    dir: TestDir,
}

impl PgCluster {
    /// initdb, configure and start a primary, create the users and databases, then
    /// clone and start `options.replicas` replicas. Takes about a second per node.
    /// On failure the directory is kept and the server logs are printed.
    pub fn start(options: PgOptions) -> anyhow::Result<Self> {
        options.validate()?;
        let run_as = RunAs::postgres()?;
        let dir = TestDir::new("pgcluster-", run_as)?;
        let mut cluster = Self {
            nodes: Vec::new(),
            options,
            run_as,
            dir,
        };
        let primary = cluster.create_primary().context("starting the primary")?;
        cluster.nodes.push(primary);
        for _ in 0..cluster.options.replicas {
            cluster.add_replica()?;
        }
        Ok(cluster)
    }

    /// [`PgCluster::start`] on a blocking thread, for `#[tokio::test]`.
    pub async fn start_async(options: PgOptions) -> anyhow::Result<Self> {
        tokio::task::spawn_blocking(move || Self::start(options))
            .await
            .context("start task")?
    }

    fn layout(&self, name: &str) -> anyhow::Result<NodeLayout> {
        let node_dir = self.dir.subdir(name, self.run_as)?;
        Ok(NodeLayout {
            name: name.to_owned(),
            data_dir: node_dir.join("data"),
            log_path: node_dir.join("postgres.log"),
            socket_dir: node_dir,
            run_as: self.run_as,
        })
    }

    fn create_primary(&self) -> anyhow::Result<PgNode> {
        let layout = self.layout("primary")?;
        initdb(&layout.data_dir, self.run_as, &layout.socket_dir)?;
        append(
            &layout.data_dir.join("postgresql.conf"),
            &server_conf(&self.options),
        )?;
        fs::write(layout.data_dir.join("pg_hba.conf"), hba_conf(&self.options))
            .context("writing pg_hba.conf")?;
        let primary = PgNode::launch(layout)?;
        for database in ["template1", "postgres"] {
            primary.psql_statements(database, &public_schema_grants())?;
        }
        let mut statements = create_role_statements(&self.options);
        for database in &self.options.databases {
            statements.push(format!("CREATE DATABASE {}", quote_ident(database)));
        }
        primary.psql_statements("postgres", &statements)?;
        Ok(primary)
    }

    /// Clones the primary with pg_basebackup into a new replica (`replica<N>`), starts it
    /// and returns its handle. The replica streams from the original primary.
    pub fn add_replica(&mut self) -> anyhow::Result<PgNode> {
        let name = format!("replica{}", self.nodes.len());
        let layout = self.layout(&name)?;
        base_backup(
            self.primary().port(),
            &layout.data_dir,
            &name,
            self.run_as,
            &layout.socket_dir,
        )
        .with_context(|| format!("cloning {name}"))?;
        let replica = PgNode::launch(layout).with_context(|| format!("starting {name}"))?;
        self.nodes.push(replica.clone());
        Ok(replica)
    }

    /// The node created as primary (it stays "primary" here even after a replica was
    /// promoted or it was stopped).
    pub fn primary(&self) -> &PgNode {
        &self.nodes[0]
    }

    /// The replicas, in creation order.
    pub fn replicas(&self) -> &[PgNode] {
        &self.nodes[1..]
    }

    /// Replica number `index` (0-based).
    ///
    /// # Panics
    /// If there is no such replica (a test bug).
    #[track_caller]
    pub fn replica(&self, index: usize) -> &PgNode {
        match self.replicas().get(index) {
            Some(node) => node,
            None => panic!(
                "the cluster has {} replicas, not {}",
                self.replicas().len(),
                index + 1
            ),
        }
    }

    /// Primary first, then the replicas.
    pub fn nodes(&self) -> &[PgNode] {
        &self.nodes
    }

    /// The users created at start.
    pub fn users(&self) -> &[PgUser] {
        &self.options.users
    }

    /// The cluster's temporary directory (one subdirectory per node).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits until `replica` has replayed everything the primary had written when the
    /// wait began (see [`PgNode::wait_caught_up_with`]).
    pub fn wait_caught_up(&self, replica: &PgNode) -> anyhow::Result<()> {
        replica.wait_caught_up_with(self.primary(), Duration::from_secs(60))
    }

    /// Waits until every running replica has caught up with the primary.
    pub fn wait_for_replication(&self) -> anyhow::Result<()> {
        for replica in self
            .replicas()
            .iter()
            .filter(|replica| replica.is_running())
        {
            self.wait_caught_up(replica)?;
        }
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Replicas first, so they do not spend the primary's shutdown reconnecting.
        for node in self.nodes.iter().rev() {
            if let Err(error) = node.retire() {
                eprintln!("harness: stopping {}: {error:#}", node.name());
            }
        }
    }
}

fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
