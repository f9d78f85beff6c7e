//! TLS against real `redis-server` processes (each test starts its own, loopback only, with a
//! TLS port beside the plaintext one the helper checks the server through), with certificates
//! the test makes itself: commands on named databases over TLS checked server-side, mutual TLS,
//! wrong CA / wrong name / expired as one typed error with no retry, `ssl_cert_reqs: none`, a
//! restart mid-traffic, a `rediss://` URL with an ACL user and an encoded password; under
//! tokio, smol and the blocking API.
//!
//! Needs `redis-server` built with TLS on the PATH (Debian's is; `scripts/test.sh` installs it).
#![cfg(all(feature = "tokio", feature = "smol", feature = "tls"))]

#[macro_use]
mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use redis::AsyncCommands;
use redis_keeper::classify::classify;
use redis_keeper::config::CertReqs;
use redis_keeper::policy::FailureKind;
use redis_keeper::seams::Runtime;
use redis_keeper::{Error, Keeper, KeeperConfig};
use support::certs::{Pair, Pki};
use support::harness::{
    assert_typed_get_error, bounded, config_for, fast_policies, keeper, sleep, wait_until,
};
use support::redis_server::{free_port, RedisServer, ServerOptions, APP_PASSWORD_ENCODED};

/// A server with a TLS port presenting `leaf`, trusting the test CA for client certificates
/// (required when `auth_clients`). Returns the server and its TLS port.
fn tls_server(pki: &Pki, leaf: &Pair, auth_clients: bool) -> (RedisServer, u16) {
    let tls_port = free_port();
    let server = RedisServer::start(
        ServerOptions::new()
            .arg("tls-port", &tls_port.to_string())
            .arg("tls-cert-file", leaf.cert.to_str().unwrap())
            .arg("tls-key-file", leaf.key.to_str().unwrap())
            .arg("tls-ca-cert-file", pki.ca.to_str().unwrap())
            .arg("tls-auth-clients", if auth_clients { "yes" } else { "no" }),
    );
    (server, tls_port)
}

/// The harness's fast policies, over TLS to `tls_port`, trusting `ca`.
fn tls_config(server: &RedisServer, tls_port: u16, ca: &std::path::Path) -> KeeperConfig {
    let ca = ca.to_str().unwrap().to_owned();
    config_for(server)
        .port(tls_port)
        .configure_all(|d| d.ssl(true).ssl_ca_certs(ca))
}

/// The local port of every client connection but the helper's own (`CLIENT LIST`'s `laddr`).
fn client_ports(server: &RedisServer) -> Vec<u16> {
    let list: String = server.query(redis::cmd("CLIENT").arg("LIST"));
    list.lines()
        .filter(|l| !l.contains("cmd=client|list"))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("laddr=")))
        .filter_map(|a| a.rsplit(':').next()?.parse().ok())
        .collect()
}

/// The handshakes `server` refused, once it has logged at least `expected` (bounded wait: the
/// server logs a refusal a moment after the client has its error).
fn refused_handshakes(server: &RedisServer, expected: usize) -> usize {
    wait_until(
        Duration::from_secs(5),
        "the server logs the refused handshakes",
        || {
            let n = server.failed_tls_accepts();
            (n >= expected).then_some(n)
        },
    )
}

// ---------------------------------------------------------------------------------------------

async fn commands_on_named_databases_over_tls(rt: Runtime) {
    let pki = Pki::new();
    let (server, tls_port) = tls_server(&pki, &pki.server, false);
    let keeper = keeper(&rt, tls_config(&server, tls_port, &pki.ca));
    assert!(keeper.settings("main").unwrap().tls.is_some());
    for (name, db) in [("main", 0u8), ("knowledge", 1), ("audit", 10)] {
        let mut c = bounded(&rt, "get", keeper.get(name)).await.unwrap();
        let _: () = c.set("via", format!("tls-{name}")).await.unwrap();
        let back: String = c.get("via").await.unwrap();
        assert_eq!(back, format!("tls-{name}"));
        assert_eq!(server.get_in_db(db, "via"), Some(back));
    }
    {
        let mut ex = bounded(&rt, "get_exclusive", keeper.get_exclusive("jobs"))
            .await
            .unwrap();
        let (a, b): (i64, i64) = redis::pipe()
            .atomic()
            .incr("n", 1)
            .incr("n", 2)
            .query_async(&mut ex)
            .await
            .unwrap();
        assert_eq!((a, b), (1, 3));
    }
    assert_eq!(server.get_in_db(12, "n").as_deref(), Some("3"));
    let ports = client_ports(&server);
    assert!(!ports.is_empty());
    assert!(
        ports.iter().all(|p| *p == tls_port),
        "every keeper connection is on the TLS port {tls_port}: {ports:?}"
    );
    keeper.close().await;
}

