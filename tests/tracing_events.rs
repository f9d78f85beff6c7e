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
    /// Spans opened: name and fields as text.
    spans: std::sync::Mutex<Vec<(String, String)>>,
}

/// Fields as `name=value ` text.
struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl tracing::Subscriber for CountingSubscriber {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = Fields(String::new());
        span.record(&mut fields);
        let mut spans = self.spans.lock().unwrap();
        spans.push((span.metadata().name().to_owned(), fields.0));
        tracing::span::Id::from_u64(spans.len() as u64)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
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

/// Runs `script` on a simulated world with `config` under a recording subscriber.
fn recorded(config: KeeperConfig, script: impl FnOnce(&World)) -> Arc<CountingSubscriber> {
    let subscriber = Arc::new(CountingSubscriber::default());
    let dispatch = tracing::Dispatch::from(subscriber.clone());
    tracing::dispatcher::with_default(&dispatch, || script(&world(5, config)));
    subscriber
}

#[test]
fn each_command_runs_in_a_debug_span_naming_it_never_its_values() {
    use tracing::level_filters::LevelFilter;
    let script = |w: &World| {
        w.sim.block_on(async {
            let mut main = w.keeper.get("main").await.unwrap();
            let _: () = main.set("secret-key", "secret-value").await.unwrap();
            let _: (String,) = w
                .keeper
                .pipeline("main", |p| {
                    p.get("secret-key");
                })
                .await
                .unwrap();
        })
    };
    let debug = recorded(
        KeeperConfig::default().log_level(LevelFilter::DEBUG),
        script,
    );
    let spans = debug.spans.lock().unwrap();
    let commands: Vec<&String> = spans
        .iter()
        .filter(|(name, _)| name == "command")
        .map(|(_, f)| f)
        .collect();
    assert!(
        commands
            .iter()
            .any(|f| f.contains("db=main") && f.contains("command=SET")),
        "{commands:?}"
    );
    assert!(
        commands.iter().any(|f| f.contains("command=PIPELINE")),
        "{commands:?}"
    );
    for f in &commands {
        assert!(!f.contains("secret"), "{f}");
    }
    let info = recorded(KeeperConfig::default().log_level(LevelFilter::INFO), script);
    assert!(
        !info
            .spans
            .lock()
            .unwrap()
            .iter()
            .any(|(n, _)| n == "command"),
        "no span below the Keeper's log_level"
    );
}

#[test]
fn giving_up_a_breaker_transition_and_an_auth_failure_are_events() {
    let config =
        KeeperConfig::default().configure_all(|d| d.retry_attempts(2).breaker_failure_threshold(2));
    let refused = recorded(config, |w| {
        w.redis.refuse(true);
        w.sim.block_on(async {
            assert!(w.keeper.get("main").await.is_err());
        });
    });
    let events = refused.events.lock().unwrap();
    let find = |text: &str| events.iter().find(|(_, f)| f.contains(text)).cloned();
    let (level, fields) = find("circuit breaker transition").expect("a transition event");
    assert_eq!(level, tracing::Level::WARN);
    assert!(
        fields.contains("from=\"closed\"") || fields.contains("from=closed"),
        "{fields}"
    );
    assert!(
        fields.contains("reason") && fields.contains("failure_threshold"),
        "{fields}"
    );
    drop(events);

    let config = KeeperConfig::default().configure_all(|d| d.retry_attempts(2));
    let gave_up = recorded(config, |w| {
        w.redis.refuse(true);
        w.sim.block_on(async {
            assert!(w.keeper.get("main").await.is_err());
        });
    });
    let events = gave_up.events.lock().unwrap();
    let (level, fields) = events
        .iter()
        .find(|(_, f)| f.contains("giving up"))
        .cloned()
        .expect("a give-up event");
    assert_eq!(level, tracing::Level::ERROR);
    assert!(
        fields.contains("attempts=2") && fields.contains("db=main"),
        "{fields}"
    );
    drop(events);

    let auth = recorded(KeeperConfig::default().password("client-s3cret"), |w| {
        w.redis.set_password(Some("server-pw"));
        w.sim.block_on(async {
            assert!(w.keeper.get("main").await.is_err());
        });
    });
    let events = auth.events.lock().unwrap();
    let (level, fields) = events
        .iter()
        .find(|(_, f)| f.contains("not retried"))
        .cloned()
        .expect("an auth failure event");
    assert_eq!(level, tracing::Level::WARN);
    assert!(
        fields.contains("authentication failed") && !fields.contains("client-s3cret"),
        "the event names the failure, never the password: {fields}"
    );
}

#[test]
fn a_resubscription_is_an_info_event_with_what_it_resubscribed() {
    let events = recorded(KeeperConfig::default(), |w| {
        let mut sub = w
            .sim
            .block_on(w.keeper.subscriber("notifications"))
            .unwrap();
        w.sim.block_on(async {
            sub.subscribe(&["orders", "payments"]).await.unwrap();
            sub.psubscribe("audit.*").await.unwrap();
        });
        w.redis.kill_all();
        w.sim.run_for(Duration::from_secs(1));
        assert_eq!(sub.resubscriptions(), 1);
    });
    let events = events.events.lock().unwrap();
    let (level, fields) = events
        .iter()
        .find(|(_, f)| f.contains("resubscribed"))
        .cloned()
        .expect("a resubscription event");
    assert_eq!(level, tracing::Level::INFO);
    assert!(
        fields.contains("db=notifications")
            && fields.contains("channels=2")
            && fields.contains("patterns=1"),
        "{fields}"
    );
}
