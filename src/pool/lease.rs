//! RAII tokens for pool capacity: a [`Lease`] (a lent connection) and a [`ConnectPermit`] (the
//! right to open one). Whoever drops them, wherever (a cancelled waiter, a channel), the pool's
//! accounting is restored, so no await point can leak a slot.

use std::sync::Arc;
use std::time::Instant;

use super::exclusive::Inner;

/// Identity and timestamps of one pooled connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnMeta {
    pub(crate) id: u64,
    pub(crate) created_at: Instant,
    pub(crate) returned_at: Instant,
}

/// A connection lent to one holder. Dropping it returns the connection to the pool, or closes it
/// when it was marked with [`Lease::discard`].
pub(crate) struct Lease<C: Send + 'static> {
    pub(super) conn: Option<C>,
    pub(super) meta: ConnMeta,
    pub(super) pool: Arc<Inner<C>>,
    pub(super) discard: bool,
}

impl<C: Send + 'static> Lease<C> {
    pub(crate) fn conn_mut(&mut self) -> &mut C {
        self.conn
            .as_mut()
            .expect("a live lease always holds its connection")
    }

    pub(crate) fn meta(&self) -> ConnMeta {
        self.meta
    }

    /// Marks the connection to be closed instead of re-idled when the lease ends.
    pub(crate) fn discard(&mut self) {
        self.discard = true;
    }

    /// Whether the connection will be closed when the lease ends.
    pub(crate) fn is_discarded(&self) -> bool {
        self.discard
    }

    /// Moves the connection from "lent" to "held by a shared slot" (still counted in the limit).
    pub(crate) fn into_shared(mut self) -> SharedLease<C> {
        let conn = self
            .conn
            .take()
            .expect("a live lease always holds its connection");
        self.pool.lent_to_shared();
        SharedLease {
            conn,
            pool: self.pool.clone(),
        }
    }
}

impl<C: Send + 'static> Drop for Lease<C> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn, self.meta, self.discard);
        }
    }
}

impl<C: Send + 'static> std::fmt::Debug for Lease<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("id", &self.meta.id).finish()
    }
}

/// A connection held by a shared slot. Dropping it closes the connection and frees its capacity.
pub(crate) struct SharedLease<C: Send + 'static> {
    conn: C,
    pool: Arc<Inner<C>>,
}

impl<C: Send + 'static> SharedLease<C> {
    pub(crate) fn conn(&self) -> &C {
        &self.conn
    }
}

impl<C: Send + 'static> Drop for SharedLease<C> {
    fn drop(&mut self) {
        self.pool.shared_closed();
    }
}

/// The right to open one connection, counted as "connecting" in the pool's limit. Turn it into a
/// [`Lease`] with the new connection, or drop it when opening failed.
pub(crate) struct ConnectPermit<C: Send + 'static> {
    pub(super) pool: Option<Arc<Inner<C>>>,
}

impl<C: Send + 'static> ConnectPermit<C> {
    /// Registers the freshly opened connection as lent to the permit's holder.
    pub(crate) fn into_lease(mut self, conn: C) -> Lease<C> {
        let pool = self.pool.take().expect("a permit is used once");
        let meta = pool.connected();
        Lease {
            conn: Some(conn),
            meta,
            pool,
            discard: false,
        }
    }
}

impl<C: Send + 'static> Drop for ConnectPermit<C> {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.connect_abandoned();
        }
    }
}

impl<C: Send + 'static> std::fmt::Debug for ConnectPermit<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectPermit")
    }
}
