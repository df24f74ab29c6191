//! Integration tests of `sf-secret-rotation`: every step against a real moto server and the
//! Salesforce emulator over HTTP.

mod rotation;
mod support;
