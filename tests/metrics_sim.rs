//! `Keeper::metrics_text` after a scripted run on the simulator: every series named here has
//! the exact value the script implies, the exposition is well formed (HELP and TYPE before each
//! family's samples), and no label carries anything but a configured database name or a value
//! of a closed set.
#![cfg(all(feature = "sim", any(feature = "tokio", feature = "smol")))]

mod sim_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use redis::AsyncCommands;
use redis_keeper::seams::Clock;
use redis_keeper::{Error, KeeperConfig};
use sim_support::world;

/// Health checks and idle sweeps out of the way, so every count below follows from the script.
fn config() -> KeeperConfig {
    KeeperConfig::default().configure_all(|d| {
        d.max_connections(3)
            .shared_connections(1)
            .health_check_interval(Duration::from_secs(3600))
            .idle_sweep_interval(Duration::from_secs(3600))
    })
}

/// The exposition as `series{labels}` → value, checking its structure on the way.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut typed: BTreeSet<String> = BTreeSet::new();
    let mut helped: BTreeSet<String> = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap().to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap().to_owned();
            let kind = parts.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(helped.contains(&name), "TYPE before HELP: {line}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "a counter ends in _total: {name}");
            }
            typed.insert(name);
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "a sample before its TYPE: {line}");
        assert!(name.starts_with("redis_keeper_"), "{line}");
        let value: f64 = if value == "+Inf" {
            f64::INFINITY
        } else {
            value.parse().unwrap_or_else(|_| panic!("a number: {line}"))
        };
        assert!(
            out.insert(series.to_owned(), value).is_none(),
            "repeated: {line}"
        );
    }
    out
}

/// Every label of every sample: its name is one of the closed set, and its value a configured
/// database name, a value of a closed set, or a bucket bound.
fn check_labels(text: &str, databases: &[String]) {
    let closed: BTreeSet<&str> = [
        "ok",
        "error",
        "io",
        "connect_timeout",
        "response_timeout",
        "protocol",
        "loading",
        "try_again",
        "master_down",
        "auth",
        "tls",
        "circuit_open",
        "server",
        "readonly",
        "role_mismatch",
        "pool_timeout",
        "closed",
        "other",
        "idle",
        "in_use",
        "shared",
        "connecting",
        "stale",
        "broken",
        "hit",
        "miss",
        "timeout",
        "open",
        "half_open",
        "failure_threshold",
        "probe_failed",
        "open_period_elapsed",
        "probe_succeeded",
        "healthy",
        "degraded",
        "failed",
        "delivered",
        "dropped",
    ]
    .into_iter()
    .collect();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, rest)) = line.split_once('{') else {
            continue;
        };
        let labels = rest.split_once('}').unwrap().0;
        for pair in labels.split(',') {
            let (k, v) = pair.split_once('=').unwrap();
            let v = v.trim_matches('"');
            let ok = match k {
                "db" => databases.iter().any(|d| d == v),
                "le" => v == "+Inf" || v.parse::<f64>().is_ok(),
                "result" | "kind" | "reason" | "state" => closed.contains(v),
                _ => false,
            };
            assert!(ok, "label {k}={v:?} is not allowed: {line}");
        }
    }
}

