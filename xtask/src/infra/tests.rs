//! Tests of the infra steps: pure helpers directly, the AWS steps against a real moto server.

mod harness;
mod lifecycle;
mod units;
