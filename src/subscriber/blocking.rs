//! [`BlockingSubscriber`]: the blocking twin of [`Subscriber`], for synchronous code.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::ToRedisArgs;

use super::{Subscriber, DEFAULT_BUFFER};
use crate::blocking::wait;
use crate::error::Error;
use crate::keeper::Keeper;
use crate::seams::Block;

/// A [`Subscriber`] for synchronous code: the same connection, set of channels and patterns,
/// reconnects and buffer, waited for on the calling thread.
///
/// ```no_run
/// # fn demo(keeper: redis_keeper::Keeper) -> Result<(), redis_keeper::Error> {
/// use std::time::Duration;
/// let mut sub = keeper.subscriber_blocking("notifications")?;
/// sub.subscribe("orders")?;
/// if let Some(msg) = sub.next_message(Duration::from_secs(1))? {
///     let payload: String = msg.get_payload()?;
///     println!("{payload}");
/// }
/// # Ok(()) }
/// ```
pub struct BlockingSubscriber {
    inner: Subscriber,
    blocker: Arc<dyn Block>,
}

impl BlockingSubscriber {
    /// The next message, waiting up to `timeout`: `Ok(None)` when none came in time, and
    /// `Err(Error::Closed)` once the Keeper was closed and the buffer is drained.
    pub fn next_message(&mut self, timeout: Duration) -> Result<Option<redis::Msg>, Error> {
        let clock = self.inner.shared.db.runtime().clock().clone();
        let next = crate::seams::timeout(&*clock, timeout, self.inner.next());
        match wait(&*self.blocker, next)? {
            Ok(Some(msg)) => Ok(Some(msg)),
            Ok(None) => Err(Error::Closed),
            Err(_) => Ok(None),
        }
    }

    /// [`Subscriber::subscribe`], waited for.
    pub fn subscribe(&mut self, channels: impl ToRedisArgs + Send) -> Result<(), Error> {
        let blocker = self.blocker.clone();
        wait(&*blocker, self.inner.subscribe(channels))?
    }

    /// [`Subscriber::psubscribe`], waited for.
    pub fn psubscribe(&mut self, patterns: impl ToRedisArgs + Send) -> Result<(), Error> {
        let blocker = self.blocker.clone();
        wait(&*blocker, self.inner.psubscribe(patterns))?
    }

    /// [`Subscriber::unsubscribe`], waited for.
    pub fn unsubscribe(&mut self, channels: impl ToRedisArgs + Send) -> Result<(), Error> {
        let blocker = self.blocker.clone();
        wait(&*blocker, self.inner.unsubscribe(channels))?
    }

    /// [`Subscriber::punsubscribe`], waited for.
    pub fn punsubscribe(&mut self, patterns: impl ToRedisArgs + Send) -> Result<(), Error> {
        let blocker = self.blocker.clone();
        wait(&*blocker, self.inner.punsubscribe(patterns))?
    }

    /// [`Subscriber::resubscriptions`].
    pub fn resubscriptions(&self) -> u64 {
        self.inner.resubscriptions()
    }

    /// [`Subscriber::dropped`].
    pub fn dropped(&self) -> u64 {
        self.inner.dropped()
    }

    /// The async subscriber underneath.
    pub fn as_async(&mut self) -> &mut Subscriber {
        &mut self.inner
    }
}

impl fmt::Debug for BlockingSubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BlockingSubscriber")
            .field(&self.inner)
            .finish()
    }
}

impl Keeper {
    /// The blocking twin of [`Keeper::subscriber`]: no runtime needed in the caller.
    pub fn subscriber_blocking(&self, db: impl AsRef<str>) -> Result<BlockingSubscriber, Error> {
        let blocker = self.blocker().clone();
        let inner = wait(
            &*blocker,
            self.subscriber_with_buffer(db.as_ref().to_owned(), DEFAULT_BUFFER),
        )??;
        Ok(BlockingSubscriber { inner, blocker })
    }
}
