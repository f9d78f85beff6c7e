//! Whole-Keeper scenarios on the simulator: redis-rs over SimRedis, in virtual time, from a seed.
#![cfg(all(feature = "sim", any(feature = "tokio", feature = "smol")))]

mod sim_support;

use std::time::Duration;

use redis::AsyncCommands;
use redis_keeper::seams::Clock;
use redis_keeper::sim::Latency;
use redis_keeper::{Error, KeeperConfig};
use sim_support::world;

fn small() -> KeeperConfig {
    KeeperConfig::default().configure_all(|d| d.max_connections(3).shared_connections(1))
}

#[test]
fn commands_pipelines_and_transactions_reach_the_right_databases() {
    let w = world(1, small());
    w.sim.block_on(async {
        let mut main = w.keeper.get("main").await.unwrap();
        let _: () = main.set("k", "v").await.unwrap();
        let v: String = main.get("k").await.unwrap();
        assert_eq!(v, "v");
        let n: i64 = main.incr("n", 5).await.unwrap();
        assert_eq!(n, 5);

        let (a, b): (i64, i64) = w
            .keeper
            .pipeline("knowledge", |p| {
                p.incr("x", 1).incr("x", 1);
            })
            .await
            .unwrap();
        assert_eq!((a, b), (1, 2));

        let mut ex = w.keeper.get_exclusive("audit").await.unwrap();
        let (t,): (i64,) = redis::pipe()
            .atomic()
            .incr("t", 7)
            .query_async(&mut ex)
            .await
            .unwrap();
        assert_eq!(t, 7);
        let _: () = redis::cmd("MULTI").query_async(&mut ex).await.unwrap();
        let _: () = redis::cmd("INCR")
            .arg("t")
            .query_async(&mut ex)
            .await
            .unwrap();
        let (t,): (i64,) = redis::cmd("EXEC").query_async(&mut ex).await.unwrap();
        assert_eq!(t, 8);

        // A shared handle refuses state-changing commands and names the way out.
        let err = redis::cmd("MULTI")
            .query_async::<()>(&mut main)
            .await
            .unwrap_err();
        assert!(
            matches!(Error::from(err), Error::NeedsExclusive { ref command } if command == "MULTI")
        );
    });
    // Server-side: each value landed in its database's keyspace (main 0, knowledge 1, audit 10).
    assert_eq!(w.redis.get(0, b"k").as_deref(), Some(&b"v"[..]));
    assert_eq!(w.redis.get(1, b"x").as_deref(), Some(&b"2"[..]));
    assert_eq!(w.redis.get(10, b"t").as_deref(), Some(&b"8"[..]));
    assert_eq!(w.redis.get(0, b"x"), None);
    let stats = w.keeper.stats();
    assert!(stats.successful_operations >= 6, "{stats:?}");
    w.keeper.check_invariants().unwrap();
}

#[test]
fn unknown_database_is_an_error_never_db_zero() {
    let w = world(2, small());
    let err = w.sim.block_on(w.keeper.get("nope")).unwrap_err();
    assert!(
        matches!(err, Error::UnknownDatabase { ref name, .. } if name == "nope"),
        "{err}"
    );
}

#[test]
fn a_40_second_loading_is_ridden_out_with_probes_every_2_seconds() {
    let w = world(3, small());
    w.redis.set_loading(Duration::from_secs(40));
    let t0 = w.sim.clock().now();
    w.sim.block_on(async {
        let mut c = w.keeper.get("main").await.unwrap();
        let _: () = c.set("after", 1).await.unwrap();
    });
    let waited = w.sim.clock().now() - t0;
    assert_eq!(
        waited,
        Duration::from_secs(40),
        "ready exactly when loading ends"
    );
    // Probe times (virtual ms) of every PING the server saw: the first at 0 s got LOADING,
    // then one probe every 2 s, measured from the end of the previous one, until 40 s.
    let mut ping_times: Vec<u64> = w
        .sim
        .trace()
        .lines()
        .into_iter()
        .filter(|l| l.ends_with(" PING"))
        .map(|l| l[1..l.find("ms").unwrap()].parse::<f64>().unwrap() as u64)
        .collect();
    ping_times.dedup(); // a health check may PING at the very instant loading ends
    let expected: Vec<u64> = (0..=20).map(|k| k * 2_000).collect();
    assert_eq!(ping_times, expected);
    let stats = w.keeper.stats();
    assert_eq!(stats.databases["main"].loading_episodes, 1);
    assert_eq!(
        stats.databases["main"].breaker_trips, 0,
        "LOADING never trips"
    );
    assert_eq!(w.redis.connections_accepted(), 1, "no connection storm");
}

