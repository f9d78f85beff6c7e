//! The smol adapter: async-io timers, `smol::spawn` and async-io TCP sockets.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use async_io::{Async, Timer};
use futures::future::BoxFuture;

use super::{BoxStream, Clock, Endpoint, FuturesIo, Runtime, Spawn, TcpOptions, Transport};

/// Wall-clock time with async-io timers (driven by async-io's reactor; no runtime needed).
///
/// ```
/// use std::time::Duration;
/// use redis_keeper::seams::{smol::SmolClock, Clock};
/// let clock = SmolClock;
/// let deadline = clock.now() + Duration::from_millis(1);
/// smol::block_on(clock.sleep_until(deadline));
/// assert!(clock.now() >= deadline);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolClock;

impl Clock for SmolClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let timer = Timer::at(deadline);
        Box::pin(async move {
            timer.await;
        })
    }

    fn block_until(&self, deadline: Instant) {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
    }
}

/// Spawns detached tasks on smol's global executor (`smol::spawn`).
///
/// ```
/// use redis_keeper::seams::{smol::SmolSpawn, Spawn};
/// let (tx, rx) = std::sync::mpsc::channel();
/// SmolSpawn.spawn(Box::pin(async move { tx.send(7).unwrap() }));
/// assert_eq!(rx.recv().unwrap(), 7);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolSpawn;

impl Spawn for SmolSpawn {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        smol::spawn(task).detach();
    }
}

/// Opens async-io TCP streams and applies [`TcpOptions`] (keepalive, nodelay) to them.
///
/// Host names are resolved on smol's blocking thread pool; IP literals skip resolution.
///
/// ```no_run
/// use redis_keeper::seams::{smol::SmolTransport, TcpOptions};
/// # async fn demo() -> std::io::Result<()> {
/// let stream = SmolTransport.connect_tcp("127.0.0.1", 6379, &TcpOptions::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolTransport;

impl SmolTransport {
    /// Connects to `host:port`, trying each resolved address in turn, and applies `options`.
    pub async fn connect_tcp(
        &self,
        host: &str,
        port: u16,
        options: &TcpOptions,
    ) -> io::Result<Async<TcpStream>> {
        let mut last_error = None;
        for addr in resolve(host, port).await? {
            match Async::<TcpStream>::connect(addr).await {
                Ok(stream) => {
                    options.apply(socket2::SockRef::from(stream.get_ref()))?;
                    return Ok(stream);
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no address found for {host}:{port}"),
            )
        }))
    }
}

#[async_trait::async_trait]
impl Transport for SmolTransport {
    async fn connect(&self, endpoint: &Endpoint, options: &TcpOptions) -> io::Result<BoxStream> {
        match endpoint {
            Endpoint::Tcp { host, port } => {
                let stream = self.connect_tcp(host, *port, options).await?;
                Ok(Box::new(FuturesIo::new(stream)))
            }
            #[cfg(unix)]
            Endpoint::Unix { path } => {
                let stream = Async::<std::os::unix::net::UnixStream>::connect(path).await?;
                Ok(Box::new(FuturesIo::new(stream)))
            }
            #[cfg(not(unix))]
            Endpoint::Unix { path } => Err(super::unix_unsupported(path)),
        }
    }
}

async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let host = host.to_owned();
    smol::unblock(move || Ok((host.as_str(), port).to_socket_addrs()?.collect())).await
}

/// The smol runtime seams.
pub(crate) fn runtime() -> Runtime {
    Runtime::new(
        "smol",
        Arc::new(SmolClock),
        Arc::new(SmolSpawn),
        Arc::new(SmolTransport),
    )
}
