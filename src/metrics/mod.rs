//! Metrics: the statistics snapshot as Prometheus text ([`render`]).
//!
//! Every series is named `redis_keeper_…` in base units, counters end in `_total`, and the
//! only labels are `db` (a configured database name) and closed sets (`result`, `kind`,
//! `reason`, `state`, and a histogram's `le`): never a key, never an address.

mod families;
mod text;

pub(crate) use families::render;
