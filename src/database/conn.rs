//! `RedisConn`: a redis-rs multiplexed connection plus the guard that stops its driver task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::future::AbortHandle;
use redis::aio::MultiplexedConnection;

use crate::pool::Liveness;

/// One connection to Redis. Cloning shares it; the driver task (and the socket) stops when the
/// last clone is dropped, even when a reply is still outstanding (a stalled server).
#[derive(Clone)]
pub(crate) struct RedisConn {
    pub(crate) inner: MultiplexedConnection,
    _driver: Arc<DriverGuard>,
    /// Set by the first transport failure seen on this connection (shared by every clone).
    lost: Arc<AtomicBool>,
    /// Set by the driver task when it ends: the server closed the socket (or it broke) and no
    /// command can be sent on this connection any more.
    closed: Arc<AtomicBool>,
    /// When the connection was opened (the database's clock).
    opened_at: Instant,
}

impl RedisConn {
    /// Wraps a connection whose driver task sets `closed` when it ends.
    pub(crate) fn new(
        inner: MultiplexedConnection,
        driver: AbortHandle,
        closed: Arc<AtomicBool>,
        opened_at: Instant,
    ) -> Self {
        Self {
            inner,
            _driver: Arc::new(DriverGuard(driver)),
            lost: Arc::new(AtomicBool::new(false)),
            closed,
            opened_at,
        }
    }

    /// When the connection was opened.
    pub(crate) fn opened_at(&self) -> Instant {
        self.opened_at
    }

    /// Records a transport failure on this connection; true only for the first one. Every
    /// command in flight on a multiplexed connection fails when it dies: that is one loss.
    pub(crate) fn mark_lost(&self) -> bool {
        !self.lost.swap(true, Ordering::AcqRel)
    }
}

impl Liveness for RedisConn {
    /// Whether the driver task has ended: a connection the server closed (a kill, a restart,
    /// a reset) while nobody was using it. Such a connection is never handed out again.
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

struct DriverGuard(AbortHandle);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}
