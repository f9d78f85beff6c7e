//! The Keeper against a real `redis-server` (each test starts its own on a free loopback port and
//! kills it at the end), every scenario under tokio and under smol: named databases checked
//! server-side, a restart mid-traffic, a real `LOADING`, `CLIENT KILL`, a black hole (SIGSTOP,
//! SIGCONT) and a wrong password. The same behaviours as `sim_keeper.rs`, on the real thing.
//!
//! Needs `redis-server` on the PATH (`scripts/test.sh` installs it).
#![cfg(all(feature = "tokio", feature = "smol"))]

#[macro_use]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_keeper::seams::Runtime;
use redis_keeper::{Error, HealthState};
use support::harness::{
    assert_typed_command_error, assert_typed_get_error, bounded, bounded_or_explain, config_for,
    eventually, keeper, on_thread, sleep, MAX_CONNECTIONS,
};
use support::redis_server::{RedisServer, ServerOptions};

// ---------------------------------------------------------------------------------------------
// Named databases: every name lands on its db number, checked server-side.

async fn named_databases(rt: Runtime) {
    let server = RedisServer::start(ServerOptions::new());
    let config = config_for(&server).database("reports", 9);
    let keeper = keeper(&rt, config);
    let names = [
        ("main", 0u8),
        ("knowledge", 1),
        ("reports", 9),
        ("audit", 10),
        ("graph", 15),
    ];
    for (name, db) in names {
        let mut c = bounded(&rt, "get", keeper.get(name)).await.unwrap();
        assert_eq!(c.db_number(), db);
        let _: () = c.set("where", name).await.unwrap();
    }
    let (a, b): (i64, i64) = keeper
        .pipeline("sessions", |p| {
            p.incr("n", 1).incr("n", 2);
        })
        .await
        .unwrap();
    assert_eq!((a, b), (1, 3));
    {
        let mut ex = bounded(&rt, "get_exclusive", keeper.get_exclusive("jobs"))
            .await
            .unwrap();
        let _: () = redis::cmd("MULTI").query_async(&mut ex).await.unwrap();
        let _: () = redis::cmd("INCRBY")
            .arg("t")
            .arg(7)
            .query_async(&mut ex)
            .await
            .unwrap();
        let (t,): (i64,) = redis::cmd("EXEC").query_async(&mut ex).await.unwrap();
        assert_eq!(t, 7);
        let (u,): (i64,) = redis::pipe()
            .atomic()
            .incr("t", 1)
            .query_async(&mut ex)
            .await
            .unwrap();
        assert_eq!(u, 8);
    }
    // Server-side: each value sits in its own keyspace, nothing leaked into db 0.
    for (name, db) in names {
        assert_eq!(server.get_in_db(db, "where").as_deref(), Some(name), "{db}");
    }
    assert_eq!(server.get_in_db(5, "n").as_deref(), Some("3"));
    assert_eq!(server.get_in_db(12, "t").as_deref(), Some("8"));
    assert_eq!(server.get_in_db(0, "n"), None);
    assert_eq!(server.get_in_db(0, "t"), None);
    // The Keeper's own connections sit on the right databases.
    let dbs = server.client_dbs();
    for db in [0, 1, 5, 9, 10, 15] {
        assert!(
            dbs.contains(&db),
            "no keeper connection on db {db}: {dbs:?}"
        );
    }
    let stats = keeper.stats();
    assert!(stats.successful_operations >= 10, "{stats:?}");
    assert_eq!(stats.failed_operations, 0, "{stats:?}");
    keeper.check_invariants().unwrap();
    keeper.close().await;
}

// ---------------------------------------------------------------------------------------------
// Restart on the same port while several tasks INCR a counter; the port stays closed for 400 ms,
// long enough for the connect retries and the breaker (threshold 5, open 500 ms) to play a part.

