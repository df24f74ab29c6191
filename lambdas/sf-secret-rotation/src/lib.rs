//! The Secrets Manager rotation function for OAuth 2.0 refresh-token credentials: it obtains a
//! fresh token set with the `refresh_token` grant and promotes it through the four rotation
//! steps, following the AWS rotation contract.
//!
//! # The secret
//!
//! One JSON object whose values are strings. Read:
//!
//! | key | aliases | meaning |
//! |---|---|---|
//! | `TokenUrl` | | the token endpoint; absent: `LoginUrl` + `/services/oauth2/token` |
//! | `LoginUrl` | | the Salesforce login host; absent: `SF_LOGIN_URL`, else `https://login.salesforce.com` |
//! | `ClientId` | `ConsumerKey` | the OAuth client id (required) |
//! | `ClientSecret` | `ConsumerSecret` | the OAuth client secret (optional for the refresh grant) |
//! | `RefreshToken` | | the refresh token (required) |
//! | `TestUrl` | | optional: `testSecret` GETs it with the new access token instead of Salesforce's limits |
//!
//! Written by `createSecret` into the `AWSPENDING` version, on top of a copy of every key of
//! `AWSCURRENT` (unknown keys are preserved):
//!
//! | key | meaning |
//! |---|---|
//! | `RefreshToken` | the refresh token the provider returned, or the old one when it returned none |
//! | `SessionAccessToken` | the access token just issued |
//! | `InstanceUrl` | Salesforce's `instance_url`, when the provider returned one |
//! | `IssuedAt` | when the access token was issued, milliseconds since the epoch, as a string |
//!
//! The access token is deliberately **not** stored under `AccessToken`: in the original Amazon
//! Connect Salesforce package's schema, which the `salesforce` crate reads, `AccessToken` is the
//! user's *security token* for the password flow, and overwriting it would break that flow.
//!
//! # Steps
//!
//! Every step first calls `DescribeSecret` and refuses to act unless rotation is enabled and the
//! `ClientRequestToken` is a version of the secret staged `AWSPENDING`; a token that is
//! `AWSCURRENT` and no longer `AWSPENDING` means the rotation is over, and the step succeeds
//! without doing anything.
//!
//! - `createSecret`: if an `AWSPENDING` value already exists for the token, nothing to do
//!   (Secrets Manager retries steps). Otherwise reads `AWSCURRENT`, runs the refresh grant and
//!   puts the result as `AWSPENDING` with the token as version id (retrying the write: the
//!   token set it holds may be the only valid one). **When the provider rotated the refresh
//!   token**, the one in `AWSCURRENT` was retired as it was spent, so the new version is made
//!   `AWSCURRENT` at once, still `AWSPENDING`: no reader, and no later rotation, is ever left
//!   with a retired token, whatever happens to the rest of the rotation.
//! - `setSecret`: nothing. OAuth tokens are issued by the provider, so there is no service to
//!   push the new value to (unlike a database password).
//! - `testSecret`: calls the API with the `AWSPENDING` access token (`GET …/limits` on
//!   `InstanceUrl`, or `TestUrl`) and fails if it is rejected.
//!   Secrets Manager's check of a new rotation configuration (`RotateImmediately=false`)
//!   calls `testSecret` on an `AWSPENDING` version it staged itself, empty or a copy of
//!   `AWSCURRENT`: that passes as `ConfigurationChecked` (the function could read the secret)
//!   without asking the provider for anything.
//! - `finishSecret`: moves `AWSCURRENT` to the token's version (`RemoveFromVersionId` = the
//!   current version) and then takes `AWSPENDING` off it, so the secret ends in a state where
//!   the next `RotateSecret` can start.
//!
//! With a provider that does not rotate refresh tokens, `AWSCURRENT` changes only in
//! `finishSecret`, after a successful test, so a failure half-way leaves the old (still valid)
//! value in place. With one that does, the new value is current from `createSecret` on: a
//! failed `testSecret` leaves it current (it is the only valid refresh token there is), and a
//! retry, or the next rotation, starts from it.
//!
//! # Modules
//!
//! `event` (the step asked for), `steps` (the [`Rotator`] and the four steps), `secret` (the
//! secret's versions, stages and values in Secrets Manager), `token` (the `refresh_token`
//! grant), `config` (the environment) and `error` (the `errorType`s).

mod config;
mod error;
mod event;
mod secret;
mod steps;
mod token;

pub use config::RotationConfig;
pub use error::Error;
pub use event::Step;
pub use steps::{Outcome, Rotator};
