//! The everyday commands after a deploy: `invoke` with each form of event, a function error, an
//! unknown function, a bad event; `logs` showing what an invocation just wrote, and `--follow`
//! stopping cleanly on Ctrl-C.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::*;

pub(crate) async fn invoke_and_logs_on_the_local_target() -> anyhow::Result<()> {
    let mut local = Local::new("everyday");
    let env = "e2e-everyday";
    local.run(&["deploy", "--env", env], &[])?.ok()?;

    // A sample by name: the answer on stdout.
    let shortcut = local
        .run(
            &[
                "invoke",
                "sf-invoke-api",
                "--env",
                env,
                "--event",
                "phoneLookup",
            ],
            &[],
        )?
        .ok()?;
    let answer = shortcut.json()?;
    assert!(
        answer["Id"]
            .as_str()
            .is_some_and(|id| id.starts_with("003")),
        "{answer}"
    );

    // A file, inline JSON, and standard input give the same answer.
    let event = std::fs::read_to_string(root().join("tests/events/phoneLookup.json"))?;
    let file = local.dir.join("phone-lookup.json");
    std::fs::create_dir_all(&local.dir)?;
    std::fs::write(&file, &event)?;
    let from_file = local
        .run(
            &[
                "invoke",
                "sf-invoke-api",
                "--env",
                env,
                "--event",
                file.to_str().context("a UTF-8 path")?,
            ],
            &[],
        )?
        .ok()?;
    assert_eq!(from_file.json()?, answer);
    let inline = local
        .run(
            &[
                "invoke",
                "sf-invoke-api",
                "--env",
                env,
                "--event-json",
                &event,
            ],
            &[],
        )?
        .ok()?;
    assert_eq!(inline.json()?, answer);
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["invoke", "sf-invoke-api", "--env", env, "-"])
        .current_dir(root())
        .env("SFSTACK_LOCAL_DIR", &local.dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(event.as_bytes())?;
    let piped = child.wait_with_output()?;
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert_eq!(serde_json::from_slice::<Value>(&piped.stdout)?, answer);

    // A function error: its type and message on stderr, exit code 4; as JSON with the log tail.
    let bad_operation = r#"{"Details": {"Parameters": {"sf_operation": "noSuchOperation"}}}"#;
    let failed = local.run(
        &[
            "invoke",
            "sf-invoke-api",
            "--env",
            env,
            "--event-json",
            bad_operation,
        ],
        &[],
    )?;
    assert_eq!(failed.code, 4, "{}\n{}", failed.stdout, failed.stderr);
    assert!(failed.stdout.is_empty(), "{}", failed.stdout);
    assert!(
        failed.stderr.contains("noSuchOperation"),
        "the error names the operation: {}",
        failed.stderr
    );
    let as_json = local.run(
        &[
            "invoke",
            "sf-invoke-api",
            "--env",
            env,
            "--event-json",
            bad_operation,
            "--output",
            "json",
        ],
        &[],
    )?;
    assert_eq!(as_json.code, 4);
    let report = as_json.json()?;
    assert!(report["error"]["errorType"].as_str().is_some(), "{report}");
    assert!(report["duration_ms"].as_f64().is_some_and(|ms| ms > 0.0));
    let request_id = report["request_id"]
        .as_str()
        .context("a request id")?
        .to_string();
    assert!(
        report["log_tail"].as_array().is_some_and(|lines| lines
            .iter()
            .any(|line| line.as_str().is_some_and(|line| line.contains(&request_id)))),
        "the tail is this invocation's: {report}"
    );

    // Refused before anything is sent.
    for (args, expected) in [
        (
            vec!["invoke", "sf-nope", "--env", env],
            "unknown function \"sf-nope\"",
        ),
        (
            vec![
                "invoke",
                "sf-invoke-api",
                "--env",
                env,
                "--event-json",
                "{oops",
            ],
            "is not JSON",
        ),
        (
            vec![
                "invoke",
                "sf-invoke-api",
                "--env",
                env,
                "--event",
                "noSuchSample",
            ],
            "no event file \"noSuchSample\"",
        ),
    ] {
        let refused = local.run(&args, &[])?;
        assert_ne!(refused.code, 0);
        assert_ne!(refused.code, 4);
        assert!(
            refused.stderr.contains(expected),
            "{expected}: {}",
            refused.stderr
        );
        assert!(
            refused.stderr.contains("nothing was sent"),
            "{}",
            refused.stderr
        );
    }

    // The line the failed invocation just wrote, readably and as it was logged.
    let deadline = Instant::now() + Duration::from_secs(20);
    let shown = loop {
        let logs = local
            .run(
                &[
                    "logs",
                    "sf-invoke-api",
                    "--env",
                    env,
                    "--since",
                    "5m",
                    "--filter",
                    &request_id,
                ],
                &[],
            )?
            .ok()?;
        // Lines are shipped in order, in batches: once the END line is there, all are.
        if logs
            .stdout
            .contains(&format!("END RequestId: {request_id}"))
            || Instant::now() > deadline
        {
            break logs;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        shown
            .stdout
            .contains(&format!("START RequestId: {request_id}")),
        "{}\n{}",
        shown.stdout,
        shown.stderr
    );
    // Only this invocation's lines: its own START and END, and the function's lines logged
    // within its request (their JSON carries the request id).
    assert!(
        shown
            .stdout
            .lines()
            .filter(|line| line.contains("START RequestId:") || line.contains("END RequestId:"))
            .all(|line| line.contains(&request_id)),
        "--filter keeps only matching lines: {}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("UnknownOperation"),
        "the function's own line, readably: {}",
        shown.stdout
    );
    let json = local
        .run(
            &[
                "logs",
                "sf-invoke-api",
                "--env",
                env,
                "--since",
                "5m",
                "--output",
                "json",
            ],
            &[],
        )?
        .ok()?;
    assert!(
        json.stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .any(|line| line["level"].as_str().is_some()),
        "the functions' JSON lines pass through: {}",
        json.stdout
    );

    // --follow prints, and stops cleanly on Ctrl-C.
    let follower = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "logs",
            "sf-invoke-api",
            "--env",
            env,
            "--since",
            "5m",
            "--follow",
            "--filter",
            &request_id,
        ])
        .current_dir(root())
        .env("SFSTACK_LOCAL_DIR", &local.dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_secs(3));
    let interrupted = Command::new("kill")
        .args(["-INT", &follower.id().to_string()])
        .status()?;
    assert!(interrupted.success());
    // A guard against a hang, not a speed check: it must stop at all.
    let pid = follower.id().to_string();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(follower.wait_with_output());
    });
    let Ok(followed) = receiver.recv_timeout(Duration::from_secs(60)) else {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        anyhow::bail!("logs --follow did not stop on Ctrl-C");
    };
    let followed = followed?;
    assert!(
        followed.status.success(),
        "exit {:?}: {}",
        followed.status.code(),
        String::from_utf8_lossy(&followed.stderr)
    );
    assert!(
        String::from_utf8_lossy(&followed.stdout).contains(&request_id),
        "it printed the lines so far"
    );

    local.run(&["teardown", "--env", env], &[])?.ok()?;
    Ok(())
}
