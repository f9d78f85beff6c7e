//! Table and property tests of the idle policy.
use super::*;
use proptest::prelude::*;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn entry(t0: Instant, id: u64, returned: u64, created: u64) -> IdleEntry {
    IdleEntry {
        id,
        returned_at: t0 + s(returned),
        created_at: t0 + s(created),
    }
}

#[test]
fn defaults_match_the_design() {
    let c = IdleConfig::default();
    assert_eq!(
        (c.idle_timeout, c.sweep_interval, c.min_idle, c.max_lifetime),
        (s(300), s(60), 0, None)
    );
}

#[test]
fn staleness_table() {
    let t0 = Instant::now();
    let plain = IdlePolicy::new(IdleConfig::default(), t0);
    let capped = IdlePolicy::new(
        IdleConfig {
            max_lifetime: Some(s(1000)),
            ..IdleConfig::default()
        },
        t0,
    );
    // (policy, returned_at, created_at, now, stale)
    let cases = [
        (&plain, 0, 0, 300, false), // exactly the timeout: not stale (strict)
        (&plain, 0, 0, 301, true),
        (&plain, 100, 0, 399, false),
        (&plain, 10, 0, 5, false),      // returned "after" now: never stale
        (&plain, 2000, 0, 2100, false), // old but recently used, no lifetime cap
        (&capped, 2000, 0, 2100, true), // lifetime exceeded
        (&capped, 900, 0, 1000, false), // lifetime exactly reached: not stale
        (&capped, 900, 0, 1001, true),
    ];
    for (policy, returned, created, now, want) in cases {
        let e = entry(t0, 1, returned, created);
        let cap = policy.config().max_lifetime;
        assert_eq!(
            policy.is_stale(t0 + s(now), &e),
            want,
            "returned {returned} created {created} now {now} cap {cap:?}"
        );
    }
}

#[test]
fn sweep_table() {
    let t0 = Instant::now();
    let idle = [
        entry(t0, 1, 50, 0),  // stale at 400
        entry(t0, 2, 10, 0),  // stale at 400, oldest
        entry(t0, 3, 200, 0), // fresh at 400
        entry(t0, 4, 90, 0),  // stale at 400
    ];
    // (min_idle, entries, ids closed at 400 s)
    let cases: [(usize, &[IdleEntry], &[u64]); 7] = [
        (0, &idle, &[2, 1, 4]),
        (1, &idle, &[2, 1, 4]),
        (2, &idle, &[2, 1]),
        (3, &idle, &[2]),
        (4, &idle, &[]),
        (9, &idle, &[]),
        (0, &[], &[]),
    ];
    for (min_idle, entries, want) in cases {
        let config = IdleConfig {
            min_idle,
            ..IdleConfig::default()
        };
        let mut p = IdlePolicy::new(config, t0);
        assert_eq!(
            p.on_sweep(t0 + s(400), entries),
            want,
            "min_idle {min_idle}"
        );
    }
}

#[test]
fn schedule_table() {
    let t0 = Instant::now();
    let mut p = IdlePolicy::new(IdleConfig::default(), t0);
    assert_eq!((p.next_deadline(), p.last_sweep()), (t0 + s(60), None));
    assert!(!p.sweep_due(t0 + s(59)) && p.sweep_due(t0 + s(60)));
    // On time: next tick.
    let _ = p.on_sweep(t0 + s(60), &[]);
    assert_eq!(p.next_deadline(), t0 + s(120));
    assert_eq!(p.last_sweep(), Some(t0 + s(60)));
    // Late by several ticks: missed ticks skipped, alignment kept.
    let _ = p.on_sweep(t0 + s(250), &[]);
    assert_eq!(p.next_deadline(), t0 + s(300));
    // Early (a checkout-driven sweep): the schedule does not move.
    let _ = p.on_sweep(t0 + s(260), &[]);
    assert_eq!(p.next_deadline(), t0 + s(300));
    // Exactly on a later tick.
    let _ = p.on_sweep(t0 + s(300), &[]);
    assert_eq!(p.next_deadline(), t0 + s(360));
}

