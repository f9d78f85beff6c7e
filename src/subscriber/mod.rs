//! [`Subscriber`]: pub/sub on a connection of its own, over RESP3 push frames, that keeps its
//! channels and patterns across reconnects; and its blocking twin.
//!
//! A subscriber's connection is opened like any other (breaker, retry schedule), speaks RESP3
//! (`HELLO 3`) and hands every pushed message to a bounded buffer that never makes the
//! connection's driver wait. A supervisor task (on the Keeper's runtime, so tokio, smol and the
//! simulator alike) PINGs it every `health_check_interval`, notices when it dies, reconnects
//! through the breaker and the retry schedule, and subscribes every channel and pattern again.

mod blocking;
mod inbox;
mod supervisor;

use std::collections::BTreeSet;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use redis::ToRedisArgs;

use crate::database::{Database, RedisConn};
use crate::error::Error;
use crate::keeper::Keeper;
use crate::stats::DbCounters;

pub use blocking::BlockingSubscriber;
use inbox::Inbox;

/// Messages a subscriber buffers by default before it drops new ones (and counts them).
pub const DEFAULT_BUFFER: usize = 10_000;

/// A pub/sub subscriber of one database: its own connection, its own set of channels and
/// patterns, and a [`futures::Stream`] of the messages published to them.
///
/// It subscribes again after every reconnect (a restart, a killed connection, a network
/// failure), through the database's breaker and retry schedule, and counts each one in
/// [`Subscriber::resubscriptions`]. **Messages published while it was away are gone**: Redis
/// pub/sub does not keep them. Use a list or a stream where every message must arrive.
/// A message published while it is connected and subscribed arrives once, in order.
///
/// Messages wait in a bounded buffer (default [`DEFAULT_BUFFER`]); when the buffer is full a new
/// message is dropped and counted ([`Subscriber::dropped`], `messages_dropped` in the stats)
/// rather than making the connection wait. Dropping the subscriber closes its connection.
///
/// ```no_run
/// # async fn demo(keeper: redis_keeper::Keeper) -> Result<(), redis_keeper::Error> {
/// use futures::StreamExt;
/// let mut sub = keeper.subscriber("notifications").await?;
/// sub.subscribe("orders").await?;
/// sub.psubscribe("orders.*").await?;
/// while let Some(msg) = sub.next().await {
///     let payload: String = msg.get_payload()?;
///     println!("{}: {payload}", msg.get_channel_name());
/// }
/// # Ok(()) }
/// ```
pub struct Subscriber {
    shared: Arc<Shared>,
}

/// What a subscriber, its supervisor task and its connection's push handler share.
struct Shared {
    db: Arc<Database>,
    inbox: Inbox,
    subscriptions: Mutex<Subscriptions>,
    /// The connection in use, if any (the supervisor replaces it).
    current: Mutex<Option<Current>>,
    /// Wakes the supervisor: a connection was lost, or the subscriber was dropped.
    changed: event_listener::Event,
    /// The subscriber was dropped.
    closed: AtomicBool,
    resubscriptions: std::sync::atomic::AtomicU64,
    dropped: std::sync::atomic::AtomicU64,
}

/// The subscriber's channels and patterns; `version` counts changes.
#[derive(Default, Clone)]
struct Subscriptions {
    channels: BTreeSet<Vec<u8>>,
    patterns: BTreeSet<Vec<u8>>,
    version: u64,
}

/// A subscriber's connection and the flag its push handler sets when redis-rs reports it gone.
#[derive(Clone)]
struct Current {
    conn: RedisConn,
    lost: Arc<AtomicBool>,
}

impl Current {
    /// Lost, closed, or to a server of an older backend epoch (a Sentinel master that moved):
    /// replaced at the supervisor's next round.
    fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
            || self.conn.link().is_closed()
            || self.conn.link().is_stale()
    }

    /// Closes the connection (a failed PING or SUBSCRIBE): it is replaced.
    fn close(&self) {
        self.lost.store(true, Ordering::Release);
        self.conn.link().close();
    }
}

/// A change of the subscription set.
#[derive(Debug, Clone, Copy)]
enum Change {
    Subscribe,
    PSubscribe,
    Unsubscribe,
    PUnsubscribe,
}

impl Shared {
    fn subscriptions(&self) -> MutexGuard<'_, Subscriptions> {
        self.subscriptions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current(&self) -> Option<Current> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.db.is_closed()
    }
}

impl Subscriber {
    /// Opens the subscriber's connection and starts its supervisor.
    pub(crate) async fn open(db: Arc<Database>, buffer: usize) -> Result<Subscriber, Error> {
        let shared = Arc::new(Shared {
            db,
            inbox: Inbox::new(buffer),
            subscriptions: Mutex::new(Subscriptions::default()),
            current: Mutex::new(None),
            changed: event_listener::Event::new(),
            closed: AtomicBool::new(false),
            resubscriptions: Default::default(),
            dropped: Default::default(),
        });
        let first = supervisor::connect(&shared).await?;
        *shared.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(first);
        DbCounters::bump(&shared.db.counters().subscribers);
        supervisor::spawn(shared.clone());
        Ok(Subscriber { shared })
    }