#[test]
fn a_transaction_discarded_for_loading_is_sent_again_once_ready() {
    let w = world(21, small());
    w.sim.block_on(async {
        let mut c = w.keeper.get("main").await.unwrap();
        let _: () = c.set("n", 0).await.unwrap();
    });
    // The Keeper has not seen LOADING yet: MULTI is answered +OK, each queued INCR -LOADING, and
    // EXEC -EXECABORT. Nothing ran, as for a plain -LOADING: wait, then send it all again.
    w.redis.set_loading(Duration::from_secs(4));
    let t0 = w.sim.clock().now();
    w.sim.block_on(async {
        let (a, b): (i64, i64) = w
            .keeper
            .pipeline("main", |p| {
                p.atomic().incr("n", 1).incr("n", 1);
            })
            .await
            .unwrap();
        assert_eq!((a, b), (1, 2));
    });
    // Ready at the first readiness probe after the loading ends (probes every 2 s).
    assert_eq!(w.sim.clock().now() - t0, Duration::from_secs(4));
    // The same on an exclusive connection, loading again.
    w.redis.set_loading(Duration::from_secs(4));
    w.sim.block_on(async {
        let mut ex = w.keeper.get_exclusive("main").await.unwrap();
        let (t,): (i64,) = redis::pipe()
            .atomic()
            .incr("n", 1)
            .query_async(&mut ex)
            .await
            .unwrap();
        assert_eq!(t, 3);
    });
    assert_eq!(w.redis.get(0, b"n").as_deref(), Some(&b"3"[..]));
    let db = &w.keeper.stats().databases["main"];
    assert_eq!(db.failed_operations, 0, "{db:?}");
    assert_eq!(db.loading_episodes, 2, "{db:?}");
    w.keeper.check_invariants().unwrap();
}

#[test]
fn loading_past_the_timeout_gives_not_ready() {
    let w = world(4, small());
    w.redis.set_loading(Duration::from_secs(600));
    let err = w.sim.block_on(w.keeper.get("main")).unwrap_err();
    assert!(matches!(err, Error::NotReady { .. }), "{err}");
    assert!(err.is_timeout());
}

#[test]
fn a_server_frozen_while_loading_fails_the_waiting_call_in_bounded_time() {
    let w = world(14, small());
    let clock = w.sim.clock().clone();
    w.redis.set_loading(Duration::from_secs(40));
    w.sim.block_on(async {
        let t0 = clock.now();
        let freeze = async {
            clock.sleep_until(t0 + Duration::from_secs(5)).await;
            w.redis.stall(Duration::from_secs(600));
        };
        let (result, ()) = futures::join!(w.keeper.get("main"), freeze);
        let err = result.unwrap_err();
        assert!(err.is_timeout(), "{err}");
        // Probes at 0, 2, 4 s answer LOADING; the one at 6 s gets no reply: 5 s response timeout.
        assert_eq!(clock.now() - t0, Duration::from_secs(11));
    });
}

