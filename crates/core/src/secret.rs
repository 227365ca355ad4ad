//! Secret bytes (EAB HMAC keys) that never show up in a log or debug print.

use std::fmt;

/// Secret material. Its `Debug` output is redacted and it has no `Display`, so a secret cannot
/// reach a log line by accident; callers that need the bytes ask for them explicitly.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wrap secret bytes.
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The secret bytes. Name the call site carefully: nothing read here may be logged.
    #[must_use]
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<redacted {} bytes>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let secret = Secret::new(b"hunter2-hmac".to_vec());
        let printed = format!("{secret:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(printed, "Secret(<redacted 12 bytes>)");
    }
}
