//! A Redis Cluster database over TLS against real processes: three masters that serve TLS on
//! ports of their own (client certificates required, the cluster bus over TLS too; see
//! `support/cluster.rs`), certificates made by the test. Keys spread over every master through
//! TLS connections only, under tokio, smol and the blocking API; a CA the nodes' certificates
//! are not signed by fails typed, with nothing served.
//!
//! Needs `redis-server` (7.0+, built with TLS) and `redis-cli` on the PATH.
#![cfg(feature = "cluster-tls")]

#[macro_use]
mod support;

use std::time::Duration;

use redis::AsyncCommands;
use redis_keeper::seams::Runtime;
use redis_keeper::{Error, Keeper, KeeperConfig};
use support::certs::Pki;
use support::cluster::{write_and_read_back, ClusterSet};
use support::harness::{bounded, fast_policies, keeper, on_thread};

/// Keys written and read back per runtime.
const KEYS: usize = 300;

fn path(p: &std::path::Path) -> String {
    p.to_str().expect("utf-8 path").to_owned()
}

/// `main` on the TLS ports of `set`, trusting `ca`, with the test client certificate.
fn tls_config(set: &ClusterSet, pki: &Pki, ca: &std::path::Path) -> KeeperConfig {
    let (ca, cert, key) = (path(ca), path(&pki.client.cert), path(&pki.client.key));
    fast_policies(KeeperConfig::default()).configure("main", |d| {
        d.cluster_nodes(set.tls_seeds())
            .cluster_refresh_interval(Duration::from_secs(1))
            .ssl(true)
            .ssl_ca_certs(ca)
            .ssl_certfile(cert)
            .ssl_keyfile(key)
    })
}

#[test]
fn a_cluster_database_over_tls() {
    let pki = Pki::new();
    let set = ClusterSet::start_tls(&pki);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    tokio.block_on(async {
        let rt = Runtime::tokio();
        let keeper = keeper(&rt, tls_config(&set, &pki, &pki.ca));
        keys_spread_over_tls(&rt, &keeper, &set).await;
        the_blocking_twin_over_tls(&rt, &keeper).await;
        keeper.close().await;
        a_foreign_ca_is_refused(&rt, &set, &pki).await;
    });
    smol::block_on(async {
        let rt = Runtime::smol();
        let keeper = keeper(&rt, tls_config(&set, &pki, &pki.ca));
        keys_spread_over_tls(&rt, &keeper, &set).await;
        keeper.close().await;
    });
}

/// [`KEYS`] keys through one handle, read back; every master holds some, and each master's
/// clients include connections on its TLS port (the Keeper knows no other).
async fn keys_spread_over_tls(rt: &Runtime, keeper: &Keeper, set: &ClusterSet) {
    let prefix = format!("tls:{}", rt.name());
    write_and_read_back(rt, keeper, &prefix, KEYS).await;
    let mut stored = 0;
    for master in set.masters() {
        let mine = set.keys_with_prefix_on(master, &prefix).len();
        assert!(mine > 0, "master {master} holds none of the keys");
        stored += mine;
        let tls_port = set.tls_port_of(master);
        let ports = set.client_ports(master);
        assert!(
            ports.contains(&tls_port),
            "the Keeper's connection to {master} is on its TLS port {tls_port}: {ports:?}"
        );
    }
    assert_eq!(stored, KEYS, "every key on one master");
    let cluster = keeper.stats().databases["main"]
        .cluster
        .clone()
        .expect("cluster stats");
    assert_eq!(cluster.known_masters, 3, "{cluster:?}");
}

/// `get_blocking` over TLS.
async fn the_blocking_twin_over_tls(rt: &Runtime, keeper: &Keeper) {
    let keeper = keeper.clone();
    let values = on_thread(rt, move || {
        use redis::Commands;
        let mut conn = keeper.get_blocking("main").expect("blocking handle");
        (0..20)
            .map(|i| {
                let key = format!("tls:blocking:{i}");
                let () = conn.set(&key, i).expect("SET");
                conn.get::<_, i64>(&key).expect("GET")
            })
            .collect::<Vec<_>>()
    })
    .await;
    assert_eq!(values, (0..20).collect::<Vec<_>>());
}

/// Trusting a CA that did not sign the nodes' certificates: no command is served; each call
/// fails typed (the failed handshakes as connection failures, then the open breaker).
async fn a_foreign_ca_is_refused(rt: &Runtime, set: &ClusterSet, pki: &Pki) {
    let config = tls_config(set, pki, &pki.foreign_ca).configure("main", |d| {
        d.cluster_command_deadline(Duration::from_secs(1))
    });
    let keeper = keeper(rt, config);
    let mut conn = bounded(rt, "get", keeper.get("main"))
        .await
        .expect("handle");
    let mut messages = Vec::new();
    for _ in 0..3 {
        let err = bounded(rt, "GET", conn.get::<_, Option<String>>("tls:0"))
            .await
            .expect_err("an untrusted certificate serves nothing");
        match Error::from(err) {
            Error::Redis(e) if e.is_io_error() => messages.push(e.to_string()),
            Error::CircuitOpen { db, .. } if db == "main" => messages.push("open".into()),
            other => panic!("untyped or unexpected failure: {other:?}"),
        }
    }
    assert!(
        messages[0].contains("certificate"),
        "the first failure says why: {messages:?}"
    );
    keeper.close().await;
}
