//! Sentinel-backed databases on the simulator, in virtual time: resolution with the `ROLE`
//! check, an announced failover under INCR traffic (no acknowledged write lost, none landing on
//! the old master after the promotion), what happens without the early announcement, the
//! `READONLY` resend, the poll backstop, exclusive handles across a switch, and typed errors
//! for an unknown master and for unreachable sentinels.
#![cfg(all(feature = "sim", any(feature = "tokio", feature = "smol")))]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::AsyncCommands;
use redis_keeper::seams::{Clock, Spawn};
use redis_keeper::sim::{Sim, SimNetwork, SimRedis, SimRole};
use redis_keeper::{Error, Keeper, KeeperConfig};

const OLD: &str = "127.0.0.1:16379";
const NEW: &str = "127.0.0.1:16380";
const SENTINELS: [&str; 2] = ["127.0.0.1:26379", "127.0.0.1:26380"];
const MASTER_INSTANCE: &str = "master mymaster 127.0.0.1 16379";
const SWITCH: &str = "mymaster 127.0.0.1 16379 127.0.0.1 16380";

/// A master, its replica and two sentinels on one simulated network, and a Keeper whose `main`
/// follows `mymaster` through them.
struct World {
    sim: Sim,
    old: SimRedis,
    new: SimRedis,
    sentinels: Vec<SimRedis>,
    keeper: Keeper,
}

/// The two sentinels, each knowing the other, naming the master at `OLD`.
fn sentinels(sim: &Sim, net: &SimNetwork) -> Vec<SimRedis> {
    SENTINELS
        .iter()
        .map(|addr| {
            let s = sim.redis();
            s.set_sentinel(&[("mymaster", OLD)]);
            let peers: Vec<&str> = SENTINELS.iter().copied().filter(|a| a != addr).collect();
            s.set_sentinel_peers(&peers);
            net.add(addr, s.clone());
            s
        })
        .collect()
}

fn world(seed: u64, master_name: &str) -> World {
    let sim = Sim::new(seed);
    let net = SimNetwork::new();
    let (old, new) = (sim.redis(), sim.redis());
    new.set_role(SimRole::Replica {
        master: OLD.to_owned(),
    });
    net.add(OLD, old.clone());
    net.add(NEW, new.clone());
    let sentinels = sentinels(&sim, &net);
    let nodes: Vec<String> = SENTINELS.iter().map(|s| s.to_string()).collect();
    let master_name = master_name.to_owned();
    let config = KeeperConfig::default().configure("main", move |d| {
        d.sentinel_master_name(master_name)
            .sentinel_nodes(nodes)
            .retry_min(Duration::from_millis(100))
            .retry_multiplier(Duration::from_millis(100))
    });
    let keeper = sim
        .keeper_builder(config, Arc::new(net))
        .build()
        .expect("valid config");
    World {
        sim,
        old,
        new,
        sentinels,
        keeper,
    }
}

impl World {
    /// One `INCR counter` through the Keeper's `main`: its reply.
    fn incr(&self) -> i64 {
        self.sim.block_on(async {
            let mut main = self.keeper.main().await.unwrap();
            main.incr("counter", 1).await.unwrap()
        })
    }

    fn counter(server: &SimRedis) -> i64 {
        server
            .get(0, b"counter")
            .map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap())
    }

    /// The replica stops replicating and becomes a master: it has what the old master had.
    fn promote(&self) {
        if let Some(v) = self.old.get(0, b"counter") {
            self.new.set(0, b"counter", &v);
        }
        self.new.set_role(SimRole::Master);
    }

    /// Every sentinel names the new master; `announce` publishes `+switch-master` too.
    fn switch(&self, announce: bool) {
        for s in &self.sentinels {
            s.sentinel_set_master("mymaster", NEW);
            if announce {
                s.publish("+switch-master", SWITCH);
            }
        }
    }

    /// The old master learns it is a replica and closes its clients (about 10 s after the
    /// switch, with real sentinels).
    fn demote_old(&self) {
        self.old.set_role(SimRole::Replica {
            master: NEW.to_owned(),
        });
        self.old.kill_all();
    }

    fn stats(&self) -> redis_keeper::SentinelStats {
        let stats = self.keeper.stats();
        stats.databases["main"]
            .sentinel
            .clone()
            .expect("main is sentinel-backed")
    }
}