async fn restart_mid_traffic(rt: Runtime) {
    const WORKERS: usize = 6;
    let server = Arc::new(Mutex::new(RedisServer::start(ServerOptions::new())));
    let config = config_for(&server.lock().unwrap());
    let keeper = keeper(&rt, config);
    let restarted = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let ok_before = AtomicU64::new(0);
    let ok_after = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs(15);

    let worker = |i: usize| {
        let (keeper, rt) = (keeper.clone(), rt.clone());
        let (restarted, done, ok_before, ok_after, errors) =
            (&restarted, &done, &ok_before, &ok_after, &errors);
        async move {
            // Bounded by `done` and by the deadline.
            while !done.load(Ordering::Acquire) && Instant::now() < deadline {
                let after = restarted.load(Ordering::Acquire);
                let result = match bounded(&rt, "get", keeper.get("main")).await {
                    Ok(mut c) => bounded(&rt, "INCR", c.incr::<_, _, i64>("counter", 1))
                        .await
                        .map_err(|e| {
                            assert_typed_command_error(&e);
                        }),
                    Err(e) => {
                        assert_typed_get_error(&e);
                        Err(())
                    }
                };
                match result {
                    Ok(_) if after => ok_after.fetch_add(1, Ordering::Relaxed),
                    Ok(_) => ok_before.fetch_add(1, Ordering::Relaxed),
                    Err(()) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        sleep(&rt, Duration::from_millis(10)).await;
                        0
                    }
                };
                // Keep the pace human: a few hundred commands per second per task.
                sleep(&rt, Duration::from_millis(2 + i as u64)).await;
            }
        }
    };
    let controller = async {
        eventually(
            &rt,
            Duration::from_secs(5),
            "traffic before restart",
            || {
                let n = ok_before.load(Ordering::Relaxed);
                async move { (n >= 50).then_some(()) }
            },
        )
        .await;
        let s = server.clone();
        on_thread(&rt, move || {
            s.lock().unwrap().restart_after(Duration::from_millis(400))
        })
        .await;
        restarted.store(true, Ordering::Release);
        // Recovery: every worker gets through again, within a bounded time.
        eventually(
            &rt,
            Duration::from_secs(8),
            "recovery after restart",
            || {
                let n = ok_after.load(Ordering::Relaxed);
                async move { (n >= 100).then_some(()) }
            },
        )
        .await;
        done.store(true, Ordering::Release);
    };
    let workers = futures::future::join_all((0..WORKERS).map(worker));
    futures::join!(workers, controller);

    let (on_server, foreign) = {
        let server = server.lock().unwrap();
        let counter = server
            .get_in_db(0, "counter")
            .expect("counter after restart");
        (
            counter.parse::<u64>().unwrap(),
            server.foreign_connections_received(),
        )
    };
    assert!(
        on_server >= ok_after.load(Ordering::Relaxed),
        "the new server saw every INCR acknowledged after the restart"
    );
    // No connection storm: the new server saw a handful of connections, not one per command.
    assert!(
        foreign <= u64::from(MAX_CONNECTIONS) + 1,
        "{foreign} connections after the restart"
    );
    assert!(
        errors.load(Ordering::Relaxed) >= 1,
        "the restart went unnoticed"
    );
    let stats = keeper.stats();
    let main = &stats.databases["main"];
    assert!(main.connections_created >= 2, "{main:?}");
    keeper.check_invariants().unwrap();
    keeper.close().await;
}

// ---------------------------------------------------------------------------------------------
// A real LOADING: DEBUG RELOAD of 2000 keys with a 1 ms per-key load delay (~2 s).

