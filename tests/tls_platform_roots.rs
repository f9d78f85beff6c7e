//! With no `ssl_ca_certs`, the trusted roots are the platform's (rustls-native-certs), which
//! honours `SSL_CERT_FILE`: a store holding the test CA lets the Keeper verify a real TLS
//! server, and an empty store is a configuration error, not a connection that cannot verify.
//!
//! Its own test binary: it sets `SSL_CERT_FILE` for the whole process.
#![cfg(all(feature = "tokio", feature = "smol", feature = "tls"))]

#[macro_use]
mod support;

use redis::AsyncCommands;
use redis_keeper::seams::Runtime;
use support::certs::Pki;
use support::harness::{bounded, config_for, keeper};
use support::redis_server::{free_port, RedisServer, ServerOptions};

#[test]
fn the_platform_store_is_used_when_no_bundle_is_given() {
    let pki = Pki::new();
    let tls_port = free_port();
    let server = RedisServer::start(
        ServerOptions::new()
            .arg("tls-port", &tls_port.to_string())
            .arg("tls-cert-file", pki.server.cert.to_str().unwrap())
            .arg("tls-key-file", pki.server.key.to_str().unwrap())
            .arg("tls-ca-cert-file", pki.ca.to_str().unwrap())
            .arg("tls-auth-clients", "no"),
    );
    let config = || {
        config_for(&server)
            .port(tls_port)
            .configure_all(|d| d.ssl(true))
    };

    // An empty store: no CA to trust is a config error naming the key to set.
    let empty = pki.dir().join("empty-store.pem");
    std::fs::write(&empty, "").unwrap();
    // This binary has one test, so nothing else reads the environment meanwhile. The store is
    // `SSL_CERT_FILE` alone: `SSL_CERT_DIR` would add its directories.
    std::env::remove_var("SSL_CERT_DIR");
    std::env::set_var("SSL_CERT_FILE", &empty);
    let err = config()
        .resolve(None, &std::collections::HashMap::<String, String>::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ssl_ca_certs") && err.contains("trust store"),
        "{err}"
    );

    // A store holding the test CA: the server verifies.
    std::env::set_var("SSL_CERT_FILE", &pki.ca);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let rt = Runtime::tokio();
        let keeper = keeper(&rt, config());
        assert_eq!(
            keeper
                .settings("main")
                .unwrap()
                .tls
                .as_ref()
                .unwrap()
                .ca_certs,
            None
        );
        let mut c = bounded(&rt, "get", keeper.get("main")).await.unwrap();
        let _: () = c.set("roots", "platform").await.unwrap();
        keeper.close().await;
    });
    assert_eq!(server.get_in_db(0, "roots").as_deref(), Some("platform"));
}
