//! The blocking API on the simulator: blocking callers run on threads started by
//! `Sim::spawn_blocking`; the test thread drives virtual time, which moves only while every such
//! thread is parked, so deadlines are exact.
#![cfg(all(feature = "sim", any(feature = "tokio", feature = "smol")))]

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Commands;
use redis_keeper::seams::{block_with, BoxStream, Clock, Endpoint, TcpOptions, Transport};
use redis_keeper::sim::{Sim, SimBlock, SimClock, SimRedis};
use redis_keeper::{Error, HealthState, Keeper, KeeperConfig};

struct World {
    sim: Sim,
    redis: SimRedis,
    keeper: Keeper,
}

fn world_with(
    seed: u64,
    config: KeeperConfig,
    wrap: impl FnOnce(SimRedis) -> Arc<dyn Transport>,
) -> World {
    let sim = Sim::new(seed);
    let redis = sim.redis();
    let keeper = sim
        .keeper_builder(config, wrap(redis.clone()))
        .build()
        .expect("valid config");
    World { sim, redis, keeper }
}

fn world(seed: u64, config: KeeperConfig) -> World {
    world_with(seed, config, |redis| Arc::new(redis.transport()))
}

fn pool(max: u32) -> KeeperConfig {
    KeeperConfig::default().configure_all(|d| d.max_connections(max).shared_connections(1))
}

/// Sleeps `secs` of virtual time on a blocking thread.
fn sleep(blocker: &SimBlock, clock: &SimClock, secs: f64) {
    let until = clock.now() + Duration::from_secs_f64(secs);
    block_with(blocker, clock.sleep_until(until)).expect("not inside the sim executor");
}