async fn real_loading(rt: Runtime) {
    let server = RedisServer::start(ServerOptions::new());
    let _: () = server.query(redis::cmd("DEBUG").arg("POPULATE").arg(2000));
    let keeper = keeper(&rt, config_for(&server));
    // A warm connection on main; knowledge is opened only while the server loads.
    let mut main = bounded(&rt, "get", keeper.get("main")).await.unwrap();
    let _: () = main.set("warm", 1).await.unwrap();

    let _: () = server.query(
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("key-load-delay")
            .arg(1000),
    );
    let _: () = server.query(
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("loading-process-events-interval-bytes")
            .arg(1024),
    );
    let mut reloader = server.connection();
    let reload = std::thread::spawn(move || {
        redis::cmd("DEBUG")
            .arg("RELOAD")
            .query::<()>(&mut reloader)
            .map_err(|e| e.to_string())
    });
    // Wait (bounded) until the server really is loading.
    eventually(&rt, Duration::from_secs(5), "server loading", || {
        let reply = server.raw_ping().unwrap_or_default();
        async move { reply.starts_with("-LOADING").then_some(()) }
    })
    .await;

    let t0 = Instant::now();
    let on_main = async {
        let v: String = main.get("key:5").await.unwrap();
        assert_eq!(v, "value:5");
    };
    let on_knowledge = async {
        let mut c = keeper.get("knowledge").await.unwrap();
        let _: () = c.set("after", "loading").await.unwrap();
    };
    bounded(&rt, "commands during loading", async {
        futures::join!(on_main, on_knowledge)
    })
    .await;
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(200),
        "rode out the loading, waited {waited:?}"
    );
    let reloaded = on_thread(&rt, move || reload.join().expect("reload thread")).await;
    reloaded.expect("DEBUG RELOAD");

    assert_eq!(server.get_in_db(1, "after").as_deref(), Some("loading"));
    let stats = keeper.stats();
    for db in ["main", "knowledge"] {
        let s = &stats.databases[db];
        assert!(s.loading_episodes >= 1, "{db}: {s:?}");
        assert_eq!(s.breaker_trips, 0, "{db}: LOADING never trips: {s:?}");
        assert_eq!(s.failed_operations, 0, "{db}: LOADING is ridden out: {s:?}");
    }
    assert_eq!(stats.databases["main"].connections_created, 1, "no storm");
    let health = keeper.health().await;
    assert_eq!(health.databases["main"], HealthState::Healthy);
    keeper.close().await;
}

// ---------------------------------------------------------------------------------------------
// The server freezes (SIGSTOP) while the Keeper waits for LOADING to end: the readiness probe
// in flight must time out like any other command, and the caller get an error in bounded time.

async fn stall_during_loading(rt: Runtime) {
    let server = RedisServer::start(ServerOptions::new());
    let _: () = server.query(redis::cmd("DEBUG").arg("POPULATE").arg(2000));
    let config = config_for(&server).configure_all(|d| {
        d.response_timeout(Duration::from_millis(500))
            .loading_timeout(Duration::from_secs(4))
    });
    let keeper = keeper(&rt, config);
    let mut main = bounded(&rt, "get", keeper.get("main")).await.unwrap();
    let _: () = main.set("warm", 1).await.unwrap();
    let _: () = server.query(
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("key-load-delay")
            .arg(1000),
    );
    let _: () = server.query(
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("loading-process-events-interval-bytes")
            .arg(1024),
    );
    let mut reloader = server.connection();
    let reload = std::thread::spawn(move || {
        redis::cmd("DEBUG")
            .arg("RELOAD")
            .query::<()>(&mut reloader)
            .map_err(|e| e.to_string())
    });
    eventually(&rt, Duration::from_secs(5), "server loading", || {
        let reply = server.raw_ping().unwrap_or_default();
        async move { reply.starts_with("-LOADING").then_some(()) }
    })
    .await;
    let server = Arc::new(Mutex::new(server));
    let t0 = Instant::now();
    let during = async {
        bounded(
            &rt,
            "GET while loading, then frozen",
            main.get::<_, String>("key:5"),
        )
        .await
    };
    let freeze = async {
        // Let the Keeper see LOADING and start probing, then freeze the server.
        sleep(&rt, Duration::from_millis(300)).await;
        server.lock().unwrap().pause();
    };
    let (result, ()) = futures::join!(during, freeze);
    let waited = t0.elapsed();
    let err = result.expect_err("a frozen server cannot serve the GET");
    assert_typed_command_error(&err);
    assert!(waited < Duration::from_secs(6), "answered after {waited:?}");
    // Thaw: loading finishes, the Keeper serves again.
    server.lock().unwrap().resume();
    let reloaded = on_thread(&rt, move || reload.join().expect("reload thread")).await;
    reloaded.expect("DEBUG RELOAD");
    let k = &keeper;
    let v: String = eventually(&rt, Duration::from_secs(5), "recovery", || async move {
        let mut c = k.get("main").await.ok()?;
        c.get::<_, String>("key:5").await.ok()
    })
    .await;
    assert_eq!(v, "value:5");
    keeper.check_invariants().unwrap();
    keeper.close().await;
}

