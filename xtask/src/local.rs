//! `local up|down|status`: the offline cloud on 127.0.0.1 — the moto server (AWS APIs), the AWS
//! gateway in front of it (decides every request as IAM would, see the `aws-gateway` crate),
//! the Salesforce emulator with its demo org and the local Lambda service (runs the deployed
//! zips as their execution roles, see the `lambda-runner` crate) — as background processes
//! whose ports, process ids and logs live under `target/sfstack/local/` (or
//! `SFSTACK_LOCAL_DIR`). Every AWS client talks to the gateway, never to moto directly.
//!
//! `SFSTACK_IAM_ENFORCEMENT=off` at `local up` starts the gateway without enforcement (it logs
//! what it would deny and lets it through): for debugging only, and said loudly.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// One background service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub pid: u32,
    pub port: u16,
    pub url: String,
    pub log: PathBuf,
}

/// What `local up` started, as recorded in `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalCloud {
    pub moto: Service,
    pub emulator: Service,
    /// The Lambda Invoke API. Optional only so a state file written before it existed reads
    /// as "not healthy" (and is restarted) rather than as corrupt.
    #[serde(default)]
    pub lambda: Option<Service>,
    /// The AWS gateway; optional for the same reason.
    #[serde(default)]
    pub gateway: Option<Service>,
    /// Whether the gateway refuses what IAM would refuse (`false` only for debugging).
    #[serde(default)]
    pub enforce: bool,
    /// The gateway's decision log (JSON lines).
    #[serde(default)]
    pub decision_log: Option<PathBuf>,
    /// The demo org's JWT private key (mode 0600), made by `local up`; the emulator's demo app
    /// trusts it. Optional for the same reason as `lambda`.
    #[serde(default)]
    pub demo_jwt_key: Option<PathBuf>,
}

/// The variable that turns enforcement off at `local up` (debugging only).
pub const ENFORCEMENT_VARIABLE: &str = "SFSTACK_IAM_ENFORCEMENT";

/// Whether `local up` should start the gateway enforcing (anything but `off`).
fn enforcement_wanted() -> bool {
    std::env::var(ENFORCEMENT_VARIABLE).map_or(true, |value| value.trim() != "off")
}

impl LocalCloud {
    /// Each service with its name and the path that answers when it is up.
    fn services(&self) -> Vec<(&'static str, Option<&Service>, &'static str)> {
        vec![
            ("moto", Some(&self.moto), "/moto-api/"),
            ("emulator", Some(&self.emulator), "/services/data/"),
            ("lambda", self.lambda.as_ref(), "/health"),
            ("gateway", self.gateway.as_ref(), "/__sfstack/health"),
        ]
    }
}

/// A service's health as `status` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub name: &'static str,
    pub url: String,
    pub pid: u32,
    pub running: bool,
    pub answering: bool,
}

