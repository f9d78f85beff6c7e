//! Tests of the configuration layer: YAML, precedence, environment, discovery, secrets.

use std::collections::HashMap;
use std::time::Duration;

use tracing::level_filters::LevelFilter;

use super::*;

mod cluster;
mod discovery;
mod layering;
mod sentinel;
#[cfg(feature = "tls")]
mod tls;
mod urls;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

fn yaml(text: &str) -> KeeperConfig {
    KeeperConfig::from_yaml_str(text).unwrap_or_else(|e| panic!("{e}"))
}

fn yaml_err(text: &str) -> String {
    KeeperConfig::from_yaml_str(text).unwrap_err().to_string()
}

fn resolve(config: &KeeperConfig, e: &HashMap<String, String>) -> ResolvedConfig {
    config.resolve(None, e).unwrap_or_else(|e| panic!("{e}"))
}

/// A file written here that sets every key the Python loader read (not the seed's own file).
const EVERY_SEED_KEY: &str = include_str!("../../../tests/fixtures/seed-every-key.yaml");

/// The seed system's own `config/redis-databases.yaml`, key for key (copied from
/// `shared/fixtures/seed-redis-databases.yaml`).
const SEED_FILE: &str = include_str!("../../../tests/fixtures/seed-redis-databases.yaml");

#[test]
fn defaults_are_the_canonical_sixteen_on_loopback() {
    let r = resolve(&KeeperConfig::default(), &no_env());
    assert_eq!(r.databases().count(), 16);
    for d in RedisDatabase::ALL {
        let s = r.canonical(d);
        assert_eq!(s.db, d.number());
        assert_eq!(s.endpoint.to_string(), "127.0.0.1:6379");
    }
    let s = r.database("main").unwrap();
    assert_eq!(s.max_connections, 20);
    assert_eq!(s.shared_connections, 2);
    assert_eq!(s.connect_timeout, Duration::from_secs(5));
    assert_eq!(s.response_timeout, Duration::from_secs(5));
    assert_eq!(s.tcp, crate::seams::TcpOptions::default());
    assert_eq!(s.health_check_interval, Duration::from_secs(30));
    assert_eq!(s.check_on_checkout_after, Duration::from_secs(30));
    assert_eq!(s.retry.multiplier, Duration::from_secs(2));
    assert_eq!(s.retry.min, Duration::from_secs(2));
    assert_eq!(s.retry.max, Duration::from_secs(30));
    assert_eq!(s.retry.attempts, 5);
    assert_eq!(s.retry.jitter, Jitter::None);
    assert!(s.retry.retry_on_timeout);
    assert_eq!(s.breaker.failure_threshold, 5);
    assert_eq!(s.breaker.open_for, Duration::from_secs(60));
    assert_eq!(s.readiness.loading_poll_interval, Duration::from_secs(2));
    assert_eq!(s.readiness.loading_timeout, Duration::from_secs(60));
    assert_eq!(s.idle.idle_timeout, Duration::from_secs(300));
    assert_eq!(s.idle.sweep_interval, Duration::from_secs(60));
    assert_eq!(s.idle.min_idle, 0);
    assert_eq!(s.idle.max_lifetime, None);
    assert_eq!(s.pool_wait_timeout, Duration::from_secs(5));
    assert_eq!(s.password, None);
    assert_eq!(r.log_level, LevelFilter::INFO);
    assert!(r.database("nope").is_none());
    assert!(matches!(
        r.require("nope"),
        Err(ConfigError::UnknownDatabase { .. })
    ));
}

#[test]
fn every_key_the_seed_loader_read_loads() {
    let r = resolve(&yaml(EVERY_SEED_KEY), &no_env());
    let main = r.database("main").unwrap();
    assert_eq!(main.endpoint.to_string(), "172.16.168.23:6379");
    assert_eq!(main.max_connections, 50);
    assert_eq!(main.description.as_deref(), Some("Main application data"));
    assert_eq!(main.password.as_ref().unwrap().expose(), "seed-password");
    assert_eq!(main.username.as_deref(), Some("default"));
    assert_eq!(main.retry.attempts, 3);
    assert_eq!(main.retry.multiplier, Duration::from_millis(1500));
    assert_eq!(main.retry.min, Duration::from_millis(1500));
    assert_eq!(r.log_level, LevelFilter::INFO);
    let knowledge = r.database("knowledge").unwrap();
    assert_eq!(knowledge.response_timeout, Duration::from_secs(10));
    assert_eq!(knowledge.max_connections, 20);
    let agents = r.database("agents").unwrap();
    assert_eq!(agents.endpoint.to_string(), "172.16.168.24:6380");
    assert_eq!(
        agents.password.as_ref().unwrap().expose(),
        "agents-password"
    );
    let metrics = r.database("metrics").unwrap();
    assert_eq!(metrics.connect_timeout, Duration::from_secs(2));
    assert_eq!(metrics.tcp.keepalive, None);
    let sessions = r.database("sessions").unwrap();
    assert_eq!(sessions.health_check_interval, Duration::from_secs(15));
    assert_eq!(sessions.check_on_checkout_after, Duration::from_secs(15));
    assert!(!sessions.retry.retry_on_timeout);
    assert_eq!(sessions.retry.attempts, 2);
    assert_eq!(r.database("audit").unwrap().db, 10);
    assert_eq!(r.database("graph").unwrap().db, 15);
    assert_eq!(r.databases().count(), 16);
}

