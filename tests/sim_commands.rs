//! Every kind of command on the simulator: transactions on exclusive handles, typed errors on the
//! command path, blocking commands and the lifecycle, in virtual time.
#![cfg(all(feature = "sim", any(feature = "tokio", feature = "smol")))]

mod sim_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::AsyncCommands;
use redis_keeper::{Error, KeeperConfig};
use sim_support::{world, World};

fn small() -> KeeperConfig {
    KeeperConfig::default().configure_all(|d| d.max_connections(4).shared_connections(1))
}

#[test]
fn ten_watch_transactions_on_one_exclusive_handle_use_one_connection() {
    let w = world(1, small());
    w.sim.block_on(async {
        let mut ex = w.keeper.get_exclusive("main").await.unwrap();
        for i in 1..=10_i64 {
            let _: () = redis::cmd("WATCH")
                .arg("k")
                .query_async(&mut ex)
                .await
                .unwrap();
            let seen: Option<i64> = ex.get("k").await.unwrap();
            assert_eq!(seen.unwrap_or(0), i - 1);
            let (v,): (i64,) = redis::pipe()
                .atomic()
                .incr("k", 1)
                .query_async(&mut ex)
                .await
                .unwrap();
            assert_eq!(v, i);
        }
        drop(ex);
        // Returned clean: the atomic pipelines' EXECs ended every WATCH.
        let pool = w.keeper.pool_stats("main").unwrap();
        assert_eq!(
            (pool.created, pool.broken_closed, pool.idle),
            (1, 0, 1),
            "{pool:?}"
        );
        let mut again = w.keeper.get_exclusive("main").await.unwrap();
        let v: i64 = again.get("k").await.unwrap();
        assert_eq!(v, 10);
        drop(again);
        assert_eq!(w.keeper.pool_stats("main").unwrap().created, 1);

        // A WATCH still open when the handle is dropped closes the connection.
        let mut ex = w.keeper.get_exclusive("main").await.unwrap();
        let _: () = redis::cmd("WATCH")
            .arg("k")
            .query_async(&mut ex)
            .await
            .unwrap();
        drop(ex);
        let pool = w.keeper.pool_stats("main").unwrap();
        assert_eq!((pool.broken_closed, pool.idle), (1, 0), "{pool:?}");
    });
    assert_eq!(
        w.redis.connections_accepted(),
        1,
        "one connection served all of it"
    );
}

#[test]
fn a_refused_command_comes_back_as_the_keepers_typed_error() {
    let w = world(2, small());
    w.sim.block_on(async {
        let mut shared = w.keeper.get("main").await.unwrap();
        let err = redis::cmd("BLPOP")
            .arg("q")
            .arg(1)
            .query_async::<()>(&mut shared)
            .await
            .unwrap_err();
        assert!(
            matches!(Error::from(err), Error::NeedsExclusive { ref command } if command == "BLPOP")
        );
        // Open the breaker: the server refuses every connect and the existing one dies.
        let _: () = shared.set("k", 1).await.unwrap();
        w.redis.refuse(true);
        w.redis.kill_all();
        let mut tripped = None;
        for _ in 0..50 {
            match shared.get::<_, Option<i64>>("k").await {
                Ok(_) => {}
                Err(e) => {
                    if let Error::CircuitOpen { db, retry_after } = Error::from(e) {
                        tripped = Some((db, retry_after));
                        break;
                    }
                }
            }
        }
        let (db, retry_after) = tripped.expect("the breaker opened");
        assert_eq!(db, "main");
        assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(60));
        let again = shared.get::<_, Option<i64>>("k").await.unwrap_err();
        let again = Error::from(again);
        assert!(again.is_retryable(), "circuit open is retryable: {again:?}");
        assert!(matches!(again, Error::CircuitOpen { .. }));
    });
}

fn blocking_config() -> KeeperConfig {
    KeeperConfig::default().configure_all(|d| {
        d.max_connections(24)
            .shared_connections(1)
            .response_timeout(Duration::from_secs(1))
    })
}

