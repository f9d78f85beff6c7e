//! Where a connection goes ([`Endpoint`]) and which socket options it gets ([`TcpOptions`]).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A Redis server address. More kinds (TLS, Sentinel, Cluster) come later, so the enum is
/// non-exhaustive.
///
/// ```
/// use redis_keeper::seams::Endpoint;
/// let e = Endpoint::tcp("127.0.0.1", 6379);
/// assert_eq!(e.to_string(), "127.0.0.1:6379");
/// assert_eq!(Endpoint::unix("/run/redis.sock").to_string(), "unix:/run/redis.sock");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// A TCP host (name or address) and port.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A Unix domain socket (no TCP options apply).
    Unix {
        /// The socket's path.
        path: PathBuf,
    },
}

impl Endpoint {
    /// A TCP endpoint.
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        Self::Tcp {
            host: host.into(),
            port,
        }
    }

    /// A Unix socket endpoint.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self::Unix { path: path.into() }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "{host}:{port}"),
            Self::Unix { path } => write!(f, "unix:{}", path.display()),
        }
    }
}

/// TCP keepalive settings, by name (the seed's first version set the wrong raw option numbers).
///
/// ```
/// use std::time::Duration;
/// use redis_keeper::seams::Keepalive;
/// let k = Keepalive::default();
/// assert_eq!(k.idle, Duration::from_secs(600));
/// assert_eq!(k.interval, Duration::from_secs(60));
/// assert_eq!(k.probes, 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe (`TCP_KEEPIDLE`). Default: 600 s.
    pub idle: Duration,
    /// Time between probes (`TCP_KEEPINTVL`). Default: 60 s.
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped (`TCP_KEEPCNT`). Default: 5.
    pub probes: u32,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(600),
            interval: Duration::from_secs(60),
            probes: 5,
        }
    }
}

/// Options applied to every real socket a [`Transport`](super::Transport) opens.
///
/// ```
/// use redis_keeper::seams::TcpOptions;
/// let o = TcpOptions::default();
/// assert!(o.nodelay);
/// assert!(o.keepalive.is_some());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOptions {
    /// Disable Nagle's algorithm (`TCP_NODELAY`). Default: true.
    pub nodelay: bool,
    /// TCP keepalive, or `None` to leave it off. Default: on, with [`Keepalive::default`].
    pub keepalive: Option<Keepalive>,
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self {
            nodelay: true,
            keepalive: Some(Keepalive::default()),
        }
    }
}

impl TcpOptions {
    /// Applies these options to a connected socket.
    pub fn apply(&self, socket: socket2::SockRef<'_>) -> std::io::Result<()> {
        socket.set_tcp_nodelay(self.nodelay)?;
        match self.keepalive_params() {
            Some(params) => socket.set_tcp_keepalive(&params),
            None => socket.set_keepalive(false),
        }
    }

    /// The keepalive as socket2 sets it, `None` when it is off.
    pub(crate) fn keepalive_params(&self) -> Option<socket2::TcpKeepalive> {
        let k = self.keepalive?;
        let params = socket2::TcpKeepalive::new()
            .with_time(k.idle)
            .with_interval(k.interval);
        #[cfg(not(any(target_os = "windows", target_os = "openbsd", target_os = "haiku")))]
        let params = params.with_retries(k.probes);
        Some(params)
    }
}