fn entries() -> impl Strategy<Value = Vec<(u64, u64)>> {
    // (returned_at, age at return) in seconds
    prop::collection::vec((0u64..100, 0u64..100), 0..20)
}

proptest! {
    #[test]
    fn sweep_closes_only_stale_oldest_first_keeping_min_idle(
        raw in entries(),
        now in 0u64..200,
        idle_timeout in 0u64..100,
        min_idle in 0usize..8,
        lifetime in prop::option::of(0u64..200),
    ) {
        let t0 = Instant::now();
        let config = IdleConfig {
            idle_timeout: s(idle_timeout),
            min_idle,
            max_lifetime: lifetime.map(s),
            ..IdleConfig::default()
        };
        let idle: Vec<IdleEntry> = raw
            .iter()
            .enumerate()
            .map(|(i, &(returned, age))| IdleEntry {
                id: i as u64,
                returned_at: t0 + s(returned + 100),
                created_at: t0 + s(returned + 100 - age),
            })
            .collect();
        let now = t0 + s(now + 100);
        let mut p = IdlePolicy::new(config, t0);
        let closed = p.on_sweep(now, &idle);
        let by_id = |id: u64| idle[id as usize];
        // The oracle, straight from DESIGN §3 (strict comparisons), not from the code under test.
        let is_stale = |e: &IdleEntry| {
            now.saturating_duration_since(e.returned_at) > s(idle_timeout)
                || lifetime.is_some_and(|l| now.saturating_duration_since(e.created_at) > s(l))
        };
        let stale: Vec<IdleEntry> = idle.iter().copied().filter(|e| is_stale(e)).collect();
        // Never closes a fresh connection, never the same twice.
        for &id in &closed {
            prop_assert!(is_stale(&by_id(id)), "closed fresh connection {}", id);
        }
        let mut unique = closed.clone();
        unique.sort_unstable();
        unique.dedup();
        prop_assert_eq!(unique.len(), closed.len());
        // Keeps min_idle when it closes; closes every stale one it may.
        if !closed.is_empty() {
            prop_assert!(idle.len() - closed.len() >= min_idle);
        }
        prop_assert_eq!(closed.len(), stale.len().min(idle.len().saturating_sub(min_idle)));
        // Oldest first: in order, and no kept stale entry is older than a closed one.
        for pair in closed.windows(2) {
            prop_assert!(by_id(pair[0]).returned_at <= by_id(pair[1]).returned_at);
        }
        if let Some(&last) = closed.last() {
            for e in stale.iter().filter(|e| !closed.contains(&e.id)) {
                prop_assert!(e.returned_at >= by_id(last).returned_at);
            }
        }
    }

    #[test]
    fn sweep_schedule_is_fixed_rate_skipping_missed_ticks(
        interval in 1u64..120,
        gaps in prop::collection::vec(0u64..500, 1..30),
    ) {
        let t0 = Instant::now();
        let interval_d = s(interval);
        let mut p = IdlePolicy::new(IdleConfig { sweep_interval: interval_d, ..IdleConfig::default() }, t0);
        let mut now = t0;
        for gap in gaps {
            now += s(gap);
            let _ = p.on_sweep(now, &[]);
            let next = p.next_deadline();
            prop_assert!(next > now);
            prop_assert!(next - interval_d <= now, "a tick after now was skipped");
            prop_assert_eq!((next - t0).as_secs() % interval, 0);
            prop_assert_eq!((next - t0).subsec_nanos(), 0);
            prop_assert!(!p.sweep_due(now));
        }
    }
}

#[test]
fn config_returns_the_configuration_in_force() {
    let c = IdleConfig {
        idle_timeout: Duration::from_secs(9),
        sweep_interval: Duration::from_secs(4),
        min_idle: 2,
        max_lifetime: Some(Duration::from_secs(99)),
    };
    assert_eq!(IdlePolicy::new(c.clone(), Instant::now()).config(), &c);
}
