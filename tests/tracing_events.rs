//! Every state change is a `tracing` event, filtered by the configured `log_level`.
//!
//! Its own test binary: tracing caches callsite interest process-wide, so a scoped subscriber
//! must not race with other tests' threads.
#![cfg(all(feature = "sim", any(feature = "tokio", feature = "smol")))]

mod sim_support;

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use redis_keeper::KeeperConfig;
use sim_support::{world, World};

/// Records `tracing` events: their level and their fields as text (a minimal subscriber, so no
/// extra dependency).
#[derive(Default)]
struct CountingSubscriber {
    events: std::sync::Mutex<Vec<(tracing::Level, String)>>,
}

impl tracing::Subscriber for CountingSubscriber {
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
        self.events
            .lock()
            .unwrap()
            .push((*event.metadata().level(), fields.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn warnings_during_loading(level: tracing::level_filters::LevelFilter) -> usize {
    let subscriber = Arc::new(CountingSubscriber::default());
    let dispatch = tracing::Dispatch::from(subscriber.clone());
    tracing::dispatcher::with_default(&dispatch, || {
        let World { sim, redis, keeper } = world(13, KeeperConfig::default().log_level(level));
        redis.set_loading(Duration::from_secs(4));
        sim.block_on(async {
            keeper.get("main").await.unwrap();
        });
    });
    let events = subscriber.events.lock().unwrap();
    events
        .iter()
        .filter(|(l, _)| *l == tracing::Level::WARN)
        .count()
}

#[test]
fn state_changes_are_traced_and_log_level_is_honoured() {
    use tracing::level_filters::LevelFilter;
    assert!(
        warnings_during_loading(LevelFilter::WARN) >= 1,
        "LOADING is a WARN event"
    );
    assert_eq!(
        warnings_during_loading(LevelFilter::ERROR),
        0,
        "log_level: error"
    );
}

#[test]
fn log_commands_names_each_command_and_its_argument_count_never_a_value() {
    let subscriber = Arc::new(CountingSubscriber::default());
    let dispatch = tracing::Dispatch::from(subscriber.clone());
    let config = KeeperConfig::from_yaml_str(
        "password: s3cret-pw\nredis_databases:\n  main: {db: 0, log_commands: true}\n",
    )
    .unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        let w = world(3, config);
        w.redis.set_password(Some("s3cret-pw"));
        w.sim.block_on(async {
            let mut main = w.keeper.get("main").await.unwrap();
            let _: () = main.set("secret-key", "secret-value").await.unwrap();
            let (_, _): (String, i64) = w
                .keeper
                .pipeline("main", |p| {
                    p.get("secret-key").del("secret-key");
                })
                .await
                .unwrap();
            let mut cache = w.keeper.get("cache").await.unwrap();
            let _: () = cache.set("unlogged", 1).await.unwrap();
        });
    });
    let events = subscriber.events.lock().unwrap();
    let seen: Vec<&String> = events
        .iter()
        .filter(|(_, f)| f.contains("message=command "))
        .map(|(_, f)| f)
        .collect();
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
    for (_, e) in events.iter() {
        for secret in ["secret-key", "secret-value", "s3cret-pw"] {
            assert!(!e.contains(secret), "{secret} in {e}");
        }
    }
    for e in &seen {
        assert!(e.contains("db=main") && !e.contains("unlogged"), "{e}");
    }
}
