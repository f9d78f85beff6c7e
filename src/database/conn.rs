//! `RedisConn`: a redis-rs multiplexed connection, the guard that stops its driver task, and its
//! response-timeout watchdog.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use redis::aio::MultiplexedConnection;

use super::driver::Driver;
use super::watchdog::{Ticket, Watchdog};
use crate::pool::Liveness;
use crate::seams::Runtime;

/// One connection to Redis. Cloning shares it; the driver task (and the socket) stops when the
/// last clone is dropped, even when a reply is still outstanding (a stalled server).
#[derive(Clone)]
pub(crate) struct RedisConn {
    pub(crate) inner: MultiplexedConnection,
    _driver: Arc<DriverGuard>,
    /// Times out the commands in flight (one task per connection, not a timer per command).
    watchdog: Arc<Watchdog>,
    /// Set by the first transport failure seen on this connection (shared by every clone).
    lost: Arc<AtomicBool>,
    /// The driver task's flags: closed once it ended (the server closed the socket, or it broke)
    /// or was stopped (the watchdog fired, or the last clone was dropped).
    driver: Arc<Driver>,
}

impl RedisConn {
    /// Wraps a connection whose driver task runs under `driver` (see [`super::driver`]).
    pub(crate) fn new(inner: MultiplexedConnection, driver: Arc<Driver>) -> Self {
        let watchdog = Arc::new(Watchdog::new(driver.clone()));
        Self {
            inner,
            _driver: Arc::new(DriverGuard(driver.clone(), watchdog.clone())),
            watchdog,
            lost: Arc::new(AtomicBool::new(false)),
            driver,
        }
    }

    /// Records a transport failure on this connection; true only for the first one. Every
    /// command in flight on a multiplexed connection fails when it dies: that is one loss.
    pub(crate) fn mark_lost(&self) -> bool {
        !self.lost.swap(true, Ordering::AcqRel)
    }

    /// Watches a command that must be answered by `deadline` until the ticket is dropped: if it
    /// is still outstanding then, the connection is timed out (see [`Watchdog`]).
    pub(crate) fn watch(&self, deadline: Instant, runtime: &Runtime) -> Ticket<'_> {
        self.watchdog.register(deadline, runtime)
    }
}

impl Liveness for RedisConn {
    /// Whether the driver task has ended (a connection the server closed — a kill, a restart,
    /// a reset — while nobody was using it) or the watchdog timed the connection out. Such a
    /// connection is never handed out again.
    fn is_closed(&self) -> bool {
        self.driver.is_closed()
    }
}

/// Stops the driver and the watchdog when the last clone of a connection is dropped.
struct DriverGuard(Arc<Driver>, Arc<Watchdog>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        self.0.stop();
        self.1.stop();
    }
}
