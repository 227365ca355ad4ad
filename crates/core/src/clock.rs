//! The clock port. The planner takes `now` as a parameter; the engine reads it from a
//! [`Clock`], so a scheduler test drives the daemon with a clock of its own (one that follows
//! tokio's paused time) instead of waiting on the wall clock.

use std::time::SystemTime;

/// Where the engine reads the current instant.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current wall-clock instant.
    fn now(&self) -> SystemTime;
}
