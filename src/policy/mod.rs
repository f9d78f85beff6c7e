//! Pure policy state machines: breaker, retry schedule, readiness, idle policy, health schedule.
//!
//! Nothing in this module performs I/O, awaits, locks or reads a clock. Time comes in as an
//! [`Instant`](std::time::Instant) argument and outcomes come in as values; decisions and the next
//! deadline go out. The driver (the pool and the database handle) sleeps until the deadline, reads
//! `now` from its [`Clock`](crate::seams::Clock) and hands it back in.

mod failure;

pub use failure::FailureKind;
