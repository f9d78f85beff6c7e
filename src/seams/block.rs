//! The [`Block`] seam: how a synchronous caller waits for the Keeper's async work.

use std::fmt;
use std::future::Future;

use futures::future::BoxFuture;

/// Refusal to block: the calling thread is running an async executor, where waiting would stall
/// it (or deadlock it, when the work waited for needs that very executor).
///
/// ```
/// use redis_keeper::seams::InAsyncContext;
/// assert!(InAsyncContext.to_string().contains("async"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InAsyncContext;

impl fmt::Display for InAsyncContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("blocking call made from inside an async executor")
    }
}

impl std::error::Error for InAsyncContext {}

/// Runs a future to completion on the calling thread, for the blocking API.
///
/// The future's I/O, timers and helper tasks are driven by the runtime's other seams (a reactor
/// thread, a spawner), so the waiter only has to poll it and park the thread in between.
/// Implementations refuse with [`InAsyncContext`] when they can tell the thread is inside an
/// async executor.
pub trait Block: Send + Sync + fmt::Debug + 'static {
    /// Polls `fut` on this thread until it completes, parking in between.
    fn block_on(&self, fut: BoxFuture<'_, ()>) -> Result<(), InAsyncContext>;
}

/// Runs `fut` with `blocker` and returns its output.
///
/// ```
/// use redis_keeper::seams::{block_with, ThreadBlock};
/// assert_eq!(block_with(&ThreadBlock, async { 6 * 7 }), Ok(42));
/// ```
pub fn block_with<F>(blocker: &dyn Block, fut: F) -> Result<F::Output, InAsyncContext>
where
    F: Future + Send,
    F::Output: Send,
{
    let mut out = None;
    let slot = &mut out;
    blocker.block_on(Box::pin(async move {
        *slot = Some(fut.await);
    }))?;
    Ok(out.expect("block_on returns only once the future completed"))
}

/// The default waiter: parks the calling thread between polls (`futures::executor::block_on`).
///
/// Inside a tokio runtime (with the `tokio` feature):
/// - on a multi-threaded runtime it waits in `tokio::task::block_in_place`, so a worker thread
///   hands its other tasks off instead of stalling them, and `spawn_blocking` code just works;
/// - on the thread running a current-thread runtime's `block_on` (no task, so nobody else could
///   drive that runtime while it waits) it refuses with [`InAsyncContext`].
///
/// Other executors (smol, async-std, a hand-written `block_on`) cannot be detected: calling the
/// blocking API from their tasks stalls their thread. Use the async API there.
///
/// ```
/// use redis_keeper::seams::{block_with, ThreadBlock};
/// let out = block_with(&ThreadBlock, async { "done" });
/// assert_eq!(out, Ok("done"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadBlock;

impl Block for ThreadBlock {
    fn block_on(&self, fut: BoxFuture<'_, ()>) -> Result<(), InAsyncContext> {
        #[cfg(feature = "tokio")]
        if let Ok(handle) = ::tokio::runtime::Handle::try_current() {
            use ::tokio::runtime::RuntimeFlavor;
            match handle.runtime_flavor() {
                RuntimeFlavor::CurrentThread if ::tokio::task::try_id().is_none() => {
                    return Err(InAsyncContext);
                }
                RuntimeFlavor::MultiThread => {
                    ::tokio::task::block_in_place(|| futures::executor::block_on(fut));
                    return Ok(());
                }
                _ => {}
            }
        }
        futures::executor::block_on(fut);
        Ok(())
    }
}