async fn mutual_tls(rt: Runtime) {
    let pki = Pki::new();
    let (server, tls_port) = tls_server(&pki, &pki.server, true);
    let (cert, key) = (
        pki.client.cert.to_str().unwrap().to_owned(),
        pki.client.key.to_str().unwrap().to_owned(),
    );
    let config = tls_config(&server, tls_port, &pki.ca)
        .configure_all(|d| d.ssl_certfile(cert).ssl_keyfile(key));
    let keeper = keeper(&rt, config);
    let mut c = bounded(&rt, "get", keeper.get("main")).await.unwrap();
    let _: () = c.set("mtls", "yes").await.unwrap();
    assert_eq!(server.get_in_db(0, "mtls").as_deref(), Some("yes"));
    drop(c);
    keeper.close().await;

    // Without a client certificate the server refuses: one typed error, not retried.
    let keeper = self::keeper(&rt, tls_config(&server, tls_port, &pki.ca));
    assert_eq!(server.failed_tls_accepts(), 0);
    let err = bounded(&rt, "get", keeper.get("main")).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    let s = &keeper.stats().databases["main"];
    assert_eq!((s.retries, s.breaker_trips), (0, 0), "{s:?}");
    assert_eq!(refused_handshakes(&server, 1), 1, "one handshake, refused");
    keeper.close().await;
}

async fn verification_failures_are_one_typed_error(rt: Runtime) {
    let pki = Pki::new();
    let cases: [(&str, &Pair, Option<&str>, &str); 3] = [
        ("foreign CA", &pki.foreign_server, None, "issuer"),
        ("wrong name", &pki.server, Some("db.example.com"), "name"),
        ("expired", &pki.expired_server, None, "expired"),
    ];
    for (what, leaf, server_name, says) in cases {
        let (server, tls_port) = tls_server(&pki, leaf, false);
        let mut config = tls_config(&server, tls_port, &pki.ca);
        if let Some(name) = server_name {
            config = config.configure_all(|d| d.tls_server_name(name));
        }
        let keeper = keeper(&rt, config);
        for round in 0..3 {
            let err = bounded(&rt, "get", keeper.get("main")).await.unwrap_err();
            assert!(
                matches!(err, Error::Tls { .. }),
                "{what}, round {round}: {err:?}"
            );
            assert!(
                err.to_string().to_lowercase().contains(says),
                "{what}: {err}"
            );
            assert!(!err.is_retryable(), "{what}");
        }
        let s = &keeper.stats().databases["main"];
        assert_eq!(
            (s.retries, s.breaker_trips, s.rejected_while_open),
            (0, 0, 0),
            "{what}: no retry, no breaker loop on a healthy server: {s:?}"
        );
        assert_eq!(
            refused_handshakes(&server, 3),
            3,
            "{what}: one handshake per call"
        );
        keeper.close().await;
    }
}

async fn cert_reqs_none_accepts_a_foreign_ca_and_optional_does_not(rt: Runtime) {
    let pki = Pki::new();
    let (server, tls_port) = tls_server(&pki, &pki.foreign_server, false);
    let none = config_for(&server)
        .port(tls_port)
        .configure_all(|d| d.ssl(true).ssl_cert_reqs(CertReqs::None));
    let keeper = keeper(&rt, none);
    let mut c = bounded(&rt, "get", keeper.get("main")).await.unwrap();
    let _: () = c.set("unchecked", "ok").await.unwrap();
    assert_eq!(server.get_in_db(0, "unchecked").as_deref(), Some("ok"));
    drop(c);
    keeper.close().await;

    let optional = tls_config(&server, tls_port, &pki.ca)
        .configure_all(|d| d.ssl_cert_reqs(CertReqs::Optional));
    let keeper = self::keeper(&rt, optional);
    let err = bounded(&rt, "get", keeper.get("main")).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    keeper.close().await;
}

/// One traffic task: INCRs its own counter until `stop`, counting acknowledged INCRs in `acked`;
/// every failure must be a typed one, and none a TLS error (a restart is not).
async fn incr_until_stopped(
    rt: Runtime,
    keeper: redis_keeper::Keeper,
    key: String,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) {
    // Bounded: a call takes at most CALL_LIMIT, and the test stops the task within seconds.
    for _ in 0..1_000_000 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match bounded(&rt, "get", keeper.get("main")).await {
            Ok(mut c) => match c.incr::<_, _, i64>(&key, 1).await {
                Ok(_) => {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    assert_ne!(
                        classify(&e),
                        FailureKind::Tls,
                        "a restart is not a TLS error: {e}"
                    );
                    support::harness::assert_typed_command_error(&e)
                }
            },
            Err(e) => {
                assert!(
                    !matches!(e, Error::Tls { .. }),
                    "a restart is not a TLS error: {e:?}"
                );
                assert_typed_get_error(&e);
                sleep(&rt, Duration::from_millis(20)).await;
            }
        }
    }
}

