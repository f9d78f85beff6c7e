//! Checking out connections: an exclusive one from the pool (idle, validated when it sat idle
//! long, or newly opened through the connector), or a share of one of the database's
//! multiplexed connections; and the fail-fast admission check before either.

use std::sync::Arc;

use super::{Database, RedisConn};
use crate::error::Error;
use crate::policy::FailureKind;
use crate::pool::{Checkout, Lease, Liveness, PoolError};
use crate::pool::{Pick, SharedConn};

impl Database {
    /// An idle connection that needs no validation, lent at once without waiting, while the
    /// breaker is closed; `None` when the full [`Database::checkout_exclusive`] path is needed.
    pub(crate) fn try_checkout_ready(&self) -> Option<Lease<RedisConn>> {
        if !self.admission().breaker_is_closed() {
            return None;
        }
        let now = self.now();
        self.pool().try_take_idle(now, |meta, conn| {
            !conn.is_closed() && !self.needs_checkout_check(now, meta.returned_at)
        })
    }

    /// An exclusive connection: idle (validated if it sat idle long), or newly opened.
    pub(crate) async fn checkout_exclusive(&self) -> Result<Lease<RedisConn>, Error> {
        // One clock read serves admission, the deadline, staleness and the checkout check.
        let mut now = self.now();
        self.admission().ensure_admitted_at(now)?;
        let deadline = now + self.settings().pool_wait_timeout;
        // Bounded: each round consumes an idle connection or ends.
        for round in 0..10_000 {
            if round > 0 {
                now = self.now();
            }
            match self.pool().checkout(now, deadline).await {
                Err(e) => return Err(self.pool_error(e)),
                Ok(Checkout::Idle(mut lease)) => {
                    // The server closed it while it sat idle: close it here, take the next.
                    if lease.conn_mut().is_closed() {
                        lease.discard();
                        continue;
                    }
                    if self.needs_checkout_check(now, lease.meta().returned_at) {
                        if let Err(e) = self.connector().validate(lease.conn_mut()).await {
                            // `LOADING` came from a live connection: keep it (its commands
                            // wait for readiness). Anything else: close it, take the next.
                            if e.failure_kind() != Some(FailureKind::Loading) {
                                lease.discard();
                                continue;
                            }
                        }
                    }
                    return Ok(lease);
                }
                Ok(Checkout::Connect(permit)) => {
                    let conn = self.open().await?;
                    return Ok(permit.into_lease(conn));
                }
            }
        }
        Err(self.pool_error(PoolError::Timeout {
            waited: self.settings().pool_wait_timeout,
        }))
    }

    /// A shared connection from the next slot in turn, opening one in an empty or broken slot
    /// (in the background when another slot can serve meanwhile).
    pub(crate) async fn shared_connection(
        self: &Arc<Self>,
    ) -> Result<Arc<SharedConn<RedisConn>>, Error> {
        let this = self.clone();
        let pick = self.shared().pick(move || {
            Box::pin(async move {
                let lease = this.checkout_exclusive().await?;
                Ok(lease.into_shared())
            })
        });
        let unshare = |e: Arc<Error>| Arc::try_unwrap(e).unwrap_or_else(|e| e.duplicate());
        match pick {
            Pick::Ready(conn) => {
                // Every slot may be ready again (a replaced connection cleared the hint).
                self.shared().refresh_filled();
                Ok(conn)
            }
            Pick::Wait(index, connecting) => self
                .shared()
                .finish(index, connecting)
                .await
                .map_err(unshare),
            Pick::ReadyAndFill(conn, index, connecting) => {
                let this = self.clone();
                self.runtime().spawner().spawn(Box::pin(async move {
                    let _ = this.shared().finish(index, connecting).await;
                }));
                Ok(conn)
            }
        }
    }

    /// Counts a failed checkout (a `get`, `get_exclusive` or blocking twin that met `e`).
    pub(crate) fn checkout_failed(&self, e: Error) -> Error {
        self.counters().record_checkout_failure(&e);
        e
    }

    /// Fails at once with `CircuitOpen` when the breaker would reject a network call now.
    pub(crate) fn ensure_admitted(&self) -> Result<(), Error> {
        if self.admission().breaker_is_closed() {
            return Ok(());
        }
        self.admission().ensure_admitted_at(self.now())
    }

    fn pool_error(&self, e: PoolError) -> Error {
        let e = match e {
            PoolError::Closed => Error::Closed,
            PoolError::Timeout { waited } => Error::PoolTimeout {
                db: self.name().to_string(),
                waited,
            },
        };
        self.record_error(&e);
        e
    }
}
