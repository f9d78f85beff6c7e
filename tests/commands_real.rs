//! Every kind of command against a real `redis-server` (each test starts its own on a free
//! loopback port), under tokio and under smol: blocking pops with their own deadlines, a
//! cancelled blocked command, WATCH transactions, subscribers through `CLIENT KILL` and a
//! restart, and a dropped Keeper going quiet. The same behaviours as `sim_commands.rs` and
//! `sim_subscriber.rs`, on the real thing.
//!
//! Needs `redis-server` on the PATH (`scripts/test.sh` installs it).
#![cfg(all(feature = "tokio", feature = "smol"))]

#[macro_use]
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use redis::AsyncCommands;
use redis_keeper::seams::{timeout_at, Runtime};
use redis_keeper::{Error, HealthState, Keeper, KeeperConfig, Subscriber};
use support::harness::{bounded, config_for, eventually, keeper, sleep};
use support::redis_server::{RedisServer, ServerOptions};

/// The harness's config with a 1 s response timeout and room for twenty workers.
fn workers_config(server: &RedisServer) -> KeeperConfig {
    config_for(server).configure_all(|d| {
        d.max_connections(24)
            .response_timeout(Duration::from_secs(1))
    })
}

fn assert_untouched(keeper: &Keeper, db: &str) {
    let s = &keeper.stats().databases[db];
    assert_eq!(
        (s.breaker_trips, s.failed_operations, s.pool.broken_closed),
        (0, 0, 0),
        "{s:?}"
    );
    assert_eq!(s.health, Some(HealthState::Healthy));
}

async fn blpop_past_the_response_timeout(rt: Runtime) {
    let server = RedisServer::start(ServerOptions::new());
    let keeper = keeper(&rt, workers_config(&server));
    let mut worker = bounded(&rt, "get_exclusive", keeper.get_exclusive("jobs"))
        .await
        .unwrap();
    let t0 = Instant::now();
    let job: Option<(String, String)> = bounded(&rt, "blpop", worker.blpop("queue", 3.0))
        .await
        .unwrap();
    let waited = t0.elapsed();
    assert_eq!(job, None, "nil at the block timeout is a success");
    assert!(waited >= Duration::from_millis(2900), "{waited:?}");
    drop(worker);
    assert_untouched(&keeper, "jobs");
    keeper.close().await;
}

async fn twenty_workers_in_blpop_zero(rt: Runtime) {
    let server = RedisServer::start(ServerOptions::new());
    let keeper = keeper(&rt, workers_config(&server));
    let done = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..20 {
        let keeper = keeper.clone();
        let done = done.clone();
        rt.spawner().spawn(Box::pin(async move {
            let mut worker = keeper.get_exclusive("jobs").await.unwrap();
            let job: Option<(String, String)> = worker.blpop("queue", 0.0).await.unwrap();
            done.lock().unwrap().push(job.map(|(_, v)| v));
        }));
    }
    eventually(
        &rt,
        Duration::from_secs(10),
        "twenty workers blocked",
        || async {
            let blocked = server.info_u64("blocked_clients");
            (blocked == 20).then_some(())
        },
    )
    .await;
    // Twice the response timeout with every worker blocked.
    sleep(&rt, Duration::from_secs(2)).await;
    assert!(done.lock().unwrap().is_empty());
    assert_eq!(keeper.stats().databases["jobs"].breaker_trips, 0);
    let mut producer = keeper.get("jobs").await.unwrap();
    for j in 0..20 {
        let _: () = producer.rpush("queue", format!("job-{j}")).await.unwrap();
    }
    let mut got = eventually(&rt, Duration::from_secs(10), "every job taken", || async {
        let d = done.lock().unwrap();
        (d.len() == 20).then(|| d.iter().flatten().cloned().collect::<Vec<_>>())
    })
    .await;
    got.sort();
    let mut want: Vec<String> = (0..20).map(|j| format!("job-{j}")).collect();
    want.sort();
    assert_eq!(got, want, "each job reached exactly one worker");
    assert_untouched(&keeper, "jobs");
    keeper.close().await;
}

