//! Every state change is a `tracing` event, filtered by the configured `log_level`.
//!
//! Its own test binary: tracing caches callsite interest process-wide, so a scoped subscriber
//! must not race with other tests' threads.
#![cfg(all(feature = "sim", any(feature = "tokio", feature = "smol")))]

use std::sync::Arc;
use std::time::Duration;

use redis_keeper::sim::{Sim, SimRedis};
use redis_keeper::{Keeper, KeeperConfig};

fn world(seed: u64, config: KeeperConfig) -> (Sim, SimRedis, Keeper) {
    let sim = Sim::new(seed);
    let redis = sim.redis();
    let keeper = sim
        .keeper_builder(config, Arc::new(redis.transport()))
        .build()
        .expect("valid config");
    (sim, redis, keeper)
}

/// Counts `tracing` events by level (a minimal subscriber, so no extra dependency).
#[derive(Default)]
struct CountingSubscriber {
    events: std::sync::Mutex<Vec<tracing::Level>>,
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
        self.events.lock().unwrap().push(*event.metadata().level());
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn warnings_during_loading(level: tracing::level_filters::LevelFilter) -> usize {
    let subscriber = Arc::new(CountingSubscriber::default());
    let dispatch = tracing::Dispatch::from(subscriber.clone());
    tracing::dispatcher::with_default(&dispatch, || {
        let (sim, redis, keeper) = world(13, KeeperConfig::default().log_level(level));
        redis.set_loading(Duration::from_secs(4));
        sim.block_on(async {
            keeper.get("main").await.unwrap();
        });
    });
    let events = subscriber.events.lock().unwrap();
    events
        .iter()
        .filter(|l| **l == tracing::Level::WARN)
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
