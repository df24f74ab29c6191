//! `Secret`: a string that never shows itself in logs, `Debug` or `Display`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What `Debug` and `Display` print instead of a secret value.
pub const REDACTED: &str = "[redacted]";

/// A credential or token.
///
/// `Debug` and `Display` print `[redacted]`, so a secret can sit in any struct that derives
/// `Debug` and be logged safely. The value is reachable only through [`Secret::expose`], which
/// makes every place that uses it easy to find.
///
/// Serialization deliberately writes the **real value**: a [`crate::Session`] is stored in a
/// Secrets Manager secret by the token-refresh function and read back by the others, which only
/// works if the token survives a round trip. Serialize a `Secret` only into a secret store.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(REDACTED)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl Serialize for Secret {
    /// Writes the real value (see the type's documentation for why).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_print_redacted() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(secret)), "Some([redacted])");
    }

    #[test]
    fn serde_round_trip_keeps_the_real_value() -> Result<(), serde_json::Error> {
        let secret = Secret::new("00Dx!token");
        let json = serde_json::to_string(&secret)?;
        assert_eq!(json, "\"00Dx!token\"");
        let back: Secret = serde_json::from_str(&json)?;
        assert_eq!(back.expose(), "00Dx!token");
        Ok(())
    }
}
