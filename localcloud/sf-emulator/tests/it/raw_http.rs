//! A client written from Salesforce's documentation alone, speaking raw HTTP/1.1 over a TCP
//! socket: it shares no code with sfstack's client, so it proves the emulator serves the
//! documented protocol rather than whatever our client happens to send.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{Value, json};

use crate::Org;

struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            b' ' => "+".to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn exchange(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> RawResponse {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .expect("status code")
        .parse()
        .expect("numeric status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size_line, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size_line.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_documentation_only_client_completes_the_cti_flow() {
    let org = Org::start().await;
    let addr = org.emulator.addr();
    tokio::task::spawn_blocking(move || {
        // 1. Username-password login with the security token appended, form-encoded.
        let form = format!(
            "grant_type=password&client_id={}&client_secret={}&username={}&password={}",
            percent_encode(crate::CLIENT_ID),
            percent_encode(crate::CLIENT_SECRET),
            percent_encode(crate::USERNAME),
            percent_encode(crate::PASSWORD_AND_TOKEN)
        );
        let login = exchange(
            addr,
            "POST",
            "/services/oauth2/token",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &form,
        );
        assert_eq!(login.status, 200, "{}", login.body);
        let token_body = login.json();
        let token = token_body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string();
        let instance = token_body["instance_url"]
            .as_str()
            .expect("instance_url")
            .to_string();
        assert_eq!(instance, format!("http://{addr}"));
        let auth = format!("Bearer {token}");

        // 2. Versions, unauthenticated.
        let versions = exchange(addr, "GET", "/services/data/", &[], "");
        assert_eq!(versions.status, 200);
        let latest = versions
            .json()
            .as_array()
            .and_then(|list| list.last().cloned())
            .expect("a version");
        let base = latest["url"].as_str().expect("url").to_string();

        // 3. SOSL phone search by national digits.
        let sosl = percent_encode("FIND {5555550100} IN PHONE FIELDS RETURNING Contact(Id, Name)");
        let search = exchange(
            addr,
            "GET",
            &format!("{base}/search/?q={sosl}"),
            &[("Authorization", &auth)],
            "",
        );
        assert_eq!(search.status, 200, "{}", search.body);
        assert!(
            search
                .header("Sforce-Limit-Info")
                .is_some_and(|value| value.starts_with("api-usage="))
        );
        let contact_id = search.json()["searchRecords"][0]["Id"]
            .as_str()
            .expect("contact id")
            .to_string();

        // 4. Create a Case for the contact: 201 and a Location header.
        let case =
            json!({"ContactId": contact_id, "Subject": "Raw HTTP", "Origin": "Phone"}).to_string();
        let created = exchange(
            addr,
            "POST",
            &format!("{base}/sobjects/Case/"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            &case,
        );
        assert_eq!(created.status, 201, "{}", created.body);
        let case_id = created.json()["id"].as_str().expect("case id").to_string();
        assert_eq!(
            created.header("Location"),
            Some(format!("{base}/sobjects/Case/{case_id}").as_str())
        );

        // 5. Close it with PATCH, then the POST override form, both 204 with no body.
        let closed = exchange(
            addr,
            "PATCH",
            &format!("{base}/sobjects/Case/{case_id}"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            "{\"Status\":\"Closed\"}",
        );
        assert_eq!((closed.status, closed.body.as_str()), (204, ""));
        let again = exchange(
            addr,
            "POST",
            &format!("{base}/sobjects/Case/{case_id}?_HttpMethod=PATCH"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            "{\"Priority\":\"Low\"}",
        );
        assert_eq!(again.status, 204);

        // 6. SOQL confirms it, with the OAuth scheme older clients send.
        let soql = percent_encode(&format!(
            "SELECT Status, Priority FROM Case WHERE Id = '{case_id}'"
        ));
        let queried = exchange(
            addr,
            "GET",
            &format!("{base}/query/?q={soql}"),
            &[("Authorization", &format!("OAuth {token}"))],
            "",
        );
        assert_eq!(queried.status, 200, "{}", queried.body);
        let record = &queried.json()["records"][0];
        assert_eq!(
            (record["Status"].as_str(), record["Priority"].as_str()),
            (Some("Closed"), Some("Low"))
        );

        // 7. Delete and revoke.
        let deleted = exchange(
            addr,
            "DELETE",
            &format!("{base}/sobjects/Case/{case_id}"),
            &[("Authorization", &auth)],
            "",
        );
        assert_eq!(deleted.status, 204);
        let revoked = exchange(
            addr,
            "POST",
            "/services/oauth2/revoke",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &format!("token={}", percent_encode(&token)),
        );
        assert_eq!(revoked.status, 200);
        let after = exchange(
            addr,
            "GET",
            &format!("{base}/limits/"),
            &[("Authorization", &auth)],
            "",
        );
        assert_eq!(after.status, 401);
    })
    .await
    .expect("raw client thread");
}

/// A request to the admin API under another host name (a web page using DNS rebinding to reach
/// 127.0.0.1) is refused; the same request addressed to 127.0.0.1 is served.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_answers_loopback_hosts_only() {
    let org = Org::start().await;
    let addr = org.emulator.addr();
    let raw = move |host: String| {
        let mut stream = TcpStream::connect(addr).expect("connect");
        let request = format!(
            "GET /__emulator/requests HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        answer
    };
    let port = addr.port();
    let rebound = tokio::task::spawn_blocking(move || raw(format!("evil.example:{port}")))
        .await
        .expect("a request");
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    let local = tokio::task::spawn_blocking(move || raw(format!("127.0.0.1:{port}")))
        .await
        .expect("a request");
    assert!(local.starts_with("HTTP/1.1 200"), "{local}");
}