#[test]
fn breaker_trips_on_the_threshold_failure_and_recovers_through_one_probe() {
    let w = world(5, small());
    w.redis.refuse(true);
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        let t0 = clock.now();
        // Five attempts (waits 2, 4, 8, 16 s); the fifth failure opens the breaker.
        let err = w.keeper.get("main").await.unwrap_err();
        assert!(matches!(err, Error::Connect { attempts: 5, .. }), "{err}");
        assert_eq!(clock.now() - t0, Duration::from_secs(30));
        let stats = w.keeper.stats();
        assert_eq!(stats.databases["main"].breaker_trips, 1);
        // While open: fails at once, no attempt.
        let t1 = clock.now();
        let err = w.keeper.get("main").await.unwrap_err();
        match err {
            Error::CircuitOpen { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_secs(60))
            }
            other => panic!("expected CircuitOpen, got {other}"),
        }
        assert_eq!(clock.now(), t1);
        // Heal, wait out the open period: the next call is the single probe and closes it.
        w.redis.refuse(false);
        clock.sleep_until(t1 + Duration::from_secs(60)).await;
        let mut c = w.keeper.get("main").await.unwrap();
        let _: () = c.set("k", 1).await.unwrap();
    });
    let health = w.sim.block_on(w.keeper.health());
    assert_eq!(health.databases["main"], redis_keeper::HealthState::Healthy);
}

#[test]
fn a_breaker_opening_during_connect_retries_leaves_the_cause_in_the_stats() {
    let config = small().configure_all(|d| d.breaker_failure_threshold(2).retry_attempts(5));
    let w = world(15, config);
    w.redis.refuse(true);
    w.sim.block_on(async {
        // The second refused attempt opens the breaker; the third attempt is not made.
        let err = w.keeper.get("main").await.unwrap_err();
        assert!(matches!(err, Error::CircuitOpen { .. }), "{err}");
    });
    let s = &w.keeper.stats().databases["main"];
    assert_eq!((s.connections_failed, s.breaker_trips), (2, 1), "{s:?}");
    let last = s.last_error.as_deref().unwrap_or_default();
    assert!(last.contains("refused"), "last error: {last:?}");
}

#[test]
fn exclusive_pool_exhaustion_times_out_at_its_deadline() {
    let config =
        KeeperConfig::default().configure_all(|d| d.max_connections(2).shared_connections(1));
    let w = world(6, config);
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        let _a = w.keeper.get_exclusive("main").await.unwrap();
        let _b = w.keeper.get_exclusive("main").await.unwrap();
        let t0 = clock.now();
        let err = w.keeper.get_exclusive("main").await.unwrap_err();
        match err {
            Error::PoolTimeout { waited, .. } => assert_eq!(waited, Duration::from_secs(5)),
            other => panic!("expected PoolTimeout, got {other}"),
        }
        assert_eq!(clock.now() - t0, Duration::from_secs(5));
        let stats = w.keeper.pool_stats("main").unwrap();
        assert_eq!((stats.in_use, stats.waiters, stats.timeouts), (2, 0, 1));
    });
    w.keeper.check_invariants().unwrap();
}

#[test]
fn a_waiter_gets_the_connection_returned_before_its_deadline() {
    let config =
        KeeperConfig::default().configure_all(|d| d.max_connections(1).shared_connections(1));
    let w = world(7, config);
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        let held = w.keeper.get_exclusive("main").await.unwrap();
        let release = async {
            clock
                .sleep_until(clock.now() + Duration::from_secs(2))
                .await;
            drop(held);
        };
        let (got, ()) = futures::join!(w.keeper.get_exclusive("main"), release);
        got.unwrap();
    });
    let stats = w.keeper.pool_stats("main").unwrap();
    assert_eq!(
        stats.created, 1,
        "the waiter reused the returned connection"
    );
}

#[test]
fn a_stalled_server_times_out_and_feeds_the_breaker() {
    let w = world(8, small());
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        let mut c = w.keeper.get("main").await.unwrap();
        w.redis.stall(Duration::from_secs(600));
        let t0 = clock.now();
        let err = c.get::<_, Option<String>>("k").await.unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert_eq!(clock.now() - t0, Duration::from_secs(5));
    });
    let stats = w.keeper.stats();
    assert_eq!(stats.databases["main"].failed_operations, 1);
    assert_eq!(
        stats.databases["main"].health,
        Some(redis_keeper::HealthState::Degraded)
    );
}