#[test]
fn a_blpop_that_blocks_past_the_response_timeout_returns_nil_as_a_success() {
    let w = world(4, blocking_config());
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        let mut worker = w.keeper.get_exclusive("jobs").await.unwrap();
        let t0 = redis_keeper::seams::Clock::now(&clock);
        let job: Option<(String, String)> = worker.blpop("queue", 3.0).await.unwrap();
        let waited = redis_keeper::seams::Clock::now(&clock) - t0;
        assert_eq!(job, None, "nil at the block timeout");
        assert!(waited >= Duration::from_secs(3), "{waited:?}");
        assert!(waited < Duration::from_secs(4), "{waited:?}");
        // Data pushed while a worker blocks reaches it.
        let mut producer = w.keeper.get("jobs").await.unwrap();
        let _: () = producer.rpush("queue", "job-1").await.unwrap();
        let job: Option<(String, String)> = worker.blpop("queue", 3.0).await.unwrap();
        assert_eq!(job, Some(("queue".into(), "job-1".into())));
    });
    let s = w.keeper.stats().databases["jobs"].clone();
    assert_eq!((s.breaker_trips, s.failed_operations), (0, 0), "{s:?}");
    assert_eq!(
        (s.pool.broken_closed, s.connections_failed),
        (0, 0),
        "{s:?}"
    );
    assert_eq!(s.health, Some(redis_keeper::HealthState::Healthy));
}

#[test]
fn twenty_workers_in_blpop_zero_leave_the_breaker_closed() {
    let w = world(5, blocking_config());
    let results = Arc::new(Mutex::new(Vec::new()));
    for i in 0..20 {
        let keeper = w.keeper.clone();
        let results = results.clone();
        redis_keeper::seams::Spawn::spawn(
            &w.sim.spawner(),
            Box::pin(async move {
                let mut worker = keeper.get_exclusive("jobs").await.unwrap();
                let job: Option<(String, String)> = worker.blpop("queue", 0.0).await.unwrap();
                results.lock().unwrap().push((i, job.map(|(_, v)| v)));
            }),
        );
    }
    // Ten response timeouts pass with every worker blocked; then twenty jobs arrive.
    w.sim.run_for(Duration::from_secs(10));
    assert!(
        results.lock().unwrap().is_empty(),
        "no worker returned early"
    );
    w.sim.block_on(async {
        let mut producer = w.keeper.get("jobs").await.unwrap();
        for j in 0..20 {
            let _: () = producer.rpush("queue", format!("job-{j}")).await.unwrap();
        }
    });
    w.sim.run_for(Duration::from_secs(1));
    let mut got: Vec<String> = results
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, j)| j.clone())
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..20).map(|j| format!("job-{j}")).collect();
    want.sort();
    assert_eq!(got, want, "every job reached exactly one worker");
    let s = w.keeper.stats().databases["jobs"].clone();
    assert_eq!((s.breaker_trips, s.failed_operations), (0, 0), "{s:?}");
    assert_eq!(s.pool.broken_closed, 0, "{s:?}");
}

#[test]
fn a_dropped_blocked_future_closes_its_connection_and_pops_nothing() {
    let w = world(6, blocking_config());
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        let mut worker = w.keeper.get_exclusive("jobs").await.unwrap();
        let deadline = redis_keeper::seams::Clock::now(&clock) + Duration::from_secs(2);
        let gave_up = redis_keeper::seams::timeout_at(
            &clock,
            deadline,
            worker.blpop::<_, Option<(String, String)>>("queue", 0.0),
        )
        .await;
        assert!(gave_up.is_err(), "the caller stopped waiting");
        // A job pushed now must stay in the list: nobody reads the dropped BLPOP's reply.
        let mut producer = w.keeper.get("jobs").await.unwrap();
        let _: () = producer.rpush("queue", "job-1").await.unwrap();
        let len: i64 = producer.llen("queue").await.unwrap();
        assert_eq!(len, 1, "the cancelled BLPOP popped nothing");
        // The handle carries on, on a fresh connection, and gets the job itself.
        let job: Option<(String, String)> = worker.blpop("queue", 1.0).await.unwrap();
        assert_eq!(job, Some(("queue".into(), "job-1".into())));
        let pong: String = redis::cmd("PING").query_async(&mut worker).await.unwrap();
        assert_eq!(pong, "PONG");
    });
    let s = w.keeper.stats().databases["jobs"].clone();
    assert_eq!((s.breaker_trips, s.failed_operations), (0, 0), "{s:?}");
    assert_eq!(
        s.pool.broken_closed, 1,
        "the blocked connection was closed, not re-idled: {s:?}"
    );
}

