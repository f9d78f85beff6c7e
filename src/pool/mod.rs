//! Connection pools: the exclusive pool (connections lent to one holder) and the shared slots
//! (multiplexed connections handed out as cheap shares). No knowledge of runtimes or Redis here.

mod exclusive;
mod lease;
mod shared;
mod stats;
#[cfg(test)]
mod tests;

pub(crate) use exclusive::{Checkout, Lease, Pool, PoolError};
pub(crate) use shared::{Pick, SharedConn, SharedSlots};
pub use stats::PoolStats;

/// What the shared slots ask of a connection beyond holding it.
pub(crate) trait Liveness {
    /// Whether the connection ended on its own (the server closed it): no command can be sent on
    /// it any more, so it must not be handed out.
    fn is_closed(&self) -> bool;
}
