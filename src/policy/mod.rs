//! Pure policy state machines: breaker, retry schedule, readiness, idle policy, health schedule,
//! the grouping of connections lost together, the following of a Sentinel failover, and the
//! retries of a command sent to a Redis Cluster.
//!
//! Nothing in this module performs I/O, awaits, locks or reads a clock. Time comes in as an
//! [`Instant`](std::time::Instant) argument and outcomes come in as values; decisions and the next
//! deadline go out. The driver (the pool and the database handle) sleeps until the deadline, reads
//! `now` from its [`Clock`](crate::seams::Clock) and hands it back in. Expiry is always decided
//! from the `now` passed in, never from a timer having fired.

mod breaker;
mod cluster;
mod failover;
mod failure;
mod health;
mod idle;
mod loss;
mod readiness;
mod retry;
mod time;

pub use breaker::{
    BreakerConfig, BreakerState, BreakerStateKind, CircuitBreaker, Permit, Rejected, Transition,
};
pub use cluster::{ClusterOutcome, ClusterRetry, ClusterRetryConfig, ClusterStep};
pub use failover::{FailoverConfig, FailoverFollower, FollowerAction, SentinelSignal};
pub use failure::FailureKind;
pub use health::{HealthConfig, HealthSchedule, HealthState};
pub use idle::{IdleConfig, IdleEntry, IdlePolicy};
pub use loss::{LossConfig, LossGrouping, LossVerdict};
pub use readiness::{
    ProbeOutcome, ProbeToken, Readiness, ReadinessAction, ReadinessConfig, ReadinessState,
};
pub use retry::{GiveUpReason, Jitter, RetryConfig, RetryDecision, RetrySchedule};