#[test]
fn a_blocked_command_past_its_block_time_plus_the_response_timeout_fails_as_a_timeout() {
    let w = world(7, blocking_config());
    w.sim.block_on(async {
        let mut worker = w.keeper.get_exclusive("jobs").await.unwrap();
        let _: () = redis::cmd("PING").query_async(&mut worker).await.unwrap();
        w.redis.stall(Duration::from_secs(30));
        let err = worker
            .blpop::<_, Option<(String, String)>>("queue", 2.0)
            .await
            .unwrap_err();
        let err = Error::from(err);
        assert!(err.is_timeout(), "{err:?}");
    });
    let s = w.keeper.stats().databases["jobs"].clone();
    assert_eq!(s.pool.broken_closed, 1, "{s:?}");
}

#[test]
fn a_dropped_keeper_stops_its_background_work_and_closes_idle_connections() {
    let config = KeeperConfig::default().configure_all(|d| {
        d.max_connections(4)
            .shared_connections(1)
            .health_check_interval(Duration::from_secs(30))
    });
    let w = world(8, config);
    w.sim.block_on(async {
        let mut main = w.keeper.get("main").await.unwrap();
        let _: () = main.set("k", 1).await.unwrap();
        drop(w.keeper.get_exclusive("main").await.unwrap());
    });
    w.sim.run_for(Duration::from_secs(65));
    let before = w.redis.commands_processed();
    assert!(before >= 4, "health checks PINGed: {before}");
    assert_eq!(w.redis.connected_clients(), 2);
    let World { sim, redis, keeper } = w;
    // A live handle keeps working after its Keeper is gone, then closes with it.
    let mut held = sim.block_on(keeper.get("main")).unwrap();
    drop(keeper);
    sim.run_for(Duration::from_secs(1));
    let v: i64 = sim.block_on(held.get("k")).unwrap();
    assert_eq!(v, 1);
    let after_use = redis.commands_processed();
    sim.run_for(Duration::from_secs(300));
    assert_eq!(
        redis.commands_processed(),
        after_use,
        "no PING after the drop"
    );
    assert_eq!(
        redis.connected_clients(),
        1,
        "the idle connection closed; the held one lives"
    );
    drop(held);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(
        redis.connected_clients(),
        0,
        "everything closed with the last handle"
    );
}

#[test]
fn close_drains_commands_in_flight_then_closes_every_connection() {
    let w = world(9, small());
    let clock = w.sim.clock().clone();
    let (mut ex, mut shared) = w.sim.block_on(async {
        (
            w.keeper.get_exclusive("main").await.unwrap(),
            w.keeper.get("main").await.unwrap(),
        )
    });
    w.redis
        .set_latency(redis_keeper::sim::Latency::Fixed(Duration::from_millis(
            400,
        )));
    let slow = {
        let mut shared = w.sim.block_on(w.keeper.get("main")).unwrap();
        let done = Arc::new(Mutex::new(None));
        let out = done.clone();
        redis_keeper::seams::Spawn::spawn(
            &w.sim.spawner(),
            Box::pin(async move {
                let r: redis::RedisResult<i64> = shared.incr("n", 1).await;
                *out.lock().unwrap() = Some(r.map_err(Error::from));
            }),
        );
        done
    };
    w.sim.run_for(Duration::from_millis(100));
    let t0 = redis_keeper::seams::Clock::now(&clock);
    w.sim.block_on(w.keeper.close());
    let took = redis_keeper::seams::Clock::now(&clock) - t0;
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(1),
        "{took:?}"
    );
    let slow = slow
        .lock()
        .unwrap()
        .take()
        .expect("finished during the drain");
    assert_eq!(slow.unwrap(), 1, "the command in flight finished");
    w.sim.run_for(Duration::from_millis(10));
    assert_eq!(
        w.redis.connected_clients(),
        0,
        "every connection closed, the lent one too"
    );
    w.sim.block_on(async {
        let e = ex.get::<_, Option<i64>>("n").await.unwrap_err();
        assert!(matches!(Error::from(e), Error::Closed));
        let e = shared.get::<_, Option<i64>>("n").await.unwrap_err();
        assert!(matches!(Error::from(e), Error::Closed));
        assert!(matches!(w.keeper.get("main").await, Err(Error::Closed)));
    });
}

