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

pub mod config;
pub mod policy;
mod rng;
pub mod seams;
#[cfg(feature = "sim")]
pub mod sim;

pub use config::{ConfigError, DatabaseSettings, KeeperConfig, RedisDatabase, ServiceRegistry};
pub use rng::Rng;
