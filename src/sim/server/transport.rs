//! The in-memory transport: [`SimTransport`] opens [`SimStream`]s to a [`SimRedis`].

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{ReadStep, SimRedis};
use crate::seams::{BoxStream, Endpoint, TcpOptions, Transport};
use crate::sim::doubles::Sleep;

/// A [`Transport`] whose connections reach a [`SimRedis`] (made by [`SimRedis::transport`]).
///
/// Connecting is immediate in virtual time; it fails with `ConnectionRefused` while the server
/// refuses connections. The endpoint is only recorded in the trace and TCP options are ignored.
///
/// ```
/// use redis_keeper::seams::{Endpoint, TcpOptions, Transport};
/// use redis_keeper::sim::{SimClock, SimRedis, Trace};
/// use redis_keeper::Rng;
/// let sim = SimRedis::new(SimClock::new(), Rng::new(3), Trace::new());
/// let transport = sim.transport();
/// let endpoint = Endpoint::tcp("redis.test", 6379);
/// let stream = futures::executor::block_on(transport.connect(&endpoint, &TcpOptions::default()));
/// assert!(stream.is_ok());
/// sim.refuse(true);
/// let err = futures::executor::block_on(transport.connect(&endpoint, &TcpOptions::default()));
/// assert_eq!(err.err().map(|e| e.kind()), Some(std::io::ErrorKind::ConnectionRefused));
/// ```
#[derive(Clone, Debug)]
pub struct SimTransport {
    server: SimRedis,
}

impl SimTransport {
    pub(super) fn new(server: SimRedis) -> Self {
        Self { server }
    }

    /// The server this transport connects to.
    pub fn server(&self) -> &SimRedis {
        &self.server
    }
}

#[async_trait::async_trait]
impl Transport for SimTransport {
    async fn connect(&self, endpoint: &Endpoint, _options: &TcpOptions) -> io::Result<BoxStream> {
        let stream = self.server.connect_from(&endpoint.to_string())?;
        Ok(Box::new(stream))
    }
}

/// One client connection to a [`SimRedis`], speaking through tokio's `AsyncRead`/`AsyncWrite`.
///
/// Writing runs every complete command at the clock's current time and always accepts all bytes
/// (or fails once the server has ended the connection). Reading returns the reply bytes whose
/// delivery instant has come; when the next bytes are not due yet the stream sleeps on the
/// [`SimClock`](crate::sim::SimClock) until they are, and when nothing is queued it waits for a write,
/// a kill or the next planned fault. Dropping the stream closes the server side.
pub struct SimStream {
    server: SimRedis,
    id: u64,
    sleep: Option<(Instant, Sleep)>,
}

impl SimStream {
    pub(super) fn new(server: SimRedis, id: u64) -> Self {
        Self {
            server,
            id,
            sleep: None,
        }
    }

    /// The connection's id (what `CLIENT ID` answers, what [`SimRedis::kill`] takes).
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl fmt::Debug for SimStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimStream")
            .field("id", &self.id)
            .field("sleeping_until", &self.sleep.as_ref().map(|(at, _)| *at))
            .finish()
    }
}

impl SimRedis {
    /// A [`Transport`](crate::seams::Transport) whose connections reach this server (the
    /// endpoint's address is only recorded in the trace).
    pub fn transport(&self) -> SimTransport {
        SimTransport::new(self.clone())
    }

    /// Opens a connection directly (what the transport does), or fails with
    /// `ConnectionRefused` while the server refuses connections.
    pub fn connect(&self) -> io::Result<SimStream> {
        self.connect_from("sim")
    }

    pub(super) fn connect_from(&self, peer: &str) -> io::Result<SimStream> {
        let id = self.accept_from(peer)?;
        Ok(SimStream::new(self.clone(), id))
    }
}

impl AsyncRead for SimStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.server.read_step(this.id, buf, cx.waker()) {
                ReadStep::Done(result) => {
                    this.sleep = None;
                    return Poll::Ready(result);
                }
                ReadStep::Wait(None) => {
                    this.sleep = None;
                    return Poll::Pending;
                }
                ReadStep::Wait(Some(at)) => {
                    if this.sleep.as_ref().is_none_or(|(s, _)| *s != at) {
                        let sleep = this.server.clock().sleep_until(at);
                        this.sleep = Some((at, sleep));
                    }
                    let Some((_, sleep)) = this.sleep.as_mut() else {
                        return Poll::Pending;
                    };
                    match Pin::new(sleep).poll(cx) {
                        // The instant has come: look again (bytes are due or a fault applies).
                        Poll::Ready(()) => this.sleep = None,
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
        }
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.server.write(self.id, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.server.shutdown(self.id);
        Poll::Ready(Ok(()))
    }
}

impl Drop for SimStream {
    fn drop(&mut self) {
        self.server.disconnect(self.id);
    }
}
