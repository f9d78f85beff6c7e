//! Shared slots: a small set of multiplexed connections per database, handed out as cheap shares.
//!
//! Each slot is empty, connecting (one connect in flight, every caller awaits the same one) or
//! ready. A connection that saw a transport error is marked broken; the next caller replaces it
//! while current holders finish with the old one, whose capacity is freed when the last share drops.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use futures::future::{BoxFuture, FutureExt, Shared};

use super::exclusive::SharedLease;
use super::Liveness;

/// A slot's connect in flight, awaited by every caller that needs it.
pub(crate) type Connecting<C, E> = Shared<BoxFuture<'static, Result<Arc<SharedConn<C>>, Arc<E>>>>;

/// What [`SharedSlots::pick`] found.
pub(crate) enum Pick<C: Send + 'static, E> {
    /// A ready connection.
    Ready(Arc<SharedConn<C>>),
    /// No slot is ready: await this slot's connect.
    Wait(usize, Connecting<C, E>),
    /// A ready connection, and an empty slot's connect for the caller to drive in the background.
    ReadyAndFill(Arc<SharedConn<C>>, usize, Connecting<C, E>),
}

enum Slot<C: Send + 'static, E> {
    Empty,
    Connecting(Connecting<C, E>),
    Ready(Arc<SharedConn<C>>),
}

/// One multiplexed connection held by a slot.
pub(crate) struct SharedConn<C: Send + 'static> {
    lease: SharedLease<C>,
    broken: AtomicBool,
    /// The slots' "every slot ready" hint, cleared when this connection is marked broken.
    filled: Arc<AtomicBool>,
}

impl<C: Liveness + Send + 'static> SharedConn<C> {
    /// The connection (clone it to issue commands).
    pub(crate) fn conn(&self) -> &C {
        self.lease.conn()
    }

    /// Marks the connection as unusable: no new command is sent on it.
    pub(crate) fn mark_broken(&self) {
        self.broken.store(true, Ordering::Release);
        self.filled.store(false, Ordering::Release);
    }

    /// Whether a transport failure was seen on this connection, or the server closed it (then
    /// it is marked broken here, so the slots replace it).
    pub(crate) fn is_broken(&self) -> bool {
        if self.broken.load(Ordering::Acquire) {
            return true;
        }
        if self.lease.conn().is_closed() {
            self.mark_broken();
            return true;
        }
        false
    }
}

/// The shared slots of one database.
pub(crate) struct SharedSlots<C: Send + Sync + 'static, E> {
    slots: Box<[RwLock<Slot<C, E>>]>,
    /// Round-robin cursor of `pick_ready` (per command).
    next: AtomicUsize,
    /// Round-robin cursor of `pick` (per `get`), separate so the two cannot fall into step.
    next_pick: AtomicUsize,
    /// Whether every slot is ready and unbroken (see [`SharedSlots::all_ready`]).
    filled: Arc<AtomicBool>,
}

impl<C, E> SharedSlots<C, E>
where
    C: Liveness + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// `n` empty slots (at least one).
    pub(crate) fn new(n: usize) -> Self {
        Self {
            slots: (0..n.max(1)).map(|_| RwLock::new(Slot::Empty)).collect(),
            next: AtomicUsize::new(0),
            next_pick: AtomicUsize::new(0),
            filled: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether every slot held a ready, unbroken connection when last looked at: one load, for
    /// `get`'s fast path (a shared `PooledConnection` picks a connection per command, so `get`
    /// takes none). A hint: a connection marked broken clears it at once; the slow path
    /// ([`SharedSlots::pick`], then [`SharedSlots::refresh_filled`]) sets it again.
    pub(crate) fn all_ready(&self) -> bool {
        self.filled.load(Ordering::Acquire)
    }

    /// Looks at every slot and publishes whether all are ready and unbroken.
    pub(crate) fn refresh_filled(&self) {
        let all = self
            .slots
            .iter()
            .all(|slot| matches!(&*read(slot), Slot::Ready(conn) if !conn.is_broken()));
        self.filled.store(all, Ordering::Release);
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

    /// Chooses the next slot in turn. A ready slot is served at once. An empty or broken slot
    /// gets a connect future from `connect` (one per slot however many callers come): when
    /// another slot is ready, that one is served and the caller drives the fill in the
    /// background; otherwise the caller waits for the fill with [`SharedSlots::finish`].
    pub(crate) fn pick<F>(&self, connect: F) -> Pick<C, E>
    where
        F: FnOnce() -> BoxFuture<'static, Result<SharedLease<C>, E>>,
    {
        let index = self.next_pick.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = write(&self.slots[index]);
        let fill = match &*slot {
            Slot::Ready(conn) if !conn.is_broken() => return Pick::Ready(conn.clone()),
            Slot::Connecting(fut) => {
                let fut = fut.clone();
                drop(slot);
                return match self.pick_ready() {
                    Some(conn) => Pick::Ready(conn),
                    None => Pick::Wait(index, fut),
                };
            }
            _ => {
                let filled = self.filled.clone();
                let fut = connect()
                    .map(move |r| {
                        r.map(|lease| {
                            Arc::new(SharedConn {
                                lease,
                                broken: AtomicBool::new(false),
                                filled,
                            })
                        })
                        .map_err(Arc::new)
                    })
                    .boxed()
                    .shared();
                *slot = Slot::Connecting(fut.clone());
                fut
            }
        };
        drop(slot);
        match self.pick_ready() {
            Some(conn) => Pick::ReadyAndFill(conn, index, fill),
            None => Pick::Wait(index, fill),
        }
    }

    /// Awaits a slot's connect future and records its outcome in the slot.
    pub(crate) async fn finish(
        &self,
        index: usize,
        connecting: Connecting<C, E>,
    ) -> Result<Arc<SharedConn<C>>, Arc<E>> {
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
        drop(slot);
        self.refresh_filled();
        result
    }

    /// Empties the slots whose connection is broken, so the slot stops holding it: its capacity
    /// comes free once the last share still using it is dropped. Returns how many were emptied.
    pub(crate) fn evict_broken(&self) -> usize {
        let mut evicted = 0;
        for slot in self.slots.iter() {
            let mut slot = write(slot);
            if matches!(&*slot, Slot::Ready(conn) if conn.is_broken()) {
                *slot = Slot::Empty;
                evicted += 1;
            }
        }
        evicted
    }

    /// Marks every held connection broken and empties the slots (close or forced reconnect).
    pub(crate) fn clear(&self) {
        self.filled.store(false, Ordering::Release);
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
