//! `cargo xtask local up|status|down` with the real binaries: idempotent, self-healing, and
//! leaving no process behind.

use std::path::Path;
use std::process::{Command, Output};

fn xtask(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("SFSTACK_LOCAL_DIR", dir)
        .output()
        .expect("xtask runs")
}

fn status_json(dir: &Path) -> (bool, serde_json::Value) {
    let output = xtask(dir, &["local", "status", "--output", "json"]);
    let document: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("status is JSON");
    (output.status.success(), document)
}

fn running(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

#[test]
fn local_cloud_starts_once_heals_and_stops_cleanly() {
    let dir = std::env::temp_dir().join(format!("sfstack-local-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let (up, document) = status_json(&dir);
    assert!(!up);
    assert_eq!(document["running"], false);

    let started = xtask(&dir, &["local", "up", "--output", "json"]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let cloud: serde_json::Value =
        serde_json::from_slice(&started.stdout).expect("up prints the cloud");
    let emulator_pid = cloud["emulator"]["pid"].as_u64().expect("pid");
    let moto_pid = cloud["moto"]["pid"].as_u64().expect("pid");
    let (up, document) = status_json(&dir);
    assert!(up, "{document}");

    // A second `up` changes nothing.
    let again = xtask(&dir, &["local", "up", "--output", "json"]);
    let same: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(same, cloud);

    // A dead service is reported, and `up` replaces the whole cloud.
    Command::new("kill")
        .args(["-KILL", &emulator_pid.to_string()])
        .status()
        .expect("kill");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (up, document) = status_json(&dir);
    assert!(!up, "{document}");
    let healed = xtask(&dir, &["local", "up", "--output", "json"]);
    assert!(
        healed.status.success(),
        "{}",
        String::from_utf8_lossy(&healed.stderr)
    );
    let healed: serde_json::Value = serde_json::from_slice(&healed.stdout).expect("json");
    assert_ne!(healed["emulator"]["pid"], cloud["emulator"]["pid"]);
    assert!(
        !running(moto_pid),
        "the old moto server was stopped before the new start"
    );
    assert!(status_json(&dir).0);

    assert!(xtask(&dir, &["local", "down"]).status.success());
    for pid in [
        healed["emulator"]["pid"].as_u64(),
        healed["moto"]["pid"].as_u64(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!running(pid), "pid {pid} still runs after down");
    }
    assert!(!status_json(&dir).0);
    assert!(
        xtask(&dir, &["local", "down"]).status.success(),
        "down is idempotent"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
