//! Sentinels over TLS against real processes: three `redis-server --sentinel` serving a
//! `tls-port` with a certificate the test makes, the master and its replica in plaintext. The
//! Keeper resolves the master through the sentinels' TLS ports (`sentinel.ssl` with `ssl` off),
//! its watcher holds a subscription on every sentinel over TLS, and a sentinel certificate from
//! a foreign CA is one typed `Error::Tls` per call, not retried.
//!
//! Needs `redis-server` built with TLS on the PATH (Debian's is; `scripts/test.sh` installs it).
#![cfg(all(feature = "tokio", feature = "smol", feature = "tls"))]

#[macro_use]
mod support;

use std::time::Duration;

use redis::AsyncCommands;
use redis_keeper::seams::Runtime;
use redis_keeper::{Error, KeeperConfig};
use support::certs::{Pair, Pki};
use support::harness::{bounded, eventually, fast_policies, keeper};
use support::sentinel::{SentinelSet, SentinelTls};

/// `main` through the sentinels' TLS ports, trusting `ca`; the data nodes in plaintext.
fn config(set: &SentinelSet, ca: &std::path::Path) -> KeeperConfig {
    let (nodes, ca) = (set.sentinel_tls_nodes(), ca.to_str().unwrap().to_owned());
    fast_policies(KeeperConfig::default()).configure("main", move |d| {
        d.sentinel_master_name("mymaster")
            .sentinel_nodes(nodes)
            .sentinel_ssl(true)
            .ssl_ca_certs(ca)
    })
}

/// A sentinel set whose sentinels serve TLS with `pair`, trusting the test CA (started off the
/// runtime's threads: it waits in real time).
fn tls_sentinels(pair: &Pair, pki: &Pki) -> SentinelSet {
    tokio::task::block_in_place(|| {
        SentinelSet::start_with_tls(&SentinelTls {
            cert: pair.cert.clone(),
            key: pair.key.clone(),
            ca: pki.ca.clone(),
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_over_tls_resolve_and_are_watched_over_tls() {
    let pki = Pki::new();
    let set = tls_sentinels(&pki.server, &pki);
    let rt = Runtime::tokio();
    let keeper = keeper(&rt, config(&set, &pki.ca));
    let n: i64 = bounded(&rt, "INCR through TLS sentinels", async {
        let mut main = keeper.main().await.unwrap();
        main.incr("tls:counter", 1).await.unwrap()
    })
    .await;
    assert_eq!(n, 1);
    let master = set.master_port();
    assert_eq!(
        set.counter(master, "tls:counter"),
        1,
        "on the plaintext master"
    );
    let stats = keeper.stats();
    let s = stats.databases["main"].sentinel.clone().unwrap();
    assert_eq!(s.master, Some(format!("127.0.0.1:{master}")));
    // Every sentinel gets the watcher's subscription, on its TLS port.
    for i in 0..3 {
        eventually(&rt, Duration::from_secs(10), "a TLS subscription", || {
            let subscribed = set.tls_clients(i).iter().any(|c| c.contains(" psub=1 "));
            async move { subscribed.then_some(()) }
        })
        .await;
    }
    keeper.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_certificate_from_a_foreign_ca_is_one_typed_error_per_call() {
    let pki = Pki::new();
    let set = tls_sentinels(&pki.foreign_server, &pki);
    let rt = Runtime::tokio();
    let keeper = keeper(&rt, config(&set, &pki.ca));
    for _ in 0..3 {
        let err = bounded(&rt, "a refused handshake", keeper.main())
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(err, Error::Tls { .. }), "{err}");
    }
    let stats = keeper.stats();
    let main = &stats.databases["main"];
    assert_eq!(main.retries, 0, "a failed handshake is not retried");
    assert_eq!(main.breaker_trips, 0, "nor a breaker failure");
    assert_eq!(set.counter(set.master_port(), "tls:counter"), 0);
    keeper.close().await;
}
