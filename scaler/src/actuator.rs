//! Actuators: `dry-run`, `none`, `exec` (a command template) and `compose` (`docker
//! compose … up --scale`). The instance count is re-read from the actuator every tick.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::config::ActuatorConfig;
use crate::kubernetes::Deployment;

/// Carries out decisions.
#[derive(Debug)]
pub struct Actuator {
    config: ActuatorConfig,
    dry_run: u32,
}

/// Runs `argv` within `timeout`; its stdout, or why it failed.
async fn run(argv: &[String], timeout: Duration) -> Result<String, String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("{program}: {error}"))?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(output) => output.map_err(|error| format!("{program}: {error}"))?,
        Err(_) => return Err(format!("{program}: no exit within {timeout:?} (killed)")),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "{program} exited with {}: {}",
            output.status,
            stderr.trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn fill(template: &[String], service: &str, desired: u32, current: u32) -> Vec<String> {
    template
        .iter()
        .map(|arg| {
            arg.replace("{service}", service)
                .replace("{desired}", &desired.to_string())
                .replace("{current}", &current.to_string())
        })
        .collect()
}

/// `docker compose -p P -f F <args…>` (or `docker-compose`/`podman-compose` without `compose`).
fn compose_argv(binary: &str, project: &str, file: &std::path::Path, args: &[&str]) -> Vec<String> {
    let mut argv = vec![binary.to_owned()];
    if binary == "docker" || binary.ends_with("/docker") || binary == "podman" {
        argv.push("compose".to_owned());
    }
    argv.extend(["-p".to_owned(), project.to_owned(), "-f".to_owned()]);
    argv.push(file.display().to_string());
    argv.extend(args.iter().map(|arg| (*arg).to_owned()));
    argv
}

impl Actuator {
    /// An actuator for `config`.
    pub fn new(config: ActuatorConfig) -> Actuator {
        let dry_run = match &config {
            ActuatorConfig::DryRun { initial } => *initial,
            _ => 0,
        };
        Actuator { config, dry_run }
    }