#[test]
fn a_scripted_run_gives_exact_values() {
    let w = world(21, config());
    let clock = w.sim.clock().clone();
    w.sim.block_on(async {
        // main: five replies, one error reply, then a LOADING episode ridden out.
        let mut c = w.keeper.get("main").await.unwrap();
        let _: () = c.set("k", "v").await.unwrap();
        for _ in 0..3 {
            let _: i64 = c.incr("n", 1).await.unwrap();
        }
        let _: i64 = c.lpush("l", "a").await.unwrap();
        let err = c.get::<_, String>("l").await.unwrap_err();
        assert_eq!(err.code(), Some("WRONGTYPE"));
        w.redis.set_loading(Duration::from_secs(4));
        let _: () = c.set("after", "loading").await.unwrap();
        drop(c);

        // knowledge: the server refuses; five attempts trip the breaker, the next call is
        // rejected, and after the open period one probe closes it again.
        w.redis.refuse(true);
        let err = w.keeper.get("knowledge").await.unwrap_err();
        assert!(matches!(err, Error::Connect { attempts: 5, .. }), "{err}");
        let err = w.keeper.get("knowledge").await.unwrap_err();
        assert!(matches!(err, Error::CircuitOpen { .. }), "{err}");
        let open = w.keeper.metrics_text();
        let m = parse(&open);
        assert_eq!(
            m[r#"redis_keeper_breaker_state{db="knowledge",state="open"}"#],
            1.0
        );
        assert_eq!(
            m[r#"redis_keeper_breaker_state{db="knowledge",state="closed"}"#],
            0.0
        );
        assert_eq!(m[r#"redis_keeper_breaker_failures{db="knowledge"}"#], 5.0);
        assert_eq!(
            m[r#"redis_keeper_breaker_half_open_in_seconds{db="knowledge"}"#],
            60.0
        );
        assert_eq!(
            m[r#"redis_keeper_health_state{db="knowledge",state="failed"}"#],
            1.0
        );
        w.redis.refuse(false);
        clock
            .sleep_until(clock.now() + Duration::from_secs(60))
            .await;
        let mut k = w.keeper.get("knowledge").await.unwrap();
        let _: () = k.set("k", "v").await.unwrap();
    });

    let text = w.keeper.metrics_text();
    let m = parse(&text);
    let expected: &[(&str, f64)] = &[
        (r#"redis_keeper_commands_total{db="main",result="ok"}"#, 6.0),
        (
            r#"redis_keeper_commands_total{db="main",result="error"}"#,
            1.0,
        ),
        (
            r#"redis_keeper_command_errors_total{db="main",kind="server"}"#,
            1.0,
        ),
        (
            r#"redis_keeper_command_errors_total{db="main",kind="io"}"#,
            0.0,
        ),
        (
            r#"redis_keeper_command_duration_seconds_count{db="main"}"#,
            7.0,
        ),
        (
            r#"redis_keeper_command_duration_seconds_bucket{db="main",le="+Inf"}"#,
            7.0,
        ),
        (r#"redis_keeper_loading_episodes_total{db="main"}"#, 1.0),
        (r#"redis_keeper_readiness_timeouts_total{db="main"}"#, 0.0),
        (r#"redis_keeper_connections_created_total{db="main"}"#, 1.0),
        (r#"redis_keeper_connections{db="main",state="shared"}"#, 1.0),
        (r#"redis_keeper_connections{db="main",state="in_use"}"#, 0.0),
        (r#"redis_keeper_connections_max{db="main"}"#, 3.0),
        (
            r#"redis_keeper_breaker_state{db="main",state="closed"}"#,
            1.0,
        ),
        (
            r#"redis_keeper_health_state{db="main",state="healthy"}"#,
            1.0,
        ),
        (
            r#"redis_keeper_commands_total{db="knowledge",result="ok"}"#,
            1.0,
        ),
        (
            r#"redis_keeper_connect_failures_total{db="knowledge"}"#,
            5.0,
        ),
        (r#"redis_keeper_connect_retries_total{db="knowledge"}"#, 4.0),
        (
            r#"redis_keeper_connections_created_total{db="knowledge"}"#,
            1.0,
        ),
        (
            r#"redis_keeper_breaker_transitions_total{db="knowledge",reason="failure_threshold"}"#,
            1.0,
        ),
        (
            r#"redis_keeper_breaker_transitions_total{db="knowledge",reason="open_period_elapsed"}"#,
            1.0,
        ),
        (
            r#"redis_keeper_breaker_transitions_total{db="knowledge",reason="probe_succeeded"}"#,
            1.0,
        ),
        (
            r#"redis_keeper_breaker_transitions_total{db="knowledge",reason="probe_failed"}"#,
            0.0,
        ),
        (
            r#"redis_keeper_breaker_rejections_total{db="knowledge"}"#,
            1.0,
        ),
        // Every other family, on main: nothing of it happened in the script.
        (r#"redis_keeper_connections{db="main",state="idle"}"#, 0.0),
        (
            r#"redis_keeper_connections{db="main",state="connecting"}"#,
            0.0,
        ),
        (
            r#"redis_keeper_connections_closed_total{db="main",reason="broken"}"#,
            0.0,
        ),
        (r#"redis_keeper_pool_waiters{db="main"}"#, 0.0),
        (r#"redis_keeper_pool_wait_seconds_count{db="main"}"#, 0.0),
        (r#"redis_keeper_idle_sweeps_total{db="main"}"#, 0.0),
        (
            r#"redis_keeper_health_checks_total{db="main",result="failed"}"#,
            0.0,
        ),
        (r#"redis_keeper_subscribers{db="main"}"#, 0.0),
        (
            r#"redis_keeper_subscriber_messages_total{db="main",result="delivered"}"#,
            0.0,
        ),
        (r#"redis_keeper_resubscriptions_total{db="main"}"#, 0.0),
        (
            r#"redis_keeper_command_duration_seconds_sum{db="main"}"#,
            0.0,
        ), // no virtual latency
        // The two failed `get`s: the refused connect, then the breaker's rejection.
        (
            r#"redis_keeper_checkout_errors_total{db="knowledge",kind="io"}"#,
            1.0,
        ),
        (
            r#"redis_keeper_checkout_errors_total{db="knowledge",kind="circuit_open"}"#,
            1.0,
        ),
        (
            r#"redis_keeper_checkout_errors_total{db="main",kind="io"}"#,
            0.0,
        ),
        (
            r#"redis_keeper_breaker_state{db="knowledge",state="closed"}"#,
            1.0,
        ),
        (r#"redis_keeper_breaker_failures{db="knowledge"}"#, 0.0),
        (
            r#"redis_keeper_breaker_half_open_in_seconds{db="knowledge"}"#,
            0.0,
        ),
        (
            r#"redis_keeper_health_checks_total{db="main",result="ok"}"#,
            0.0,
        ),
        (r#"redis_keeper_live_handles{db="knowledge"}"#, 0.0), // dropped with the block
        (r#"redis_keeper_live_handles{db="main"}"#, 0.0),
        (
            r#"redis_keeper_commands_total{db="audit",result="ok"}"#,
            0.0,
        ),
        (
            r#"redis_keeper_pool_checkouts_total{db="main",result="timeout"}"#,
            0.0,
        ),
    ];
    let mut wrong = Vec::new();
    for (series, want) in expected {
        match m.get(*series) {
            Some(got) if got == want => {}
            got => wrong.push(format!("{series}: expected {want}, got {got:?}")),
        }
    }
    assert!(wrong.is_empty(), "{}\n\n{text}", wrong.join("\n"));
    // Every family of the exposition has at least one exact value above (the start time is
    // checked below: it is wall-clock time).
    for family in text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .filter(|f| *f != "redis_keeper_start_time_seconds")
    {
        assert!(
            expected
                .iter()
                .any(|(series, _)| series.starts_with(family)),
            "no expected value for {family}"
        );
    }
    // Cumulative buckets never decrease and end at the count.
    let buckets: Vec<f64> = m
        .iter()
        .filter(|(k, _)| {
            k.starts_with(r#"redis_keeper_command_duration_seconds_bucket{db="main","#)
        })
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(buckets.len(), 17);
    let le = |k: &str| -> f64 {
        let v = k.split("le=\"").nth(1).unwrap().trim_end_matches("\"}");
        if v == "+Inf" {
            f64::INFINITY
        } else {
            v.parse().unwrap()
        }
    };
    let mut by_bound: Vec<(f64, f64)> = m
        .iter()
        .filter(|(k, _)| {
            k.starts_with(r#"redis_keeper_command_duration_seconds_bucket{db="main","#)
        })
        .map(|(k, v)| (le(k), *v))
        .collect();
    by_bound.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        by_bound.windows(2).all(|w| w[0].1 <= w[1].1),
        "cumulative buckets never decrease: {by_bound:?}"
    );
    assert_eq!(
        by_bound.last().unwrap().1,
        7.0,
        "the +Inf bucket is the count"
    );
    assert!(m[r#"redis_keeper_start_time_seconds"#] > 1.6e9);
    let stats = w.keeper.stats();
    assert_eq!(
        (
            stats.total_operations,
            stats.successful_operations,
            stats.failed_operations
        ),
        (8, 7, 1),
        "the manager's totals are the databases' sums"
    );
    assert_eq!(
        (
            stats.total_databases,
            stats.healthy_databases,
            stats.failed_databases
        ),
        (16, 16, 0)
    );
    assert_eq!(
        stats.databases["main"].failures_by_kind.get("server"),
        Some(&1)
    );
    assert_eq!(stats.databases["main"].command_latency.count(), 7);
    let names: Vec<String> = stats.databases.keys().cloned().collect();
    check_labels(&text, &names);
    assert!(
        !text.contains("127.0.0.1") && !text.contains(":6379"),
        "no address in the metrics"
    );
}

#[test]
fn the_label_check_rejects_a_key_or_an_address() {
    let names = vec!["main".to_owned()];
    for bad in [
        r#"redis_keeper_commands_total{db="user:42",result="ok"} 1"#,
        r#"redis_keeper_commands_total{db="main",addr="127.0.0.1:6379"} 1"#,
        r#"redis_keeper_commands_total{db="main",result="127.0.0.1:6379"} 1"#,
    ] {
        let caught = std::panic::catch_unwind(|| check_labels(bad, &names)).is_err();
        assert!(caught, "not caught: {bad}");
    }
}