#[test]
fn commands_pipelines_and_transactions_work_through_redis_commands() {
    let w = world(1, pool(3));
    let keeper = w.keeper.clone();
    w.sim.run_blocking(move || {
        let mut c = keeper.get_blocking("main").unwrap();
        assert!(c.is_exclusive());
        assert_eq!(redis::ConnectionLike::get_db(&c), 0);
        let _: () = c.set("k", "v").unwrap();
        let v: String = c.get("k").unwrap();
        assert_eq!(v, "v");
        assert_eq!(c.incr::<_, _, i64>("n", 5).unwrap(), 5);
        assert!(redis::ConnectionLike::check_connection(&mut c));
        assert!(redis::ConnectionLike::is_open(&c));
        // A pipeline and an atomic one through the sync Pipeline::query.
        let (a, b): (i64, i64) = redis::pipe()
            .incr("n", 1)
            .incr("n", 1)
            .query(&mut c)
            .unwrap();
        assert_eq!((a, b), (6, 7));
        let (t,): (i64,) = redis::pipe().atomic().incr("t", 7).query(&mut c).unwrap();
        assert_eq!(t, 7);
        // WATCH/MULTI/EXEC by hand: fine on an exclusive connection.
        let _: () = redis::cmd("WATCH").arg("t").query(&mut c).unwrap();
        let _: () = redis::cmd("MULTI").query(&mut c).unwrap();
        let _: () = redis::cmd("INCR").arg("t").query(&mut c).unwrap();
        let (t,): (i64,) = redis::cmd("EXEC").query(&mut c).unwrap();
        assert_eq!(t, 8);
        // Raw packed bytes are read back; garbage is refused, not sent.
        let pong =
            redis::ConnectionLike::req_packed_command(&mut c, b"*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(pong, redis::Value::SimpleString("PONG".into()));
        let err = redis::ConnectionLike::req_packed_command(&mut c, b"PING\r\n").unwrap_err();
        assert_eq!(err.kind(), redis::ErrorKind::Client, "{err}");
        drop(c);

        let (x, y): (i64, i64) = keeper
            .pipeline_blocking("knowledge", |p| {
                p.incr("x", 1).incr("x", 1);
            })
            .unwrap();
        assert_eq!((x, y), (1, 2));
        // A shared blocking handle refuses state-changing commands, accepts atomic pipelines.
        let mut shared = keeper.get_blocking_shared("audit").unwrap();
        let err = redis::cmd("MULTI").query::<()>(&mut shared).unwrap_err();
        assert!(matches!(
            redis_keeper::Error::from(err),
            redis_keeper::Error::NeedsExclusive { .. }
        ));
        let (z,): (i64,) = redis::pipe()
            .atomic()
            .incr("z", 3)
            .query(&mut shared)
            .unwrap();
        assert_eq!(z, 3);
    });
    assert_eq!(w.redis.get(0, b"k").as_deref(), Some(&b"v"[..]));
    assert_eq!(w.redis.get(0, b"t").as_deref(), Some(&b"8"[..]));
    assert_eq!(w.redis.get(1, b"x").as_deref(), Some(&b"2"[..]));
    assert_eq!(w.redis.get(10, b"z").as_deref(), Some(&b"3"[..]));
    let stats = w.keeper.stats();
    assert!(
        stats.databases["main"].successful_operations >= 8,
        "{stats:?}"
    );
    w.keeper.check_invariants().unwrap();
}

#[test]
fn blocking_inside_the_sim_executor_is_refused_not_deadlocked() {
    let w = world(2, pool(3));
    let err = w
        .sim
        .block_on(async { w.keeper.get_blocking("main") })
        .unwrap_err();
    assert!(matches!(err, Error::BlockingInAsync), "{err}");
    let err = w
        .sim
        .block_on(async {
            w.keeper.pipeline_blocking::<(), _>("main", |p| {
                p.ping();
            })
        })
        .unwrap_err();
    assert!(matches!(err, Error::BlockingInAsync), "{err}");
    assert_eq!(w.redis.connections_accepted(), 0);
}

#[test]
fn contending_threads_time_out_exactly_at_the_pool_deadline() {
    let w = world(3, pool(2));
    let (clock, blocker) = (w.sim.clock().clone(), w.sim.blocker());
    let held = Arc::new(AtomicBool::new(false));
    let holder = {
        let (keeper, clock, blocker, held) = (
            w.keeper.clone(),
            clock.clone(),
            blocker.clone(),
            held.clone(),
        );
        w.sim.spawn_blocking(move || {
            let a = keeper.get_blocking("main").unwrap();
            let b = keeper.get_blocking("main").unwrap();
            held.store(true, Ordering::SeqCst);
            sleep(&blocker, &clock, 10.0);
            drop((a, b));
        })
    };
    w.sim.drive_until(|| held.load(Ordering::SeqCst));
    let t0 = clock.now();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let (keeper, clock) = (w.keeper.clone(), clock.clone());
            w.sim.spawn_blocking(move || {
                let err = keeper.get_blocking("main").unwrap_err();
                (err, clock.now())
            })
        })
        .collect();
    w.sim
        .drive_until(|| waiters.iter().all(|t| t.is_finished()));
    for waiter in waiters {
        let (err, at) = waiter.join();
        match err {
            Error::PoolTimeout { waited, .. } => assert_eq!(waited, Duration::from_secs(5)),
            other => panic!("expected PoolTimeout, got {other}"),
        }
        assert_eq!(
            at - t0,
            Duration::from_secs(5),
            "timed out exactly at the deadline"
        );
    }
    let stats = w.keeper.pool_stats("main").unwrap();
    assert_eq!((stats.in_use, stats.waiters, stats.timeouts), (2, 0, 4));
    // A waiter whose connection comes back before its deadline gets it, at that instant.
    let late = {
        let (keeper, clock) = (w.keeper.clone(), clock.clone());
        w.sim.spawn_blocking(move || {
            let _c = keeper.get_blocking("main").unwrap();
            clock.now()
        })
    };
    w.sim
        .drive_until(|| late.is_finished() && holder.is_finished());
    assert_eq!(late.join() - t0, Duration::from_secs(10));
    holder.join();
    assert_eq!(w.keeper.pool_stats("main").unwrap().created, 2);
    w.keeper.check_invariants().unwrap();
}

#[test]
fn many_threads_share_a_small_pool_and_no_connection_is_lent_twice() {
    let w = world(4, pool(3));
    let in_use: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let seen: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (keeper, clock, blocker) =
                (w.keeper.clone(), w.sim.clock().clone(), w.sim.blocker());
            let (in_use, seen) = (in_use.clone(), seen.clone());
            w.sim.spawn_blocking(move || {
                for _ in 0..5 {
                    let mut c = keeper.get_blocking("main").unwrap();
                    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut c).unwrap();
                    assert!(
                        in_use.lock().unwrap().insert(id),
                        "connection {id} lent twice"
                    );
                    seen.lock().unwrap().insert(id);
                    let _: i64 = c.incr("counter", 1).unwrap();
                    sleep(&blocker, &clock, 0.1);
                    assert!(in_use.lock().unwrap().remove(&id));
                }
            })
        })
        .collect();
    w.sim
        .drive_until(|| threads.iter().all(|t| t.is_finished()));
    threads.into_iter().for_each(|t| t.join());
    assert_eq!(w.redis.get(0, b"counter").as_deref(), Some(&b"40"[..]));
    let stats = w.keeper.pool_stats("main").unwrap();
    assert!(seen.lock().unwrap().len() <= 3, "{seen:?}");
    assert_eq!(
        (stats.created, stats.in_use, stats.timeouts),
        (3, 0, 0),
        "{stats:?}"
    );
    w.keeper.check_invariants().unwrap();
}

