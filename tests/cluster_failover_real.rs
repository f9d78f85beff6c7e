//! A Redis Cluster failover against real processes (a cluster of its own, see
//! `support/cluster.rs`): a master frozen with SIGSTOP past the node timeout while four tasks
//! `INCR` keys on every master. Its replica takes over; every failure the tasks see is typed;
//! the failed-over slots answer again within a bound; and no write is lost or doubled beyond
//! what the errors admit: each counter ends ≥ its acknowledged `INCR`s and ≤ acknowledged +
//! those whose outcome is unknown (a reply that never came).
//!
//! Needs `redis-server` (7.0+, for `cluster-port`) and `redis-cli` on the PATH.
#![cfg(all(feature = "tokio", feature = "cluster"))]

#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_keeper::policy::FailureKind;
use redis_keeper::seams::Runtime;
use redis_keeper::{ClusterStats, Error, Keeper, KeeperConfig};
use support::cluster::ClusterSet;
use support::harness::{bounded, eventually, fast_policies, keeper, sleep};

/// Tasks sending `INCR`s.
const WORKERS: usize = 4;
/// Keys per master.
const KEYS_PER_MASTER: usize = 8;
/// How long after the freeze the failed-over slots must answer again: the node timeout (2 s),
/// the replica's election (≈ 1 s), and a refresh of our slot map (every second).
const RECOVERY_LIMIT: Duration = Duration::from_secs(15);
/// Traffic kept up after the recovery, so the healed cluster is exercised too.
const AFTER_RECOVERY: Duration = Duration::from_secs(2);

/// `main` on the cluster `set`: the suites' fast policies, a 1 s slot map refresh and a 500 ms
/// response timeout (a frozen master holds each task that long).
fn cluster_config(set: &ClusterSet) -> KeeperConfig {
    fast_policies(KeeperConfig::default()).configure("main", |d| {
        d.cluster_nodes(set.seeds())
            .cluster_refresh_interval(Duration::from_secs(1))
            .response_timeout(Duration::from_millis(500))
    })
}

fn cluster_stats(keeper: &Keeper) -> ClusterStats {
    keeper.stats().databases["main"]
        .cluster
        .clone()
        .expect("main is a cluster database")
}

/// What a failed `INCR` says about whether it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fate {
    /// No reply came (a timeout, a dropped connection): it may have run.
    Unknown,
    /// Refused before it was sent (the breaker) or by the node (`CLUSTERDOWN`, `TRYAGAIN`, …).
    NotRun,
}

/// The fate of a failed `INCR`, or why the error is not one a failover may cause.
fn fate_of(err: &Error) -> Result<(Fate, &'static str), String> {
    match err {
        Error::CircuitOpen { .. } => Ok((Fate::NotRun, "circuit open")),
        Error::Connect { .. } => Ok((Fate::NotRun, "connect")),
        Error::Redis(e) => match err.failure_kind() {
            Some(FailureKind::ResponseTimeout) => Ok((Fate::Unknown, "response timeout")),
            Some(FailureKind::Io | FailureKind::Protocol) => Ok((Fate::Unknown, "connection lost")),
            Some(
                FailureKind::TryAgain
                | FailureKind::MasterDown
                | FailureKind::Loading
                | FailureKind::ReadOnly,
            ) => Ok((Fate::NotRun, "refused by the node")),
            _ if e.code() == Some("CLUSTERDOWN") => Ok((Fate::NotRun, "CLUSTERDOWN")),
            _ => Err(format!("an error a failover should not cause: {err:?}")),
        },
        other => Err(format!("an error a failover should not cause: {other:?}")),
    }
}

/// One key's tally.
#[derive(Default)]
struct Tally {
    acked: AtomicU64,
    unknown: AtomicU64,
    not_run: AtomicU64,
}

