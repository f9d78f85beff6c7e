//! The metric families, each computed from a [`ManagerStats`] snapshot.

use std::time::{Duration, SystemTime};

use super::text::{Exposition, Type};
use crate::histogram::HistogramSnapshot;
use crate::policy::{BreakerStateKind, HealthState};
use crate::stats::{ClusterStats, DatabaseStats, ErrorLabel, ManagerStats, SentinelStats};

/// A family's samples for one database: `(labels beside db, value)`.
type Samples = Vec<(Vec<(&'static str, &'static str)>, f64)>;

/// A per-database family: its name, type, help and how to read it from a snapshot.
pub(crate) struct Family {
    pub(crate) name: &'static str,
    pub(crate) kind: Type,
    pub(crate) help: &'static str,
    pub(crate) read: fn(&DatabaseStats) -> Samples,
}

fn one(v: u64) -> Samples {
    vec![(vec![], v as f64)]
}

fn by(label: &'static str, values: &[(&'static str, u64)]) -> Samples {
    values
        .iter()
        .map(|(name, v)| (vec![(label, *name)], *v as f64))
        .collect()
}

/// The count of every [`ErrorLabel`] in `counts` (the ones absent are 0).
fn by_kind(counts: &std::collections::BTreeMap<&'static str, u64>) -> Samples {
    ErrorLabel::ALL
        .iter()
        .map(|l| {
            let n = counts.get(l.as_str()).copied().unwrap_or(0);
            (vec![("kind", l.as_str())], n as f64)
        })
        .collect()
}

/// The samples of a Sentinel family: none for a direct database.
fn sentinel(s: &DatabaseStats, read: fn(&SentinelStats) -> Samples) -> Samples {
    s.sentinel.as_ref().map(read).unwrap_or_default()
}

/// The samples of a Cluster family: none for a database not on a cluster.
fn cluster(s: &DatabaseStats, read: fn(&ClusterStats) -> Samples) -> Samples {
    s.cluster.as_ref().map(read).unwrap_or_default()
}

fn states<T: Copy + PartialEq>(now: Option<T>, all: &[T], name: fn(T) -> &'static str) -> Samples {
    all.iter()
        .map(|s| {
            (
                vec![("state", name(*s))],
                f64::from(u8::from(now == Some(*s))),
            )
        })
        .collect()
}

