//! Unit tests of the config layer (shared helpers here; the tests in `ini` and `model`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::keys::{self, KEYS, Support, parse_bool, parse_c_integer, parse_seconds};
use super::url::parse_database_url;
use super::*;

const BASE: &str = "[pgbouncer]\nauth_file = userlist.txt\n";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Writes `files` into a fresh directory; the first one is the config to load.
fn with_files(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write fixture");
    }
    let main = dir.path().join(files[0].0);
    (dir, main)
}

fn load_text(text: &str) -> Result<Loaded, Vec<ConfigError>> {
    let (_dir, path) = with_files(&[("pgbouncer.ini", text)]);
    load(&path)
}

fn loaded(text: &str) -> Loaded {
    match load_text(text) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("unexpected errors: {:#?}", render(&errors)),
    }
}

/// `file-name:line: message` for each error, without the temp directory.
fn render<T: std::fmt::Display>(items: &[T]) -> Vec<String> {
    items
        .iter()
        .map(|item| {
            let text = item.to_string();
            let (path, rest) = text.split_once(": ").unwrap_or(("", &text));
            let name = path.rsplit('/').next().unwrap_or(path);
            format!("{name}: {rest}")
        })
        .collect()
}

fn errors_of(text: &str) -> Vec<String> {
    render(&load_text(text).expect_err("config should be rejected"))
}

mod ini;
mod model;
