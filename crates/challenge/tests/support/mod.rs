//! Real peers for this crate's end-to-end tests: Pebble (with pebble-challtestsrv) and nginx,
//! each a child process on free loopback ports, stopped when dropped. Trimmed copies of the
//! workspace harness in `tests/support/` (this crate's tests need no EAB, no certificate
//! inspection and no TLS server blocks), so the two can change independently.

pub mod nginx;
pub mod pebble;