#[test]
fn a_blocking_caller_rides_out_a_40_second_loading() {
    let w = world(5, pool(3));
    w.redis.set_loading(Duration::from_secs(40));
    let (keeper, clock) = (w.keeper.clone(), w.sim.clock().clone());
    let t0 = clock.now();
    let at = w.sim.run_blocking(move || {
        let mut c = keeper.get_blocking("main").unwrap();
        let _: () = c.set("after", 1).unwrap();
        clock.now()
    });
    assert_eq!(
        at - t0,
        Duration::from_secs(40),
        "ready exactly when loading ends"
    );
    let stats = w.keeper.stats();
    assert_eq!(stats.databases["main"].loading_episodes, 1);
    assert_eq!(stats.databases["main"].breaker_trips, 0);
}

#[test]
fn a_reply_that_timed_out_is_never_read_by_the_next_user() {
    let w = world(6, pool(3));
    let (keeper, clock, redis) = (w.keeper.clone(), w.sim.clock().clone(), w.redis.clone());
    let blocker = w.sim.blocker();
    w.sim.run_blocking(move || {
        let mut c = keeper.get_blocking("main").unwrap();
        let _: () = c.set("a", "old").unwrap();
        let _: () = c.set("b", "new").unwrap();
        // The server holds replies for 8 s: GET a times out at 5 s (clock-owned timeout).
        redis.stall(Duration::from_secs(8));
        let t0 = clock.now();
        let err = c.get::<_, String>("a").unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert_eq!(clock.now() - t0, Duration::from_secs(5));
        assert!(
            !redis::ConnectionLike::is_open(&c),
            "a timed-out connection is poisoned"
        );
        drop(c);
        // Past the stall: the late "old" reply must not answer this GET b.
        sleep(&blocker, &clock, 4.0);
        let mut c = keeper.get_blocking("main").unwrap();
        let b: String = c.get("b").unwrap();
        assert_eq!(b, "new");
    });
    let stats = w.keeper.pool_stats("main").unwrap();
    assert_eq!(
        stats.created, 2,
        "the poisoned connection was closed, not re-pooled"
    );
    assert_eq!(w.keeper.stats().databases["main"].failed_operations, 1);
    w.keeper.check_invariants().unwrap();
}

#[test]
fn the_breaker_is_shared_with_async_callers_of_the_same_database() {
    let w = world(7, pool(3));
    let clock = w.sim.clock().clone();
    // Async callers trip it (five failed attempts, 30 s of retry waits).
    w.redis.refuse(true);
    let err = w.sim.block_on(w.keeper.get("main")).unwrap_err();
    assert!(matches!(err, Error::Connect { attempts: 5, .. }), "{err}");
    let t1 = clock.now();
    // A blocking caller is rejected at once by the same breaker.
    let keeper = w.keeper.clone();
    let err = w
        .sim
        .run_blocking(move || keeper.get_blocking("main").unwrap_err());
    match err {
        Error::CircuitOpen { retry_after, .. } => assert_eq!(retry_after, Duration::from_secs(60)),
        other => panic!("expected CircuitOpen, got {other}"),
    }
    assert_eq!(clock.now(), t1);
    let accepted = w.redis.connections_accepted();
    // Healed and past the open period, a blocking caller is the single probe and closes it …
    w.redis.refuse(false);
    w.sim.run_for(Duration::from_secs(60));
    let keeper = w.keeper.clone();
    w.sim.run_blocking(move || {
        let mut c = keeper.get_blocking("main").unwrap();
        let _: () = c.set("k", 1).unwrap();
    });
    // … for the async callers too.
    let v: i64 = w.sim.block_on(async {
        let mut c = w.keeper.get("main").await.unwrap();
        redis::AsyncCommands::get(&mut c, "k").await.unwrap()
    });
    assert_eq!(v, 1);
    assert!(w.redis.connections_accepted() > accepted);
    let stats = &w.keeper.stats().databases["main"];
    assert_eq!(stats.breaker_trips, 1, "one breaker, one set of stats");
    assert!(stats.rejected_while_open >= 1, "{stats:?}");
    assert_eq!(w.keeper.health_blocking_on(&w.sim), HealthState::Healthy);
}

