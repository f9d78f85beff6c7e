//! The background task of one database: the idle sweep and the health checks, on one timer.

use std::sync::Arc;

use futures::future::{abortable, AbortHandle};

use super::Database;
use crate::stats::DbCounters;

/// Spawns the database's background loop; abort the returned handle to stop it.
pub(crate) fn spawn_background(db: Arc<Database>) -> AbortHandle {
    // A cluster database has no pool to sweep: its loop refreshes the slot map.
    #[cfg(feature = "cluster")]
    if let Some(cluster) = db.cluster().cloned() {
        return super::cluster::spawn_refresher(db, cluster);
    }
    let spawner = db.runtime().spawner().clone();
    let (task, handle) = abortable(async move {
        // Bounded by abort (close); each round sleeps to a strictly later deadline.
        loop {
            let next = db.admission().next_health_check();
            let sweep = db.pool().next_sweep();
            let next = next.map_or(sweep, |health| health.min(sweep));
            db.runtime().clock().sleep_until(next).await;
            let now = db.now();
            let closed = db.sweep(now);
            if closed > 0 {
                keeper_event!(db, INFO, closed, "idle sweep closed stale connections");
            }
            let due = db.admission().health_check_due(now);
            if due && db.in_use() {
                db.health_check().await;
            } else if due {
                // Nothing to check yet; keep the schedule moving.
                db.admission().health_check_started(now);
                db.admission().health_check_finished(now);
            }
        }
    });
    spawner.spawn(Box::pin(async move {
        let _ = task.await;
    }));
    handle
}

impl Database {
    /// Whether the database was ever used: unused databases open no connection, not even for
    /// health checks ([`Keeper::health`](crate::Keeper::health) still checks them on request).
    pub(crate) fn in_use(&self) -> bool {
        DbCounters::read(&self.counters().created)
            + DbCounters::read(&self.counters().connect_failed)
            > 0
    }

    /// One health check: PING on a shared connection (opening one if none is ready: this is
    /// the reconnection path). Results feed the breaker and readiness. Skipped while the
    /// breaker is open, so an open breaker sees no network traffic.
    pub(crate) async fn health_check(self: &Arc<Self>) -> bool {
        let now = self.now();
        self.admission().health_check_started(now);
        // Finishes the check on every path, cancellation included (a timed-out `health()`).
        let _finish = CheckFinished(self);
        DbCounters::bump(&self.counters().health_checks);
        let ok = match self.ensure_admitted() {
            Err(_) => false,
            // A cluster database: the slot map asked for (no node answering is a failure).
            #[cfg(feature = "cluster")]
            Ok(()) if self.cluster().is_some() => match self.cluster() {
                Some(cluster) => cluster.refresh(self).await,
                None => false,
            },
            Ok(()) => match self.shared_connection().await {
                Ok(conn) => match self.connector().validate(conn.conn()).await {
                    Ok(()) => true,
                    Err(e) => {
                        if e.failure_kind().is_some_and(|k| k.poisons_connection()) {
                            conn.mark_broken();
                        }
                        false
                    }
                },
                Err(_) => false,
            },
        };
        if !ok {
            DbCounters::bump(&self.counters().health_failed);
            keeper_event!(self, WARN, "health check failed");
        }
        ok
    }
}

struct CheckFinished<'a>(&'a Database);

impl Drop for CheckFinished<'_> {
    fn drop(&mut self) {
        let now = self.0.now();
        self.0.admission().health_check_finished(now);
    }
}
