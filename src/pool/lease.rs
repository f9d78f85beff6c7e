//! RAII tokens for pool capacity: a [`Lease`] (a lent connection) and a [`ConnectPermit`] (the
//! right to open one). Whoever drops them, wherever (a cancelled waiter, a channel), the pool's
//! accounting is restored, so no await point can leak a slot.

use std::sync::Arc;
use std::time::Instant;

/// Where leased capacity goes back to: the pool's shared state (implemented by the exclusive
/// pool; a trait here so this file does not depend on the pool's).
pub(crate) trait Home<C>: Send + Sync + 'static {
    /// A lent connection came back; `discard` closes it instead of re-idling it.
    fn give_back(self: &Arc<Self>, conn: C, meta: ConnMeta, discard: bool);
    /// A lent connection now serves a shared slot (still counted in the limit).
    fn lent_to_shared(&self);
    /// A shared slot's connection was closed: its capacity is free.
    fn shared_closed(self: &Arc<Self>);
    /// A connect permit became a connection: its identity and timestamps.
    fn connected(&self) -> ConnMeta;
    /// A connect permit was dropped unused: its capacity is free.
    fn connect_abandoned(self: &Arc<Self>);
}

/// Identity and timestamps of one pooled connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnMeta {
    pub(crate) id: u64,
    pub(crate) created_at: Instant,
    pub(crate) returned_at: Instant,
}

/// A connection lent to one holder. Dropping it returns the connection to the pool, or closes it
/// when it was marked with [`Lease::discard`].
pub(crate) struct Lease<C: Send + 'static, H: Home<C>> {
    pub(super) conn: Option<C>,
    pub(super) meta: ConnMeta,
    pub(super) pool: Arc<H>,
    pub(super) discard: bool,
}

impl<C: Send + 'static, H: Home<C>> Lease<C, H> {
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
    pub(crate) fn into_shared(mut self) -> SharedLease<C, H> {
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

impl<C: Send + 'static, H: Home<C>> Drop for Lease<C, H> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn, self.meta, self.discard);
        }
    }
}

impl<C: Send + 'static, H: Home<C>> std::fmt::Debug for Lease<C, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("id", &self.meta.id).finish()
    }
}

/// A connection held by a shared slot. Dropping it closes the connection and frees its capacity.
pub(crate) struct SharedLease<C: Send + 'static, H: Home<C>> {
    conn: C,
    pool: Arc<H>,
}

impl<C: Send + 'static, H: Home<C>> SharedLease<C, H> {
    pub(crate) fn conn(&self) -> &C {
        &self.conn
    }
}

impl<C: Send + 'static, H: Home<C>> Drop for SharedLease<C, H> {
    fn drop(&mut self) {
        self.pool.shared_closed();
    }
}

/// The right to open one connection, counted as "connecting" in the pool's limit. Turn it into a
/// [`Lease`] with the new connection, or drop it when opening failed.
pub(crate) struct ConnectPermit<C: Send + 'static, H: Home<C>> {
    pub(super) pool: Option<Arc<H>>,
    pub(super) _conn: std::marker::PhantomData<fn() -> C>,
}

impl<C: Send + 'static, H: Home<C>> ConnectPermit<C, H> {
    /// Registers the freshly opened connection as lent to the permit's holder.
    pub(crate) fn into_lease(mut self, conn: C) -> Lease<C, H> {
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

impl<C: Send + 'static, H: Home<C>> Drop for ConnectPermit<C, H> {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.connect_abandoned();
        }
    }
}

impl<C: Send + 'static, H: Home<C>> std::fmt::Debug for ConnectPermit<C, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectPermit")
    }
}