async fn a_dropped_blocked_future_leaves_no_stale_reply(rt: Runtime) {
    let server = RedisServer::start(ServerOptions::new());
    let keeper = keeper(&rt, workers_config(&server));
    let mut worker = bounded(&rt, "get_exclusive", keeper.get_exclusive("jobs"))
        .await
        .unwrap();
    let _: () = worker.set("k", "value").await.unwrap();
    let clock = rt.clock().clone();
    let gave_up = timeout_at(
        &*clock,
        clock.now() + Duration::from_millis(500),
        worker.blpop::<_, Option<(String, String)>>("queue", 0.0),
    )
    .await;
    assert!(gave_up.is_err());
    eventually(
        &rt,
        Duration::from_secs(5),
        "the blocked client is gone",
        || async { (server.info_u64("blocked_clients") == 0).then_some(()) },
    )
    .await;
    // `jobs` is db 12.
    let mut direct = server.connection_to(12);
    let _: i64 = redis::cmd("RPUSH")
        .arg("queue")
        .arg("job-1")
        .query(&mut direct)
        .unwrap();
    sleep(&rt, Duration::from_millis(100)).await;
    let len: i64 = redis::cmd("LLEN").arg("queue").query(&mut direct).unwrap();
    assert_eq!(len, 1, "nobody popped for the cancelled BLPOP");
    // Same handle: the next reply is its own, not the job.
    let v: String = bounded(&rt, "get", worker.get("k")).await.unwrap();
    assert_eq!(v, "value");
    let job: Option<(String, String)> = bounded(&rt, "blpop", worker.blpop("queue", 1.0))
        .await
        .unwrap();
    assert_eq!(job, Some(("queue".into(), "job-1".into())));
    assert_eq!(keeper.stats().databases["jobs"].breaker_trips, 0);
    keeper.close().await;
}

async fn watch_transactions_reuse_one_connection(rt: Runtime) {
    let server = RedisServer::start(ServerOptions::new());
    let keeper = keeper(&rt, config_for(&server));
    let mut ex = bounded(&rt, "get_exclusive", keeper.get_exclusive("main"))
        .await
        .unwrap();
    for i in 1..=10_i64 {
        let _: () = redis::cmd("WATCH")
            .arg("k")
            .query_async(&mut ex)
            .await
            .unwrap();
        let (v,): (i64,) = redis::pipe()
            .atomic()
            .incr("k", 1)
            .query_async(&mut ex)
            .await
            .unwrap();
        assert_eq!(v, i);
    }
    drop(ex);
    let pool = keeper.pool_stats("main").unwrap();
    assert_eq!(
        (pool.created, pool.broken_closed, pool.idle),
        (1, 0, 1),
        "{pool:?}"
    );
    assert_eq!(server.get_in_db(0, "k").as_deref(), Some("10"));
    keeper.close().await;
}

async fn publish(keeper: &Keeper, channel: &str, payload: &str) -> i64 {
    let mut conn = keeper.get("notifications").await.unwrap();
    conn.publish(channel, payload).await.unwrap()
}

/// Publishes `n` messages and checks they all arrive, in order.
async fn round_trip(rt: &Runtime, keeper: &Keeper, sub: &mut Subscriber, tag: &str, n: usize) {
    for i in 0..n {
        assert_eq!(publish(keeper, "orders", &format!("{tag}-{i}")).await, 1);
    }
    for i in 0..n {
        let msg = bounded(rt, "next message", sub.next())
            .await
            .expect("a message");
        assert_eq!(msg.get_payload::<String>().unwrap(), format!("{tag}-{i}"));
    }
}

async fn subscriber_through_client_kill_and_restart(rt: Runtime) {
    let mut server = RedisServer::start(ServerOptions::new());
    let keeper = keeper(&rt, config_for(&server));
    let mut sub = bounded(&rt, "subscriber", keeper.subscriber("notifications"))
        .await
        .unwrap();
    bounded(&rt, "subscribe", sub.subscribe("orders"))
        .await
        .unwrap();
    round_trip(&rt, &keeper, &mut sub, "first", 1000).await;

    let killed: i64 = server.query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub"));
    assert_eq!(killed, 1);
    eventually(
        &rt,
        Duration::from_secs(10),
        "resubscribed after the kill",
        || async { (sub.resubscriptions() == 1).then_some(()) },
    )
    .await;
    round_trip(&rt, &keeper, &mut sub, "after-kill", 100).await;

    server.restart();
    eventually(
        &rt,
        Duration::from_secs(15),
        "resubscribed after the restart",
        || async { (sub.resubscriptions() == 2).then_some(()) },
    )
    .await;
    round_trip(&rt, &keeper, &mut sub, "after-restart", 100).await;
    assert_eq!(sub.resubscriptions(), 2, "one resubscription per reconnect");
    assert_eq!(sub.dropped(), 0);
    keeper.close().await;
    assert!(bounded(&rt, "end of stream", sub.next()).await.is_none());
}

