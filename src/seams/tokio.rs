//! The tokio adapter: tokio timers, tasks and TCP sockets, bound to one runtime [`Handle`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use tokio::net::TcpStream;
use tokio::runtime::Handle;

use super::{BoxStream, Clock, Endpoint, Runtime, Spawn, TcpOptions, Transport};

/// Wall-clock time with tokio timers.
///
/// Holds the runtime [`Handle`] it was created on, so its sleeps work even when created or polled
/// outside that runtime (the runtime must have its time driver enabled and still be running).
///
/// ```
/// use std::time::Duration;
/// use redis_keeper::seams::{tokio::TokioClock, Clock};
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// let clock = rt.block_on(async { TokioClock::current() });
/// let deadline = clock.now() + Duration::from_millis(1);
/// rt.block_on(clock.sleep_until(deadline));
/// assert!(clock.now() >= deadline);
/// ```
#[derive(Debug, Clone)]
pub struct TokioClock {
    handle: Handle,
}

impl TokioClock {
    /// A clock whose sleeps run on `handle`'s time driver.
    pub fn new(handle: Handle) -> Self {
        Self { handle }
    }

    /// A clock bound to the current tokio runtime. Panics outside a tokio runtime.
    pub fn current() -> Self {
        Self::new(Handle::current())
    }
}

impl Clock for TokioClock {
    /// Tokio's time (`tokio::time::Instant::now`), so that `now` and `sleep_until` agree even
    /// when tokio's clock is paused or advanced by hand (its `test-util` feature).
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        // A tokio `Sleep` binds to the runtime current at its creation, not at its polls.
        let _entered = self.handle.enter();
        Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
            deadline,
        )))
    }

    fn block_until(&self, deadline: Instant) {
        let now = self.now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
    }
}

/// Spawns tasks onto one tokio runtime, from any thread.
///
/// ```
/// use redis_keeper::seams::{tokio::TokioSpawn, Spawn};
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let spawner = TokioSpawn::new(rt.handle().clone());
/// let (tx, rx) = std::sync::mpsc::channel();
/// spawner.spawn(Box::pin(async move { tx.send(7).unwrap() })); // called outside the runtime
/// assert_eq!(rx.recv().unwrap(), 7);
/// ```
#[derive(Debug, Clone)]
pub struct TokioSpawn {
    handle: Handle,
}

impl TokioSpawn {
    /// A spawner for the runtime behind `handle`.
    pub fn new(handle: Handle) -> Self {
        Self { handle }
    }

    /// A spawner for the current tokio runtime. Panics outside a tokio runtime.
    pub fn current() -> Self {
        Self::new(Handle::current())
    }
}

impl Spawn for TokioSpawn {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        drop(self.handle.spawn(task));
    }
}

/// Opens tokio TCP streams and applies [`TcpOptions`] (keepalive, nodelay) to them.
///
/// Connects inside its runtime's context, so a connect may be polled by any executor.
///
/// ```no_run
/// use redis_keeper::seams::{tokio::TokioTransport, TcpOptions};
/// # async fn demo() -> std::io::Result<()> {
/// let transport = TokioTransport::current();
/// let stream = transport.connect_tcp("127.0.0.1", 6379, &TcpOptions::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TokioTransport {
    handle: Handle,
}

impl TokioTransport {
    /// A transport whose sockets register with `handle`'s I/O driver.
    pub fn new(handle: Handle) -> Self {
        Self { handle }
    }

    /// A transport bound to the current tokio runtime. Panics outside a tokio runtime.
    pub fn current() -> Self {
        Self::new(Handle::current())
    }

    /// Connects to `host:port` (resolving names) and applies `options` to the socket.
    pub async fn connect_tcp(
        &self,
        host: &str,
        port: u16,
        options: &TcpOptions,
    ) -> io::Result<TcpStream> {
        let host = host.to_owned();
        let options = *options;
        let connect = async move {
            let stream = TcpStream::connect((host.as_str(), port)).await?;
            options.apply(socket2::SockRef::from(&stream))?;
            Ok(stream)
        };
        Entered {
            handle: self.handle.clone(),
            fut: Box::pin(connect),
        }
        .await
    }
}

impl TokioTransport {
    /// Connects to the Unix socket at `path`.
    #[cfg(unix)]
    async fn connect_unix(&self, path: &std::path::Path) -> io::Result<BoxStream> {
        let path = path.to_owned();
        let connect = async move { tokio::net::UnixStream::connect(path).await };
        let stream = Entered {
            handle: self.handle.clone(),
            fut: Box::pin(connect),
        }
        .await?;
        Ok(Box::new(stream))
    }

    #[cfg(not(unix))]
    async fn connect_unix(&self, path: &std::path::Path) -> io::Result<BoxStream> {
        Err(super::unix_unsupported(path))
    }
}

#[async_trait::async_trait]
impl Transport for TokioTransport {
    async fn connect(&self, endpoint: &Endpoint, options: &TcpOptions) -> io::Result<BoxStream> {
        match endpoint {
            Endpoint::Tcp { host, port } => {
                let stream = self.connect_tcp(host, *port, options).await?;
                Ok(Box::new(stream))
            }
            Endpoint::Unix { path } => self.connect_unix(path).await,
        }
    }
}

/// Polls `fut` with `handle` entered, so tokio resources it creates find their runtime.
struct Entered<F> {
    handle: Handle,
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for Entered<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let _entered = this.handle.enter();
        this.fut.as_mut().poll(cx)
    }
}

/// The tokio runtime seams, bound to the current runtime. Panics outside a tokio runtime.
pub(crate) fn runtime() -> Runtime {
    let handle = Handle::current();
    Runtime::new(
        "tokio",
        Arc::new(TokioClock::new(handle.clone())),
        Arc::new(TokioSpawn::new(handle.clone())),
        Arc::new(TokioTransport::new(handle)),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn now_follows_tokios_clock_when_it_is_paused_and_advanced() {
        let clock = TokioClock::current();
        let t0 = clock.now();
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(
            clock.now() - t0 >= Duration::from_secs(30),
            "now moved with tokio's time"
        );
        let deadline = clock.now() + Duration::from_secs(60);
        clock.sleep_until(deadline).await; // auto-advanced by the paused runtime
        assert!(
            clock.now() >= deadline,
            "a sleep ends when now reaches its deadline"
        );
    }
}
