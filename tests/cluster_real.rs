//! A Redis Cluster database against real processes (six nodes, three masters with one replica
//! each; see `support/cluster.rs`): keys spread over every master through one handle, what is
//! routed and what is refused, `CROSSSLOT` as a server error, the blocking twin, smol, and a
//! slot migrated mid-traffic (`redis-cli --cluster reshard`) without an error reaching the user.
//!
//! One cluster for the whole file, its scenarios run in turn by one test (a failover test
//! would disturb the others: it has a file and a cluster of its own, `cluster_failover_real.rs`).
//!
//! Needs `redis-server` (7.0+, for `cluster-port`) and `redis-cli` on the PATH.
#![cfg(all(feature = "tokio", feature = "smol", feature = "cluster"))]

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_keeper::seams::Runtime;
use redis_keeper::{ClusterStats, Error, Keeper, KeeperConfig};
use support::cluster::{write_and_read_back, ClusterSet};
use support::harness::{bounded, fast_policies, keeper, on_thread};

/// Keys written and read back through one handle.
const KEYS: usize = 1000;
/// Workers sending traffic while a slot moves.
const WORKERS: usize = 4;

/// `main` on the cluster `set`, with the test suites' fast policies and a 1 s slot map refresh.
fn cluster_config(set: &ClusterSet) -> KeeperConfig {
    fast_policies(KeeperConfig::default()).configure("main", |d| {
        d.cluster_nodes(set.seeds())
            .cluster_refresh_interval(Duration::from_secs(1))
    })
}

fn cluster_stats(keeper: &Keeper) -> ClusterStats {
    keeper.stats().databases["main"]
        .cluster
        .clone()
        .expect("main is a cluster database")
}

#[test]
fn a_cluster_database_routes_refuses_and_rides_out_a_resharding() {
    let set = ClusterSet::start();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    tokio.block_on(async {
        let rt = Runtime::tokio();
        let keeper = keeper(&rt, cluster_config(&set));
        keys_spread_over_every_master(&rt, &keeper, &set).await;
        cross_slot_is_a_server_error(&rt, &keeper).await;
        one_node_commands_are_refused(&rt, &keeper).await;
        the_blocking_twin_routes_too(&rt, &keeper).await;
        a_slot_moves_mid_traffic(&rt, &keeper, &set).await;
        a_reloading_master_is_ridden_out(&rt, &keeper, &set).await;
        keeper.close().await;
        no_node_answers_and_the_breaker_opens(&rt).await;
    });
    smol::block_on(async {
        let rt = Runtime::smol();
        let keeper = keeper(&rt, cluster_config(&set));
        keys_spread_over_every_master(&rt, &keeper, &set).await;
        cross_slot_is_a_server_error(&rt, &keeper).await;
        keeper.close().await;
    });
}

