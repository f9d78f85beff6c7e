//! The whole-Keeper harness: a Keeper wired to a simulated Redis in one world, and the swarm.

#[cfg(any(feature = "tokio", feature = "smol"))]
pub mod swarm;
mod world;