// ---------------------------------------------------------------------------------------------
// A server restarted onto a saved dataset that takes ~2 s to load: connect during LOADING.

async fn loading_after_restart(rt: Runtime) {
    let mut server = RedisServer::start(ServerOptions::new());
    let _: () = server.query(redis::cmd("DEBUG").arg("POPULATE").arg(2000));
    let _: () = server.query(&redis::cmd("SAVE"));
    let keeper = keeper(&rt, config_for(&server));
    {
        let mut c = bounded(&rt, "get", keeper.get("main")).await.unwrap();
        let _: String = c.get("key:1").await.unwrap();
    }
    server.restart_with(&[
        ("key-load-delay", "1000"),
        ("loading-process-events-interval-bytes", "1024"),
    ]);
    assert!(server.raw_ping().unwrap().starts_with("-LOADING"));
    let mut c = bounded(&rt, "get", keeper.get("main")).await.unwrap();
    // The old connection died with the old server: at most one failure, then the dataset.
    let mut failures = 0;
    let v: String = loop {
        match bounded(&rt, "GET", c.get("key:1999")).await {
            Ok(v) => break v,
            Err(e) => {
                assert_typed_command_error(&e);
                failures += 1;
                assert!(failures <= 2, "keeps failing: {e}");
            }
        }
    };
    assert_eq!(v, "value:1999");
    let stats = keeper.stats();
    let main = &stats.databases["main"];
    assert!(main.loading_episodes >= 1, "{main:?}");
    assert_eq!(main.breaker_trips, 0, "{main:?}");
    keeper.close().await;
}

// ---------------------------------------------------------------------------------------------
// Many commands in flight on one shared connection when it dies: one lost connection is one
// breaker failure, not one per command (else a restart under load opens the breaker for its
// whole open period although the server is back at once).

async fn one_lost_connection_is_one_breaker_failure(rt: Runtime) {
    const IN_FLIGHT: usize = 8;
    let server = Arc::new(Mutex::new(RedisServer::start(ServerOptions::new())));
    let config = config_for(&server.lock().unwrap()).configure_all(|d| {
        d.shared_connections(1)
            .breaker_failure_threshold(3)
            .breaker_open_for(Duration::from_secs(30))
            .response_timeout(Duration::from_secs(5))
    });
    let keeper = keeper(&rt, config);
    let mut c = bounded(&rt, "get", keeper.get("main")).await.unwrap();
    let _: () = c.set("k", 1).await.unwrap();
    // Frozen: every command below is sent and waits for a reply that never comes.
    server.lock().unwrap().pause();
    let commands = futures::future::join_all((0..IN_FLIGHT).map(|_| async {
        let mut c = keeper
            .get("main")
            .await
            .expect("a share of the live connection");
        bounded(&rt, "GET", c.get::<_, Option<i64>>("k")).await
    }));
    let restart = async {
        sleep(&rt, Duration::from_millis(300)).await;
        let s = server.clone();
        on_thread(&rt, move || s.lock().unwrap().restart()).await;
    };
    let (results, ()) = futures::join!(commands, restart);
    for r in &results {
        let e = r
            .as_ref()
            .expect_err("the connection died under the command");
        assert_typed_command_error(e);
    }
    let main = &keeper.stats().databases["main"];
    assert_eq!(main.breaker_trips, 0, "{main:?}");
    // The server is back: the next command goes through at once over a new connection.
    let mut c = bounded(&rt, "get", keeper.get("main")).await.unwrap();
    let v: Option<i64> = bounded(&rt, "GET", c.get("k")).await.unwrap();
    assert_eq!(v, None, "a fresh server without the dataset");
    keeper.check_invariants().unwrap();
    keeper.close().await;
}

