//! Every kind of command on the simulator: transactions on exclusive handles, typed errors on the
//! command path, blocking commands, the lifecycle and `log_commands`, in virtual time.
#![cfg(all(feature = "sim", any(feature = "tokio", feature = "smol")))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::AsyncCommands;
use redis_keeper::sim::{Sim, SimRedis};
use redis_keeper::{Error, Keeper, KeeperConfig};

struct World {
    sim: Sim,
    redis: SimRedis,
    keeper: Keeper,
}

fn world(seed: u64, config: KeeperConfig) -> World {
    let sim = Sim::new(seed);
    let redis = sim.redis();
    let keeper = sim
        .keeper_builder(config, Arc::new(redis.transport()))
        .build()
        .expect("valid config");
    World { sim, redis, keeper }
}

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

/// Collects the `command` events of `log_commands` (their fields as text).
#[derive(Default, Clone)]
struct Events(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for Events {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={:?} ", field.name(), value));
            }
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        if fields.0.contains("message=command") {
            self.0.lock().unwrap().push(fields.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn log_commands_names_each_command_and_its_argument_count_never_a_value() {
    let events = Events::default();
    let config = KeeperConfig::from_yaml_str(
        "password: s3cret-pw\nredis_databases:\n  main: {db: 0, log_commands: true}\n",
    )
    .unwrap();
    let w = world(3, config);
    w.redis.set_password(Some("s3cret-pw"));
    tracing::subscriber::with_default(events.clone(), || {
        w.sim.block_on(async {
            let mut main = w.keeper.get("main").await.unwrap();
            let _: () = main.set("secret-key", "secret-value").await.unwrap();
            let _: () = w
                .keeper
                .pipeline("main", |p| {
                    p.get("secret-key").del("secret-key");
                })
                .await
                .map(|(_, _): (String, i64)| ())
                .unwrap();
            let mut cache = w.keeper.get("cache").await.unwrap();
            let _: () = cache.set("unlogged", 1).await.unwrap();
        });
    });
    let seen = events.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen[0].contains("command=SET") && seen[0].contains("args=2"),
        "{seen:?}"
    );
    assert!(
        seen[1].contains("command=GET") && seen[1].contains("args=1"),
        "{seen:?}"
    );
    assert!(seen[2].contains("command=DEL"), "{seen:?}");
    for e in &seen {
        assert!(e.contains("db=main"), "{e}");
        for secret in ["secret-key", "secret-value", "s3cret-pw", "unlogged"] {
            assert!(!e.contains(secret), "{secret} in {e}");
        }
    }
}
