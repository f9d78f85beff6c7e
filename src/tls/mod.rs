//! TLS (the `tls` feature): the rustls client configuration a database's TLS keys make, and
//! [`TlsTransport`], the decorator that speaks TLS over any [`Transport`](crate::seams::Transport).
//!
//! The crypto provider is rustls's `ring`, passed to every configuration explicitly: the crate
//! never installs or reads a process-wide default, so linking another provider elsewhere in the
//! application cannot make it panic (redis-rs#1812). With no `ssl_ca_certs`, the trusted roots
//! are the platform's (rustls-native-certs: the OS store, or `SSL_CERT_FILE`/`SSL_CERT_DIR`),
//! the same trust a managed service's documentation assumes for redis-cli and redis-py.

mod files;
mod transport;
mod verifier;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};

use crate::config::CertReqs;
use crate::seams::Endpoint;

pub use transport::TlsTransport;

/// The files a database's TLS keys name.
pub(crate) struct Files<'a> {
    pub(crate) ca_certs: Option<&'a Path>,
    pub(crate) certfile: Option<&'a Path>,
    pub(crate) keyfile: Option<&'a Path>,
}

/// A loaded client configuration and the server name to use, if fixed.
#[derive(Clone)]
pub(crate) struct ClientTls {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ClientTls {
    /// Equal when the server names are: the configuration is made from the [`TlsSettings`]
    /// keys beside this field, which the settings compare themselves.
    ///
    /// [`TlsSettings`]: crate::config::TlsSettings
    fn eq(&self, other: &Self) -> bool {
        self.server_name == other.server_name
    }
}

/// The crypto provider of every configuration the crate builds.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client configurations built while resolving one configuration, by what they were made
/// from: databases with the same TLS files and checks share one (read once, one session cache).
#[derive(Default)]
pub(crate) struct ConfigCache {
    built: Vec<(CacheKey, Arc<ClientConfig>)>,
}

/// What a client configuration is made from.
type CacheKey = (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>, CertReqs);

impl ConfigCache {
    /// The configuration for `files` and `cert_reqs`, built on first use.
    fn get(
        &mut self,
        files: Files<'_>,
        cert_reqs: CertReqs,
    ) -> Result<Arc<ClientConfig>, (&'static str, String)> {
        let key: CacheKey = (
            files.ca_certs.map(Path::to_path_buf),
            files.certfile.map(Path::to_path_buf),
            files.keyfile.map(Path::to_path_buf),
            cert_reqs,
        );
        if let Some((_, config)) = self.built.iter().find(|(k, _)| *k == key) {
            return Ok(config.clone());
        }
        let config = Arc::new(build(files, cert_reqs)?);
        self.built.push((key, config.clone()));
        Ok(config)
    }
}

impl ClientTls {
    /// The client configuration for a server at `endpoint` (from `cache`, or read, parsed and
    /// built from `files` there). An error names the key at fault and why.
    pub(crate) fn load(
        files: Files<'_>,
        cert_reqs: CertReqs,
        server_name: Option<&str>,
        endpoint: &Endpoint,
        cache: &mut ConfigCache,
    ) -> Result<Self, (&'static str, String)> {
        let server_name = match server_name {
            Some(name) => Some(
                ServerName::try_from(name.to_owned())
                    .map_err(|_| ("tls_server_name", "not a DNS name or IP address".to_owned()))?,
            ),
            None => {
                if let Endpoint::Tcp { host, .. } = endpoint {
                    ServerName::try_from(host.as_str()).map_err(|_| {
                        (
                            "host",
                            "not a valid TLS server name: set `tls_server_name`".to_owned(),
                        )
                    })?;
                }
                None
            }
        };
        Ok(Self {
            config: cache.get(files, cert_reqs)?,
            server_name,
        })
    }
}

/// Reads and parses `files` and builds a client configuration that checks the server as
/// `cert_reqs` says.
fn build(files: Files<'_>, cert_reqs: CertReqs) -> Result<ClientConfig, (&'static str, String)> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ("ssl", format!("no TLS protocol version available: {e}")))?;
    let builder = if cert_reqs.verifies() {
        builder.with_root_certificates(roots(files.ca_certs)?)
    } else {
        // A bundle is read even under `none`, so that a wrong path is found now, not when
        // someone switches verification on.
        if let Some(path) = files.ca_certs {
            roots(Some(path))?;
        }
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier::AcceptAnyServerCert::new(
                provider,
            )))
    };
    let config = match files.certfile {
        None => builder.with_no_client_auth(),
        Some(certfile) => {
            let chain = files::certificates(certfile).map_err(|why| ("ssl_certfile", why))?;
            let (key_name, key) = match files.keyfile {
                Some(keyfile) => ("ssl_keyfile", files::private_key(keyfile)),
                None => ("ssl_certfile", files::private_key(certfile)),
            };
            let key = key.map_err(|why| (key_name, why))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| (key_name, format!("does not fit `ssl_certfile`: {e}")))?
        }
    };
    Ok(config)
}

/// The trusted roots: the bundle at `ca_certs`, or the platform's.
fn roots(ca_certs: Option<&Path>) -> Result<RootCertStore, (&'static str, String)> {
    let mut roots = RootCertStore::empty();
    match ca_certs {
        Some(path) => {
            for cert in files::certificates(path).map_err(|why| ("ssl_ca_certs", why))? {
                roots
                    .add(cert)
                    .map_err(|e| ("ssl_ca_certs", format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                return Err((
                    "ssl_ca_certs",
                    format!(
                        "unset, and the platform's trust store has no usable CA certificate{}: \
                         set `ssl_ca_certs` to a PEM bundle",
                        if errors.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", errors.join("; "))
                        }
                    ),
                ));
            }
        }
    }
    Ok(roots)
}