#[test]
fn the_seed_systems_own_file_loads_as_is() {
    let r = resolve(&yaml(SEED_FILE), &no_env());
    let db = |name: &str| r.database(name).unwrap_or_else(|| panic!("{name} missing"));
    for (name, number) in [
        ("main", 0),
        ("knowledge", 1),
        ("prompts", 2),
        ("agents", 3),
        ("metrics", 4),
        ("cache", 5),
        ("sessions", 6),
        ("workflows", 7),
        ("monitoring", 7),
        ("logs", 8),
        ("temp", 9),
        ("audit", 10),
        ("analytics", 11),
        ("codebase", 11),
    ] {
        assert_eq!(db(name).db, number, "{name}");
    }
    assert_eq!(
        r.database(RedisDatabase::Cache).unwrap().db,
        5,
        "the enum follows the file"
    );
    let audit = db("audit");
    assert_eq!(audit.max_connections, 15);
    assert_eq!(audit.response_timeout, Duration::from_secs(3));
    let main = db("main");
    assert_eq!(main.endpoint.to_string(), "localhost:6379");
    assert_eq!(main.password, None, "`password: null` means none");
    assert_eq!(main.max_connections, 20);
    assert_eq!(main.response_timeout, Duration::from_secs(5));
    assert_eq!(main.retry.attempts, 3);
    assert_eq!(main.retry.min, Duration::from_secs(1));
    assert_eq!(main.health_check_interval, Duration::from_secs(30));
    assert!(!main.log_commands);
    assert_eq!(main.description.as_deref(), Some("Main application data"));
    assert_eq!(r.log_level, LevelFilter::INFO);
}

#[test]
fn log_commands_is_a_top_level_and_per_database_flag() {
    let r = resolve(
        &yaml(
            "log_commands: true
redis_databases:
  main: {db: 0, log_commands: false}
",
        ),
        &no_env(),
    );
    assert!(!r.database("main").unwrap().log_commands);
    assert!(r.database("cache").unwrap().log_commands);
    assert!(
        !resolve(&KeeperConfig::default(), &no_env())
            .database("main")
            .unwrap()
            .log_commands
    );
    let err = yaml_err("log_commands: maybe\n");
    assert!(
        err.contains("log_commands") && err.contains("line 1"),
        "{err}"
    );
}

#[test]
fn databases_key_and_new_names_and_aliases() {
    let r = resolve(
        &yaml("databases:\n  main: {db: 0}\n  reports: {db: 9}\n  audit-log: {db: 10}\n  moved: {db: 3}\n  cache: {db: 12}\n"),
        &no_env(),
    );
    assert_eq!(r.database("reports").unwrap().db, 9);
    assert_eq!(r.database("analytics").unwrap().db, 9);
    assert_eq!(r.database("audit-log").unwrap().db, 10);
    assert_eq!(r.database("cache").unwrap().db, 12); // explicit remap of a canonical name
    assert_eq!(r.databases().count(), 19);
    // A bare canonical entry keeps its canonical number.
    let r = resolve(&yaml("redis_databases:\n  jobs:\n  temp: {}\n"), &no_env());
    assert_eq!(r.database("jobs").unwrap().db, 12);
    assert_eq!(r.database("temp").unwrap().db, 8);
    assert!(yaml("").source().is_some());
    assert_eq!(
        resolve(&yaml("# only a comment\n"), &no_env())
            .databases()
            .count(),
        16
    );
}

