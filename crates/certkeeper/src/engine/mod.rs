//! Running certificate attempts: [`job`] is one attempt (shared by `renew` and the daemon),
//! [`daemon`] the scheduler loop of `certkeeper run`, [`watch`] its config file watcher,
//! [`admin`] its optional `/healthz` and `/metrics` listener.

pub mod admin;
pub mod daemon;
pub mod deploy;
pub mod job;
pub mod limits;
pub mod watch;
