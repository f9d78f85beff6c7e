//! The simulator: virtual time, an in-memory Redis and an in-memory transport, all from one seed.
//!
//! [`SimClock`], [`SimRedis`] and [`SimTransport`] implement the same seams as the real runtimes
//! ([`Clock`](crate::seams::Clock), [`Transport`](crate::seams::Transport)), and [`Sim`] runs async
//! scenarios on a single-threaded executor that jumps virtual time to the next deadline, so a
//! 60-second LOADING episode finishes in milliseconds and the same seed gives the same trace.

mod doubles;
mod harness;
mod server;

pub use doubles::{
    Episode, Fault, FaultPlan, Faults, Latency, Restart, Sim, SimBlock, SimClock, SimSpawn,
    SimThread, Sleep, Trace,
};
#[cfg(any(feature = "tokio", feature = "smol"))]
pub use harness::swarm;
pub use server::{wire, SimNetwork, SimRedis, SimRole, SimStream, SimTransport};
