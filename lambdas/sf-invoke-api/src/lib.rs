//! `sf-invoke-api`: the Amazon Connect → Salesforce function, a drop-in for the original
//! `sfInvokeAPI` (same operations, parameters and output keys; see README.md for the
//! differences).
//!
//! `main.rs` builds one [`HandlerState`] per execution environment and passes every event to
//! [`function_handler`]; tests call [`handle`] directly.
//!
//! An invocation:
//! 1. reads `Details.Parameters` ([`event::Parameters`]): a flat map of strings;
//! 2. validates them and builds the exact request ([`operation::Plan`]): object and field
//!    names, ids (with checksum), escaped SOQL/SOSL literals, relative dates, placeholders.
//!    Nothing reaches Salesforce unless this succeeds;
//! 3. runs it with the environment's client ([`HandlerState::run`]), within the deadline;
//! 4. flattens the answer into string keys ([`flatten`]).

pub mod dates;
pub mod error;
pub mod event;
pub mod flatten;
mod handler;
pub mod operation;
pub mod phone;
pub mod placeholders;
mod state;
pub mod where_clause;

pub use error::InvokeError;
pub use flatten::Output;
pub use handler::{function_handler, handle};
pub use state::{Clock, DEADLINE_MARGIN, HandlerState, InvokeTokenRefresh, SessionRenewer};