/// What the workers saw, shared with the test.
struct Traffic {
    keys: Vec<String>,
    tallies: Vec<Tally>,
    /// Keys (by index) on the master that is frozen.
    frozen: Vec<bool>,
    /// When the victim was seen stopped (set once).
    frozen_at: Mutex<Option<Instant>>,
    /// The first acknowledgement of an `INCR` on a frozen key sent after the freeze.
    recovered_at: Mutex<Option<Instant>>,
    /// Errors by kind.
    kinds: Mutex<BTreeMap<&'static str, u64>>,
    /// Errors a failover should not cause.
    unexpected: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Traffic {
    fn record(&self, k: usize, sent: Instant, result: Result<i64, Error>) {
        let tally = &self.tallies[k];
        match result {
            Ok(_) => {
                tally.acked.fetch_add(1, Ordering::Relaxed);
                let after_freeze = self
                    .frozen_at
                    .lock()
                    .unwrap()
                    .is_some_and(|frozen| sent > frozen);
                if self.frozen[k] && after_freeze {
                    self.recovered_at
                        .lock()
                        .unwrap()
                        .get_or_insert_with(Instant::now);
                }
            }
            Err(err) => match fate_of(&err) {
                Ok((fate, kind)) => {
                    let counter = match fate {
                        Fate::Unknown => &tally.unknown,
                        Fate::NotRun => &tally.not_run,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    *self.kinds.lock().unwrap().entry(kind).or_default() += 1;
                }
                Err(why) => {
                    tally.unknown.fetch_add(1, Ordering::Relaxed);
                    self.unexpected.lock().unwrap().push(why);
                }
            },
        }
    }

    fn sum(&self, field: impl Fn(&Tally) -> &AtomicU64) -> u64 {
        self.tallies
            .iter()
            .map(|t| field(t).load(Ordering::Relaxed))
            .sum()
    }
}

/// `KEYS_PER_MASTER` keys on each master, interleaved (so every worker meets every master).
fn keys_on_every_master(set: &ClusterSet) -> (Vec<String>, Vec<u16>) {
    let map = set.slot_map();
    let candidates: Vec<String> = (0..400).map(|i| format!("failover:{i}")).collect();
    let mut by_master: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for (key, slot) in candidates.iter().zip(set.slots_of(&candidates)) {
        let owner = map
            .iter()
            .find(|((first, last), _)| (*first..=*last).contains(&slot))
            .map(|(_, port)| *port)
            .expect("every slot is served");
        let keys = by_master.entry(owner).or_default();
        if keys.len() < KEYS_PER_MASTER {
            keys.push(key.clone());
        }
    }
    assert_eq!(by_master.len(), 3, "three masters: {by_master:?}");
    let mut keys = Vec::new();
    let mut owners = Vec::new();
    for i in 0..KEYS_PER_MASTER {
        for (owner, on_it) in &by_master {
            assert_eq!(on_it.len(), KEYS_PER_MASTER, "keys on {owner}");
            keys.push(on_it[i].clone());
            owners.push(*owner);
        }
    }
    (keys, owners)
}

#[test]
fn a_frozen_master_fails_over_without_losing_or_doubling_what_was_acknowledged() {
    let mut set = ClusterSet::start();
    let (keys, owners) = keys_on_every_master(&set);
    let victim = set.masters()[0];
    let heir = set.replica_of(victim);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let _context = tokio.enter();
    let rt = Runtime::tokio();
    let keeper = keeper(&rt, cluster_config(&set));
    let traffic = Arc::new(Traffic {
        tallies: keys.iter().map(|_| Tally::default()).collect(),
        frozen: owners.iter().map(|o| *o == victim).collect(),
        keys,
        frozen_at: Mutex::new(None),
        recovered_at: Mutex::new(None),
        kinds: Mutex::new(BTreeMap::new()),
        unexpected: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    });
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (keeper, traffic) = (keeper.clone(), traffic.clone());
            tokio.spawn(async move {
                let mut conn = keeper.get("main").await.expect("handle");
                let mut i = w;
                // Bounded by `stop`, set once the recovery was seen (or the test failed).
                while !traffic.stop.load(Ordering::Relaxed) {
                    let k = i % traffic.keys.len();
                    let sent = Instant::now();
                    let result = conn.incr::<_, _, i64>(&traffic.keys[k], 1).await;
                    traffic.record(k, sent, result.map_err(Error::from));
                    i += WORKERS;
                }
            })
        })
        .collect();
    let before = tokio.block_on(async {
        // Traffic on a healthy cluster first: every key acknowledged at least once.
        eventually(&rt, Duration::from_secs(10), "traffic on every key", || {
            let all = traffic
                .tallies
                .iter()
                .all(|t| t.acked.load(Ordering::Relaxed) > 0);
            async move { all.then_some(()) }
        })
        .await;
        cluster_stats(&keeper)
    });
    set.freeze(victim);
    // Stopped now (the helper waited for it): a send started later cannot reach the victim.
    let frozen_at = Instant::now();
    *traffic.frozen_at.lock().unwrap() = Some(frozen_at);
    let recovered = tokio.block_on(async {
        let recovered = eventually(
            &rt,
            RECOVERY_LIMIT,
            "INCRs on the frozen master's slots acknowledged again",
            || {
                let at = *traffic.recovered_at.lock().unwrap();
                async move { at }
            },
        )
        .await;
        sleep(&rt, AFTER_RECOVERY).await;
        recovered
    });
    let recovery = recovered.saturating_duration_since(frozen_at);
    traffic.stop.store(true, Ordering::Relaxed);
    tokio.block_on(async {
        for worker in workers {
            bounded(&rt, "worker", worker).await.expect("worker ended");
        }
    });
    let after = cluster_stats(&keeper);
    let db_stats = keeper.stats().databases["main"].clone();
    assert_eq!(
        set.role(heir),
        "master",
        "{heir}, the replica of {victim}, took over:\n{}",
        set.diagnostics()
    );
    set.thaw(victim);
    set.wait_until_settled(support::cluster::READY_LIMIT * 2);

    let unexpected = traffic.unexpected.lock().unwrap().clone();
    assert!(unexpected.is_empty(), "untyped failures: {unexpected:?}");
    for (k, key) in traffic.keys.iter().enumerate() {
        let tally = &traffic.tallies[k];
        let acked = tally.acked.load(Ordering::Relaxed) as i64;
        let unknown = tally.unknown.load(Ordering::Relaxed) as i64;
        let owner = set.owner_of(key);
        let value = set.counter_on(owner, key);
        assert!(
            (acked..=acked + unknown).contains(&value),
            "{key} on {owner}: {value}, acknowledged {acked}, unknown {unknown}"
        );
    }
    assert!(
        after.topology_changes > before.topology_changes,
        "a refresh saw the failover: {after:?}"
    );
    assert_eq!(after.known_masters, 3, "{after:?}");
    println!(
        "failover of a frozen master (node timeout {} ms): INCRs on its slots acknowledged \
         again {recovery:?} after the freeze; {} acknowledged, {} unknown, {} not run \
         ({:?}); breaker trips {}; topology changes {}, refusals {}, moved {}",
        support::cluster::NODE_TIMEOUT_MS,
        traffic.sum(|t| &t.acked),
        traffic.sum(|t| &t.unknown),
        traffic.sum(|t| &t.not_run),
        traffic.kinds.lock().unwrap(),
        db_stats.breaker_trips,
        after.topology_changes - before.topology_changes,
        after.refusals - before.refusals,
        after.moved - before.moved,
    );
    tokio.block_on(keeper.close());
}
