//! Per-cluster temporary directory that is kept, with its logs printed, when a test fails.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tempfile::TempDir;

use crate::process::{RunAs, log_tail};

/// How many lines of each log are printed when a failing test keeps its directory.
const LOG_TAIL_LINES: usize = 50;

/// A temporary directory owning everything one cluster writes (data, sockets, configs,
/// `*.log` files).
///
/// On Drop it is removed, unless the thread is panicking (a failed test), the owner
/// called [`TestDir::preserve`], or `HARNESS_KEEP_DIRS` is set: then it is kept and its path is printed, followed by the
/// last lines of every `*.log` file in it or in its direct subdirectories.
/// Owners must stop their processes before this drops so the logs are complete.
#[derive(Debug)]
pub struct TestDir {
    dir: TempDir,
    is_preserved: bool,
}

impl TestDir {
    /// Creates `<tmp>/<prefix>XXXXXX` and gives it to `owner`. `<tmp>` is the system
    /// temporary directory, or `/tmp` when that one is not reachable by `owner`.
    pub fn new(prefix: &str, owner: RunAs) -> anyhow::Result<Self> {
        let base = base_dir(owner);
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&base)
            .with_context(|| format!("creating a temporary directory in {}", base.display()))?;
        owner.give(dir.path())?;
        Ok(Self {
            dir,
            is_preserved: false,
        })
    }

    /// Keeps the directory and prints its logs on Drop, as for a failing test. Owners
    /// call it when their own start fails, so the error comes with the server logs.
    pub fn preserve(&mut self) {
        self.is_preserved = true;
    }

    /// The directory path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Creates the subdirectory `name` (mode 0700) owned by `owner`.
    pub fn subdir(&self, name: &str, owner: RunAs) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join(name);
        fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        owner.give(&path)?;
        Ok(path)
    }

    /// Every `*.log` file directly in the directory or one level below, sorted.
    pub fn log_files(&self) -> Vec<PathBuf> {
        let mut logs = Vec::new();
        let mut folders = vec![self.dir.path().to_owned()];
        if let Ok(entries) = fs::read_dir(self.dir.path()) {
            folders.extend(
                entries
                    .flatten()
                    .map(|entry| entry.path())
                    .filter(|path| path.is_dir()),
            );
        }
        for folder in folders {
            let Ok(entries) = fs::read_dir(&folder) else {
                continue;
            };
            logs.extend(
                entries.flatten().map(|entry| entry.path()).filter(|path| {
                    path.is_file() && path.extension().is_some_and(|ext| ext == "log")
                }),
            );
        }
        logs.sort();
        logs
    }
}

/// Uses the system temporary directory when every ancestor is traversable by others
/// (needed when servers run as another user), `/tmp` otherwise.
fn base_dir(owner: RunAs) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let system = std::env::temp_dir();
    if owner == RunAs::CurrentUser {
        return system;
    }
    let traversable = system.ancestors().all(|folder| {
        fs::metadata(folder).is_ok_and(|meta| meta.permissions().mode() & 0o001 != 0)
    });
    if traversable {
        system
    } else {
        PathBuf::from("/tmp")
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let panicking = std::thread::panicking() || self.is_preserved;
        let keep_requested =
            std::env::var_os("HARNESS_KEEP_DIRS").is_some_and(|value| value != "0");
        if !panicking && !keep_requested {
            return;
        }
        self.dir.disable_cleanup(true);
        eprintln!("harness: kept {}", self.dir.path().display());
        if panicking {
            for log in self.log_files() {
                eprintln!(
                    "----- last {LOG_TAIL_LINES} lines of {} -----\n{}",
                    log.display(),
                    log_tail(&log, LOG_TAIL_LINES)
                );
            }
        }
    }
}