/// Every per-database counter and gauge family, in exposition order.
pub(crate) const FAMILIES: &[Family] = &[
    Family {
        name: "redis_keeper_commands_total",
        kind: Type::Counter,
        help: "Commands and pipelines, by result (error: an error reply, a transport failure, a timeout, a breaker rejection or a failed reconnect of the handle).",
        read: |s| by("result", &[("ok", s.successful_operations), ("error", s.failed_operations)]),
    },
    Family {
        name: "redis_keeper_command_errors_total",
        kind: Type::Counter,
        help: "Failed commands and pipelines, by what they met.",
        read: |s| by_kind(&s.failures_by_kind),
    },
    Family {
        name: "redis_keeper_checkout_errors_total",
        kind: Type::Counter,
        help: "Failed checkouts (get, get_exclusive and their blocking twins), by what they met: no command ran.",
        read: |s| by_kind(&s.checkout_failures_by_kind),
    },
    Family {
        name: "redis_keeper_connections",
        kind: Type::Gauge,
        help: "Connections now, by state: exclusive idle or in use, shared (multiplexed), being opened.",
        read: |s| {
            let p = &s.pool;
            by(
                "state",
                &[
                    ("idle", p.idle as u64),
                    ("in_use", p.in_use as u64),
                    ("shared", p.shared as u64),
                    ("connecting", p.connecting as u64),
                ],
            )
        },
    },
    Family {
        name: "redis_keeper_connections_max",
        kind: Type::Gauge,
        help: "The bound on all connections of the database (max_connections).",
        read: |s| one(s.pool.max as u64),
    },
    Family {
        name: "redis_keeper_connections_created_total",
        kind: Type::Counter,
        help: "Connections opened.",
        read: |s| one(s.connections_created),
    },
    Family {
        name: "redis_keeper_connect_failures_total",
        kind: Type::Counter,
        help: "Connection attempts that failed.",
        read: |s| one(s.connections_failed),
    },
    Family {
        name: "redis_keeper_connect_retries_total",
        kind: Type::Counter,
        help: "Connection attempts retried by the retry schedule.",
        read: |s| one(s.retries),
    },
    Family {
        name: "redis_keeper_connections_closed_total",
        kind: Type::Counter,
        help: "Pooled connections closed, by reason: stale (idle timeout or lifetime), broken (failed or left in a changed state), other (surplus, shutdown).",
        read: |s| {
            let p = &s.pool;
            let other = p.closed.saturating_sub(p.stale_closed + p.broken_closed);
            by("reason", &[("stale", p.stale_closed), ("broken", p.broken_closed), ("other", other)])
        },
    },
    Family {
        name: "redis_keeper_pool_checkouts_total",
        kind: Type::Counter,
        help: "Exclusive checkouts by result: hit (an idle connection), miss (opened one or waited), timeout (waited past pool_wait_timeout).",
        read: |s| {
            let p = &s.pool;
            by(
                "result",
                &[("hit", p.hits), ("miss", p.misses.saturating_sub(p.timeouts)), ("timeout", p.timeouts)],
            )
        },
    },
    Family {
        name: "redis_keeper_pool_waiters",
        kind: Type::Gauge,
        help: "Callers waiting for a connection now.",
        read: |s| one(s.pool.waiters as u64),
    },
    Family {
        name: "redis_keeper_idle_sweeps_total",
        kind: Type::Counter,
        help: "Idle sweeps run.",
        read: |s| one(s.pool.sweeps),
    },
    Family {
        name: "redis_keeper_breaker_state",
        kind: Type::Gauge,
        help: "The circuit breaker's state: 1 for the current one.",
        read: |s| {
            states(
                Some(s.breaker.state),
                &[BreakerStateKind::Closed, BreakerStateKind::Open, BreakerStateKind::HalfOpen],
                BreakerStateKind::as_str,
            )
        },
    },
    Family {
        name: "redis_keeper_breaker_failures",
        kind: Type::Gauge,
        help: "Failures in a row the breaker counted (the threshold while open or half-open).",
        read: |s| one(u64::from(s.breaker.failure_count)),
    },
    Family {
        name: "redis_keeper_breaker_half_open_in_seconds",
        kind: Type::Gauge,
        help: "While the breaker is open: seconds until it lets one probe through; else 0.",
        read: |s| vec![(vec![], s.breaker.half_open_in.unwrap_or_default().as_secs_f64())],
    },
    Family {
        name: "redis_keeper_breaker_transitions_total",
        kind: Type::Counter,
        help: "Breaker transitions by reason: failure_threshold (closed to open), probe_failed (half-open to open), open_period_elapsed (open to half-open), probe_succeeded (half-open to closed).",
        read: |s| {
            let b = &s.breaker;
            by(
                "reason",
                &[
                    ("failure_threshold", s.breaker_trips),
                    ("probe_failed", s.breaker_reopens),
                    ("open_period_elapsed", b.half_opens),
                    ("probe_succeeded", b.closes),
                ],
            )
        },
    },
    Family {
        name: "redis_keeper_breaker_rejections_total",
        kind: Type::Counter,
        help: "Calls rejected at once because the breaker was open.",
        read: |s| one(s.rejected_while_open),
    },
    Family {
        name: "redis_keeper_loading_episodes_total",
        kind: Type::Counter,
        help: "LOADING episodes ridden out or timed out.",
        read: |s| one(s.loading_episodes),
    },
    Family {
        name: "redis_keeper_readiness_timeouts_total",
        kind: Type::Counter,
        help: "Readiness waits that gave up (still loading at loading_timeout).",
        read: |s| one(s.readiness_timeouts),
    },
    Family {
        name: "redis_keeper_health_state",
        kind: Type::Gauge,
        help: "The database's health: 1 for the current state.",
        read: |s| {
            states(
                s.health,
                &[HealthState::Healthy, HealthState::Degraded, HealthState::Failed],
                HealthState::as_str,
            )
        },
    },
    Family {
        name: "redis_keeper_health_checks_total",
        kind: Type::Counter,
        help: "Background health checks, by result.",
        read: |s| {
            by(
                "result",
                &[
                    ("ok", s.health_checks.saturating_sub(s.health_checks_failed)),
                    ("failed", s.health_checks_failed),
                ],
            )
        },
    },
    Family {
        name: "redis_keeper_live_handles",
        kind: Type::Gauge,
        help: "Connection handles held by callers now.",
        read: |s| one(s.live_handles),
    },
    Family {
        name: "redis_keeper_subscribers",
        kind: Type::Gauge,
        help: "Live subscribers now.",
        read: |s| one(s.subscribers),
    },
    Family {
        name: "redis_keeper_subscriber_messages_total",
        kind: Type::Counter,
        help: "Pub/sub messages by result: delivered to a subscriber's buffer, or dropped because it was full.",
        read: |s| by("result", &[("delivered", s.messages_delivered), ("dropped", s.messages_dropped)]),
    },
    Family {
        name: "redis_keeper_resubscriptions_total",
        kind: Type::Counter,
        help: "Reconnects after which a subscriber subscribed again.",
        read: |s| one(s.resubscriptions),
    },
    Family {
        name: "redis_keeper_sentinel_master_switches_total",
        kind: Type::Counter,
        help: "Sentinel-backed databases: times the master moved (an event, a poll or a lookup named a new address).",
        read: |s| sentinel(s, |t| one(t.switches)),
    },
    Family {
        name: "redis_keeper_sentinel_lookups_total",
        kind: Type::Counter,
        help: "Sentinel-backed databases: master lookups, by result (error: no sentinel answered, or none knew the master).",
        read: |s| sentinel(s, |t| by("result", &[("ok", t.lookups), ("error", t.lookup_failures)])),
    },
    Family {
        name: "redis_keeper_sentinel_role_mismatches_total",
        kind: Type::Counter,
        help: "Sentinel-backed databases: new connections whose server did not answer ROLE as it should (master, or slave for role: replica).",
        read: |s| sentinel(s, |t| one(t.role_mismatches)),
    },
    Family {
        name: "redis_keeper_sentinel_readonly_replies_total",
        kind: Type::Counter,
        help: "Sentinel-backed databases: READONLY replies from a stale master (each sent once more to the master the sentinels name).",
        read: |s| sentinel(s, |t| one(t.readonly_replies)),
    },
    Family {
        name: "redis_keeper_sentinel_failover_holds_total",
        kind: Type::Counter,
        help: "Sentinel-backed databases: failover announcements that made commands wait.",
        read: |s| sentinel(s, |t| one(t.holds)),
    },
    Family {
        name: "redis_keeper_sentinel_failover_holding",
        kind: Type::Gauge,
        help: "Sentinel-backed databases: 1 while commands wait for an announced failover to end.",
        read: |s| sentinel(s, |t| one(u64::from(t.holding))),
    },
    Family {
        name: "redis_keeper_cluster_redirections_total",
        kind: Type::Counter,
        help: "Cluster databases: MOVED and ASK replies followed, by kind.",
        read: |s| cluster(s, |c| by("kind", &[("moved", c.moved), ("ask", c.ask)])),
    },
    Family {
        name: "redis_keeper_cluster_refusals_total",
        kind: Type::Counter,
        help: "Cluster databases: TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN and READONLY replies waited out.",
        read: |s| cluster(s, |c| one(c.refusals)),
    },
    Family {
        name: "redis_keeper_cluster_slot_map_refreshes_total",
        kind: Type::Counter,
        help: "Cluster databases: slot map reads (CLUSTER SLOTS), by result (error: no node answered).",
        read: |s| {
            cluster(s, |c| {
                let ok = c.refreshes.saturating_sub(c.refresh_failures);
                by("result", &[("ok", ok), ("error", c.refresh_failures)])
            })
        },
    },
    Family {
        name: "redis_keeper_cluster_topology_changes_total",
        kind: Type::Counter,
        help: "Cluster databases: slot map reads that found the map changed (each replaced the cluster connection).",
        read: |s| cluster(s, |c| one(c.topology_changes)),
    },
    Family {
        name: "redis_keeper_cluster_known_masters",
        kind: Type::Gauge,
        help: "Cluster databases: masters serving slots in the slot map as last read.",
        read: |s| cluster(s, |c| one(c.known_masters as u64)),
    },
];