#[test]
fn check_and_sweep_idle_are_one_call_each() {
    let config = KeeperConfig::default().configure_all(|d| {
        d.max_connections(4)
            .shared_connections(1)
            .idle_timeout(Duration::from_secs(10))
    });
    let w = world(10, config);
    w.redis
        .set_latency(redis_keeper::sim::Latency::Fixed(Duration::from_millis(3)));
    w.sim.block_on(async {
        let rtt = w.keeper.check("main").await.unwrap();
        assert!(rtt >= Duration::from_millis(3), "{rtt:?}");
        assert!(matches!(
            w.keeper.check("nope").await,
            Err(Error::UnknownDatabase { .. })
        ));
        drop(w.keeper.get_exclusive("main").await.unwrap());
    });
    assert_eq!(w.keeper.sweep_idle(), 0, "nothing stale yet");
    w.sim.run_for(Duration::from_secs(11));
    assert_eq!(w.keeper.sweep_idle(), 1, "the idle connection went stale");
    assert_eq!(w.keeper.pool_stats("main").unwrap().idle, 0);
}

#[test]
fn a_timeout_names_its_phase_and_a_failed_connect_keeps_its_kind() {
    use redis_keeper::policy::FailureKind;
    use redis_keeper::TimeoutPhase;
    let config = KeeperConfig::default().configure_all(|d| {
        d.max_connections(1)
            .shared_connections(1)
            .retry_attempts(1)
            .connect_timeout(Duration::from_secs(1))
            .pool_wait_timeout(Duration::from_millis(500))
    });
    let w = world(11, config);
    w.sim.block_on(async {
        w.redis.stall(Duration::from_secs(10));
        let e = w.keeper.get_exclusive("main").await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Connect {
                    kind: FailureKind::ConnectTimeout,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.timeout_phase(), Some(TimeoutPhase::Connect));
        assert_eq!(e.failure_kind(), Some(FailureKind::ConnectTimeout));
        w.redis.heal();
        let held = w.keeper.get_exclusive("main").await.unwrap();
        let e = w.keeper.get_exclusive("main").await.unwrap_err();
        assert_eq!(e.timeout_phase(), Some(TimeoutPhase::PoolWait), "{e:?}");
        drop(held);
    });
}

#[test]
fn connections_of_an_older_backend_epoch_are_never_handed_out_or_re_idled() {
    let w = world(12, small());
    w.sim.block_on(async {
        let mut shared = w.keeper.get("main").await.unwrap();
        let _: () = shared.set("k", 1).await.unwrap();
        let mut lent = w.keeper.get_exclusive("main").await.unwrap();
        drop(w.keeper.get_exclusive("main").await.unwrap()); // one idle connection
        let before = w.keeper.pool_stats("main").unwrap();
        assert_eq!((before.created, before.idle), (3, 1), "{before:?}");
        assert_eq!(w.keeper.rebind("main").unwrap(), 1);
        // The shared handle moves to a new connection; the idle one is not handed out.
        let v: i64 = shared.get("k").await.unwrap();
        assert_eq!(v, 1);
        let mut fresh = w.keeper.get_exclusive("main").await.unwrap();
        let _: () = redis::cmd("PING").query_async(&mut fresh).await.unwrap();
        // The lent one still works for its holder, over a connection of the new epoch (no
        // command goes to the old backend); the old one is closed, never re-idled.
        let v: i64 = lent.get("k").await.unwrap();
        assert_eq!(v, 1);
        drop(lent);
        drop(fresh);
        let after = w.keeper.pool_stats("main").unwrap();
        assert_eq!(
            after.created, 6,
            "a new shared connection and two new exclusive ones: {after:?}"
        );
        assert_eq!(
            after.idle, 2,
            "only the new epoch's connections are idle: {after:?}"
        );
    });
    w.sim.run_for(Duration::from_secs(61)); // a sweep drops the broken shared one
    assert_eq!(
        w.redis.connected_clients(),
        3,
        "the new shared and the two idle ones"
    );
}