#[test]
fn commands_lost_together_with_their_connection_are_one_breaker_failure() {
    let config = KeeperConfig::default().configure_all(|d| {
        d.max_connections(3)
            .shared_connections(1)
            .breaker_failure_threshold(3)
    });
    let w = world(13, config);
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        let mut c = w.keeper.get("main").await.unwrap();
        let _: () = c.set("k", 1).await.unwrap();
        // Eight commands in flight on the one shared connection when it is killed.
        w.redis.stall(Duration::from_secs(2));
        let gets = futures::future::join_all((0..8).map(|_| async {
            let mut c = w.keeper.get("main").await.unwrap();
            c.get::<_, Option<i64>>("k").await
        }));
        let kill = async {
            clock
                .sleep_until(clock.now() + Duration::from_secs(1))
                .await;
            assert_eq!(w.redis.kill_all(), 1);
        };
        let (results, ()) = futures::join!(gets, kill);
        assert!(results.iter().all(Result::is_err), "{results:?}");
        assert_eq!(w.keeper.stats().databases["main"].breaker_trips, 0);
        let mut c = w.keeper.get("main").await.unwrap();
        let v: Option<i64> = c.get("k").await.unwrap();
        assert_eq!(v, Some(1));
    });
    w.keeper.check_invariants().unwrap();
}

#[test]
fn connections_lost_together_are_one_breaker_failure() {
    // More connections than the threshold, all killed at once (CLIENT KILL, a restart): one
    // event, one failure. The server is fine, so the breaker must stay closed.
    let config = KeeperConfig::default().configure_all(|d| {
        d.max_connections(4)
            .shared_connections(2)
            .breaker_failure_threshold(2)
    });
    let w = world(22, config);
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        // Both shared slots filled, and one exclusive connection.
        for _ in 0..4 {
            let mut c = w.keeper.get("main").await.unwrap();
            let _: () = c.set("k", 1).await.unwrap();
        }
        let mut ex = w.keeper.get_exclusive("main").await.unwrap();
        let _: () = ex.set("k", 1).await.unwrap();
        w.redis.stall(Duration::from_secs(2));
        let shared = futures::future::join_all((0..4).map(|_| async {
            let mut c = w.keeper.get("main").await.unwrap();
            c.get::<_, Option<i64>>("k").await
        }));
        let exclusive = ex.get::<_, Option<i64>>("k");
        let kill = async {
            clock
                .sleep_until(clock.now() + Duration::from_secs(1))
                .await;
            assert_eq!(w.redis.kill_all(), 3);
        };
        let (results, on_exclusive, ()) = futures::join!(shared, exclusive, kill);
        assert!(results.iter().all(Result::is_err), "{results:?}");
        assert!(on_exclusive.is_err(), "{on_exclusive:?}");
        let db = &w.keeper.stats().databases["main"];
        assert_eq!(db.breaker_trips, 0, "{db:?}");
        let mut c = w.keeper.get("main").await.unwrap();
        let v: Option<i64> = c.get("k").await.unwrap();
        assert_eq!(v, Some(1));
    });
    w.keeper.check_invariants().unwrap();
}

#[test]
fn idle_sweep_closes_exactly_the_stale_connections() {
    let w = world(9, small());
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        // Fill the shared slot first, so the health checks never borrow an idle connection.
        let _shared = w.keeper.get("main").await.unwrap();
        let a = w.keeper.get_exclusive("main").await.unwrap();
        let b = w.keeper.get_exclusive("main").await.unwrap();
        drop((a, b));
        assert_eq!(w.keeper.pool_stats("main").unwrap().idle, 2);
        // Stale only after 300 s (strict); sweeps run every 60 s: the one at 360 s closes both.
        clock
            .sleep_until(clock.now() + Duration::from_secs(359))
            .await;
        assert_eq!(w.keeper.pool_stats("main").unwrap().idle, 2);
        clock
            .sleep_until(clock.now() + Duration::from_secs(1))
            .await;
    });
    w.sim.run_until_idle();
    let stats = w.keeper.pool_stats("main").unwrap();
    assert_eq!((stats.idle, stats.stale_closed), (0, 2), "{stats:?}");
}

