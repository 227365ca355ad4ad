//! Small interfaces the core defines and the adapters implement, so adapters never depend on
//! each other: the ACME adapter publishes challenge responses through [`Http01Responder`]
//! without knowing that an axum listener (or a test) is behind it.

/// Where the ACME flow puts HTTP-01 key authorizations while an order is in flight.
pub trait Http01Responder: Send + Sync {
    /// Serve `key_authorization` at `/.well-known/acme-challenge/<token>` from now on.
    fn publish(&self, token: &str, key_authorization: &str);
    /// Stop serving `token`.
    fn retract(&self, token: &str);
}
