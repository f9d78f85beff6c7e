//! Metrics: the statistics snapshot as Prometheus text ([`render`]), and (feature `metrics`)
//! the same series recorded through the `metrics` facade ([`record`]).
//!
//! Every series is named `redis_keeper_…` in base units, counters end in `_total`, and the
//! only labels are `db` (a configured database name) and closed sets (`result`, `kind`,
//! `reason`, `state`, and a histogram's `le`): never a key, never an address.

#[cfg(feature = "metrics")]
mod facade;
mod families;
mod text;

#[cfg(feature = "metrics")]
pub(crate) use facade::record;
pub(crate) use families::render;
