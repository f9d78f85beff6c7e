//! The README's first command, `cargo run --example tour`, in CI: the example is included as a
//! module and its simulated run checked against what it narrates.
#![cfg(all(feature = "sim", feature = "tokio"))]

#[allow(dead_code)]
#[path = "../examples/tour.rs"]
mod tour;

use std::time::Duration;

#[test]
fn the_tour_runs_every_act_and_tells_the_truth() {
    let s = tour::run_sim(tour::DEFAULT_SEED, false);
    s.check().unwrap();
    assert!(s.counters_match);
    assert_eq!(s.loading_episodes, 1);
    assert!(s.loading_waited >= Duration::from_secs(40), "{s:?}");
    assert!(s.loading_waited < Duration::from_secs(41), "{s:?}");
    assert!(s.loading_probes >= 20, "a probe every 2 s for 40 s: {s:?}");
    assert_eq!(
        s.loading_counter, 8,
        "each INCR sent during LOADING applied once"
    );
    assert_eq!(s.breaker_trips, 1);
    assert!(s.breaker_rejected && s.breaker_closed);
    assert!(s.sweep_closed >= 1);
    // Readable and quick: under ~120 lines, minutes of virtual time in well under a few seconds.
    assert!(s.lines.len() < 120, "{} lines", s.lines.len());
    assert!(s.lines.iter().any(|l| l.contains("== Act 6")));
    assert!(s.virtual_elapsed > Duration::from_secs(200), "{s:?}");
    assert!(s.real_elapsed < Duration::from_secs(10), "{s:?}");
}

#[test]
fn the_same_seed_replays_the_same_trace() {
    let a = tour::run_sim(7, false);
    let b = tour::run_sim(7, false);
    let c = tour::run_sim(8, false);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.trace_events, b.trace_events);
    assert_ne!(a.trace_hash, c.trace_hash);
    for s in [&a, &c] {
        s.check().unwrap();
    }
}

#[test]
fn redis_url_is_parsed_minimally_and_loopback_only() {
    let u = tour::parse_redis_url("redis://127.0.0.1:6379").unwrap();
    assert_eq!((u.host.as_str(), u.port, u.db), ("127.0.0.1", 6379, None));
    let u = tour::parse_redis_url("redis://:s3cret@localhost/3").unwrap();
    assert_eq!(
        (u.host.as_str(), u.port, u.db),
        ("localhost", 6379, Some(3))
    );
    assert_eq!(
        (u.username.as_deref(), u.password.as_deref()),
        (None, Some("s3cret"))
    );
    let u = tour::parse_redis_url("redis://app:pw@[::1]:6380/0").unwrap();
    assert_eq!((u.host.as_str(), u.port, u.db), ("::1", 6380, Some(0)));
    assert_eq!(u.username.as_deref(), Some("app"));
    assert_eq!(u.address(), "[::1]:6380");
    assert!(tour::parse_redis_url("redis://127.9.8.7").is_ok());
    for bad in [
        "redis://10.0.0.5:6379",
        "redis://redis.internal",
        "redis://[2001:db8::1]:6379",
        "redis://localhost.evil.example",
        "rediss://127.0.0.1",
        "127.0.0.1:6379",
        "redis://127.0.0.1:0",
        "redis://127.0.0.1/16",
    ] {
        assert!(tour::parse_redis_url(bad).is_err(), "{bad}");
    }
    let err = tour::parse_redis_url("redis://10.0.0.5").unwrap_err();
    assert!(
        err.contains("10.0.0.5") && err.contains("127.0.0.0/8"),
        "{err}"
    );
}

#[test]
fn sim_seed_accepts_decimal_and_hex() {
    assert_eq!(tour::parse_seed("42"), Some(42));
    assert_eq!(tour::parse_seed(" 0x2A "), Some(42));
    assert_eq!(tour::parse_seed("1_000"), Some(1000));
    assert_eq!(tour::parse_seed("forty-two"), None);
}
