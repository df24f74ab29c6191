//! Integration tests: the client against the Salesforce emulator over real HTTP, plus a tiny
//! local server that answers with garbage.

mod auth;
mod malformed;
mod operations;
mod resilience;
mod support;
