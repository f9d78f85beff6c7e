//! `RedisConn`: a redis-rs multiplexed connection and its [`Link`]: the driver task's flags, the
//! response-timeout watchdog and the lost flag, shared by every clone.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use redis::aio::MultiplexedConnection;

use super::driver::Driver;
use super::watchdog::{Ticket, Watchdog};
use crate::pool::Liveness;
use crate::seams::Runtime;

/// One connection to Redis. Cloning shares it; the driver task (and the socket) stops when the
/// last clone is dropped, even when a reply is still outstanding (a stalled server).
///
/// The two fields are separate so a command can borrow the [`Link`] and the multiplexed handle
/// (`&mut` for redis-rs) at once without cloning either ([`RedisConn::parts_mut`]).
#[derive(Clone)]
pub(crate) struct RedisConn {
    inner: MultiplexedConnection,
    link: Arc<Link>,
}

/// What every clone of a connection shares. Dropping it (with the last clone) stops the driver
/// and the watchdog.
pub(crate) struct Link {
    /// Times out the commands in flight (one task per connection, not a timer per command).
    watchdog: Arc<Watchdog>,
    /// Set by the first transport failure seen on this connection.
    lost: AtomicBool,
    /// The driver task's flags: closed once it ended (the server closed the socket, or it broke)
    /// or was stopped (the watchdog fired, or the last clone was dropped).
    driver: Arc<Driver>,
    /// When the connection was opened (the database's clock).
    opened_at: Instant,
    /// The backend epoch it was opened in, and the database's current one.
    epoch: u64,
    current_epoch: Arc<AtomicU64>,
}

impl RedisConn {
    /// Wraps a connection opened at `opened_at` whose driver task runs under `driver` (see
    /// [`super::driver`]).
    pub(crate) fn new(
        inner: MultiplexedConnection,
        driver: Arc<Driver>,
        opened_at: Instant,
        epoch: u64,
        current_epoch: Arc<AtomicU64>,
    ) -> Self {
        let link = Link {
            watchdog: Arc::new(Watchdog::new(driver.clone())),
            lost: AtomicBool::new(false),
            driver,
            opened_at,
            epoch,
            current_epoch,
        };
        Self {
            inner,
            link: Arc::new(link),
        }
    }

    /// The redis-rs handle (clone it to send on it).
    pub(crate) fn multiplexed(&self) -> &MultiplexedConnection {
        &self.inner
    }

    /// What every clone of this connection shares.
    pub(crate) fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// The link and the redis-rs handle at once, the handle mutably (to send on it in place).
    pub(crate) fn parts_mut(&mut self) -> (&Link, &mut MultiplexedConnection) {
        (&self.link, &mut self.inner)
    }
}

impl Link {
    /// When the connection was opened.
    pub(crate) fn opened_at(&self) -> Instant {
        self.opened_at
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

    /// Closes the connection now: the driver task drops the socket, every command in flight on
    /// it fails, and it is never handed out again (a blocked command whose caller gave up: the
    /// server must not pop an element for a reply nobody will read).
    pub(crate) fn close(&self) {
        self.driver.stop();
    }

    /// Whether a command registered with the watchdog is still waiting for its reply.
    pub(crate) fn has_commands_in_flight(&self) -> bool {
        !self.is_closed() && self.watchdog.has_outstanding()
    }

    /// Whether the driver task has ended or was stopped (see [`Liveness::is_closed`]).
    pub(crate) fn is_closed(&self) -> bool {
        self.driver.is_closed()
    }

    /// The backend epoch the connection was opened in.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether the connection was opened in an older backend epoch (see `backend`).
    pub(crate) fn is_stale(&self) -> bool {
        self.epoch < self.current_epoch.load(Ordering::Acquire)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.driver.stop();
        self.watchdog.stop();
    }
}

impl Liveness for RedisConn {
    /// Whether the driver task has ended (a connection the server closed — a kill, a restart,
    /// a reset — while nobody was using it), the watchdog timed the connection out, or it
    /// belongs to an older backend epoch. Such a connection is never handed out again.
    fn is_closed(&self) -> bool {
        self.link.is_closed() || self.link.is_stale()
    }
}