/// 1 000 keys through one handle: read back through it, each stored on exactly one master,
/// every master holding some, a sample read back by `redis-cli -c`.
async fn keys_spread_over_every_master(rt: &Runtime, keeper: &Keeper, set: &ClusterSet) {
    let prefix = format!("spread:{}", rt.name());
    write_and_read_back(rt, keeper, &prefix, KEYS).await;
    let mut seen = BTreeSet::new();
    for master in set.masters() {
        let mine = set.keys_with_prefix_on(master, &prefix);
        assert!(!mine.is_empty(), "master {master} holds none of the keys");
        for key in mine {
            assert_eq!(
                set.owner_of(&key),
                master,
                "{key} is on a master that does not own it"
            );
            assert!(seen.insert(key.clone()), "{key} is on two masters");
        }
    }
    assert_eq!(seen.len(), KEYS, "every key is on a master");
    for i in (0..KEYS).step_by(100) {
        assert_eq!(set.cli_get(&format!("{prefix}:{i}")), i.to_string());
    }
    let stats = cluster_stats(keeper);
    assert_eq!(stats.known_masters, 3, "{stats:?}");
    assert_eq!(stats.nodes, 6, "{stats:?}");
    assert!(stats.connections >= 1, "{stats:?}");
    let text = keeper.metrics_text();
    assert!(
        text.lines()
            .any(|l| l == r#"redis_keeper_cluster_known_masters{db="main"} 3"#),
        "the cluster's series: {text}"
    );
    assert!(text.contains(r#"redis_keeper_cluster_redirections_total{db="main",kind="moved"}"#));
}

/// `MGET` over two slots is split by redis-rs (one `MGET` per node); `SUNION` over two slots
/// is answered `CROSSSLOT`: a typed server error, the breaker not fed, the handle still good.
async fn cross_slot_is_a_server_error(rt: &Runtime, keeper: &Keeper) {
    let mut conn = bounded(rt, "get", keeper.get("main"))
        .await
        .expect("handle");
    let (a, b) = ("{a}:cross", "{b}:cross");
    let () = bounded(rt, "SET", conn.set(a, "1")).await.expect("SET a");
    let () = bounded(rt, "SET", conn.set(b, "2")).await.expect("SET b");
    let both: Vec<String> = bounded(rt, "MGET", conn.mget(&[a, b]))
        .await
        .expect("MGET is split by slot");
    assert_eq!(both, ["1", "2"]);
    let failed_before = keeper.stats().databases["main"].failed_operations;
    let err = bounded(rt, "SUNION", conn.sunion::<_, Vec<String>>(&[a, b]))
        .await
        .expect_err("keys in two slots");
    assert_eq!(
        err.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::CrossSlot),
        "{err:?}"
    );
    let stats = &keeper.stats().databases["main"];
    assert_eq!(stats.breaker.failure_count, 0, "{stats:?}");
    assert!(
        stats.failed_operations > failed_before,
        "counted as a failed operation"
    );
    let v: String = bounded(rt, "GET", conn.get(a)).await.expect("next command");
    assert_eq!(v, "1");
    // A pipeline on one slot goes to its node (an atomic one as MULTI/EXEC); on two slots it
    // is refused by redis-rs before sending, with the same typed error.
    let (x, n): (String, i64) = bounded(
        rt,
        "pipeline",
        keeper.pipeline("main", |p| {
            p.atomic().get(a).incr("{a}:n", 1);
        }),
    )
    .await
    .expect("one-slot atomic pipeline");
    assert_eq!(x, "1");
    assert!(n >= 1);
    let err = bounded(
        rt,
        "pipeline",
        keeper.pipeline::<(String, String), _>("main", |p| {
            p.get(a).get(b);
        }),
    )
    .await
    .expect_err("two slots in one pipeline");
    assert!(
        matches!(&err, Error::Redis(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::CrossSlot)),
        "{err:?}"
    );
}

/// What needs one node's connection to itself is refused with `NotOnCluster`, at once, and
/// the handle goes on working.
async fn one_node_commands_are_refused(rt: &Runtime, keeper: &Keeper) {
    let not_on_cluster = |e: &Error| matches!(e, Error::NotOnCluster { db, .. } if db == "main");
    let err = bounded(rt, "get_exclusive", keeper.get_exclusive("main"))
        .await
        .expect_err("no exclusive connections on a cluster");
    assert!(not_on_cluster(&err), "{err:?}");
    let err = bounded(rt, "subscriber", keeper.subscriber("main"))
        .await
        .expect_err("no subscribers on a cluster yet");
    assert!(not_on_cluster(&err), "{err:?}");
    let mut conn = bounded(rt, "get", keeper.get("main"))
        .await
        .expect("handle");
    for cmd in [
        redis::cmd("BLPOP").arg("q").arg(1).clone(),
        redis::cmd("WATCH").arg("k").clone(),
        redis::cmd("SELECT").arg(1).clone(),
        redis::cmd("MULTI").clone(),
    ] {
        let err = bounded(rt, "refused", cmd.query_async::<redis::Value>(&mut conn))
            .await
            .expect_err("refused");
        let err = Error::from(err);
        assert!(not_on_cluster(&err), "{err:?}");
        assert!(err.to_string().contains("Redis Cluster"), "{err}");
    }
    let () = bounded(rt, "SET", conn.set("after:refusals", 1))
        .await
        .expect("the handle still works");
}

/// `get_blocking` on a cluster database: a routed handle for synchronous code.
async fn the_blocking_twin_routes_too(rt: &Runtime, keeper: &Keeper) {
    let keeper = keeper.clone();
    let values = on_thread(rt, move || {
        use redis::Commands;
        let mut conn = keeper.get_blocking("main").expect("blocking handle");
        (0..50)
            .map(|i| {
                let key = format!("blocking:{i}");
                let () = conn.set(&key, i).expect("SET");
                conn.get::<_, i64>(&key).expect("GET")
            })
            .collect::<Vec<_>>()
    })
    .await;
    assert_eq!(values, (0..50).collect::<Vec<_>>());
}

/// A master loads its dataset again (`DEBUG RELOAD` of a dataset made slow to load: a real
/// `LOADING`, as after a restart) while `INCR`s go to a key it owns: each waits the loading
/// out (refusals counted, no breaker failure) and succeeds; none fails, the counter is exact.
async fn a_reloading_master_is_ridden_out(rt: &Runtime, keeper: &Keeper, set: &ClusterSet) {
    // The last master: the resharding before moved slots between the first two.
    let master = *set.masters().last().expect("three masters");
    let candidates: Vec<String> = (0..200).map(|i| format!("loading:{i}")).collect();
    let key = candidates
        .iter()
        .find(|k| set.owner_of(k) == master)
        .expect("a key on the master")
        .clone();
    let node = set.node(master);
    // About 1.5 s of loading: shorter than the node timeout (the node answers its peers while
    // it loads, so no failover), longer than a few of the policy's waits.
    node.prepare_slow_reload(1500, 1024, Duration::from_millis(1));
    let mut conn = bounded(rt, "get", keeper.get("main"))
        .await
        .expect("handle");
    let before = keeper.stats().databases["main"].clone();
    let reload = node.reload_in_background(Duration::from_secs(30));
    let started = Instant::now();
    let mut acked = 0i64;
    let mut during_loading = 0;
    // Bounded: until the reload finished, then five more.
    let mut after = 0;
    while after < 5 {
        let loading = !reload.is_finished();
        let n: i64 = bounded(rt, "INCR", conn.incr(&key, 1))
            .await
            .expect("an INCR during LOADING waits it out");
        acked += 1;
        assert_eq!(n, acked, "each INCR ran once");
        if loading {
            during_loading += 1;
        } else {
            after += 1;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "bounded");
    }
    reload
        .join()
        .expect("reload thread")
        .expect("DEBUG RELOAD succeeded");
    let stats = keeper.stats().databases["main"].clone();
    let cluster = stats.cluster.clone().expect("cluster stats");
    let refusals = cluster.refusals - before.cluster.as_ref().unwrap().refusals;
    println!(
        "LOADING on a master for {:?}: {during_loading} INCRs sent while it loaded, \
         {refusals} refusals waited out, breaker trips {}",
        started.elapsed(),
        stats.breaker_trips - before.breaker_trips
    );
    assert!(during_loading >= 1, "an INCR was sent during the loading");
    assert!(refusals >= 1, "LOADING was met and waited out: {cluster:?}");
    assert_eq!(stats.breaker_trips, before.breaker_trips, "{stats:?}");
    assert_eq!(set.counter_on(master, &key), acked);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("key-load-delay")
        .arg(0)
        .query(&mut node.connection())
        .expect("no more load delay");
}

/// A cluster database whose nodes all refuse connections (free loopback ports, nothing
/// listening): each call fails typed (the connection refused), the breaker opens on the fifth
/// failure in a row, later calls are rejected at once with `CircuitOpen`.
async fn no_node_answers_and_the_breaker_opens(rt: &Runtime) {
    let seeds: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", support::redis_server::free_port()))
        .collect();
    let config = fast_policies(KeeperConfig::default()).configure("main", |d| {
        d.cluster_nodes(seeds)
            .breaker_open_for(Duration::from_secs(60))
    });
    let keeper = keeper(rt, config);
    let mut conn = bounded(rt, "get", keeper.get("main"))
        .await
        .expect("a handle is given before any node is dialed");
    let mut refused = 0;
    let mut open = 0;
    for _ in 0..8 {
        match bounded(rt, "GET", conn.get::<_, Option<String>>("k")).await {
            Ok(v) => panic!("no node listens, yet GET answered {v:?}"),
            Err(e) => match Error::from(e) {
                Error::CircuitOpen { db, .. } if db == "main" => open += 1,
                Error::Redis(e) if e.is_io_error() => refused += 1,
                other => panic!("untyped or unexpected failure: {other:?}"),
            },
        }
    }
    let stats = keeper.stats().databases["main"].clone();
    assert!(open >= 1, "the breaker opened: {stats:?}");
    assert!(
        refused <= 5,
        "at most the threshold's failures before it opened"
    );
    assert_eq!(stats.breaker_trips, 1, "{stats:?}");
    assert_eq!(stats.breaker.state.as_str(), "open", "{stats:?}");
    keeper.close().await;
}

/// Slots moved by the resharding (`redis-cli` moves a source's slots from its lowest up).
const MOVED_SLOTS: u16 = 1000;

/// [`MOVED_SLOTS`] slots move from one master to another while four workers `INCR` keys in
/// those slots: no error reaches them, every counter ends at the number of acknowledged
/// `INCR`s, on the new owner.
async fn a_slot_moves_mid_traffic(rt: &Runtime, keeper: &Keeper, set: &ClusterSet) {
    let masters = set.masters();
    let (from, to) = (masters[0], masters[1]);
    let (first, _) = set.first_range_of(from);
    let moving = first..first + MOVED_SLOTS;
    let candidates: Vec<String> = (0..20_000).map(|i| format!("reshard:{i}")).collect();
    let keys: Arc<Vec<String>> = Arc::new(
        candidates
            .iter()
            .zip(set.slots_of(&candidates))
            .filter(|(_, slot)| moving.contains(slot))
            .map(|(k, _)| k.clone())
            .take(64)
            .collect(),
    );
    assert_eq!(keys.len(), 64, "keys in slots {moving:?}");
    let before = cluster_stats(keeper);
    let acked: Arc<Vec<AtomicU64>> = Arc::new(keys.iter().map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (keeper, acked, stop, errors, keys) = (
            keeper.clone(),
            acked.clone(),
            stop.clone(),
            errors.clone(),
            keys.clone(),
        );
        let rt2 = rt.clone();
        let (tx, rx) = futures::channel::oneshot::channel();
        rt.spawner().spawn(Box::pin(async move {
            let mut conn = keeper.get("main").await.expect("handle");
            let mut i = w;
            // Bounded by `stop`, set once the resharding is done.
            while !stop.load(Ordering::Relaxed) {
                let k = i % acked.len();
                match bounded(&rt2, "INCR", conn.incr::<_, _, i64>(&keys[k], 1)).await {
                    Ok(_) => {
                        acked[k].fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors.lock().unwrap().push(format!("{e:?}")),
                }
                i += WORKERS;
            }
            let _ = tx.send(());
        }));
        workers.push(rx);
    }
    let started = Instant::now();
    // The resharding runs on a thread of its own (redis-cli takes seconds).
    let reshard = set.reshard_args(from, to, u32::from(MOVED_SLOTS));
    on_thread(rt, move || support::cluster::cli_ok(&reshard)).await;
    let took = started.elapsed();
    // The next refreshes (every second) see the new slot map.
    support::harness::eventually(
        rt,
        Duration::from_secs(10),
        "a refresh sees the move",
        || {
            let changed = cluster_stats(keeper).topology_changes > before.topology_changes;
            async move { changed.then_some(()) }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for rx in workers {
        bounded(rt, "worker", rx).await.expect("worker ended");
    }
    let errors = errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "errors reached the user: {errors:?}");
    for (k, key) in keys.iter().enumerate() {
        assert_eq!(set.owner_of(key), to, "{key} moved");
        assert_eq!(
            set.counter_on(to, key),
            acked[k].load(Ordering::Relaxed) as i64,
            "{key}"
        );
    }
    let after = cluster_stats(keeper);
    let total: u64 = acked.iter().map(|a| a.load(Ordering::Relaxed)).sum();
    println!(
        "resharding of {MOVED_SLOTS} slots took {took:?}: {total} INCRs acknowledged, \
         moved {} ask {} refusals {} topology changes {}",
        after.moved - before.moved,
        after.ask - before.ask,
        after.refusals - before.refusals,
        after.topology_changes - before.topology_changes
    );
    assert!(total > 0);
    assert!(
        after.moved + after.ask > before.moved + before.ask,
        "traffic on moving slots met a redirection: {after:?}"
    );
}