    /// Subscribes to one or more channels (`SUBSCRIBE`); returns once the server confirmed.
    /// On an error the channels stay in the subscriber's set and are subscribed at the next
    /// reconnect.
    pub async fn subscribe(&mut self, channels: impl ToRedisArgs) -> Result<(), Error> {
        self.change(Change::Subscribe, channels.to_redis_args())
            .await
    }

    /// Subscribes to one or more glob patterns (`PSUBSCRIBE`), like [`Subscriber::subscribe`].
    pub async fn psubscribe(&mut self, patterns: impl ToRedisArgs) -> Result<(), Error> {
        self.change(Change::PSubscribe, patterns.to_redis_args())
            .await
    }

    /// Unsubscribes from channels (`UNSUBSCRIBE`); messages already buffered stay.
    pub async fn unsubscribe(&mut self, channels: impl ToRedisArgs) -> Result<(), Error> {
        self.change(Change::Unsubscribe, channels.to_redis_args())
            .await
    }

    /// Unsubscribes from patterns (`PUNSUBSCRIBE`).
    pub async fn punsubscribe(&mut self, patterns: impl ToRedisArgs) -> Result<(), Error> {
        self.change(Change::PUnsubscribe, patterns.to_redis_args())
            .await
    }

    async fn change(&mut self, change: Change, names: Vec<Vec<u8>>) -> Result<(), Error> {
        if self.shared.is_closed() {
            return Err(Error::Closed);
        }
        {
            let mut subs = self.shared.subscriptions();
            for name in &names {
                match change {
                    Change::Subscribe => subs.channels.insert(name.clone()),
                    Change::PSubscribe => subs.patterns.insert(name.clone()),
                    Change::Unsubscribe => subs.channels.remove(name),
                    Change::PUnsubscribe => subs.patterns.remove(name),
                };
            }
            subs.version += 1;
        }
        if names.is_empty() {
            return Ok(());
        }
        match self.shared.current() {
            Some(current) if !current.is_lost() => {
                supervisor::send_change(&self.shared, &current, change, &names).await
            }
            // The supervisor is reconnecting: it subscribes the whole set when it is back.
            _ => Err(Error::Redis(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                format!(
                    "subscriber of database `{}` is reconnecting; the change applies when it is back",
                    self.shared.db.name()
                ),
            )))),
        }
    }

    /// The channels subscribed to, sorted.
    pub fn channels(&self) -> Vec<Vec<u8>> {
        self.shared
            .subscriptions()
            .channels
            .iter()
            .cloned()
            .collect()
    }

    /// The patterns subscribed to, sorted.
    pub fn patterns(&self) -> Vec<Vec<u8>> {
        self.shared
            .subscriptions()
            .patterns
            .iter()
            .cloned()
            .collect()
    }

    /// Reconnects after which the subscriber subscribed again; messages published while it
    /// was away are missing.
    pub fn resubscriptions(&self) -> u64 {
        self.shared.resubscriptions.load(Ordering::Relaxed)
    }

    /// Messages dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Messages waiting in the buffer.
    pub fn backlog(&self) -> usize {
        self.shared.inbox.len()
    }

    /// The database this subscriber serves.
    pub fn database(&self) -> &str {
        self.shared.db.name()
    }
}

impl futures::Stream for Subscriber {
    type Item = redis::Msg;

    /// The next message; `None` once the Keeper was closed and the buffer is drained.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<redis::Msg>> {
        self.shared.inbox.poll_next(cx)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.changed.notify(usize::MAX);
        if let Some(current) = self.shared.current() {
            current.conn.link().close();
        }
        self.shared
            .db
            .counters()
            .subscribers
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subs = self.shared.subscriptions();
        f.debug_struct("Subscriber")
            .field("database", &self.shared.db.name())
            .field("channels", &subs.channels.len())
            .field("patterns", &subs.patterns.len())
            .field("resubscriptions", &self.resubscriptions())
            .finish()
    }
}

impl Keeper {
    /// A [`Subscriber`] of database `db`, on a connection of its own (opened now, through the
    /// breaker and the retry schedule), buffering up to [`DEFAULT_BUFFER`] messages.
    ///
    /// ```no_run
    /// # async fn demo(keeper: redis_keeper::Keeper) -> Result<(), redis_keeper::Error> {
    /// let mut sub = keeper.subscriber("notifications").await?;
    /// sub.subscribe(&["orders", "payments"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn subscriber(&self, db: impl AsRef<str>) -> Result<Subscriber, Error> {
        self.subscriber_with_buffer(db, DEFAULT_BUFFER).await
    }

    /// [`Keeper::subscriber`] with a buffer of `capacity` messages (at least one).
    pub async fn subscriber_with_buffer(
        &self,
        db: impl AsRef<str>,
        capacity: usize,
    ) -> Result<Subscriber, Error> {
        let db = self.database(db.as_ref())?.clone();
        db.refuse_on_cluster("a subscriber (pub/sub)")?;
        Subscriber::open(db, capacity).await
    }
}
