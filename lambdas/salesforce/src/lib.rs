//! Salesforce OAuth + REST client used by every sfstack function.
//!
//! ```no_run
//! # async fn example(secret_json: &str) -> salesforce::Result<()> {
//! use salesforce::{Client, ClientConfig, Credentials};
//!
//! let credentials = Credentials::from_json(secret_json)?;
//! let client = Client::new(credentials, ClientConfig::default())?; // once per environment
//! let contacts = client
//!     .query(&format!(
//!         "SELECT Id, Name FROM Contact WHERE LastName = '{}'",
//!         salesforce::safety::escape_soql_string("O'Brien"),
//!     ))
//!     .await?;
//! println!("{} contacts", contacts.total_size);
//! # Ok(())
//! # }
//! ```
//!
//! # Credentials document
//!
//! [`Credentials::from_json`] reads the JSON object stored in the Salesforce secret. It accepts
//! the keys of the original Amazon Connect Salesforce Lambda package and sfstack's own. Values
//! are strings; empty strings count as absent; unknown keys are ignored; two aliases of one key
//! set to different values are an error.
//!
//! | key | aliases | used by | meaning |
//! |---|---|---|---|
//! | `AuthFlow` | | all | `jwt`, `password`, `refresh_token` or `client_credentials`. Absent: `jwt` if `PrivateKey` is set, else `refresh_token` if `RefreshToken` is set, else `password` if `Password` is set, else an error |
//! | `ClientId` | `ConsumerKey` | all (required) | the connected app's consumer key |
//! | `ClientSecret` | `ConsumerSecret` | `password`, `client_credentials` (required); `refresh_token` (optional) | the consumer secret |
//! | `Username` | (or passed to [`Credentials::from_json_with_username`]) | `jwt`, `password` (required) | the Salesforce username; the document's value wins |
//! | `PrivateKey` | | `jwt` (required) | PEM RSA private key whose certificate the connected app trusts |
//! | `JwtAudience` | | `jwt` (optional) | the assertion's `aud`; defaults to `LoginUrl` |
//! | `Password` | | `password` (required) | the user's password |
//! | `SecurityToken` | `AccessToken`, `AuthToken` | `password` (optional) | the security token, appended to the password. In the original package `AccessToken` **is** the security token |
//! | `RefreshToken` | | `refresh_token` (required) | from the authorization-code flow ([`exchange_authorization_code`]) |
//! | `LoginUrl` | | all (optional) | the login host; default `https://login.salesforce.com` (`https://test.salesforce.com` for sandboxes, the My Domain URL for `client_credentials`) |
//!
//! A missing required key is an [`Error::InvalidCredentials`] naming the key.
//!
//! # Sessions
//!
//! The client logs in on first use and caches the [`Session`]; every REST call goes to the
//! session's `instance_url`. When Salesforce answers 401 `INVALID_SESSION_ID`, the client logs
//! in again once and repeats the call once (callers that fail together share one login). A
//! client seeded with [`Client::with_session`] and no credentials reports
//! [`Error::SessionExpired`] instead. [`Session`] serializes with its real token values so a
//! token-refresh function can store it in a secret for the others to read.
//!
//! # Timeouts and retries
//!
//! Every request has a connect timeout and a total timeout ([`ClientConfig`]). Failures that
//! may be transient (timeouts, broken connections, 5xx answers) are retried with exponential
//! backoff and jitter, at most `max_retries` times, **only for calls that are safe to repeat**:
//! GETs (query, search, get, describe, limits), the read-only parameterized-search POST, DELETE
//! (a repeat that finds `ENTITY_IS_DELETED` counts as success) and the token endpoint. Creates,
//! updates (PATCH) and Chatter posts are never repeated once sent, since Salesforce may have
//! acted on them before the answer was lost; they are retried only when the connection failed
//! before the request went out. `REQUEST_LIMIT_EXCEEDED` (403) and every other 4xx are returned
//! at once.
//!
//! # Safety
//!
//! [`safety`] escapes values for SOQL and SOSL and validates object/field names and record ids.
//! Operations that take an object name or an id validate it before sending anything.

mod auth;
mod client;
mod credentials;
mod error;
mod ops;
pub mod safety;
mod secret;
mod transport;

pub use auth::{Session, exchange_authorization_code, refresh_token_is_active};
pub use client::{ApiUsage, Client};
pub use credentials::{AuthFlow, Credentials, DEFAULT_LOGIN_URL};
pub use error::{Error, Result};
pub use ops::QueryResult;
pub use secret::{REDACTED, Secret};
pub use transport::{ClientConfig, DEFAULT_API_VERSION, is_secure_url, secure_url};
