//! Integration tests of sf-invoke-api: the handler called directly against the Salesforce
//! emulator (over HTTP) and a moto server (Secrets Manager).

mod bad_input;
mod failures;
mod harness;
mod operations;
mod sessions;
