//! The runtime seams: [`Clock`], [`Spawn`] and [`Transport`], the [`Block`] waiter of the
//! blocking API, and the [`Runtime`] bundle of them all.
//!
//! Everything above this module talks to time, tasks and sockets only through these object-safe
//! traits, held as `Arc<dyn …>`, so public types carry no runtime type parameters. Adapters for
//! tokio (the [`tokio`] module) and smol (the [`smol`] module) live in one file each;
//! the simulator ([`crate::sim`]) implements the same traits in virtual time.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, Either};

mod block;
mod compat;
mod endpoint;
pub mod smol;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use block::{block_with, Block, InAsyncContext, ThreadBlock};
pub use compat::FuturesIo;
pub use endpoint::{Endpoint, Keepalive, TcpOptions};

/// A source of time and a way to wait for it.
///
/// Policies never read a clock: the driver reads [`Clock::now`] and passes it in.
///
/// ```
/// use redis_keeper::seams::{Clock, SystemClock};
/// let clock = SystemClock;
/// let t0 = clock.now();
/// clock.block_until(t0); // a deadline already reached returns at once
/// assert!(clock.now() >= t0);
/// ```
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant. Never runs backwards.
    fn now(&self) -> Instant;

    /// A future that completes once [`Clock::now`] has reached `deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;

    /// Blocks the calling thread until [`Clock::now`] has reached `deadline` (for sync callers).
    fn block_until(&self, deadline: Instant);
}

/// A way to run background tasks (idle sweep, health checks, connection drivers).
///
/// Tasks are detached; the caller stops one by wrapping it in
/// [`futures::future::Abortable`] before spawning.
pub trait Spawn: Send + Sync + fmt::Debug + 'static {
    /// Runs `task` in the background until it completes.
    fn spawn(&self, task: BoxFuture<'static, ()>);
}

/// A byte stream redis-rs can speak its protocol over (tokio's I/O traits, as redis-rs requires).
pub trait AsyncStream:
    ::tokio::io::AsyncRead + ::tokio::io::AsyncWrite + Send + Unpin + 'static
{
}

impl<T> AsyncStream for T where
    T: ::tokio::io::AsyncRead + ::tokio::io::AsyncWrite + Send + Unpin + 'static
{
}

/// An owned, type-erased stream returned by a [`Transport`].
pub type BoxStream = Box<dyn AsyncStream>;

/// Opens byte streams to Redis endpoints.
///
/// Connect timeouts are not the transport's business: the caller races
/// [`Transport::connect`] against its [`Clock`].
#[async_trait::async_trait]
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// Opens a stream to `endpoint`, applying `options` (keepalive, nodelay) to real sockets.
    async fn connect(&self, endpoint: &Endpoint, options: &TcpOptions) -> io::Result<BoxStream>;
}

/// The seams bundled: what a Keeper needs from its runtime (clock, spawner, transport, and the
/// [`Block`] waiter its blocking API uses; [`ThreadBlock`] unless set with [`Runtime::with_blocker`]).
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// use redis_keeper::seams::Runtime;
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// rt.block_on(async {
///     let runtime = Runtime::detect();
///     assert_eq!(runtime.name(), "tokio");
/// });
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Runtime {
    name: &'static str,
    clock: Arc<dyn Clock>,
    spawn: Arc<dyn Spawn>,
    transport: Arc<dyn Transport>,
    blocker: Arc<dyn Block>,
}

impl Runtime {
    /// Bundles custom seams under a display `name`.
    pub fn new(
        name: &'static str,
        clock: Arc<dyn Clock>,
        spawn: Arc<dyn Spawn>,
        transport: Arc<dyn Transport>,
    ) -> Self {
        Self {
            name,
            clock,
            spawn,
            transport,
            blocker: Arc::new(ThreadBlock),
        }
    }

    /// The same runtime with `blocker` as the waiter of the blocking API.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use redis_keeper::seams::{Runtime, ThreadBlock};
    /// let rt = Runtime::smol().with_blocker(Arc::new(ThreadBlock));
    /// assert_eq!(rt.name(), "smol");
    /// ```
    pub fn with_blocker(mut self, blocker: Arc<dyn Block>) -> Self {
        self.blocker = blocker;
        self
    }

    /// The same runtime with `clock` instead of its own.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The tokio runtime the caller is running on. Must be called inside a tokio runtime.
    #[cfg(feature = "tokio")]
    pub fn tokio() -> Self {
        tokio::runtime()
    }

    /// The smol runtime (async-io timers and reactor, `smol::spawn`).
    pub fn smol() -> Self {
        smol::runtime()
    }

    /// Tokio when called inside a tokio runtime (and the `tokio` feature is on), else smol.
    pub fn detect() -> Self {
        #[cfg(feature = "tokio")]
        if ::tokio::runtime::Handle::try_current().is_ok() {
            return Self::tokio();
        }
        Self::smol()
    }

    /// The runtime's display name (`"tokio"`, `"smol"`, `"threads"`, `"sim"`, …).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The task spawner.
    pub fn spawner(&self) -> &Arc<dyn Spawn> {
        &self.spawn
    }

    /// The transport.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// The waiter the blocking API runs its futures with.
    pub fn blocker(&self) -> &Arc<dyn Block> {
        &self.blocker
    }
}

/// The wall clock (`std::time::Instant`), waiting on a timer thread-free basis: async waits use
/// async-io timers, blocking waits use `std::thread::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            async_io::Timer::at(deadline).await;
        })
    }

    fn block_until(&self, deadline: Instant) {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
    }
}

/// The error of [`timeout_at`]: the deadline passed before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `fut` until it completes or `clock` reaches `deadline`, whichever comes first.
///
/// The future is polled first, so a future that is already ready wins even at the deadline.
///
/// ```
/// use std::time::Duration;
/// use redis_keeper::seams::{timeout_at, Clock, SystemClock};
/// let clock = SystemClock;
/// let deadline = clock.now() + Duration::from_secs(5);
/// let out = futures::executor::block_on(timeout_at(&clock, deadline, async { 42 }));
/// assert_eq!(out, Ok(42));
/// ```
pub async fn timeout_at<F: Future>(
    clock: &dyn Clock,
    deadline: Instant,
    fut: F,
) -> Result<F::Output, Elapsed> {
    let fut = std::pin::pin!(fut);
    let sleep = clock.sleep_until(deadline);
    match futures::future::select(fut, sleep).await {
        Either::Left((out, _)) => Ok(out),
        Either::Right(((), _)) => Err(Elapsed),
    }
}

/// Runs `fut` for at most `limit` of `clock` time. See [`timeout_at`].
pub async fn timeout<F: Future>(
    clock: &dyn Clock,
    limit: Duration,
    fut: F,
) -> Result<F::Output, Elapsed> {
    let deadline = clock.now() + limit;
    timeout_at(clock, deadline, fut).await
}

/// The error of a Unix-socket endpoint on a platform without Unix sockets.
#[cfg(not(unix))]
pub(crate) fn unix_unsupported(path: &std::path::Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "Unix sockets are not available on this platform ({})",
            path.display()
        ),
    )
}