#[test]
fn a_shared_handle_survives_its_connection_dying() {
    let config =
        KeeperConfig::default().configure_all(|d| d.max_connections(4).shared_connections(2));
    let w = world(10, config);
    w.sim.block_on(async {
        let mut c = w.keeper.get("main").await.unwrap();
        let _: () = c.set("a", 1).await.unwrap();
        w.redis.kill_all();
        // The command in flight on the dead connection fails (it may have reached the server)…
        let _ = c.incr::<_, _, i64>("a", 1).await;
        // …and the handle carries on over a new connection.
        let v: i64 = c.get("a").await.unwrap();
        assert!(v == 1 || v == 2);
    });
    assert!(w.redis.connections_accepted() >= 2);
    w.keeper.check_invariants().unwrap();
}

#[test]
fn connections_the_server_closed_while_idle_are_never_handed_out() {
    let config =
        KeeperConfig::default().configure_all(|d| d.max_connections(4).shared_connections(1));
    let w = world(12, config);
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        let mut shared = w.keeper.get("main").await.unwrap();
        let _: () = shared.set("a", 1).await.unwrap();
        drop(w.keeper.get_exclusive("main").await.unwrap());
        assert_eq!(w.keeper.pool_stats("main").unwrap().idle, 1);
        // The server closes both (a CLIENT KILL, an idle timeout) while nobody uses them.
        assert_eq!(w.redis.kill_all(), 2);
        clock
            .sleep_until(clock.now() + Duration::from_millis(10))
            .await;
        // Neither dead connection is used again: no command fails, none is sent into a
        // closed socket, and no failure reaches the breaker.
        let v: i64 = shared.get("a").await.unwrap();
        assert_eq!(v, 1);
        let mut ex = w.keeper.get_exclusive("main").await.unwrap();
        let v: i64 = ex.incr("a", 1).await.unwrap();
        assert_eq!(v, 2);
    });
    let s = &w.keeper.stats().databases["main"];
    assert_eq!(s.failed_operations, 0, "{s:?}");
    assert_eq!(s.breaker_trips, 0, "{s:?}");
    assert_eq!(s.connections_created, 4, "{s:?}");
    assert_eq!(w.redis.connections_accepted(), 4);
    w.keeper.check_invariants().unwrap();
}

#[test]
fn an_idle_connection_checked_during_loading_is_kept_and_waits() {
    let w = world(14, small());
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        // Fill the shared slot first, so the health checks never borrow the idle connection.
        let _shared = w.keeper.get("main").await.unwrap();
        let mut ex = w.keeper.get_exclusive("main").await.unwrap();
        let _: () = ex.set("k", 1).await.unwrap();
        drop(ex);
        // Idle past the checkout check (30 s by default, below the 300 s idle timeout), then
        // the server starts loading: the check's PING gets `LOADING` from a live connection.
        clock
            .sleep_until(clock.now() + Duration::from_secs(100))
            .await;
        w.redis.set_loading(Duration::from_secs(10));
        let before = w.keeper.stats().databases["main"].connections_created;
        let mut ex = w.keeper.get_exclusive("main").await.unwrap();
        let v: i64 = ex.incr("k", 1).await.unwrap();
        assert_eq!(v, 2);
        // The same connection served, after the wait: none closed, none opened.
        let s = &w.keeper.stats().databases["main"];
        assert_eq!(s.connections_created, before, "{s:?}");
        assert_eq!(s.loading_episodes, 1, "{s:?}");
        assert_eq!(w.keeper.pool_stats("main").unwrap().closed, 0);
    });
    w.keeper.check_invariants().unwrap();
}

#[test]
fn cancelled_waiters_leave_the_pool_consistent() {
    let config =
        KeeperConfig::default().configure_all(|d| d.max_connections(1).shared_connections(1));
    let w = world(11, config);
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        let held = w.keeper.get_exclusive("main").await.unwrap();
        for ms in [0u64, 1, 500, 4_999] {
            let deadline = clock.now() + Duration::from_millis(ms);
            let r =
                redis_keeper::seams::timeout_at(&clock, deadline, w.keeper.get_exclusive("main"))
                    .await;
            assert!(r.is_err(), "cancelled at {ms} ms");
            w.keeper.check_invariants().unwrap();
        }
        drop(held);
        let _again = w.keeper.get_exclusive("main").await.unwrap();
        let s = w.keeper.pool_stats("main").unwrap();
        assert_eq!((s.in_use, s.waiters, s.created), (1, 0, 1));
    });
}

