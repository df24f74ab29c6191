//! Integration tests of `sf-oauth-callback`: the whole web-server flow against a real moto
//! server (Secrets Manager, DynamoDB) and the Salesforce emulator over HTTP.

mod callback;
