//! The scaler's `compose` actuator against this machine's real Docker Engine: a service of
//! a locally built image (no registry: `FROM scratch` with the host's `sleep` and the
//! libraries `ldd` lists) scaled 0 → 3 → 1 by `up -d --no-deps --no-recreate --scale`, the
//! count read back with `ps -q`. Skipped, saying so, where no Docker Engine runs.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use scaler::actuator::Actuator;
use scaler::config::ActuatorConfig;

const IMAGE: &str = "scaler-test-sleeper:local";

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|output| output.status.success())
}

/// `docker` (compose v2 plugin) or `docker-compose` (v1), whichever this machine has.
fn compose_binary() -> Option<&'static str> {
    if succeeds("docker", &["compose", "version"]) {
        Some("docker")
    } else if succeeds("docker-compose", &["version"]) {
        Some("docker-compose")
    } else {
        None
    }
}

/// Builds the image from the host's `sleep` (a registry-free base).
fn build_image(dir: &Path) {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/usr/bin/sleep", rootfs.join("bin/sleep")).unwrap();
    let ldd = Command::new("ldd").arg("/usr/bin/sleep").output().unwrap();
    for library in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
    {
        let target = rootfs.join(library.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(library, target).unwrap();
    }
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nCMD [\"/bin/sleep\", \"3600\"]\n",
    )
    .unwrap();
    let built = Command::new("docker")
        .args(["build", "-q", "-t", IMAGE])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
}

#[tokio::test]
async fn compose_scales_a_real_service() {
    if !succeeds("docker", &["info"]) {
        println!("SKIPPED: no Docker Engine answers `docker info` on this machine");
        return;
    }
    let binary =
        compose_binary().expect("a Docker Engine without docker compose or docker-compose");
    let dir = tempfile::tempdir().unwrap();
    build_image(dir.path());
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            "version: \"3.8\"\nservices:\n  app:\n    image: {IMAGE}\n    stop_grace_period: 1s\n"
        ),
    )
    .unwrap();
    let project = format!("scalertest{}", std::process::id());
    let mut actuator = Actuator::new(ActuatorConfig::Compose {
        binary: binary.to_owned(),
        project: project.clone(),
        file: file.clone(),
        service: "app".to_owned(),
        timeout: Duration::from_secs(120),
    });
    let result = async {
        assert_eq!(actuator.current(0).await?, 0);
        actuator.scale(0, 3).await?;
        assert_eq!(actuator.current(0).await?, 3);
        actuator.scale(3, 1).await?;
        assert_eq!(actuator.current(0).await?, 1);
        Ok::<(), String>(())
    }
    .await;
    let mut down = Command::new(binary);
    if binary == "docker" {
        down.arg("compose");
    }
    let _ = down
        .args(["-p", &project, "-f"])
        .arg(&file)
        .args(["down", "-t", "1"])
        .output();
    let _ = Command::new("docker").args(["rmi", "-f", IMAGE]).output();
    result.unwrap();
}
