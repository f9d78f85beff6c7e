//! Shared slots: a small set of multiplexed connections per database, handed out as cheap shares.
//!
//! Each slot is empty, connecting (one connect in flight, every caller awaits the same one) or
//! ready. A connection that saw a transport error is marked broken; the next caller replaces it
//! while current holders finish with the old one, whose capacity is freed when the last share drops.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use futures::future::{BoxFuture, FutureExt, Shared};

use super::lease::SharedLease;

type Connecting<C, E> = Shared<BoxFuture<'static, Result<Arc<SharedConn<C>>, Arc<E>>>>;

enum Slot<C: Send + 'static, E> {
    Empty,
    Connecting(Connecting<C, E>),
    Ready(Arc<SharedConn<C>>),
}

/// One multiplexed connection held by a slot.
pub(crate) struct SharedConn<C: Send + 'static> {
    lease: SharedLease<C>,
    broken: AtomicBool,
}

impl<C: Send + 'static> SharedConn<C> {
    /// The connection (clone it to issue commands).
    pub(crate) fn conn(&self) -> &C {
        self.lease.conn()
    }

    /// Marks the connection as unusable: no new command is sent on it.
    pub(crate) fn mark_broken(&self) {
        self.broken.store(true, Ordering::Release);
    }

    /// Whether a transport failure was seen on this connection.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }
}

/// The shared slots of one database.
pub(crate) struct SharedSlots<C: Send + Sync + 'static, E> {
    slots: Box<[RwLock<Slot<C, E>>]>,
    next: AtomicUsize,
}

impl<C, E> SharedSlots<C, E>
where
    C: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// `n` empty slots (at least one).
    pub(crate) fn new(n: usize) -> Self {
        Self {
            slots: (0..n.max(1)).map(|_| RwLock::new(Slot::Empty)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Whether some slot holds a ready, unbroken connection (no handle is taken: a shared
    /// `PooledConnection` picks a connection per command).
    pub(crate) fn has_ready(&self) -> bool {
        self.slots.iter().any(|slot| {
            matches!(&*read(slot), Slot::Ready(conn) if !conn.is_broken())
        })
    }

    /// A ready, unbroken connection from the next slot in turn, without connecting.
    pub(crate) fn pick_ready(&self) -> Option<Arc<SharedConn<C>>> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for k in 0..n {
            let slot = read(&self.slots[(start + k) % n]);
            if let Slot::Ready(conn) = &*slot {
                if !conn.is_broken() {
                    return Some(conn.clone());
                }
            }
        }
        None
    }

    /// A ready connection from the next slot in turn; when that slot is empty or broken, opens
    /// one with `connect` (a single connect per slot however many callers wait for it).
    pub(crate) async fn get<F>(&self, connect: F) -> Result<Arc<SharedConn<C>>, Arc<E>>
    where
        F: FnOnce() -> BoxFuture<'static, Result<SharedLease<C>, E>>,
    {
        if let Some(conn) = self.pick_ready() {
            return Ok(conn);
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let connecting = {
            let mut slot = write(&self.slots[index]);
            match &*slot {
                Slot::Ready(conn) if !conn.is_broken() => return Ok(conn.clone()),
                Slot::Connecting(fut) => fut.clone(),
                _ => {
                    let fut = connect()
                        .map(|r| {
                            r.map(|lease| {
                                Arc::new(SharedConn {
                                    lease,
                                    broken: AtomicBool::new(false),
                                })
                            })
                            .map_err(Arc::new)
                        })
                        .boxed()
                        .shared();
                    *slot = Slot::Connecting(fut.clone());
                    fut
                }
            }
        };
        let result = connecting.clone().await;
        let mut slot = write(&self.slots[index]);
        if let Slot::Connecting(current) = &*slot {
            if current.ptr_eq(&connecting) {
                *slot = match &result {
                    Ok(conn) => Slot::Ready(conn.clone()),
                    Err(_) => Slot::Empty,
                };
            }
        }
        result
    }

    /// Marks every held connection broken and empties the slots (close or forced reconnect).
    pub(crate) fn clear(&self) {
        for slot in self.slots.iter() {
            let old = std::mem::replace(&mut *write(slot), Slot::Empty);
            if let Slot::Ready(conn) = &old {
                conn.mark_broken();
            }
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}