fn traced_run(seed: u64) -> u64 {
    let w = world(seed, small());
    w.redis.set_latency(Latency::Uniform {
        min: Duration::from_millis(1),
        max: Duration::from_millis(20),
    });
    w.sim.block_on(async {
        let tasks = (0..8).map(|i| {
            let keeper = w.keeper.clone();
            async move {
                let mut c = keeper.get("main").await.unwrap();
                for j in 0..5 {
                    let _: i64 = c.incr(format!("k{}", (i + j) % 3), 1).await.unwrap();
                }
            }
        });
        futures::future::join_all(tasks).await;
    });
    assert!(w.redis.get(0, b"k0").is_some_and(|v| !v.is_empty()));
    w.sim.trace().hash()
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
    assert_eq!(traced_run(42), traced_run(42));
    assert_ne!(traced_run(42), traced_run(43));
}

#[test]
fn close_stops_everything_and_later_calls_get_closed() {
    let w = world(12, small());
    w.sim.block_on(async {
        let c = w.keeper.get("main").await.unwrap();
        let e = w.keeper.get_exclusive("jobs").await.unwrap();
        drop(e);
        // Background loops (one per database) and the connections' drivers are running.
        assert!(w.sim.tasks() >= 16 + 2, "{} tasks", w.sim.tasks());
        w.keeper.close().await;
        let err = w.keeper.get("main").await.unwrap_err();
        assert!(matches!(err, Error::Closed), "{err}");
        drop(c);
    });
    w.sim.run_until_idle();
    assert_eq!(
        w.sim.tasks(),
        0,
        "close stopped every background task and connection"
    );
    assert_eq!(w.redis.connected_clients(), 0);
}

#[test]
fn shared_handles_spread_commands_over_the_databases_multiplexed_connections() {
    let config =
        KeeperConfig::default().configure_all(|d| d.max_connections(4).shared_connections(2));
    let w = world(14, config);
    w.sim.block_on(async {
        let mut c = w.keeper.get("main").await.unwrap();
        let _second = w.keeper.get("main").await.unwrap(); // fills the other slot
        w.sim.run_until_idle();
        for _ in 0..10 {
            let _: Option<String> = c.get("k").await.unwrap();
        }
    });
    let mut ids: Vec<String> = w
        .sim
        .trace()
        .lines()
        .into_iter()
        .filter(|l| l.ends_with(" GET"))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 10);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2, "commands went over both shared connections");
    let pool = w.keeper.pool_stats("main").unwrap();
    assert_eq!((pool.shared, pool.in_use, pool.created), (2, 0, 2));
}

#[test]
fn a_loading_episode_seen_only_by_health_checks_ends_when_their_ping_succeeds() {
    let w = world(13, small());
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        let mut c = w.keeper.get("main").await.unwrap();
        let _: () = c.set("k", 1).await.unwrap();
        // No command is in flight while the server loads: only the health checks meet LOADING.
        w.redis.set_loading(Duration::from_secs(40));
        clock
            .sleep_until(clock.now() + Duration::from_secs(120))
            .await;
        // Long after loading ended the health checks' PINGs succeed: the episode is over…
        let stats = w.keeper.stats();
        assert_eq!(stats.databases["main"].loading_episodes, 1);
        assert_eq!(
            stats.databases["main"].health,
            Some(redis_keeper::HealthState::Healthy)
        );
        // …and commands run at once (not NotReady from a stale, timed-out episode).
        let t = clock.now();
        let v: i64 = c.get("k").await.unwrap();
        assert_eq!(v, 1);
        assert_eq!(clock.now(), t);
    });
}