/// `cmdstat_ping`'s `calls=` in `INFO commandstats`.
fn ping_calls(server: &RedisServer) -> u64 {
    let info: String = server.query(redis::cmd("INFO").arg("commandstats"));
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("calls"))
}

async fn a_dropped_keeper_goes_quiet(rt: Runtime) {
    let server = RedisServer::start(ServerOptions::new());
    let config =
        config_for(&server).configure_all(|d| d.health_check_interval(Duration::from_millis(200)));
    let keeper = keeper(&rt, config);
    {
        let mut main = bounded(&rt, "get", keeper.get("main")).await.unwrap();
        let _: () = main.set("k", 1).await.unwrap();
        drop(
            bounded(&rt, "get_exclusive", keeper.get_exclusive("main"))
                .await
                .unwrap(),
        );
    }
    let first = ping_calls(&server);
    eventually(
        &rt,
        Duration::from_secs(5),
        "health checks PING",
        || async { (ping_calls(&server) > first).then_some(()) },
    )
    .await;
    assert!(!server.client_dbs().is_empty());
    drop(keeper);
    eventually(
        &rt,
        Duration::from_secs(5),
        "its connections closed",
        || async { server.client_dbs().is_empty().then_some(()) },
    )
    .await;
    let after = ping_calls(&server);
    sleep(&rt, Duration::from_secs(1)).await;
    assert_eq!(
        ping_calls(&server),
        after,
        "no PING after the drop (5 intervals)"
    );
}

on_both_runtimes! {
    blpop_past_the_response_timeout,
    twenty_workers_in_blpop_zero,
    a_dropped_blocked_future_leaves_no_stale_reply,
    watch_transactions_reuse_one_connection,
    subscriber_through_client_kill_and_restart,
    a_dropped_keeper_goes_quiet,
}

// ---------------------------------------------------------------------------------------------
// The blocking API (no runtime in the caller).

#[test]
fn blocking_blpop_and_subscriber() {
    use redis::Commands;
    let server = RedisServer::start(ServerOptions::new());
    let keeper = Keeper::builder(workers_config(&server))
        .env(std::collections::HashMap::<String, String>::new())
        .build()
        .unwrap();
    let mut worker = keeper.get_blocking("jobs").unwrap();
    let t0 = Instant::now();
    let job: Option<(String, String)> = worker.blpop("queue", 2.0).unwrap();
    assert_eq!(job, None);
    assert!(t0.elapsed() >= Duration::from_millis(1900));
    drop(worker);
    assert_untouched(&keeper, "jobs");

    let mut sub = keeper.subscriber_blocking("notifications").unwrap();
    sub.subscribe("orders").unwrap();
    assert!(sub
        .next_message(Duration::from_millis(200))
        .unwrap()
        .is_none());
    let mut conn = keeper.get_blocking_shared("notifications").unwrap();
    for i in 0..100 {
        let n: i64 = conn.publish("orders", format!("o-{i}")).unwrap();
        assert_eq!(n, 1);
    }
    for i in 0..100 {
        let msg = sub
            .next_message(Duration::from_secs(5))
            .unwrap()
            .expect("a message");
        assert_eq!(msg.get_payload::<String>().unwrap(), format!("o-{i}"));
    }
    let e = redis::cmd("SUBSCRIBE")
        .arg("x")
        .query::<()>(&mut conn)
        .unwrap_err();
    assert!(matches!(Error::from(e), Error::NeedsSubscriber { .. }));
    keeper.close_blocking();
    assert!(matches!(
        sub.next_message(Duration::from_secs(1)),
        Err(Error::Closed)
    ));
}