async fn restart_mid_traffic_recovers(rt: Runtime) {
    let pki = Pki::new();
    let (mut server, tls_port) = tls_server(&pki, &pki.server, false);
    let keeper = keeper(&rt, tls_config(&server, tls_port, &pki.ca));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let (done_tx, mut done_rx) = futures::channel::mpsc::unbounded::<()>();
    for task in 0..4 {
        let (rt2, keeper, stop, acked, done) = (
            rt.clone(),
            keeper.clone(),
            stop.clone(),
            acked.clone(),
            done_tx.clone(),
        );
        rt.spawner().spawn(Box::pin(async move {
            incr_until_stopped(rt2, keeper, format!("n{task}"), stop, acked).await;
            let _ = done.unbounded_send(());
        }));
    }
    let wait_for = |more: u64, what: &'static str| {
        let (rt, acked) = (rt.clone(), acked.clone());
        async move {
            let target = acked.load(Ordering::Relaxed) + more;
            for _ in 0..500 {
                if acked.load(Ordering::Relaxed) >= target {
                    return;
                }
                sleep(&rt, Duration::from_millis(20)).await;
            }
            panic!("{what}: fewer than {more} INCRs acknowledged in 10 s");
        }
    };
    wait_for(50, "before the restart").await;
    let opened_before = keeper.stats().databases["main"].connections_created;
    server.restart();
    wait_for(50, "after the restart").await;
    stop.store(true, Ordering::Relaxed);
    for _ in 0..4 {
        bounded(&rt, "a traffic task to stop", done_rx.next())
            .await
            .expect("every task reports");
    }
    assert!(
        keeper.stats().databases["main"].connections_created > opened_before,
        "new TLS connections were opened"
    );
    let after: u64 = (0..4)
        .map(|t| {
            server
                .get_in_db(0, &format!("n{t}"))
                .map_or(0, |v| v.parse().unwrap())
        })
        .sum();
    assert!(after > 0, "INCRs reached the restarted server over TLS");
    keeper.close().await;
}

async fn rediss_url_with_an_acl_user(rt: Runtime) {
    let pki = Pki::new();
    let (server, tls_port) = tls_server(&pki, &pki.server, false);
    server.add_app_user();
    let env = |user_password: &str| -> HashMap<String, String> {
        HashMap::from([
            (
                "REDIS_URL".to_owned(),
                format!("rediss://app:{user_password}@127.0.0.1:{tls_port}"),
            ),
            (
                "REDIS_KEEPER_SSL_CA_CERTS".to_owned(),
                pki.ca.to_str().unwrap().to_owned(),
            ),
        ])
    };
    let build = |env| {
        Keeper::builder(fast_policies(KeeperConfig::default()))
            .runtime(rt.clone())
            .env(env)
            .seed(7)
            .build()
            .expect("valid config")
    };
    let keeper = build(env(APP_PASSWORD_ENCODED));
    assert!(!format!("{keeper:?}").contains("p@ss"));
    let mut c = bounded(&rt, "get", keeper.get("main")).await.unwrap();
    let who: String = redis::cmd("ACL")
        .arg("WHOAMI")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(who, "app");
    let _: () = c.set("app:tls", "ok").await.unwrap();
    let err = c.set::<_, _, ()>("other", "no").await.unwrap_err();
    assert!(err.to_string().to_uppercase().contains("NOPERM"), "{err}");
    let v: String = c.get("app:tls").await.unwrap();
    assert_eq!(v, "ok", "the connection stays after NOPERM");
    drop(c);
    assert_eq!(
        client_ports(&server),
        vec![tls_port; client_ports(&server).len()]
    );
    keeper.close().await;

    let keeper = build(env("wrong-password"));
    let err = bounded(&rt, "get", keeper.get("main")).await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(
        !format!("{err:?}").contains("wrong-password")
            && !err.to_string().contains("wrong-password")
    );
    assert_eq!(keeper.stats().databases["main"].retries, 0);
    keeper.close().await;
}

on_both_runtimes! {
    commands_on_named_databases_over_tls,
    mutual_tls,
    verification_failures_are_one_typed_error,
    cert_reqs_none_accepts_a_foreign_ca_and_optional_does_not,
    restart_mid_traffic_recovers,
    rediss_url_with_an_acl_user,
}

/// The blocking API over TLS: the same named databases, and the same typed refusal.
#[test]
fn blocking_api_over_tls() {
    let pki = Pki::new();
    let (server, tls_port) = tls_server(&pki, &pki.server, false);
    let keeper = Keeper::builder(tls_config(&server, tls_port, &pki.ca))
        .env(HashMap::<String, String>::new())
        .seed(7)
        .build()
        .expect("valid config");
    for (name, db) in [("main", 0u8), ("prompts", 2)] {
        let mut c = keeper.get_blocking(name).unwrap();
        let _: () = redis::Commands::set(&mut c, "blocking", name).unwrap();
        assert_eq!(server.get_in_db(db, "blocking").as_deref(), Some(name));
    }
    let mut shared = keeper.get_blocking_shared("knowledge").unwrap();
    let n: i64 = redis::Commands::incr(&mut shared, "n", 5).unwrap();
    assert_eq!(n, 5);
    drop(shared);
    keeper.close_blocking();

    let wrong = tls_config(&server, tls_port, &pki.ca)
        .configure_all(|d| d.tls_server_name("db.example.com"));
    let keeper = Keeper::builder(wrong)
        .env(HashMap::<String, String>::new())
        .build()
        .expect("valid config");
    let err = keeper.get_blocking("main").unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
}