#[test]
fn a_broken_shared_connection_stops_counting_against_the_limit_at_the_next_sweep() {
    let config =
        KeeperConfig::default().configure_all(|d| d.max_connections(4).shared_connections(2));
    let w = world(15, config);
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        let mut c = w.keeper.get("main").await.unwrap();
        let _: () = c.set("a", 1).await.unwrap();
        w.redis.kill_all();
        let _ = c.get::<_, Option<i64>>("a").await; // sees the dead connection
        drop(c);
        // The next background round (sweep at 60 s) empties the broken slot.
        clock
            .sleep_until(clock.now() + Duration::from_secs(61))
            .await;
    });
    w.sim.run_until_idle();
    let s = w.keeper.pool_stats("main").unwrap();
    // The dead connection was released (closed), and the slots hold live connections again.
    assert_eq!((s.closed, s.shared, s.created), (1, 2, 3), "{s:?}");
    w.keeper.check_invariants().unwrap();
}

#[test]
fn after_a_readiness_timeout_the_first_reply_makes_the_database_healthy_again() {
    // Found by the swarm (seed 4): once a LOADING episode timed out, commands went through again
    // but nothing told readiness, so health stayed Failed for good; and the first caller after
    // an unpolled deadline got NotReady at once although the server had finished loading.
    let w = world(13, small());
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        let mut c = w.keeper.get("main").await.unwrap();
        let _: () = c.set("k", 1).await.unwrap();
        w.redis.set_loading(Duration::from_secs(600));
        let err = c.get::<_, i64>("k").await.unwrap_err();
        let err = Error::from(err);
        assert!(matches!(err, Error::NotReady { .. }), "{err:?}");
        w.redis.set_loading(Duration::ZERO);
        clock
            .sleep_until(clock.now() + Duration::from_secs(1))
            .await;
        let v: i64 = c.get("k").await.unwrap();
        assert_eq!(v, 1);
    });
    assert_eq!(
        w.keeper.stats().databases["main"].health,
        Some(redis_keeper::HealthState::Healthy)
    );

    // An episode whose deadline passed unpolled is over: the next caller sends its command.
    let w = world(14, small());
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        let mut c = w.keeper.get("main").await.unwrap();
        w.redis.set_loading(Duration::from_secs(30));
        // A pipeline whose every reply is LOADING starts an episode, then times out at 60 s.
        let mut other = w.keeper.get("main").await.unwrap();
        let r = redis_keeper::seams::timeout_at(
            &clock,
            clock.now() + Duration::from_secs(1),
            other.get::<_, Option<i64>>("k"),
        )
        .await;
        assert!(r.is_err(), "cancelled while waiting for readiness");
        clock
            .sleep_until(clock.now() + Duration::from_secs(120))
            .await;
        let v: Option<i64> = c.get("k").await.unwrap();
        assert_eq!(v, None);
    });
}

#[test]
fn a_success_between_two_failures_resets_the_breaker_count() {
    // Threshold 2: two failures in a row open the breaker, a success between them does not.
    // The success lands on a closed breaker with one failure counted, so it must take the
    // locked path (the lock-free one only skips successes that change nothing).
    let config = KeeperConfig::default().configure_all(|d| {
        d.max_connections(3)
            .shared_connections(1)
            .breaker_failure_threshold(2)
    });
    let w = world(16, config);
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        let mut c = w.keeper.get("main").await.unwrap();
        let _: () = c.set("k", 1).await.unwrap();
        for round in 0..2 {
            // No reply for 6 s: the GET times out at 5 s (one failure), its connection with it.
            w.redis.stall(Duration::from_secs(6));
            let t0 = clock.now();
            let err = c.get::<_, Option<i64>>("k").await.unwrap_err();
            assert!(err.is_timeout(), "{err}");
            assert_eq!(clock.now() - t0, Duration::from_secs(5));
            clock.sleep_until(t0 + Duration::from_secs(7)).await;
            // A success on a new connection resets the count.
            let v: Option<i64> = c.get("k").await.unwrap();
            assert_eq!(v, Some(1), "round {round}");
        }
    });
    let s = &w.keeper.stats().databases["main"];
    assert_eq!(s.breaker_trips, 0, "{s:?}");
    assert_eq!(s.failed_operations, 2, "{s:?}");
    assert_eq!(s.health, Some(redis_keeper::HealthState::Healthy), "{s:?}");
}
