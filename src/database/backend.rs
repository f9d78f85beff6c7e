//! What a database connects to: its [`Backend`], resolved by the connector before each attempt
//! into an endpoint and an *epoch*. A connection opened in an older epoch is never handed out
//! or re-idled again, the same rule as for one returned after a transport error: when a
//! resolution changes (a Sentinel failover, later), the epoch is bumped and every connection
//! of the old one is replaced.
//!
//! Today the only backend is [`Backend::Direct`]; TLS, Sentinel and Cluster add variants here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::seams::Endpoint;

/// What a database connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backend {
    /// One server at a fixed endpoint.
    Direct {
        /// Where it listens.
        endpoint: Endpoint,
    },
}

/// A backend resolved for one connection attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// Where to connect.
    pub(crate) endpoint: Endpoint,
    /// The epoch of the resolution; the connection keeps it.
    pub(crate) epoch: u64,
}

/// A database's backend and its current epoch (shared with its connections).
#[derive(Debug)]
pub(crate) struct Binding {
    backend: Backend,
    epoch: Arc<AtomicU64>,
}

impl Binding {
    /// `backend` in epoch 0.
    pub(crate) fn new(backend: Backend) -> Self {
        Self {
            backend,
            epoch: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Where the next connection goes, and in which epoch.
    pub(crate) fn resolve(&self) -> Resolved {
        match &self.backend {
            Backend::Direct { endpoint } => Resolved {
                endpoint: endpoint.clone(),
                epoch: self.epoch.load(Ordering::Acquire),
            },
        }
    }

    /// Starts a new epoch: every connection of an older one is stale from now on.
    pub(crate) fn bump_epoch(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The current epoch, for connections to compare theirs with.
    pub(crate) fn current(&self) -> Arc<AtomicU64> {
        self.epoch.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_backend_resolves_to_its_endpoint_in_the_current_epoch() {
        let b = Binding::new(Backend::Direct {
            endpoint: Endpoint::tcp("127.0.0.1", 6379),
        });
        let current = b.current();
        assert_eq!(b.resolve().epoch, 0);
        assert_eq!(b.resolve().endpoint.to_string(), "127.0.0.1:6379");
        assert_eq!(b.bump_epoch(), 1);
        assert_eq!(b.resolve().epoch, 1);
        assert_eq!(
            current.load(Ordering::Acquire),
            1,
            "connections see the new epoch"
        );
    }
}
