//! The TLS keys at resolution: `rediss://` and `ssl`, per database, the checks between keys,
//! and file errors that name the key, the file and where the key was set.

use super::*;

#[test]
fn rediss_turns_tls_on_and_each_database_may_differ() {
    let config = yaml(
        "
url: rediss://cache.internal:6380
ssl_cert_reqs: none
redis_databases:
  knowledge: { url: 'redis://cache.internal:6379/1' }
",
    );
    let r = resolve(&config, &no_env());
    let main = r.database("main").unwrap();
    let tls = main.tls.as_ref().expect("rediss:// means TLS");
    assert_eq!(tls.cert_reqs, CertReqs::None);
    assert_eq!(
        (tls.ca_certs.as_ref(), tls.server_name.as_ref()),
        (None, None)
    );
    assert!(
        r.database("knowledge").unwrap().tls.is_none(),
        "a redis:// URL per database turns it off there"
    );
}

#[test]
fn tls_keys_beside_plaintext_or_a_unix_socket_are_errors() {
    let err = KeeperConfig::default()
        .configure("main", |d| d.ssl_keyfile("/etc/redis/client.key"))
        .resolve(None, &no_env())
        .unwrap_err()
        .to_string();
    assert!(err.contains("ssl_keyfile") && err.contains("ssl"), "{err}");

    let err = KeeperConfig::default()
        .configure_all(|d| {
            d.ssl(true)
                .ssl_cert_reqs(CertReqs::None)
                .unix_socket_path("/run/redis.sock")
        })
        .resolve(None, &no_env())
        .unwrap_err()
        .to_string();
    assert!(err.contains("Unix socket"), "{err}");

    let err = KeeperConfig::default()
        .configure_all(|d| {
            d.ssl(true)
                .ssl_cert_reqs(CertReqs::None)
                .ssl_keyfile("/etc/redis/client.key")
        })
        .resolve(None, &no_env())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ssl_keyfile") && err.contains("ssl_certfile"),
        "{err}"
    );
}

#[test]
fn a_missing_file_names_the_key_the_file_and_the_variable() {
    let err = KeeperConfig::default()
        .resolve(
            None,
            &env(&[
                ("REDIS_URL", "rediss://:hunter2@cache.internal:6380"),
                ("REDIS_KEEPER_SSL_CA_CERTS", "/nonexistent/ca.pem"),
            ]),
        )
        .unwrap_err();
    let shown = err.to_string();
    for want in [
        "ssl_ca_certs",
        "/nonexistent/ca.pem",
        "REDIS_KEEPER_SSL_CA_CERTS",
    ] {
        assert!(shown.contains(want), "{want}: {shown}");
    }
    assert!(!shown.contains("hunter2") && !format!("{err:?}").contains("hunter2"));
}

#[test]
fn cert_reqs_reads_from_yaml_and_env_and_rejects_other_words() {
    let r = resolve(
        &KeeperConfig::default(),
        &env(&[
            ("REDIS_KEEPER_SSL", "true"),
            ("REDIS_KEEPER_SSL_CERT_REQS", "NONE"),
        ]),
    );
    assert_eq!(
        r.database("main").unwrap().tls.as_ref().unwrap().cert_reqs,
        CertReqs::None
    );
    let err = yaml_err("ssl_cert_reqs: sometimes\n");
    assert!(
        err.contains("ssl_cert_reqs") && err.contains("sometimes"),
        "{err}"
    );
}

#[test]
fn databases_with_the_same_tls_files_share_one_client_configuration() {
    let path = ca_file("rk-shared-ca");
    let text = format!(
        "
url: rediss://cache.internal:6380
ssl_cert_reqs: none
redis_databases:
  knowledge: {{ ssl_ca_certs: '{}' }}
",
        path.display()
    );
    let r = resolve(&yaml(&text), &no_env());
    let _ = std::fs::remove_file(&path);
    let config = |name: &str| {
        r.database(name)
            .unwrap()
            .tls
            .as_ref()
            .unwrap()
            .client
            .config
            .clone()
    };
    assert!(
        std::sync::Arc::ptr_eq(&config("main"), &config("audit")),
        "built once"
    );
    assert!(
        !std::sync::Arc::ptr_eq(&config("main"), &config("knowledge")),
        "other files, another configuration"
    );
}

#[test]
fn sentinels_speak_tls_when_the_database_does_unless_told_otherwise() {
    let config = yaml(
        "
ssl: true
ssl_cert_reqs: none
sentinel: { master_name: m, nodes: ['10.0.0.5:26379'] }
redis_databases:
  knowledge: { sentinel_ssl: false }
",
    );
    let r = resolve(&config, &no_env());
    let main = r.database("main").unwrap();
    assert!(main.tls.is_some(), "the data nodes over TLS");
    let sentinel = main.sentinel.as_ref().unwrap();
    assert_eq!(
        sentinel.tls.as_ref().map(|t| t.cert_reqs),
        Some(CertReqs::None),
        "the sentinels too, with the same keys"
    );
    let knowledge = r.database("knowledge").unwrap();
    assert!(knowledge.tls.is_some());
    assert!(
        knowledge.sentinel.as_ref().unwrap().tls.is_none(),
        "sentinel_ssl: false"
    );
}

#[test]
fn the_sentinels_alone_may_speak_tls_with_the_ssl_files() {
    let path = ca_file("rk-sentinel-ca");
    let text = format!(
        "
ssl_ca_certs: '{}'
sentinel: {{ master_name: m, nodes: ['10.0.0.5:26379'], ssl: true }}
",
        path.display()
    );
    let r = resolve(&yaml(&text), &no_env());
    let main = r.database("main").unwrap();
    assert!(main.tls.is_none(), "the data nodes in plaintext");
    let tls = main
        .sentinel
        .as_ref()
        .unwrap()
        .tls
        .as_ref()
        .expect("the sentinels over TLS");
    assert_eq!(tls.ca_certs.as_deref(), Some(path.as_path()));
    // Without a Sentinel to use them, the same files beside `ssl: false` are still an error.
    let direct = format!("ssl_ca_certs: '{}'\n", path.display());
    let err = yaml(&direct)
        .resolve(None, &no_env())
        .unwrap_err()
        .to_string();
    let _ = std::fs::remove_file(&path);
    assert!(
        err.contains("ssl_ca_certs") && err.contains("`ssl` is off"),
        "{err}"
    );
}

/// A fresh self-signed CA certificate in a temporary PEM file named after `tag`.
fn ca_file(tag: &str) -> std::path::PathBuf {
    let key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertificateParams::new(vec!["ca.test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let path = std::env::temp_dir().join(format!("{tag}-{}.pem", std::process::id()));
    std::fs::write(&path, ca.pem()).unwrap();
    path
}
