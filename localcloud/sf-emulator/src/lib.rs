//! A local Salesforce org over HTTP: OAuth token endpoints and the REST API subset sfstack
//! uses, with Salesforce's status codes, headers and error bodies, plus an admin API for
//! fault injection. See `docs/emulator.md` for how to run and configure it.

mod admin;
pub mod config;
mod demo_key;
pub mod error;
pub mod ids;
mod oauth;
pub mod org;
mod rest;
pub mod schema;
mod server;
pub mod soql;
pub mod sosl;
pub mod store;

pub use config::{
    DEMO_CALLBACK_URL, DEMO_CONSUMER_KEY, DEMO_CONSUMER_SECRET, DEMO_PASSWORD, DEMO_SECURITY_TOKEN,
    DEMO_USERNAME, OrgConfig,
};
pub use demo_key::{DemoKey, process_demo_key};
pub use org::LogEntry;
pub use server::Emulator;