const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub fn state_dir(root: &Path) -> PathBuf {
    std::env::var_os("SFSTACK_LOCAL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("sfstack").join("local"))
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// The recorded local cloud, if any (whether or not its processes still run).
pub fn recorded(dir: &Path) -> anyhow::Result<Option<LocalCloud>> {
    let path = state_file(dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).with_context(|| {
            format!(
                "{} is corrupt\nhint: run `cargo xtask local down` to reset it",
                path.display()
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// Starts whatever is not already running and healthy; returns the running cloud.
pub fn up(root: &Path) -> anyhow::Result<LocalCloud> {
    let dir = state_dir(root);
    if let Some(cloud) = recorded(&dir)?
        && cloud.demo_jwt_key.is_some()
        && health(&cloud)
            .iter()
            .all(|service| service.running && service.answering)
    {
        if cloud.enforce != enforcement_wanted() {
            bail!(
                "the local cloud is running with IAM enforcement {}, but {ENFORCEMENT_VARIABLE} asks for it {}\nhint: run `cargo xtask local down` first (it forgets the deployed environments), then the command again",
                if cloud.enforce { "on" } else { "off" },
                if cloud.enforce { "off" } else { "on" },
            );
        }
        if !cloud.enforce {
            eprintln!(
                "local: WARNING: IAM enforcement is OFF ({ENFORCEMENT_VARIABLE}=off): a green run proves nothing about AWS"
            );
        }
        eprintln!(
            "local: already running (moto {}, emulator {}, lambda {})",
            cloud.moto.url,
            cloud.emulator.url,
            cloud
                .lambda
                .as_ref()
                .map_or("", |service| service.url.as_str())
        );
        return Ok(cloud);
    }
    // Something recorded but unhealthy: stop what is left before starting afresh.
    down(root)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    eprintln!("local: starting the moto server (AWS APIs)");
    let bin = pytools::ensure_python_tools().context("installing the moto server")?;
    // All four at once: a port picked while an earlier service is still starting (moto takes a
    // second) could be that service's own, and the second one to bind it would be mistaken
    // for the first.
    let [moto_port, gateway_port, emulator_port, lambda_port] = free_ports()?;
    let moto = spawn(
        Command::new(bin.join("moto_server")).args([
            "-H",
            "127.0.0.1",
            "-p",
            &moto_port.to_string(),
        ]),
        &dir.join("moto.log"),
        moto_port,
    )?;
    eprintln!("local: starting the AWS gateway (IAM, key and resource policies)");
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    pytools::ensure_node_tools().context("installing the IAM policy evaluator")?;
    let enforce = enforcement_wanted();
    let decision_log = dir.join("decisions.jsonl");
    let mut gateway_command = Command::new(&exe);
    gateway_command
        .args([
            "aws-gateway",
            "--port",
            &gateway_port.to_string(),
            "--moto-url",
        ])
        .arg(&moto.url)
        .arg("--decision-log")
        .arg(&decision_log);
    if !enforce {
        gateway_command.arg("--no-enforce");
        eprintln!(
            "local: WARNING: {ENFORCEMENT_VARIABLE}=off: the gateway does NOT enforce IAM; a green run proves nothing about AWS (debugging only)"
        );
    }
    let gateway = spawn(&mut gateway_command, &dir.join("gateway.log"), gateway_port)?;
    eprintln!("local: starting the Salesforce emulator (demo org)");
    let demo_jwt_key = dir.join("demo-jwt-key.pem");
    sf_emulator::DemoKey::load_or_create(&demo_jwt_key)?;
    let emulator = spawn(
        Command::new(exe)
            .args(["emulator", "--port", &emulator_port.to_string()])
            .arg("--demo-jwt-key")
            .arg(&demo_jwt_key),
        &dir.join("emulator.log"),
        emulator_port,
    )?;
    eprintln!("local: starting the Lambda service (runs the deployed zips)");
    let lambda = spawn(
        Command::new(std::env::current_exe().context("finding the xtask binary")?)
            .args([
                "lambda-service",
                "--port",
                &lambda_port.to_string(),
                "--aws-endpoint",
            ])
            .arg(&moto.url)
            .arg("--gateway")
            .arg(&gateway.url)
            .arg("--work-dir")
            .arg(dir.join("lambda")),
        &dir.join("lambda.log"),
        lambda_port,
    )?;
    let cloud = LocalCloud {
        moto,
        emulator,
        lambda: Some(lambda),
        gateway: Some(gateway),
        enforce,
        decision_log: Some(decision_log),
        demo_jwt_key: Some(demo_jwt_key),
    };
    let text = serde_json::to_string_pretty(&cloud)?;
    std::fs::write(state_file(&dir), text)
        .with_context(|| format!("writing {}", state_file(&dir).display()))?;

    let started = Instant::now();
    for (name, service, path) in cloud.services() {
        let Some(service) = service else { continue };
        while !answers(service.port, path) {
            if !process_running(service.pid) {
                bail!(
                    "the {name} process exited during start-up\nhint: see {}",
                    service.log.display()
                );
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "the {name} did not answer on {} within {READY_TIMEOUT:?}\nhint: see {}",
                    service.url,
                    service.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    eprintln!(
        "local: up (moto {}, emulator {}, lambda {lambda_url})",
        cloud.moto.url,
        cloud.emulator.url,
        lambda_url = cloud
            .lambda
            .as_ref()
            .map_or("", |service| service.url.as_str())
    );
    Ok(cloud)
}

/// Stops the recorded processes (if still running) and forgets them. Idempotent.
pub fn down(root: &Path) -> anyhow::Result<bool> {
    let dir = state_dir(root);
    let Some(cloud) = recorded(&dir).ok().flatten() else {
        let _ = std::fs::remove_file(state_file(&dir));
        return Ok(false);
    };
    for (name, service, _) in cloud.services() {
        let Some(service) = service else {
            continue;
        };
        if is_our_service(service.pid, service.port) {
            stop(service.pid);
        } else if process_running(service.pid) {
            // The PID was reused: the process now holding it is someone else's.
            eprintln!(
                "local: process {} is no longer the {name} (its command line does not name port {}); left running",
                service.pid, service.port
            );
        }
    }
    std::fs::remove_file(state_file(&dir))
        .with_context(|| format!("removing {}", state_file(&dir).display()))?;
    Ok(true)
}

/// The health of each recorded service.
pub fn health(cloud: &LocalCloud) -> Vec<Health> {
    cloud
        .services()
        .into_iter()
        .map(|(name, service, path)| match service {
            Some(service) => Health {
                name,
                url: service.url.clone(),
                pid: service.pid,
                running: process_running(service.pid),
                answering: answers(service.port, path),
            },
            None => Health {
                name,
                url: String::new(),
                pid: 0,
                running: false,
                answering: false,
            },
        })
        .collect()
}

/// `N` different free ports: each is held until all are picked. A port is released before its
/// service binds it; a collision in that instant (another program taking it) makes the service
/// exit, which `up` reports with its log.
fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

fn spawn(command: &mut Command, log: &Path, port: u16) -> anyhow::Result<Service> {
    use std::os::unix::process::CommandExt;
    let log_file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let child = command
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        // Its own process group: Ctrl-C in the terminal that ran `up` does not stop it.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    Ok(Service {
        pid: child.id(),
        port,
        url: format!("http://127.0.0.1:{port}"),
        log: log.to_path_buf(),
    })
}

fn process_running(pid: u32) -> bool {
    // A zombie (exited, not yet reaped) still has a /proc entry; its state letter is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// Whether `pid` is still the service `local up` started on `port`: every one is started with
/// its port among its arguments. A PID recorded in `state.json` may since belong to another
/// process (after a reboot, say), which `down` must not kill.
fn is_our_service(pid: u32, port: u16) -> bool {
    let port = port.to_string();
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        cmdline
            .split(|byte| *byte == 0)
            .any(|argument| argument == port.as_bytes())
    })
}

fn stop(pid: u32) {
    if !process_running(pid) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_running(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if process_running(pid) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

/// Whether an HTTP GET on 127.0.0.1:`port` gets any HTTP answer.
fn answers(port: u16, path: &str) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// Prints the status; returns whether everything is up.
pub fn print_status(root: &Path, json: bool) -> anyhow::Result<bool> {
    let dir = state_dir(root);
    let cloud = recorded(&dir)?;
    let services = cloud.as_ref().map(health).unwrap_or_default();
    let all_up = cloud.is_some()
        && services
            .iter()
            .all(|service| service.running && service.answering);
    if json {
        let document =
            serde_json::json!({"running": all_up, "services": services, "state": state_file(&dir)});
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else if cloud.is_none() {
        println!("local cloud: not running (start it with `cargo xtask local up`)");
    } else {
        println!(
            "local cloud: {}",
            if all_up { "running" } else { "degraded" }
        );
        for service in &services {
            let state = match (service.running, service.answering) {
                (true, true) => "up",
                (true, false) => "not answering",
                (false, _) => "stopped",
            };
            println!(
                "  {:<9} {:<26} pid {:<8} {state}",
                service.name, service.url, service.pid
            );
        }
    }
    Ok(all_up)
}

/// How far the decision log reaches now (its length in bytes; 0 when absent): decisions
/// written later are read with [`decisions`] from there, without rereading the whole log.
pub fn decision_log_end(log: &Path) -> u64 {
    std::fs::metadata(log).map_or(0, |metadata| metadata.len())
}

/// The gateway's decisions written after byte `from` of the log (all of them with 0), as JSON
/// values; an absent log has none.
pub fn decisions(log: &Path, from: u64) -> Vec<serde_json::Value> {
    use std::io::Seek;
    let Ok(mut file) = std::fs::File::open(log) else {
        return Vec::new();
    };
    let mut text = String::new();
    if file.seek(std::io::SeekFrom::Start(from)).is_err() || file.read_to_string(&mut text).is_err()
    {
        return Vec::new();
    }
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// One decision as a line of text.
pub fn decision_line(decision: &serde_json::Value) -> String {
    let text = |key: &str| decision[key].as_str().unwrap_or_default().to_string();
    let deciding: Vec<String> = decision["deciding"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|value| value.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{} {:<5} {} {} {}{}",
        text("time"),
        text("decision"),
        text("principal"),
        text("action"),
        text("resource"),
        if deciding.is_empty() {
            String::new()
        } else {
            format!(" ({})", deciding.join("; "))
        }
    )
}

/// `cargo xtask local decisions`.
pub fn print_decisions(
    root: &Path,
    denied_only: bool,
    last: Option<usize>,
    json: bool,
) -> anyhow::Result<()> {
    let dir = state_dir(root);
    let log = recorded(&dir)?
        .and_then(|cloud| cloud.decision_log)
        .unwrap_or_else(|| dir.join("decisions.jsonl"));
    let mut list: Vec<serde_json::Value> = decisions(&log, 0)
        .into_iter()
        .filter(|decision| !denied_only || decision["decision"] == "deny")
        .collect();
    if let Some(last) = last {
        list = list.split_off(list.len().saturating_sub(last));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if list.is_empty() {
        println!("no decisions recorded in {}", log.display());
    } else {
        for decision in &list {
            println!("{}", decision_line(decision));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_get_different_ports() {
        for _ in 0..50 {
            let ports: [u16; 4] = free_ports().expect("free ports");
            let distinct: std::collections::BTreeSet<u16> = ports.into_iter().collect();
            assert_eq!(distinct.len(), 4, "{ports:?}");
            assert!(!distinct.contains(&0));
        }
    }

    #[test]
    fn a_reused_pid_is_not_taken_for_a_service() {
        // Two commands, so the shell stays (it would exec a single one in its place).
        let mut ours = Command::new("sh")
            .args(["-c", "sleep 30; true", "sh", "--port", "47123"])
            .spawn()
            .expect("a process");
        let mut stranger = Command::new("sleep").arg("30").spawn().expect("a process");
        // Until the child has exec'd, its command line is still the test's.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_our_service(ours.id(), 47123) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(is_our_service(ours.id(), 47123));
        assert!(!is_our_service(stranger.id(), 47123));
        assert!(!is_our_service(ours.id(), 47124));
        let _ = ours.kill();
        let _ = stranger.kill();
        let _ = ours.wait();
        let _ = stranger.wait();
    }

    /// The local Lambda service and the AWS gateway speak to each other through a key and a
    /// path each crate names; `local up` wires them, so they must agree.
    #[test]
    fn the_lambda_service_and_the_gateway_agree_on_how_they_talk() {
        assert_eq!(
            lambda_runner::LAMBDA_SERVICE_ACCESS_KEY,
            aws_gateway::principals::LAMBDA_SERVICE_ACCESS_KEY
        );
        assert_eq!(
            lambda_runner::SERVICE_INVOCATION_PATH,
            aws_gateway::SERVICE_INVOCATION_PATH
        );
    }
}
