//! The emulator's answers parse in the client most Python integrations use: simple-salesforce
//! (pinned in `python-clients.txt`, installed into `target/tools/clients-venv` on first use)
//! runs `query` over a child subquery, `query_all` over an aggregate and a plain query,
//! `describe` of an object and of the org, and `limits` against a demo org over HTTP.

use serde_json::Value;

use crate::Org;

const SCRIPT: &str = include_str!("clients/simple_salesforce_check.py");

#[tokio::test(flavor = "multi_thread")]
async fn simple_salesforce_parses_queries_describes_and_limits() {
    let bin = tokio::task::spawn_blocking(pytools::ensure_salesforce_clients)
        .await
        .expect("install task")
        .expect("simple-salesforce installs");
    let org = Org::start().await;
    let token = org.login().await;
    let host = org
        .emulator
        .base_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin.join("python"))
            .arg("-c")
            .arg(SCRIPT)
            .env("SF_HOST", host)
            .env("SF_SESSION", token)
            .output()
    })
    .await
    .expect("client task")
    .expect("python runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "simple-salesforce failed:\n{stderr}"
    );
    let read: Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");

    let nested = read["nested"].as_array().expect("accounts");
    let acme = nested
        .iter()
        .find(|account| account["name"] == "Acme Corporation")
        .expect("the demo org's Acme");
    assert_eq!(
        acme["children"],
        serde_json::json!(["Lovelace", "Turing"]),
        "{read}"
    );
    assert_eq!(acme["child_total"], 2, "{read}");
    let grouped = read["grouped"].as_array().expect("groups");
    assert!(!grouped.is_empty(), "{read}");
    assert!(
        grouped
            .iter()
            .all(|group| group["type"] == "AggregateResult" && group["n"].as_u64().is_some()),
        "{read}"
    );
    let counted: u64 = grouped.iter().filter_map(|group| group["n"].as_u64()).sum();
    assert_eq!(Some(counted), read["plain_total"].as_u64(), "{read}");
    assert_eq!(read["plain_total"], read["plain_rows"], "{read}");
    assert_eq!(read["describe_name"], "Account");
    assert!(
        read["describe_fields"].as_u64().is_some_and(|n| n > 10),
        "{read}"
    );
    assert_eq!(read["describe_record_types"], 1);
    assert!(
        read["global_sobjects"].as_u64().is_some_and(|n| n >= 5),
        "{read}"
    );
    assert_eq!(read["daily_api_max"], 15000);
}
