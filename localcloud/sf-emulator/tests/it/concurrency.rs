//! Many clients at once: no lost writes, no corrupted state.

use reqwest::Method;
use serde_json::json;

use crate::Org;

const CLIENTS: usize = 32;
const RECORDS_PER_CLIENT: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_lose_no_update() {
    let org = std::sync::Arc::new(Org::start().await);
    let token = org.login().await;
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let org = org.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for record in 0..RECORDS_PER_CLIENT {
                let subject = format!("client-{client}-{record}");
                let (status, _, body) = org
                    .send(
                        &token,
                        Method::POST,
                        "/sobjects/Task",
                        Some(json!({"Subject": subject})),
                    )
                    .await;
                assert_eq!(status, 201, "{body}");
                let id = body["id"].as_str().expect("id").to_string();
                let (status, _, _) = org
                    .send(
                        &token,
                        Method::PATCH,
                        &format!("/sobjects/Task/{id}"),
                        Some(json!({"Status": "Completed"})),
                    )
                    .await;
                assert_eq!(status, 204);
                // A read between writes, to mix the load.
                let (status, _, _) = org.get(&token, "/query?q=SELECT+Id+FROM+Contact").await;
                assert_eq!(status, 200);
                ids.push(id);
            }
            ids
        }));
    }
    let mut all_ids = Vec::new();
    for task in tasks {
        all_ids.extend(task.await.expect("client task"));
    }
    let unique: std::collections::HashSet<&String> = all_ids.iter().collect();
    assert_eq!(
        unique.len(),
        CLIENTS * RECORDS_PER_CLIENT,
        "every create got its own ID"
    );

    let (_, _, body) = org
        .get(
            &token,
            "/query?q=SELECT+COUNT()+FROM+Task+WHERE+Subject+LIKE+'client-%25'",
        )
        .await;
    assert_eq!(body["totalSize"], CLIENTS * RECORDS_PER_CLIENT);
    let (_, _, body) = org
        .get(&token, "/query?q=SELECT+COUNT()+FROM+Task+WHERE+Subject+LIKE+'client-%25'+AND+Status+!%3D+'Completed'")
        .await;
    assert_eq!(body["totalSize"], 0, "no update was lost");
    let (_, headers, _) = org.get(&token, "/limits").await;
    let expected_calls = CLIENTS * RECORDS_PER_CLIENT * 3 + 3;
    assert_eq!(
        headers["sforce-limit-info"],
        format!("api-usage={expected_calls}/15000").as_str()
    );
}
