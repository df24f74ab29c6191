//! TEMPORARY: runs the malformed-response tests before the emulator compiles.
#[path = "it/malformed.rs"]
mod malformed;
mod support {
    pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
    pub type TestResult = Result<(), BoxError>;
    pub fn fast_config() -> salesforce::ClientConfig {
        salesforce::ClientConfig {
            retry_base_delay: std::time::Duration::from_millis(5),
            ..salesforce::ClientConfig::default()
        }
    }
}