/// Blocking failures trip the breaker for async callers, too.
#[test]
fn blocking_failures_open_the_breaker_for_async_callers() {
    let w = world(8, pool(3));
    w.redis.refuse(true);
    let (keeper, clock) = (w.keeper.clone(), w.sim.clock().clone());
    let t0 = clock.now();
    let (err, at) = w
        .sim
        .run_blocking(move || (keeper.get_blocking("main").unwrap_err(), clock.now()));
    // Attempts at 0, 2, 6, 14 and 30 s. At 30 s the background health check (tasks take their
    // turn before blocking threads) makes the fifth failed attempt and opens the breaker, so the
    // blocking caller's fifth attempt is refused by it: the same run gives this every time.
    assert!(matches!(err, Error::CircuitOpen { .. }), "{err}");
    assert_eq!(at - t0, Duration::from_secs(30));
    let err = w.sim.block_on(w.keeper.get("main")).unwrap_err();
    assert!(matches!(err, Error::CircuitOpen { .. }), "{err}");
    assert_eq!(w.keeper.stats().databases["main"].breaker_trips, 1);
}

/// A transport that records the socket options of every connection it opens.
#[derive(Debug)]
struct Recording {
    inner: redis_keeper::sim::SimTransport,
    seen: Arc<Mutex<Vec<TcpOptions>>>,
}

#[async_trait::async_trait]
impl Transport for Recording {
    async fn connect(&self, endpoint: &Endpoint, options: &TcpOptions) -> io::Result<BoxStream> {
        self.seen.lock().unwrap().push(*options);
        self.inner.connect(endpoint, options).await
    }
}

#[test]
fn blocking_connections_ask_for_keepalive_and_nodelay() {
    let seen: Arc<Mutex<Vec<TcpOptions>>> = Arc::default();
    let s = seen.clone();
    let w = world_with(9, pool(3), move |redis| {
        Arc::new(Recording {
            inner: redis.transport(),
            seen: s,
        })
    });
    let keeper = w.keeper.clone();
    w.sim.run_blocking(move || {
        let _a = keeper.get_blocking("main").unwrap();
        let _b = keeper.get_blocking_shared("main").unwrap();
    });
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|o| *o == TcpOptions::default()), "{seen:?}");
}

#[test]
fn background_sweeps_run_while_threads_block() {
    let w = world(10, pool(3));
    let (keeper, clock, blocker) = (w.keeper.clone(), w.sim.clock().clone(), w.sim.blocker());
    w.sim.run_blocking(move || {
        let _shared = keeper.get_blocking_shared("main").unwrap();
        drop((
            keeper.get_blocking("main").unwrap(),
            keeper.get_blocking("main").unwrap(),
        ));
        assert_eq!(keeper.pool_stats("main").unwrap().idle, 2);
        sleep(&blocker, &clock, 359.0);
        assert_eq!(keeper.pool_stats("main").unwrap().idle, 2);
        sleep(&blocker, &clock, 1.0);
    });
    w.sim.run_until_idle();
    let stats = w.keeper.pool_stats("main").unwrap();
    assert_eq!((stats.idle, stats.stale_closed), (0, 2), "{stats:?}");
}

trait HealthOn {
    fn health_blocking_on(&self, sim: &Sim) -> HealthState;
}

impl HealthOn for Keeper {
    fn health_blocking_on(&self, sim: &Sim) -> HealthState {
        let keeper = self.clone();
        sim.run_blocking(move || keeper.health_blocking().unwrap().databases["main"])
    }
}

fn traced_run(seed: u64) -> u64 {
    let w = world(seed, pool(3));
    w.redis.set_latency(redis_keeper::sim::Latency::Uniform {
        min: Duration::from_millis(1),
        max: Duration::from_millis(20),
    });
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let keeper = w.keeper.clone();
            w.sim.spawn_blocking(move || {
                for j in 0..4 {
                    let mut c = keeper.get_blocking("main").unwrap();
                    let _: i64 = c.incr(format!("k{}", (i + j) % 3), 1).unwrap();
                }
            })
        })
        .collect();
    w.sim
        .drive_until(|| threads.iter().all(|t| t.is_finished()));
    threads.into_iter().for_each(|t| t.join());
    w.keeper.check_invariants().unwrap();
    w.sim.trace().hash()
}

#[test]
fn blocking_threads_take_turns_so_the_same_seed_gives_the_same_trace() {
    let first = traced_run(42);
    for _ in 0..3 {
        assert_eq!(traced_run(42), first);
    }
    assert_ne!(traced_run(43), first);
}
