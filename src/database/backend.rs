//! What a database connects to: its [`Backend`], resolved by the connector before each attempt
//! into an endpoint and an *epoch*. A connection opened in an older epoch is never handed out
//! or re-idled again, the same rule as for one returned after a transport error: when a
//! resolution changes (a Sentinel failover, later), the epoch is bumped and every connection
//! of the old one is replaced.
//!
//! [`Backend::Direct`] is one fixed server; [`Backend::Sentinel`] is the master the sentinels
//! name (unknown until they are asked); Cluster adds a variant here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::sentinel::SentinelBackend;
use crate::seams::Endpoint;

/// What a database connects to.
pub(crate) enum Backend {
    /// One server at a fixed endpoint.
    Direct {
        /// Where it listens.
        endpoint: Endpoint,
    },
    /// The master a set of sentinels names; its epoch is the binding's.
    Sentinel(Arc<SentinelBackend>),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Direct { endpoint } => write!(f, "Direct({endpoint})"),
            Self::Sentinel(s) => write!(f, "Sentinel({})", s.settings().master_name),
        }
    }
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
    /// `backend` in `epoch` (a Sentinel backend bumps the same one).
    pub(crate) fn new(backend: Backend, epoch: Arc<AtomicU64>) -> Self {
        Self { backend, epoch }
    }

    /// Where the next connection goes, and in which epoch; while a Sentinel master is not
    /// known, the backend to ask.
    pub(crate) fn resolve(&self) -> Result<Resolved, &Arc<SentinelBackend>> {
        match &self.backend {
            Backend::Direct { endpoint } => Ok(Resolved {
                endpoint: endpoint.clone(),
                epoch: self.epoch.load(Ordering::Acquire),
            }),
            Backend::Sentinel(s) => s
                .target()
                .map(|(endpoint, epoch)| Resolved { endpoint, epoch })
                .ok_or(s),
        }
    }

    /// The Sentinel backend, if this is one.
    pub(crate) fn sentinel(&self) -> Option<&Arc<SentinelBackend>> {
        match &self.backend {
            Backend::Sentinel(s) => Some(s),
            Backend::Direct { .. } => None,
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
        let b = Binding::new(
            Backend::Direct {
                endpoint: Endpoint::tcp("127.0.0.1", 6379),
            },
            Arc::new(AtomicU64::new(0)),
        );
        let current = b.current();
        let Ok(resolved) = b.resolve() else {
            panic!("a direct backend always resolves")
        };
        assert_eq!(resolved.epoch, 0);
        assert_eq!(resolved.endpoint.to_string(), "127.0.0.1:6379");
        assert_eq!(b.bump_epoch(), 1);
        assert_eq!(b.resolve().map(|r| r.epoch).ok(), Some(1));
        assert_eq!(
            current.load(Ordering::Acquire),
            1,
            "connections see the new epoch"
        );
    }
}