// ---------------------------------------------------------------------------------------------
// CLIENT KILL of every normal client: shared handles reconnect, a failed exclusive is discarded.

async fn client_kill(rt: Runtime) {
    let server = RedisServer::start(ServerOptions::new());
    let keeper = keeper(&rt, config_for(&server));
    let mut shared = bounded(&rt, "get", keeper.get("main")).await.unwrap();
    let _: () = shared.set("a", 1).await.unwrap();
    let mut ex = bounded(&rt, "get_exclusive", keeper.get_exclusive("main"))
        .await
        .unwrap();
    let _: i64 = ex.get("a").await.unwrap();
    let created = keeper.pool_stats("main").unwrap().created;

    let killed = server.kill_normal_clients();
    assert!(killed >= 2, "killed {killed}");

    // The shared handle: at most one failed command (it may have been in flight), then it
    // carries on over a new connection.
    let mut failures = 0;
    let v: i64 = loop {
        let explain = || format!("{:#?}", keeper.stats().databases["main"]);
        match bounded_or_explain(&rt, "INCR", shared.incr("a", 1), explain).await {
            Ok(v) => break v,
            Err(e) => {
                assert_typed_command_error(&e);
                failures += 1;
                assert!(failures <= 1, "shared handle did not recover: {e}");
            }
        }
    };
    assert_eq!(v, 2);

    // The exclusive connection's command fails; the connection is closed, not re-idled.
    let err = bounded(&rt, "GET", ex.get::<_, i64>("a"))
        .await
        .unwrap_err();
    assert_typed_command_error(&err);
    drop(ex);
    let pool = keeper.pool_stats("main").unwrap();
    assert_eq!(pool.idle, 0, "{pool:?}");
    assert!(pool.broken_closed >= 1, "{pool:?}");
    let mut ex = bounded(&rt, "get_exclusive", keeper.get_exclusive("main"))
        .await
        .unwrap();
    let v: i64 = ex.get("a").await.unwrap();
    assert_eq!(v, 2);
    drop(ex);
    let pool = keeper.pool_stats("main").unwrap();
    assert!(pool.created > created, "{pool:?}");
    assert_eq!(pool.idle, 1, "a clean connection is idled again: {pool:?}");
    let stats = keeper.stats();
    assert_eq!(stats.databases["main"].breaker_trips, 0);
    keeper.check_invariants().unwrap();
    keeper.close().await;
}

// ---------------------------------------------------------------------------------------------
// A black hole: SIGSTOP, timeouts feed the breaker, it opens, SIGCONT, the half-open probe heals.

async fn black_hole(rt: Runtime) {
    let mut server = RedisServer::start(ServerOptions::new());
    let open_for = Duration::from_secs(1);
    let config = config_for(&server).configure_all(|d| {
        d.response_timeout(Duration::from_millis(500))
            .connect_timeout(Duration::from_millis(500))
            .breaker_failure_threshold(2)
            .breaker_open_for(open_for)
    });
    let keeper = keeper(&rt, config);
    let mut c = bounded(&rt, "get", keeper.get("main")).await.unwrap();
    let _: () = c.set("k", 1).await.unwrap();

    server.pause();
    let t0 = Instant::now();
    let err = bounded(&rt, "GET", c.get::<_, i64>("k")).await.unwrap_err();
    let waited = t0.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(3),
        "timed out after {waited:?}"
    );
    // Failures go on (connect timeouts: the kernel accepts, nobody answers) until the breaker
    // opens on the threshold failure; from then on `get` fails at once.
    let mut open = false;
    for _ in 0..4 {
        match bounded(&rt, "get", keeper.get("main")).await {
            Err(Error::CircuitOpen { .. }) => {
                open = true;
                break;
            }
            Err(e) => assert!(
                e.is_timeout() || matches!(e, Error::Connect { .. }),
                "{e:?}"
            ),
            Ok(mut c) => {
                let e = bounded(&rt, "GET", c.get::<_, i64>("k")).await.unwrap_err();
                assert_typed_command_error(&e);
            }
        }
    }
    assert!(open, "breaker never opened");
    let t1 = Instant::now();
    let err = keeper.get("main").await.unwrap_err();
    assert!(matches!(err, Error::CircuitOpen { .. }), "{err:?}");
    assert!(
        t1.elapsed() < Duration::from_millis(100),
        "rejected at once"
    );
    let stats = keeper.stats();
    assert_eq!(stats.databases["main"].breaker_trips, 1);
    assert!(stats.databases["main"].rejected_while_open >= 1);
    assert_eq!(stats.databases["main"].health, Some(HealthState::Failed));

    server.resume();
    let k = &keeper;
    let v: i64 = eventually(&rt, Duration::from_secs(5), "recovery", || async move {
        let mut c = k.get("main").await.ok()?;
        c.get::<_, i64>("k").await.ok()
    })
    .await;
    assert_eq!(v, 1);
    let health = keeper.health().await;
    assert_eq!(health.databases["main"], HealthState::Healthy);
    assert_eq!(keeper.stats().databases["main"].breaker_trips, 1);
    keeper.check_invariants().unwrap();
    keeper.close().await;
}

