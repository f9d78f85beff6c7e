//! `RedisConn`: a redis-rs multiplexed connection plus the guard that stops its driver task.

use std::sync::Arc;

use futures::future::AbortHandle;
use redis::aio::MultiplexedConnection;

/// One connection to Redis. Cloning shares it; the driver task (and the socket) stops when the
/// last clone is dropped, even when a reply is still outstanding (a stalled server).
#[derive(Clone)]
pub(crate) struct RedisConn {
    pub(crate) inner: MultiplexedConnection,
    _driver: Arc<DriverGuard>,
}

impl RedisConn {
    pub(crate) fn new(inner: MultiplexedConnection, driver: AbortHandle) -> Self {
        Self {
            inner,
            _driver: Arc::new(DriverGuard(driver)),
        }
    }
}

struct DriverGuard(AbortHandle);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}
