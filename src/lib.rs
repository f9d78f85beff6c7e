//! # redis-keeper
//!
//! One canonical way into Redis: a `Keeper` serves named logical databases (main, knowledge,
//! prompts, …) and hands out connections, async under tokio or smol and blocking for sync code,
//! with a circuit breaker, a retry schedule, a readiness wait that rides out `LOADING`, TCP
//! keepalive, idle eviction and health checks.
//!
//! The decisions live in [`policy`]: pure state machines with no I/O and no clock reads. They are
//! driven through the [`seams`] (`Clock`, `Spawn`, `Transport`), which tokio, smol and the
//! [`sim`]ulator all implement, so whole scenarios run deterministically in virtual time.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms,
    unused_qualifications
)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(any(feature = "tokio", feature = "smol"))]
mod blocking;
#[cfg(any(feature = "tokio", feature = "smol"))]
mod builder;
pub mod classify;
pub mod config;
#[cfg(any(feature = "tokio", feature = "smol"))]
mod connection;
#[cfg(any(feature = "tokio", feature = "smol"))]
mod database;
#[cfg(any(feature = "tokio", feature = "smol"))]
mod error;
#[cfg(any(feature = "tokio", feature = "smol"))]
mod global;
#[cfg(any(feature = "tokio", feature = "smol"))]
mod histogram;
#[cfg(any(feature = "tokio", feature = "smol"))]
mod keeper;
#[cfg(any(feature = "tokio", feature = "smol"))]
mod metrics;
pub mod policy;
#[cfg(any(feature = "tokio", feature = "smol"))]
mod pool;
mod rng;
pub mod seams;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(any(feature = "tokio", feature = "smol"))]
mod stats;
#[cfg(any(feature = "tokio", feature = "smol"))]
pub mod subscriber;
#[cfg(feature = "tls")]
pub mod tls;

/// The README's Rust examples, compiled as doctests so that they cannot drift from the code.
#[cfg(all(doctest, feature = "tokio", feature = "smol"))]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

#[cfg(any(feature = "tokio", feature = "smol"))]
pub use blocking::BlockingConnection;
#[cfg(any(feature = "tokio", feature = "smol"))]
pub use builder::KeeperBuilder;
pub use config::{ConfigError, DatabaseSettings, KeeperConfig, RedisDatabase, ServiceRegistry};
#[cfg(any(feature = "tokio", feature = "smol"))]
pub use connection::PooledConnection;
#[cfg(any(feature = "tokio", feature = "smol"))]
pub use error::{Error, TimeoutPhase};
#[cfg(any(feature = "tokio", feature = "smol"))]
pub use global::{
    get_redis_client, get_redis_client_blocking, global_keeper, init_global, init_global_with,
};
#[cfg(any(feature = "tokio", feature = "smol"))]
pub use histogram::HistogramSnapshot;
#[cfg(any(feature = "tokio", feature = "smol"))]
pub use keeper::{HealthReport, Keeper};
pub use policy::HealthState;
#[cfg(any(feature = "tokio", feature = "smol"))]
pub use pool::PoolStats;
pub use rng::Rng;
#[cfg(any(feature = "tokio", feature = "smol"))]
pub use stats::{
    BreakerStats, ClusterStats, DatabaseStats, ErrorLabel, ManagerStats, SentinelStats,
};
#[cfg(any(feature = "tokio", feature = "smol"))]
pub use subscriber::{BlockingSubscriber, Subscriber};
