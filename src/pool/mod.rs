//! Connection pools: the exclusive pool (connections lent to one holder) and the shared slots
//! (multiplexed connections handed out as cheap shares). No knowledge of runtimes or Redis here.

mod exclusive;
mod lease;
mod shared;
mod stats;
#[cfg(test)]
mod tests;

pub(crate) use exclusive::{Checkout, Pool, PoolError};
pub(crate) use lease::Lease;
pub(crate) use shared::{Pick, SharedConn, SharedSlots};
pub use stats::PoolStats;