// ---------------------------------------------------------------------------------------------
// A wrong password: Error::Auth, not retried, breaker untouched; the right one works.

async fn wrong_password(rt: Runtime) {
    let server = RedisServer::start(ServerOptions::new().password("right-pass"));
    let wrong = keeper(&rt, config_for(&server).password("wrong-pass"));
    let t0 = Instant::now();
    // More attempts than the breaker threshold (5): every one is an Auth error, never CircuitOpen.
    for _ in 0..6 {
        let err = bounded(&rt, "get", wrong.get("main")).await.unwrap_err();
        assert!(matches!(err, Error::Auth { .. }), "{err:?}");
        assert!(!err.is_retryable(), "{err}");
        assert!(!err.to_string().contains("wrong-pass"), "secret in {err}");
    }
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "auth is never retried"
    );
    let s = &wrong.stats().databases["main"];
    assert_eq!(s.retries, 0, "{s:?}");
    assert_eq!(s.breaker_trips, 0, "{s:?}");
    assert_eq!(s.connections_created, 0, "{s:?}");
    wrong.close().await;

    let none = keeper(&rt, config_for(&server));
    let err = bounded(&rt, "get", none.get("main")).await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "no password: {err:?}");
    none.close().await;

    let right = keeper(&rt, config_for(&server).password("right-pass"));
    let mut c = bounded(&rt, "get", right.get("main")).await.unwrap();
    let _: () = c.set("k", "v").await.unwrap();
    assert_eq!(server.get_in_db(0, "k").as_deref(), Some("v"));
    right.close().await;
}

// ---------------------------------------------------------------------------------------------
// The exclusive pool: exhaustion times out at the wait deadline; a returned connection goes to
// the waiter; the idle sweep closes stale connections (server-side too); close closes all.

