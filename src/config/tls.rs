//! The TLS settings of a database ([`TlsSettings`], [`CertReqs`]): which files, which checks,
//! which name; read and checked at resolution, so a missing or malformed file is a config error.

use std::fmt;
use std::path::PathBuf;

use super::ConfigError;
use crate::seams::Endpoint;

/// How the server's certificate is checked (redis-py's `ssl_cert_reqs`).
///
/// ```
/// use redis_keeper::config::CertReqs;
/// assert_eq!("Required".parse::<CertReqs>(), Ok(CertReqs::Required));
/// assert_eq!("none".parse::<CertReqs>(), Ok(CertReqs::None));
/// assert!("sometimes".parse::<CertReqs>().is_err());
/// assert_eq!(CertReqs::default(), CertReqs::Required);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CertReqs {
    /// Verify the chain up to a trusted CA, the validity dates and the server's name.
    #[default]
    Required,
    /// The same as `Required` on a client, as in Python's `ssl` module (a server always
    /// presents a certificate).
    Optional,
    /// Accept any certificate, unchecked (the handshake's signatures still are): for test
    /// setups only, it gives no protection against an attacker in the middle.
    None,
}

impl CertReqs {
    /// Whether the server's certificate is verified.
    pub fn verifies(self) -> bool {
        self != Self::None
    }
}

impl std::str::FromStr for CertReqs {
    type Err = String;

    /// `required`, `optional` or `none`, case-insensitive (YAML `ssl_cert_reqs`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "required" => Ok(Self::Required),
            "optional" => Ok(Self::Optional),
            "none" => Ok(Self::None),
            _ => Err("expected `required`, `optional` or `none`".to_owned()),
        }
    }
}

impl fmt::Display for CertReqs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Required => "required",
            Self::Optional => "optional",
            Self::None => "none",
        })
    }
}

/// A database's TLS: the files named by its keys and how the server is checked. Present in
/// [`DatabaseSettings::tls`](super::DatabaseSettings::tls) when `ssl` is on; its files were
/// read and parsed when it was resolved.
///
/// ```
/// # #[cfg(feature = "tls")] {
/// use redis_keeper::config::CertReqs;
/// use redis_keeper::KeeperConfig;
/// // `none` only to keep this example free of certificate files: a test setup.
/// let config = KeeperConfig::default()
///     .url("rediss://redis.example.com:6380")
///     .configure_all(|d| d.ssl_cert_reqs(CertReqs::None));
/// let resolved = config.resolve(None, &std::collections::HashMap::new()).unwrap();
/// let tls = resolved.database("main").unwrap().tls.as_ref().unwrap();
/// assert_eq!(tls.cert_reqs, CertReqs::None);
/// assert_eq!(tls.ca_certs, None);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TlsSettings {
    /// PEM bundle of trusted CAs. YAML `ssl_ca_certs`. Default: none (the platform's store).
    pub ca_certs: Option<PathBuf>,
    /// PEM client certificate chain, for mutual TLS. YAML `ssl_certfile`. Default: none.
    pub certfile: Option<PathBuf>,
    /// PEM private key of `certfile`. YAML `ssl_keyfile`. Default: none (read from `certfile`).
    pub keyfile: Option<PathBuf>,
    /// How the server's certificate is checked. YAML `ssl_cert_reqs`. Default: `required`.
    pub cert_reqs: CertReqs,
    /// The name sent (SNI) and verified. YAML `tls_server_name`. Default: the host.
    pub server_name: Option<String>,
    /// The client configuration those files make.
    #[cfg(feature = "tls")]
    pub(crate) client: crate::tls::ClientTls,
}

/// The client configurations built while one configuration resolves, shared by the databases
/// whose TLS files and checks are the same.
#[cfg(feature = "tls")]
pub(crate) type TlsCache = crate::tls::ConfigCache;

/// Without the `tls` feature there is nothing to share.
#[cfg(not(feature = "tls"))]
#[derive(Default)]
pub(crate) struct TlsCache {}

/// The TLS keys of one database, as resolved.
pub(crate) struct TlsKeys {
    pub(crate) ssl: bool,
    pub(crate) ca_certs: Option<String>,
    pub(crate) certfile: Option<String>,
    pub(crate) keyfile: Option<String>,
    pub(crate) cert_reqs: CertReqs,
    pub(crate) server_name: Option<String>,
}

impl TlsKeys {
    /// The settings these keys make for a database at `endpoint`, its files read and parsed;
    /// `None` with `ssl` off. `bad(key, reason)` makes the error naming a key.
    pub(crate) fn settings(
        self,
        endpoint: &Endpoint,
        bad: &dyn Fn(&str, &str) -> ConfigError,
        cache: &mut TlsCache,
    ) -> Result<Option<TlsSettings>, ConfigError> {
        let path = |p: Option<String>| p.filter(|p| !p.is_empty()).map(PathBuf::from);
        let (ca_certs, certfile, keyfile) =
            (path(self.ca_certs), path(self.certfile), path(self.keyfile));
        let server_name = self.server_name.filter(|n| !n.is_empty());
        if !self.ssl {
            let set = [
                ("ssl_ca_certs", ca_certs.is_some()),
                ("ssl_certfile", certfile.is_some()),
                ("ssl_keyfile", keyfile.is_some()),
                ("tls_server_name", server_name.is_some()),
            ];
            return match set.iter().find(|(_, set)| *set) {
                Some((key, _)) => Err(bad(key, "set while `ssl` is off: set `ssl: true` (or use a rediss:// URL), or remove it")),
                None => Ok(None),
            };
        }
        if let Endpoint::Unix { .. } = endpoint {
            return Err(bad(
                "ssl",
                "TLS over a Unix socket: Redis serves TLS on its TCP `tls-port` only (unset `unix_socket_path`, or `ssl`)",
            ));
        }
        if keyfile.is_some() && certfile.is_none() {
            return Err(bad("ssl_keyfile", "set without `ssl_certfile`"));
        }
        #[cfg(feature = "tls")]
        let client = crate::tls::ClientTls::load(
            crate::tls::Files {
                ca_certs: ca_certs.as_deref(),
                certfile: certfile.as_deref(),
                keyfile: keyfile.as_deref(),
            },
            self.cert_reqs,
            server_name.as_deref(),
            endpoint,
            cache,
        )
        .map_err(|(key, why)| bad(key, &why))?;
        #[cfg(not(feature = "tls"))]
        return {
            let _checked_with_the_feature = (self.cert_reqs, cache);
            Err(bad(
                "ssl",
                "TLS needs redis-keeper's `tls` feature (on by default; this build has it off)",
            ))
        };
        #[cfg(feature = "tls")]
        Ok(Some(TlsSettings {
            ca_certs,
            certfile,
            keyfile,
            cert_reqs: self.cert_reqs,
            server_name,
            client,
        }))
    }
}