/// Which histogram of a database's snapshot a family shows.
type ReadHistogram = fn(&DatabaseStats) -> HistogramSnapshot;

/// The histogram families: name, help, and which histogram of a snapshot.
pub(crate) const HISTOGRAMS: &[(&str, &str, ReadHistogram)] = &[
    (
        "redis_keeper_command_duration_seconds",
        "Time from sending a command to its reply (successes and error replies).",
        |s| s.command_latency,
    ),
    (
        "redis_keeper_pool_wait_seconds",
        "Time a checkout waited for a free connection (only checkouts that waited).",
        |s| s.pool.wait,
    ),
];

/// The bucket bounds as `le` label values.
fn bounds() -> Vec<String> {
    HistogramSnapshot::BOUNDS_MICROS
        .iter()
        .map(|m| super::text::number(Duration::from_micros(*m).as_secs_f64()))
        .chain(std::iter::once("+Inf".to_owned()))
        .collect()
}

/// The whole snapshot as Prometheus text.
pub(crate) fn render(stats: &ManagerStats) -> String {
    let mut e = Exposition::default();
    for family in FAMILIES {
        let samples: Vec<(&str, Samples)> = stats
            .databases
            .iter()
            .map(|(db, s)| (db.as_str(), (family.read)(s)))
            .collect();
        if samples.iter().all(|(_, s)| s.is_empty()) {
            continue; // a family no database has (Sentinel without a Sentinel database)
        }
        e.family(family.name, family.kind, family.help);
        for (db, samples) in samples {
            for (labels, value) in samples {
                let mut all = vec![("db", db)];
                all.extend(labels);
                e.sample(family.name, &all, value);
            }
        }
    }
    let le = bounds();
    for (name, help, read) in HISTOGRAMS {
        e.family(name, Type::Histogram, help);
        let (bucket, sum, count) = (
            format!("{name}_bucket"),
            format!("{name}_sum"),
            format!("{name}_count"),
        );
        for (db, s) in &stats.databases {
            let h = read(s);
            for (bound, n) in le.iter().zip(h.cumulative()) {
                e.sample(&bucket, &[("db", db), ("le", bound)], n as f64);
            }
            e.sample(&sum, &[("db", db)], h.sum.as_secs_f64());
            e.sample(&count, &[("db", db)], h.count() as f64);
        }
    }
    e.family(
        START_TIME,
        Type::Gauge,
        "When the Keeper was built, in seconds since the Unix epoch.",
    );
    e.sample(START_TIME, &[], start_time_seconds(stats));
    e.finish()
}

/// The start time's series name.
pub(crate) const START_TIME: &str = "redis_keeper_start_time_seconds";

/// When the Keeper was built, in seconds since the Unix epoch.
pub(crate) fn start_time_seconds(stats: &ManagerStats) -> f64 {
    stats
        .start_time
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_secs_f64()
}