/// Each row: (yaml, expected substrings of the error, all must appear).
#[test]
fn yaml_errors_name_key_and_line() {
    let cases: &[(&str, &[&str])] = &[
        (
            "redis_databases:\n  main:\n    db: 16\n",
            &["db 16", "line 3"],
        ),
        ("redis_databases:\n  x:\n    db: -1\n", &["db -1", "line 3"]),
        ("port: 6379\ncolour: red\n", &["colour", "line 2"]),
        (
            "redis_databases:\n  main:\n    db: 0\n    colour: red\n",
            &["colour", "line 4"],
        ),
        ("port: abc\n", &["port", "line 1"]),
        (
            "redis_databases:\n  main:\n    max_connections: many\n",
            &["max_connections", "line 3"],
        ),
        (
            "redis_databases:\n  main:\n    max_connections: 0\n",
            &["max_connections", "line 3"],
        ),
        (
            "redis_databases:\n  \"\":\n    db: 1\n",
            &["empty database name", "line 2"],
        ),
        (
            "redis_databases:\n  a b: {db: 1}\n",
            &["invalid database name", "line 2"],
        ),
        (
            "redis_databases:\n  x: {db: 1}\n  x: {db: 2}\n",
            &["duplicate database `x`", "line 3"],
        ),
        (
            "redis_databases:\n  my-db: {db: 1}\n  my_db: {db: 2}\n",
            &["duplicate", "line 3"],
        ),
        (
            "redis_databases:\n  newname:\n    description: x\n",
            &["newname", "explicit `db:`", "line 3"],
        ),
        ("socket_timeout: -1\n", &["socket_timeout", "line 1"]),
        ("port: 0\n", &["port 0", "1..=65535", "line 1"]),
        (
            "redis_databases:\n  main: {host: ''}\n",
            &["host", "redis_databases.main", "not a URL", "line 2"],
        ),
        (
            "health_check_interval: 0\n",
            &["health_check_interval", "greater than 0", "line 1"],
        ),
        (
            "max_connections: 0\n",
            &["max_connections", "at least 1", "line 1"],
        ),
        ("socket_timeout: .nan\n", &["socket_timeout", "line 1"]),
        (
            "idle_timeout: 40000000\n",
            &["idle_timeout", "one year", "line 1"],
        ),
        (
            "timeout: 5\nsocket_timeout: 3\n",
            &["timeout", "socket_timeout", "line 1"],
        ),
        (
            "redis_databases:\n  main:\n    timeout_seconds: 5\n    socket_timeout: 3\n",
            &["timeout_seconds", "socket_timeout", "line 3"],
        ),
        (
            "retry_attempts: 3\nmax_retries: 4\n",
            &["retry_attempts", "max_retries"],
        ),
        (
            "redis_databases: {}\ndatabases: {}\n",
            &["redis_databases", "databases"],
        ),
        ("log_level: loud\n", &["log_level", "loud", "line 1"]),
        ("retry_jitter: some\n", &["retry_jitter", "line 1"]),
        ("decode_responses: maybe\n", &["decode_responses", "line 1"]),
        ("port: [1\n", &["line"]),
        ("- 1\n- 2\n", &["line 1"]),
        (
            "redis_databases:\n  main:\n    db: 0\n    db: 1\n",
            &["duplicate field `db`", "redis_databases.main", "line 3"],
        ),
    ];
    for (text, wanted) in cases {
        let msg = yaml_err(text);
        for w in *wanted {
            assert!(msg.contains(w), "{text:?}: {msg:?} lacks {w:?}");
        }
        assert!(msg.contains("<string>"), "{msg}");
    }
    // Equal values under two names are fine.
    yaml("timeout: 5\nsocket_timeout: 5.0\nretry_attempts: 2\nmax_retries: 2\n");
}

#[test]
fn yaml_error_carries_line_and_column_fields() {
    match KeeperConfig::from_yaml_str("port: 1\nbogus: 2\n") {
        Err(ConfigError::Yaml {
            line,
            column,
            source_name,
            message,
        }) => {
            assert_eq!(line, Some(2));
            assert_eq!(column, Some(1));
            assert_eq!(source_name, "<string>");
            assert!(message.contains("bogus"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn breaker_loss_window_follows_the_response_timeout_unless_set() {
    let r = resolve(
        &yaml("socket_timeout: 3\nredis_databases:\n  main: {db: 0, breaker_loss_window: 1.5}\n"),
        &no_env(),
    );
    assert_eq!(
        r.database("main").unwrap().breaker.loss_window,
        Duration::from_millis(1500)
    );
    assert_eq!(
        r.database("cache").unwrap().breaker.loss_window,
        Duration::from_secs(3)
    );
    let d = resolve(&KeeperConfig::default(), &no_env());
    assert_eq!(
        d.database("main").unwrap().breaker.loss_window,
        Duration::from_secs(5)
    );
    let err = yaml_err("breaker_loss_window: -1\n");
    assert!(err.contains("breaker_loss_window"), "{err}");
}
