//! Certificates a TLS test makes for itself (rcgen): a CA, a server certificate for
//! `127.0.0.1`/`localhost` signed by it, a client certificate, a foreign CA with its own server
//! certificate, and an expired server certificate. Written as PEM files into a fresh directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A certificate and key as files.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Every file a TLS test needs.
#[derive(Debug)]
pub struct Pki {
    dir: PathBuf,
    /// The CA the server's and the client's certificates are signed by.
    pub ca: PathBuf,
    /// The server: SANs `localhost` and `127.0.0.1`.
    pub server: Pair,
    /// A client certificate from the same CA (mutual TLS).
    pub client: Pair,
    /// Another CA, trusted by nobody.
    pub foreign_ca: PathBuf,
    /// A server certificate signed by the foreign CA.
    pub foreign_server: Pair,
    /// A server certificate from the right CA that expired in 2021.
    pub expired_server: Pair,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    dir: &Path,
    name: &str,
    sans: &[&str],
    issuer: &CertifiedIssuer<'static, KeyPair>,
    expired: bool,
) -> Pair {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    let pair = Pair {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&pair.cert, cert.pem()).unwrap();
    std::fs::write(&pair.key, key.serialize_pem()).unwrap();
    pair
}

impl Pki {
    /// Makes every certificate, in a directory of its own.
    pub fn new() -> Pki {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "redis-keeper-pki-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sans = ["localhost", "127.0.0.1"];
        let (ours, theirs) = (ca("test CA"), ca("foreign CA"));
        let write_ca = |name: &str, issuer: &CertifiedIssuer<'static, KeyPair>| {
            let path = dir.join(name);
            std::fs::write(&path, issuer.pem()).unwrap();
            path
        };
        Pki {
            ca: write_ca("ca.pem", &ours),
            server: leaf(&dir, "server", &sans, &ours, false),
            client: leaf(&dir, "client", &["client.test"], &ours, false),
            foreign_ca: write_ca("foreign-ca.pem", &theirs),
            foreign_server: leaf(&dir, "foreign-server", &sans, &theirs, false),
            expired_server: leaf(&dir, "expired-server", &sans, &ours, true),
            dir,
        }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
