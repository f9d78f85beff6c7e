//! The `metrics` feature: the exposition's series recorded into the application's recorder
//! (here metrics-util's debugging recorder), with the same names, labels and values.
#![cfg(all(
    feature = "metrics",
    feature = "sim",
    any(feature = "tokio", feature = "smol")
))]

mod sim_support;

use std::collections::HashMap;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use redis::AsyncCommands;
use redis_keeper::KeeperConfig;
use sim_support::world;

#[test]
fn the_facade_gets_the_series_of_the_exposition() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let w = world(9, KeeperConfig::default());
        w.sim.block_on(async {
            let mut c = w.keeper.get("main").await.unwrap();
            for _ in 0..4 {
                let _: i64 = c.incr("n", 1).await.unwrap();
            }
            let _ = c.lpush::<_, _, i64>("n", "x").await; // WRONGTYPE
        });
        w.keeper.record_metrics();
    });
    let seen: HashMap<String, (MetricKind, DebugValue)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}=\"{}\"", l.key(), l.value()))
                .collect();
            labels.sort();
            (
                format!("{}{{{}}}", key.name(), labels.join(",")),
                (kind, value),
            )
        })
        .collect();
    let counter = |series: &str| match seen.get(series) {
        Some((MetricKind::Counter, DebugValue::Counter(n))) => *n,
        other => panic!("{series}: {other:?}"),
    };
    assert_eq!(
        counter(r#"redis_keeper_commands_total{db="main",result="ok"}"#),
        4
    );
    assert_eq!(
        counter(r#"redis_keeper_commands_total{db="main",result="error"}"#),
        1
    );
    assert_eq!(
        counter(r#"redis_keeper_command_errors_total{db="main",kind="server"}"#),
        1
    );
    match seen.get(r#"redis_keeper_breaker_state{db="main",state="closed"}"#) {
        Some((MetricKind::Gauge, DebugValue::Gauge(v))) => assert_eq!(v.into_inner(), 1.0),
        other => panic!("breaker state: {other:?}"),
    }
    match seen.get(r#"redis_keeper_command_duration_seconds{db="main"}"#) {
        Some((MetricKind::Histogram, DebugValue::Histogram(values))) => {
            assert_eq!(values.len(), 5, "every reply, as it happened")
        }
        other => panic!("command duration: {other:?}"),
    }
    assert!(
        seen.keys().all(|k| k.starts_with("redis_keeper_")),
        "{:?}",
        seen.keys()
    );
}
