//! The standalone binary: prints its base URL, serves, and stops cleanly on SIGTERM/SIGINT.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn run_until_signal(signal: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sf-emulator"))
        .args(["--port", "0"])
        .env("SF_EMULATOR_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("emulator starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    let base_url = line
        .trim()
        .strip_prefix("sf-emulator listening on ")
        .expect("announces its URL")
        .to_string();
    assert!(base_url.starts_with("http://127.0.0.1:"), "{base_url}");

    let versions = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            reqwest::get(format!("{base_url}/services/data/"))
                .await
                .map(|r| r.status().as_u16())
        })
    })
    .join()
    .expect("request thread");
    assert_eq!(versions.ok(), Some(200));

    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("emulator exits");
    assert!(exit.success(), "clean exit after {signal}: {exit:?}");
}

#[test]
fn binary_stops_cleanly_on_sigterm() {
    run_until_signal("-TERM");
}

#[test]
fn binary_stops_cleanly_on_sigint() {
    run_until_signal("-INT");
}

#[test]
fn binary_reports_a_bad_config_file_and_exits_non_zero() {
    let dir = std::env::temp_dir().join(format!("sf-emulator-bad-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("org.toml");
    std::fs::write(&path, "org_id = \"nope\"\n").expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_sf-emulator"))
        .arg("--config")
        .arg(&path)
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("org_id"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