    /// The kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self.config {
            ActuatorConfig::DryRun { .. } => "dry-run",
            ActuatorConfig::None => "none",
            ActuatorConfig::Exec { .. } => "exec",
            ActuatorConfig::Compose { .. } => "compose",
            ActuatorConfig::Kubernetes { .. } => "kubernetes",
        }
    }

    /// The Deployment of a `kubernetes` actuator (the token file is re-read every time:
    /// projected service-account tokens rotate).
    fn deployment(&self) -> Result<Deployment, String> {
        let ActuatorConfig::Kubernetes {
            api_server,
            namespace,
            deployment,
            token_file,
            ca_file,
            timeout,
        } = &self.config
        else {
            return Err("not a kubernetes actuator".to_owned());
        };
        let token = match token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|error| format!("{}: {error}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        let tls = match ca_file {
            Some(path) => Some(crate::http_client::tls_trusting(
                &std::fs::read(path).map_err(|error| format!("{}: {error}", path.display()))?,
            )?),
            None => None,
        };
        Ok(Deployment {
            tls,
            api_server: api_server.clone(),
            namespace: namespace.clone(),
            name: deployment.clone(),
            token,
            timeout: *timeout,
        })
    }

    /// True when decisions are carried out (not `none`).
    pub fn acts(&self) -> bool {
        !matches!(self.config, ActuatorConfig::None)
    }

    /// The instance count now; `targets` is how many instances discovery found.
    pub async fn current(&self, targets: usize) -> Result<u32, String> {
        let targets = u32::try_from(targets).unwrap_or(u32::MAX);
        match &self.config {
            ActuatorConfig::DryRun { .. } => Ok(self.dry_run),
            ActuatorConfig::None => Ok(targets),
            ActuatorConfig::Exec {
                count_command: Some(template),
                service,
                timeout,
                ..
            } => {
                let output = run(&fill(template, service, 0, 0), *timeout).await?;
                output.trim().parse().map_err(|_| {
                    format!(
                        "the count command printed {:?}, not a number",
                        output.trim()
                    )
                })
            }
            ActuatorConfig::Exec { .. } => Ok(targets),
            ActuatorConfig::Kubernetes { .. } => self.deployment()?.current().await,
            ActuatorConfig::Compose {
                binary,
                project,
                file,
                service,
                timeout,
            } => {
                let argv = compose_argv(binary, project, file, &["ps", "-q", service]);
                let output = run(&argv, *timeout).await?;
                Ok(output
                    .lines()
                    .filter(|line| !line.trim().is_empty())
                    .count() as u32)
            }
        }
    }

    /// Moves from `current` to `desired` instances.
    pub async fn scale(&mut self, current: u32, desired: u32) -> Result<(), String> {
        match &self.config {
            ActuatorConfig::DryRun { .. } => {
                self.dry_run = desired;
                Ok(())
            }
            ActuatorConfig::None => Ok(()),
            ActuatorConfig::Kubernetes { .. } => self.deployment()?.scale(desired).await,
            ActuatorConfig::Exec {
                command,
                service,
                timeout,
                ..
            } => run(&fill(command, service, desired, current), *timeout)
                .await
                .map(drop),
            ActuatorConfig::Compose {
                binary,
                project,
                file,
                service,
                timeout,
            } => {
                let scale = format!("{service}={desired}");
                let argv = compose_argv(
                    binary,
                    project,
                    file,
                    &[
                        "up",
                        "-d",
                        "--no-deps",
                        "--no-recreate",
                        "--scale",
                        &scale,
                        service,
                    ],
                );
                run(&argv, *timeout).await.map(drop)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exec_fills_the_template_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("argv");
        let script = format!("echo \"$@\" > {}", log.display());
        let mut actuator = Actuator::new(ActuatorConfig::Exec {
            command: vec![
                "sh".into(),
                "-c".into(),
                script,
                "scale".into(),
                "{service}".into(),
                "{desired}".into(),
                "{current}".into(),
            ],
            count_command: Some(vec!["echo".into(), "3".into()]),
            service: "app".into(),
            timeout: Duration::from_secs(5),
        });
        assert_eq!(actuator.current(0).await.unwrap(), 3);
        actuator.scale(3, 5).await.unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), "app 5 3");
        let mut failing = Actuator::new(ActuatorConfig::Exec {
            command: vec!["sh".into(), "-c".into(), "echo nope >&2; exit 3".into()],
            count_command: None,
            service: String::new(),
            timeout: Duration::from_secs(5),
        });
        let error = failing.scale(1, 2).await.unwrap_err();
        assert!(error.contains("nope"), "{error}");
        let mut hanging = Actuator::new(ActuatorConfig::Exec {
            command: vec!["sleep".into(), "10".into()],
            count_command: None,
            service: String::new(),
            timeout: Duration::from_millis(200),
        });
        assert!(hanging.scale(1, 2).await.unwrap_err().contains("killed"));
    }

    #[tokio::test]
    async fn compose_runs_the_scale_command() {
        let dir = tempfile::tempdir().unwrap();
        let shim = dir.path().join("docker");
        let log = dir.path().join("argv");
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\necho \"$@\" >> {}\nif [ \"$6\" = ps ]; then echo a; echo b; fi\n",
                log.display()
            ),
        )
        .unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&shim)
            .status()
            .unwrap();
        let mut actuator = Actuator::new(ActuatorConfig::Compose {
            binary: shim.display().to_string(),
            project: "demo".into(),
            file: "compose.yaml".into(),
            service: "app".into(),
            timeout: Duration::from_secs(5),
        });
        assert_eq!(actuator.current(0).await.unwrap(), 2);
        actuator.scale(2, 4).await.unwrap();
        let argv = std::fs::read_to_string(&log).unwrap();
        assert!(
            argv.contains(
                "compose -p demo -f compose.yaml up -d --no-deps --no-recreate --scale app=4 app"
            ),
            "{argv}"
        );
    }
}
