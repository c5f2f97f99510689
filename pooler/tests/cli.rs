//! The `pooler` binary's command line: --help, --version, --check with file:line errors.

use std::process::Command;

fn pooler(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pooler"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_pgbouncer_flags() {
    let out = pooler(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--daemon",
        "--user",
        "--verbose",
        "--quiet",
        "--check",
        "--database-url",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help:\n{text}");
    }
    assert!(pooler(&["-V"]).status.success());
}

#[test]
fn check_reports_every_error_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("pgbouncer.ini");
    std::fs::write(
        &ini,
        "[databases]\napp = host=127.0.0.1 port=5432\n\n[pgbouncer]\nlisten_port = 6432\nno_such_key = 1\npool_mode = sometimes\nauth_type = trust\n",
    )
    .unwrap();
    let out = pooler(&["--check", ini.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let path = ini.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{path}:6: unknown parameter: pgbouncer/no_such_key"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{path}:7:")) && stderr.contains("pool_mode"),
        "{stderr}"
    );
}

#[test]
fn check_accepts_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("pgbouncer.ini");
    std::fs::write(&ini, "[databases]\n* = host=127.0.0.1\n\n[pgbouncer]\nauth_type = trust\nauth_file = users.txt\n").unwrap();
    std::fs::write(dir.path().join("users.txt"), "\"u\" \"p\"\n").unwrap();
    let out = pooler(&["--check", ini.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn no_config_file_is_an_error() {
    let out = pooler(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no configuration file specified"));
}
