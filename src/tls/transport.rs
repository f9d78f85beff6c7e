//! [`TlsTransport`]: TLS over the streams of any other [`Transport`].

use std::fmt;
use std::io;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use crate::seams::{BoxStream, Endpoint, TcpOptions, Transport};

/// A [`Transport`] that opens its streams with `inner` and runs a TLS handshake on each.
///
/// tokio-rustls needs only tokio's I/O traits, which every transport's stream speaks (smol's
/// and the simulator's through [`FuturesIo`](crate::seams::FuturesIo)), so this one decorator
/// serves tokio, smol and the blocking API alike. The server name is the one given, or else
/// the endpoint's host (a DNS name, or an IP address checked against the certificate's IP
/// names). A failed handshake is an `io::Error` carrying the `rustls::Error`, which the crate
/// classifies as [`FailureKind::Tls`](crate::policy::FailureKind::Tls): never retried.
///
/// ```
/// use std::sync::Arc;
/// use redis_keeper::seams::Runtime;
/// use redis_keeper::tls::TlsTransport;
///
/// let roots = rustls::RootCertStore::empty(); // add your CA here
/// let provider = Arc::new(rustls::crypto::ring::default_provider());
/// let config = rustls::ClientConfig::builder_with_provider(provider)
///     .with_safe_default_protocol_versions()
///     .unwrap()
///     .with_root_certificates(roots)
///     .with_no_client_auth();
/// let plain = Runtime::smol();
/// let tls = TlsTransport::new(plain.transport().clone(), Arc::new(config), None);
/// let runtime = Runtime::new("smol+tls", plain.clock().clone(), plain.spawner().clone(), Arc::new(tls));
/// assert_eq!(runtime.name(), "smol+tls");
/// ```
pub struct TlsTransport {
    inner: Arc<dyn Transport>,
    connector: tokio_rustls::TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl TlsTransport {
    /// TLS with `config` over `inner`'s streams; `server_name` for SNI and verification, or
    /// `None` for each endpoint's host.
    pub fn new(
        inner: Arc<dyn Transport>,
        config: Arc<ClientConfig>,
        server_name: Option<ServerName<'static>>,
    ) -> Self {
        Self {
            inner,
            connector: tokio_rustls::TlsConnector::from(config),
            server_name,
        }
    }

    /// The name to verify for `endpoint`.
    fn name_for(&self, endpoint: &Endpoint) -> io::Result<ServerName<'static>> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        let failed =
            |why: String| io::Error::new(io::ErrorKind::InvalidInput, rustls::Error::General(why));
        match endpoint {
            Endpoint::Tcp { host, .. } => ServerName::try_from(host.clone())
                .map_err(|_| failed(format!("`{host}` is not a valid TLS server name"))),
            other => Err(failed(format!("no TLS server name for {other}"))),
        }
    }
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport")
            .field("inner", &self.inner)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Transport for TlsTransport {
    async fn connect(&self, endpoint: &Endpoint, options: &TcpOptions) -> io::Result<BoxStream> {
        let name = self.name_for(endpoint)?;
        let stream = self.inner.connect(endpoint, options).await?;
        let tls = self.connector.connect(name, stream).await?;
        Ok(Box::new(tls))
    }
}
