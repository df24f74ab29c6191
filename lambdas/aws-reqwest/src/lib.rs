//! The AWS SDK's HTTP client on reqwest, behind the SDK's `HttpClient` trait: the client every
//! Salesforce call already goes through.
//!
//! - **The functions** (`sf_common::aws_config`): the SDK's own client (`aws-smithy-http-client`)
//!   is a second hyper stack with HTTP/2, rustls on aws-lc-rs and a loader for the system's
//!   certificate store, which it runs before the first AWS call. With reqwest for both, a
//!   function ships one HTTP/1.1 stack and one crypto provider (rustls on ring) with webpki's
//!   trust roots compiled in, and its first AWS call reads no certificate file.
//! - **The tools and the local cloud** (`xtask`, `aws-gateway`, `lambda-runner`, the tests):
//!   the same client, so the workspace builds one TLS stack and no C crypto library (aws-lc's
//!   build script alone was 35 CPU-seconds of every fresh build). `xtask` turns on reqwest's
//!   `rustls-tls-native-roots` as well, so on AWS it also trusts the system's store, as the
//!   SDK's own client did (a company's TLS-inspecting proxy).
//!
//! The calls' bodies are read into memory: the functions' (Secrets Manager, Lambda, DynamoDB)
//! are small, and the tools' largest is a zip of about 2 MB put to S3.
//!
//! Two small published crates do the same (`aws-smithy-http-client-reqwest`, which depends on
//! `aws-config`, the crate the functions leave out, and `smithy-transport-reqwest`, on a newer
//! reqwest); this adapter is the part of them we need, over the SDK's public trait.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http_body_util::BodyExt;

/// The SDK's HTTP client: give it to `SdkConfig::builder().http_client` (the functions), or
/// take [`defaults`] (the tools). reqwest clients are built on first use, one per
/// connect timeout the SDK asks for (in practice one), and reused: they keep the connection
/// pool.
pub fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestHttpClient::default())
}

/// aws-config's loader (the standard credential chain, region, profile and endpoint settings)
/// with [`http_client`] as the HTTP client of the SDK's clients and of the credential providers
/// (SSO, STS, IMDS) alike. The tools' one way in: the workspace builds the SDK without its own
/// client, so a loader without this one would fail its first call.
#[cfg(feature = "config")]
pub fn defaults() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http_client())
}

/// A reqwest client, or why it could not be built (every call then fails with it).
type Built = Result<reqwest::Client, Arc<String>>;

#[derive(Debug, Default)]
struct ReqwestHttpClient {
    /// One client per connect timeout (reqwest sets it per client); the read timeout is set
    /// per request, so connectors with different read timeouts share a client and its pool.
    clients: Mutex<Vec<(Option<Duration>, Built)>>,
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let connect_timeout = settings.connect_timeout();
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let client = match clients
            .iter()
            .find(|(timeout, _)| *timeout == connect_timeout)
        {
            Some((_, client)) => client.clone(),
            None => {
                let client = build(connect_timeout).map_err(|error| Arc::new(error.to_string()));
                clients.push((connect_timeout, client.clone()));
                client
            }
        };
        SharedHttpConnector::new(Connector {
            client,
            read_timeout: settings.read_timeout(),
        })
    }
}

/// A client that follows no redirect (an AWS endpoint answers; it never sends the signed
/// request on) and uses no proxy from the environment, as the SDK's own client.
fn build(connect_timeout: Option<Duration>) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if let Some(timeout) = connect_timeout {
        builder = builder.connect_timeout(timeout);
    }
    builder.build()
}

#[derive(Debug)]
struct Connector {
    client: Built,
    read_timeout: Option<Duration>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let client = client.map_err(|error| ConnectorError::user(error.to_string().into()))?;
            let request = to_reqwest(request, read_timeout).await?;
            let response = client.execute(request).await.map_err(connector_error)?;
            let mut answer = http::Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = response.headers().clone();
            }
            let body = response.bytes().await.map_err(connector_error)?;
            // Handed over as a body to read, as the SDK's own client does, not as bytes: the
            // SDK logs the answer at trace level before it reads it, and bytes would be printed
            // whole there (a secret's value, a session token).
            let answer = answer
                .body(SdkBody::from_body_1_x(http_body_util::Full::new(body)))
                .map_err(|error| ConnectorError::other(error.into(), None))?;
            HttpResponse::try_from(answer)
                .map_err(|error| ConnectorError::other(error.into(), None))
        })
    }
}

/// The SDK's request as reqwest's. The read timeout bounds the whole exchange, the answer's
/// body included (a little stricter than the SDK's own client, which bounds the wait for the
/// answer's head; the functions' answers are small); the SDK's operation timeouts, when set,
/// still apply above it.
async fn to_reqwest(
    request: HttpRequest,
    read_timeout: Option<Duration>,
) -> Result<reqwest::Request, ConnectorError> {
    let request = request
        .try_into_http1x()
        .map_err(|error| ConnectorError::user(error.into()))?;
    let (parts, body) = request.into_parts();
    // Read through the body rather than take its bytes: the SDK wraps it to watch the upload,
    // and its stalled-stream guard counts an upload as finished only once the body has been
    // read to its end. A body never read looks like a stalled server, and a call whose answer
    // takes longer than the guard's grace period (5 s) would be cut off and retried.
    let bytes = body
        .collect()
        .await
        .map_err(ConnectorError::user)?
        .to_bytes();
    let mut request = reqwest::Request::try_from(http::Request::from_parts(parts, bytes))
        .map_err(|error| ConnectorError::user(error.into()))?;
    *request.timeout_mut() = read_timeout;
    Ok(request)
}

/// reqwest's error in the SDK's terms, which decide the retry: a timeout and an I/O failure
/// (refused or reset connection, a body cut short) are transient; a request that could not be
/// built is the caller's.
fn connector_error(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_connect() {
        ConnectorError::io(error.into()).never_connected()
    } else if error.is_builder() {
        ConnectorError::user(error.into())
    } else if error.is_request() || error.is_body() || error.is_decode() {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}
