//! The loader's config handling: each bad file or name is an error naming its key.

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, KeyPair};

use super::{ClientTls, Files};
use crate::config::CertReqs;
use crate::seams::Endpoint;

/// A directory of PEM files for one test.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rk-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A self-signed certificate and its key, as two files.
    fn self_signed(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (
            self.write(&format!("{name}.pem"), &cert.pem()),
            self.write(&format!("{name}.key"), &key.serialize_pem()),
        )
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load(
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
    reqs: CertReqs,
    name: Option<&str>,
) -> Result<ClientTls, (&'static str, String)> {
    let files = Files {
        ca_certs: ca,
        certfile: cert,
        keyfile: key,
    };
    ClientTls::load(
        files,
        reqs,
        name,
        &Endpoint::tcp("127.0.0.1", 6380),
        &mut super::ConfigCache::default(),
    )
}

fn key_of<T>(r: Result<T, (&'static str, String)>) -> (&'static str, String) {
    match r {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    }
}

#[test]
fn a_ca_bundle_and_a_client_certificate_load() {
    let dir = Dir::new("ok");
    let (ca, _) = dir.self_signed("ca");
    let (cert, key) = dir.self_signed("client");
    let tls = load(Some(&ca), Some(&cert), Some(&key), CertReqs::Required, None).unwrap();
    assert_eq!(tls.server_name, None, "the host is used");
    assert!(tls.config.client_auth_cert_resolver.has_certs());
    // The key may sit in the certificate's file (redis-py's `ssl_certfile` alone).
    let both = dir.write(
        "both.pem",
        &(std::fs::read_to_string(&cert).unwrap() + &std::fs::read_to_string(&key).unwrap()),
    );
    assert!(load(Some(&ca), Some(&both), None, CertReqs::Required, None).is_ok());
}

#[test]
fn each_bad_file_names_its_key_and_path() {
    let dir = Dir::new("bad");
    let (ca, _) = dir.self_signed("ca");
    let (cert, _) = dir.self_signed("client");
    let (_, other_key) = dir.self_signed("other");
    let text = dir.write("text.pem", "not pem\n");
    let missing = dir.0.join("missing.pem");

    let (key, why) = key_of(load(Some(&missing), None, None, CertReqs::Required, None));
    assert_eq!(key, "ssl_ca_certs");
    assert!(
        why.contains("cannot read") && why.contains("missing.pem"),
        "{why}"
    );

    let (key, why) = key_of(load(Some(&text), None, None, CertReqs::Required, None));
    assert_eq!(key, "ssl_ca_certs");
    assert!(
        why.contains("no CERTIFICATE") && why.contains("text.pem"),
        "{why}"
    );

    let (key, why) = key_of(load(Some(&ca), Some(&cert), None, CertReqs::Required, None));
    assert_eq!(key, "ssl_certfile", "no key beside the certificate");
    assert!(why.contains("no PRIVATE KEY"), "{why}");

    let (key, why) = key_of(load(
        Some(&ca),
        Some(&cert),
        Some(&other_key),
        CertReqs::Required,
        None,
    ));
    assert_eq!(key, "ssl_keyfile", "a key of another certificate: {why}");

    let (key, why) = key_of(load(
        Some(&ca),
        Some(&missing),
        None,
        CertReqs::Required,
        None,
    ));
    assert_eq!(key, "ssl_certfile");
    assert!(why.contains("missing.pem"), "{why}");
}

#[test]
fn a_server_name_must_be_a_dns_name_or_an_address() {
    let dir = Dir::new("name");
    let (ca, _) = dir.self_signed("ca");
    let (key, _) = key_of(load(
        Some(&ca),
        None,
        None,
        CertReqs::Required,
        Some("not a name"),
    ));
    assert_eq!(key, "tls_server_name");
    let tls = load(
        Some(&ca),
        None,
        None,
        CertReqs::Required,
        Some("redis.example.com"),
    )
    .unwrap();
    assert_eq!(
        tls.server_name.map(|n| n.to_str().into_owned()).as_deref(),
        Some("redis.example.com")
    );
    let tls = load(Some(&ca), None, None, CertReqs::Required, Some("10.1.2.3")).unwrap();
    assert!(matches!(
        tls.server_name,
        Some(rustls::pki_types::ServerName::IpAddress(_))
    ));
}

#[test]
fn cert_reqs_none_needs_no_roots() {
    let tls = load(None, None, None, CertReqs::None, None).unwrap();
    assert!(tls.server_name.is_none());
    // A bundle named under `none` is still read: a wrong path is an error now.
    let (key, _) = key_of(load(
        Some(Path::new("/nonexistent.pem")),
        None,
        None,
        CertReqs::None,
        None,
    ));
    assert_eq!(key, "ssl_ca_certs");
}