/// INCR traffic from four tasks, 5 ms apart each, until stopped.
struct Traffic {
    acked: Arc<AtomicU64>,
    unknown: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Traffic {
    fn start(w: &World) -> Traffic {
        let t = Traffic {
            acked: Arc::new(AtomicU64::new(0)),
            unknown: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        for _ in 0..4 {
            let (keeper, clock) = (w.keeper.clone(), w.sim.clock().clone());
            let (acked, unknown, stop) = (t.acked.clone(), t.unknown.clone(), t.stop.clone());
            w.sim.spawner().spawn(Box::pin(async move {
                // Bounded by the stop flag, set after a bounded virtual time.
                while !stop.load(Ordering::Acquire) {
                    let result: Result<i64, Error> = async {
                        let mut main = keeper.main().await?;
                        Ok(main.incr("counter", 1).await?)
                    }
                    .await;
                    match result {
                        Ok(_) => acked.fetch_add(1, Ordering::Relaxed),
                        Err(_) => unknown.fetch_add(1, Ordering::Relaxed),
                    };
                    clock
                        .sleep_until(clock.now() + Duration::from_millis(5))
                        .await;
                }
            }));
        }
        t
    }

    fn stop(&self, w: &World) -> (u64, u64) {
        self.stop.store(true, Ordering::Release);
        w.sim.run_for(Duration::from_secs(1));
        (
            self.acked.load(Ordering::Relaxed),
            self.unknown.load(Ordering::Relaxed),
        )
    }
}

#[test]
fn the_master_is_resolved_through_the_sentinels_and_checked_with_role() {
    let w = world(1, "mymaster");
    let n = w.incr();
    assert_eq!(n, 1);
    assert_eq!(World::counter(&w.old), 1, "written on the master");
    assert_eq!(World::counter(&w.new), 0, "not on the replica");
    let s = w.stats();
    assert_eq!(s.master.as_deref(), Some(OLD));
    assert!(s.lookups >= 1, "{s:?}");
    assert_eq!((s.switches, s.role_mismatches, s.holds), (0, 0, 0), "{s:?}");
    assert_eq!(s.sentinels, 2);
    assert!(
        w.keeper
            .stats()
            .databases
            .values()
            .filter(|d| d.name != "main")
            .all(|d| d.sentinel.is_none()),
        "the other databases stay direct"
    );
}

#[test]
fn an_announced_failover_loses_no_acknowledged_write() {
    for seed in 1..=5 {
        let w = world(seed, "mymaster");
        let traffic = Traffic::start(&w);
        w.sim.run_for(Duration::from_secs(1));
        // The leader announces the failover, promotes the replica one tick later, and names
        // the new master 0.7 s after that; the old master stays writable for 10 s more.
        w.sentinels[1].publish("+try-failover", MASTER_INSTANCE);
        w.sim.run_for(Duration::from_millis(100));
        w.promote();
        let old_at_promotion = World::counter(&w.old);
        w.sim.run_for(Duration::from_millis(700));
        w.switch(true);
        w.sim.run_for(Duration::from_secs(10));
        assert_eq!(
            World::counter(&w.old),
            old_at_promotion,
            "seed {seed}: nothing reached the old master after the promotion"
        );
        w.demote_old();
        w.sim.run_for(Duration::from_secs(1));
        let (acked, unknown) = traffic.stop(&w);
        let on_new = World::counter(&w.new) as u64;
        assert!(
            acked <= on_new && on_new <= acked + unknown,
            "seed {seed}: acked {acked}, unknown {unknown}, on the new master {on_new}"
        );
        assert!(
            acked > 1000,
            "seed {seed}: traffic ran on both masters: {acked}"
        );
        let s = w.stats();
        assert_eq!(s.master.as_deref(), Some(NEW), "seed {seed}");
        assert_eq!((s.switches, s.holds), (1, 1), "seed {seed}: {s:?}");
        assert!(!s.holding);
        let text = w.keeper.metrics_text();
        for line in [
            r#"redis_keeper_sentinel_master_switches_total{db="main"} 1"#,
            r#"redis_keeper_sentinel_failover_holds_total{db="main"} 1"#,
            r#"redis_keeper_sentinel_failover_holding{db="main"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "seed {seed}: no `{line}`");
        }
        assert!(
            !text.contains(r#"sentinel_master_switches_total{db="knowledge""#),
            "direct databases have no Sentinel series"
        );
        assert!(!text.contains("16380"), "no address in the metrics");
        w.keeper.check_invariants().unwrap();
    }
}

#[test]
fn without_the_early_announcement_writes_of_the_window_are_lost() {
    // What a client that waits for `+switch-master` (or the disconnect) gets: the writes the
    // old master took between the promotion and the switch are gone. This is why the Keeper
    // holds from the first announcement; the test shows the loss the hold prevents is real.
    let w = world(7, "mymaster");
    let traffic = Traffic::start(&w);
    w.sim.run_for(Duration::from_secs(1));
    w.promote();
    let old_at_promotion = World::counter(&w.old);
    w.sim.run_for(Duration::from_millis(700));
    w.switch(true);
    w.sim.run_for(Duration::from_secs(1));
    w.demote_old();
    let (acked, _) = traffic.stop(&w);
    let lost_on_old = World::counter(&w.old) - old_at_promotion;
    assert!(
        lost_on_old > 100,
        "the old master took the window's writes: {lost_on_old}"
    );
    assert!(
        (World::counter(&w.new) as u64) < acked,
        "acknowledged writes were lost"
    );
    assert_eq!(w.stats().switches, 1);
}

#[test]
fn a_stale_master_answering_readonly_is_left_and_the_command_sent_once_more() {
    let w = world(2, "mymaster");
    w.incr();
    // A failover nobody announced to us: the sentinels name the new master, the old one is a
    // replica already, and the Keeper's connection still goes to it.
    w.promote();
    w.switch(false);
    w.old.set_role(SimRole::Replica {
        master: NEW.to_owned(),
    });
    let n = w.incr();
    assert_eq!(n, 2, "sent once more, to the new master");
    assert_eq!(World::counter(&w.new), 2);
    assert_eq!(World::counter(&w.old), 1);
    let s = w.stats();
    assert_eq!((s.readonly_replies, s.switches), (1, 0), "{s:?}");
    assert_eq!(s.master.as_deref(), Some(NEW));
    // Both servers are replicas now: the one resend meets a replica named as the master and
    // fails typed after the retry schedule, instead of looping.
    w.new.set_role(SimRole::Replica {
        master: OLD.to_owned(),
    });
    let err = w.sim.block_on(async {
        let mut main = w.keeper.main().await.unwrap();
        main.incr::<_, _, i64>("counter", 1).await.unwrap_err()
    });
    let err = Error::from(err);
    assert_eq!(
        err.failure_kind(),
        Some(redis_keeper::policy::FailureKind::RoleMismatch),
        "{err}"
    );
    let s = w.stats();
    assert_eq!(
        s.readonly_replies, 2,
        "one READONLY each time, no more: {s:?}"
    );
    assert!(s.role_mismatches >= 1, "{s:?}");
    assert_eq!(World::counter(&w.new), 2, "nothing ran twice");
}

#[test]
fn the_poll_follows_a_switch_no_event_announced() {
    let w = world(3, "mymaster");
    w.incr();
    w.promote();
    w.switch(false);
    // Within one poll interval (2 s) the Keeper moves to the new master by itself.
    w.sim.run_for(Duration::from_millis(2100));
    let s = w.stats();
    assert_eq!((s.master.as_deref(), s.switches), (Some(NEW), 1), "{s:?}");
    let n = w.incr();
    assert_eq!(n, 2);
    assert_eq!(
        World::counter(&w.old),
        1,
        "the old master got nothing after the switch"
    );
    assert_eq!(w.stats().readonly_replies, 0);
}

#[test]
fn an_exclusive_handle_follows_a_switch_unless_it_holds_state() {
    let w = world(4, "mymaster");
    w.sim.block_on(async {
        let mut clean = w.keeper.get_exclusive("main").await.unwrap();
        let mut tx = w.keeper.get_exclusive("main").await.unwrap();
        let _: i64 = clean.incr("counter", 1).await.unwrap();
        let _: () = redis::cmd("MULTI").query_async(&mut tx).await.unwrap();
        w.promote();
        w.switch(true);
        let clock = w.sim.clock().clone();
        clock
            .sleep_until(clock.now() + Duration::from_millis(1))
            .await; // the event arrives
                    // The clean handle carries on with a connection to the new master.
        let n: i64 = clean.incr("counter", 1).await.unwrap();
        assert_eq!(n, 2);
        // The one in a transaction cannot: its MULTI is on the old master.
        let err = redis::cmd("INCR")
            .arg("counter")
            .query_async::<i64>(&mut tx)
            .await
            .unwrap_err();
        assert!(
            matches!(Error::from(err), Error::MasterChanged { ref db } if db == "main"),
            "typed"
        );
    });
    assert_eq!(World::counter(&w.old), 1);
    assert_eq!(World::counter(&w.new), 2);
    w.keeper.check_invariants().unwrap();
}

#[test]
fn an_unknown_master_is_a_config_error_naming_it() {
    let w = world(5, "nosuchmaster");
    let err = w.sim.block_on(w.keeper.main()).map(|_| ()).unwrap_err();
    let Error::Config(config) = &err else {
        panic!("expected a configuration error, got {err}");
    };
    let text = config.to_string();
    assert!(
        text.contains("sentinel_master_name") && text.contains("nosuchmaster"),
        "{text}"
    );
    assert!(text.contains("no sentinel knows this master"), "{text}");
    assert_eq!(w.stats().lookup_failures, 1, "asked once: not retried");
}

#[test]
fn unreachable_sentinels_are_a_transport_failure_for_the_retry_and_the_breaker() {
    let w = world(6, "mymaster");
    for s in &w.sentinels {
        s.refuse(true);
    }
    let err = w.sim.block_on(w.keeper.main()).map(|_| ()).unwrap_err();
    assert!(
        matches!(&err, Error::Connect { attempts, .. } if *attempts == 5)
            || matches!(&err, Error::CircuitOpen { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("sentinel") || matches!(err, Error::CircuitOpen { .. }),
        "{err}"
    );
    let stats = w.keeper.stats();
    let main = &stats.databases["main"];
    assert!(main.connections_failed >= 5, "{main:?}");
    assert!(main.sentinel.as_ref().unwrap().lookup_failures >= 5);
    assert_eq!(
        main.breaker_trips, 1,
        "five transport failures open the breaker"
    );
}

#[test]
fn a_replica_named_as_the_master_is_a_role_mismatch_then_resolved_again() {
    let w = world(8, "mymaster");
    for s in &w.sentinels {
        s.sentinel_set_master("mymaster", NEW); // the replica, not promoted yet
    }
    let sim = &w.sim;
    let new = w.new.clone();
    let clock = sim.clock().clone();
    sim.spawner().spawn(Box::pin(async move {
        clock
            .sleep_until(clock.now() + Duration::from_millis(150))
            .await;
        new.set_role(SimRole::Master);
    }));
    let n: i64 = sim.block_on(async {
        let mut main = w.keeper.main().await.unwrap();
        main.incr("counter", 1).await.unwrap()
    });
    assert_eq!(n, 1);
    assert_eq!(World::counter(&w.new), 1);
    let s = w.stats();
    assert!(s.role_mismatches >= 1, "{s:?}");
    let stats = w.keeper.stats();
    let main = &stats.databases["main"];
    assert_eq!(
        main.breaker_trips, 0,
        "a role mismatch is not a breaker failure"
    );
}

/// `GET who` on `n` exclusive connections of `main` held at once (so `n` are opened).
fn read_who(sim: &Sim, keeper: &Keeper, n: usize) -> Vec<String> {
    sim.block_on(async {
        let mut held = Vec::new();
        let mut seen = Vec::new();
        for _ in 0..n {
            let mut c = keeper.get_exclusive("main").await.unwrap();
            seen.push(c.get::<_, String>("who").await.unwrap());
            held.push(c);
        }
        seen
    })
}

#[test]
fn a_replica_reader_reads_round_robin_from_healthy_replicas_and_never_resends_a_write() {
    let sim = Sim::new(9);
    let net = SimNetwork::new();
    let master = sim.redis();
    let replicas = [sim.redis(), sim.redis(), sim.redis()];
    let addrs = ["127.0.0.1:16381", "127.0.0.1:16382", "127.0.0.1:16383"];
    net.add(OLD, master.clone());
    for (i, (r, addr)) in replicas.iter().zip(addrs).enumerate() {
        r.set_role(SimRole::Replica {
            master: OLD.to_owned(),
        });
        r.set(0, b"who", format!("replica {i}").as_bytes());
        net.add(addr, r.clone());
    }
    let sentinel = sim.redis();
    sentinel.set_sentinel(&[("mymaster", OLD)]);
    sentinel.sentinel_set_replicas(
        "mymaster",
        &[
            (addrs[0], "slave"),
            (addrs[1], "slave,s_down"),
            (addrs[2], "slave"),
        ],
    );
    net.add(SENTINELS[0], sentinel.clone());
    let config = KeeperConfig::from_yaml_str(&format!(
        "redis_databases:\n  main:\n    role: replica\n    sentinel: {{master_name: mymaster, nodes: [\"{}\"]}}\n",
        SENTINELS[0]
    ))
    .unwrap();
    let keeper = sim.keeper_builder(config, Arc::new(net)).build().unwrap();
    // Six connections held at once: each opened to the next healthy replica in turn.
    let seen = read_who(&sim, &keeper, 6);
    assert!(seen.contains(&"replica 0".to_owned()), "{seen:?}");
    assert!(seen.contains(&"replica 2".to_owned()), "{seen:?}");
    assert!(
        !seen.contains(&"replica 1".to_owned()),
        "a replica the sentinels consider down is not read: {seen:?}"
    );
    let err = sim.block_on(async {
        let mut c = keeper.main().await.unwrap();
        c.set::<_, _, ()>("k", "v").await.unwrap_err()
    });
    assert_eq!(err.code(), Some("READONLY"), "{err}");
    let stats = keeper.stats();
    let s = stats.databases["main"].sentinel.clone().unwrap();
    assert_eq!(
        s.readonly_replies, 0,
        "a replica reader never resends: {s:?}"
    );
    assert_eq!(s.replicas, [addrs[0], addrs[2]]);
    assert_eq!(master.dbsize(0), 0, "nothing reached the master");
    // Replica 0 goes down: within one poll the list changes (a new epoch) and only replica 2
    // is read from then on.
    sentinel.sentinel_set_replicas(
        "mymaster",
        &[(addrs[0], "slave,s_down"), (addrs[2], "slave")],
    );
    sim.run_for(Duration::from_millis(2100));
    let s = keeper.stats().databases["main"].sentinel.clone().unwrap();
    assert_eq!(
        (s.replicas.as_slice(), s.switches),
        (&[addrs[2].to_owned()][..], 1),
        "{s:?}"
    );
    let seen = read_who(&sim, &keeper, 3);
    assert_eq!(seen, ["replica 2", "replica 2", "replica 2"]);
}

#[test]
fn the_sentinels_a_sentinel_names_are_added_and_one_master_has_one_watcher() {
    let sim = Sim::new(10);
    let net = SimNetwork::new();
    let master = sim.redis();
    net.add(OLD, master.clone());
    let sentinels = sentinels(&sim, &net);
    // Only the first sentinel is configured, for every database (a top-level map).
    let config = KeeperConfig::from_yaml_str(&format!(
        "sentinel: {{master_name: mymaster, nodes: [\"{}\"]}}\n",
        SENTINELS[0]
    ))
    .unwrap();
    let keeper = sim.keeper_builder(config, Arc::new(net)).build().unwrap();
    sim.run_for(Duration::from_secs(3));
    let stats = keeper.stats();
    let s = stats.databases["main"].sentinel.clone().unwrap();
    assert_eq!(s.sentinels, 2, "the second sentinel was learnt: {s:?}");
    assert_eq!(s.master.as_deref(), Some(OLD), "polled: {s:?}");
    // Sixteen Sentinel-backed databases, one master: one subscription per sentinel.
    assert_eq!(sentinels[0].connected_clients(), 1);
    assert_eq!(
        sentinels[1].connected_clients(),
        1,
        "subscribed once learnt"
    );
    assert_eq!(master.connected_clients(), 0, "no database was used");
}

#[test]
fn a_subscriber_moves_to_the_new_master_at_the_switch() {
    let w = world(11, "mymaster");
    let mut sub = w.sim.block_on(w.keeper.subscriber("main")).unwrap();
    w.sim.block_on(sub.subscribe("orders")).unwrap();
    let publish = |payload: &'static str| {
        w.sim.block_on(async {
            let mut c = w.keeper.main().await.unwrap();
            c.publish::<_, _, i64>("orders", payload).await.unwrap()
        })
    };
    assert_eq!(publish("before"), 1, "on the old master");
    let msg = w.sim.block_on(sub.next()).expect("a message");
    assert_eq!(msg.get_payload::<String>().unwrap(), "before");
    w.promote();
    w.switch(true);
    // Within moments of the switch (not at the old master's demotion, 10 s later), the
    // subscriber is on the new master, where the shared handle now publishes.
    w.sim.run_for(Duration::from_millis(50));
    assert_eq!(publish("after"), 1, "one subscriber on the new master");
    let msg = w.sim.block_on(sub.next()).expect("a message");
    assert_eq!(msg.get_payload::<String>().unwrap(), "after");
    assert_eq!(sub.resubscriptions(), 1);
}

#[test]
fn a_sentinel_of_an_older_configuration_does_not_move_the_keeper_back() {
    let w = world(12, "mymaster");
    w.incr();
    w.sim.run_for(Duration::from_secs(3)); // polled: the configuration epoch is known
                                           // Sentinel 1 leads the failover and then drops off the network; sentinel 0 has not heard
                                           // of it and goes on naming the old master, in the older configuration epoch.
    w.promote();
    w.sentinels[1].sentinel_set_master("mymaster", NEW);
    w.sentinels[1].publish("+switch-master", SWITCH);
    w.sim.run_for(Duration::from_millis(10));
    w.sentinels[1].refuse(true);
    w.sentinels[1].kill_all();
    w.sim.run_for(Duration::from_secs(5)); // two polls, answered by sentinel 0 only
    let s = w.stats();
    assert_eq!((s.master.as_deref(), s.switches), (Some(NEW), 1), "{s:?}");
    let n = w.incr();
    assert_eq!(n, 2);
    assert_eq!(
        World::counter(&w.old),
        1,
        "nothing went back to the old master"
    );
}
