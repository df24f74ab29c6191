//! Integration tests of `sf-token-refresh` against a real moto server and the Salesforce
//! emulator over HTTP.

mod refresh;
mod support;
