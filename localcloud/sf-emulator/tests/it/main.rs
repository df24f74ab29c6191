//! The emulator's own tests: every endpoint's wire format, driven over HTTP.

mod binary;
mod clients;
mod concurrency;
mod oauth;
mod raw_http;
mod rest;

use serde_json::{Value, json};
use sf_emulator::{Emulator, OrgConfig};

pub const CLIENT_ID: &str = "sfstack-demo-consumer-key";
pub const CLIENT_SECRET: &str = "sfstack-demo-consumer-secret";
pub const USERNAME: &str = "demo@sfstack.local";
pub const PASSWORD_AND_TOKEN: &str = "demo-passwordDEMOSECURITYTOKEN";
pub const API: &str = "v62.0";

/// A running demo org and an HTTP client for it.
pub struct Org {
    pub emulator: Emulator,
    pub http: reqwest::Client,
}

impl Org {
    pub async fn start() -> Self {
        Self::start_with(OrgConfig::demo()).await
    }

    pub async fn start_with(config: OrgConfig) -> Self {
        let emulator = Emulator::start(config).await.expect("emulator starts");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        Self { emulator, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emulator.base_url())
    }

    pub fn data(&self, path: &str) -> String {
        format!("{}/services/data/{API}{path}", self.emulator.base_url())
    }

    pub async fn token_request(&self, params: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url("/services/oauth2/token"))
            .form(params)
            .send()
            .await
            .expect("token request")
    }

    /// Logs in with the password flow and returns the access token.
    pub async fn login(&self) -> String {
        let response = self
            .token_request(&[
                ("grant_type", "password"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("username", USERNAME),
                ("password", PASSWORD_AND_TOKEN),
            ])
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("token json");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self
            .http
            .get(self.data(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        split(response).await
    }

    pub async fn send(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .http
            .request(method, self.data(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        split(request.send().await.expect("request")).await
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .request(method, self.url(&format!("/__emulator{path}")));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("admin request")
    }

    pub async fn request_log(&self) -> Vec<Value> {
        let response = self.admin(reqwest::Method::GET, "/requests", None).await;
        match response.json::<Value>().await.expect("log json") {
            Value::Array(entries) => entries,
            other => panic!("request log is not an array: {other}"),
        }
    }
}

/// Status, headers and JSON body (`Null` when the body is empty or not JSON).
pub async fn split(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, headers, body)
}

/// Asserts a REST error body: a one-element array with this errorCode.
pub fn assert_rest_error(body: &Value, code: &str) -> String {
    let entry = &body[0];
    assert_eq!(entry["errorCode"], json!(code), "body: {body}");
    assert!(
        body.as_array().is_some_and(|entries| entries.len() == 1),
        "body: {body}"
    );
    entry["message"].as_str().expect("message").to_string()
}
