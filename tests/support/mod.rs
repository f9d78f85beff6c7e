//! Helpers shared by the integration tests that talk to a real `redis-server`.
// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

pub mod harness;
pub mod redis_server;
