//! TLS to a cluster's nodes: the database's `ssl_*` files handed to redis-rs's own rustls
//! connector (its cluster client dials its own sockets, so the crate's `TlsTransport` cannot
//! sit under it), and the node URLs as `rediss://`.

use std::path::{Path, PathBuf};

use redis::{ClientTlsConfig, RedisError, TlsCertificates};

use crate::config::TlsSettings;

/// The TLS files of a cluster database, read again whenever a connection is built (they were
/// read and checked when the configuration resolved).
#[derive(Debug, Clone)]
pub(super) struct ClusterTls {
    ca_certs: Option<PathBuf>,
    certfile: Option<PathBuf>,
    keyfile: Option<PathBuf>,
    verify: bool,
}

impl ClusterTls {
    /// The cluster side of the database's TLS settings.
    pub(super) fn new(settings: &TlsSettings) -> Self {
        Self {
            ca_certs: settings.ca_certs.clone(),
            certfile: settings.certfile.clone(),
            keyfile: settings.keyfile.clone(),
            verify: settings.cert_reqs.verifies(),
        }
    }

    /// The URL redis-rs dials for `node` (`host:port`): `rediss://`, and `#insecure` when the
    /// certificate is not to be checked (`ssl_cert_reqs: none`).
    pub(super) fn url(&self, node: &str) -> String {
        if self.verify {
            format!("rediss://{node}")
        } else {
            format!("rediss://{node}/#insecure")
        }
    }

    /// The CA bundle (instead of the platform's roots) and the client certificate with its
    /// key (the key from the certificate's file when `ssl_keyfile` is unset).
    pub(super) fn certificates(&self) -> Result<TlsCertificates, RedisError> {
        let client_tls = match &self.certfile {
            Some(cert) => Some(ClientTlsConfig {
                client_cert: read(cert)?,
                client_key: read(self.keyfile.as_deref().unwrap_or(cert))?,
            }),
            None => None,
        };
        let root_cert = self.ca_certs.as_deref().map(read).transpose()?;
        // redis-rs builds its rustls configuration with the process-wide crypto provider;
        // when the application installed none, the crate's own (ring) is.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        Ok(TlsCertificates {
            client_tls,
            root_cert,
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, RedisError> {
    std::fs::read(path).map_err(|e| {
        RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "cannot read a TLS file",
            format!("{}: {e}", path.display()),
        ))
    })
}