async fn pool_exhaustion_idle_sweep_and_close(rt: Runtime) {
    let server = RedisServer::start(ServerOptions::new());
    let wait = Duration::from_millis(300);
    let config = config_for(&server).configure_all(|d| {
        d.max_connections(2)
            .shared_connections(1)
            .pool_wait_timeout(wait)
            .idle_timeout(Duration::from_millis(400))
            .idle_sweep_interval(Duration::from_millis(100))
            .min_idle(0)
    });
    let keeper = keeper(&rt, config);
    let a = bounded(&rt, "get_exclusive", keeper.get_exclusive("main"))
        .await
        .unwrap();
    let b = bounded(&rt, "get_exclusive", keeper.get_exclusive("main"))
        .await
        .unwrap();
    assert_eq!(server.client_dbs().len(), 2);
    let t0 = Instant::now();
    let err = bounded(&rt, "get_exclusive", keeper.get_exclusive("main"))
        .await
        .unwrap_err();
    let waited = t0.elapsed();
    assert!(matches!(err, Error::PoolTimeout { .. }), "{err:?}");
    assert!(
        waited >= wait - Duration::from_millis(10) && waited < wait * 4,
        "timed out after {waited:?}"
    );
    // A waiter gets the connection returned before its deadline; nothing new is opened.
    let release = async {
        sleep(&rt, Duration::from_millis(100)).await;
        drop(a);
    };
    let (got, ()) = futures::join!(keeper.get_exclusive("main"), release);
    drop(got.expect("the returned connection"));
    drop(b);
    let pool = keeper.pool_stats("main").unwrap();
    assert_eq!(
        (pool.created, pool.idle, pool.timeouts),
        (2, 2, 1),
        "{pool:?}"
    );
    // Both go stale after 400 ms and the sweep closes them: the server sees them leave.
    let k = &keeper;
    eventually(&rt, Duration::from_secs(3), "idle sweep", || async move {
        let pool = k.pool_stats("main").unwrap();
        (pool.idle == 0 && pool.stale_closed == 2).then_some(())
    })
    .await;
    eventually(&rt, Duration::from_secs(3), "sockets closed", || {
        let n = server.client_dbs().len();
        async move { (n == 0).then_some(()) }
    })
    .await;
    // close() closes the shared connections too, and later calls get Closed.
    let mut c = bounded(&rt, "get", keeper.get("main")).await.unwrap();
    let _: () = c.set("k", 1).await.unwrap();
    drop(c);
    assert_eq!(server.client_dbs().len(), 1);
    keeper.close().await;
    eventually(&rt, Duration::from_secs(3), "closed on close", || {
        let n = server.client_dbs().len();
        async move { (n == 0).then_some(()) }
    })
    .await;
    let err = keeper.get("main").await.unwrap_err();
    assert!(matches!(err, Error::Closed), "{err:?}");
    keeper.check_invariants().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Health checks: after CLIENT KILL, with no user traffic at all, the background check finds the
// dead shared connection and reconnects.

async fn health_checks_reconnect_without_traffic(rt: Runtime) {
    let server = RedisServer::start(ServerOptions::new());
    let config = config_for(&server).configure_all(|d| {
        d.shared_connections(1)
            .health_check_interval(Duration::from_millis(200))
    });
    let keeper = keeper(&rt, config);
    {
        let mut c = bounded(&rt, "get", keeper.get("main")).await.unwrap();
        let _: () = c.set("k", 1).await.unwrap();
    }
    assert_eq!(server.client_dbs(), vec![0]);
    // At least the keeper's one connection (a helper connection just closed may still be
    // listed, and killed, too).
    assert!(server.kill_normal_clients() >= 1);
    eventually(
        &rt,
        Duration::from_secs(5),
        "reconnected by a health check",
        || {
            // The server lists the new client before its handshake ends and the keeper
            // counts it: wait for both.
            let dbs = server.client_dbs();
            let created = keeper.stats().databases["main"].connections_created;
            async move { (dbs == [0] && created >= 2).then_some(()) }
        },
    )
    .await;
    // The check sees the connection closed (its driver ended) and replaces it before its
    // PING, so it usually does not even fail.
    let s = &keeper.stats().databases["main"];
    assert!(s.health_checks >= 1, "{s:?}");
    assert!(s.connections_created >= 2, "{s:?}");
    assert_eq!(s.breaker_trips, 0, "{s:?}");
    // Only the used database is checked: no connection to any other db.
    assert!(server.client_dbs().iter().all(|&db| db == 0));
    let mut c = bounded(&rt, "get", keeper.get("main")).await.unwrap();
    let v: i64 = c.get("k").await.unwrap();
    assert_eq!(v, 1);
    let health = keeper.health().await;
    assert_eq!(health.databases["main"], HealthState::Healthy);
    keeper.close().await;
}

// ---------------------------------------------------------------------------------------------

on_both_runtimes! {
    named_databases,
    restart_mid_traffic,
    real_loading,
    stall_during_loading,
    loading_after_restart,
    one_lost_connection_is_one_breaker_failure,
    client_kill,
    black_hole,
    wrong_password,
    pool_exhaustion_idle_sweep_and_close,
    health_checks_reconnect_without_traffic,
}
