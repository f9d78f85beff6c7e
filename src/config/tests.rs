//! Tests of the configuration layer: YAML, precedence, environment, discovery, secrets.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use tracing::level_filters::LevelFilter;

use super::discover::discover_in;
use super::*;

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
const EVERY_SEED_KEY: &str = include_str!("../../tests/fixtures/seed-every-key.yaml");

/// The seed system's own `config/redis-databases.yaml`, key for key (copied from
/// `shared/fixtures/seed-redis-databases.yaml`).
const SEED_FILE: &str = include_str!("../../tests/fixtures/seed-redis-databases.yaml");

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
fn resolution_errors_name_value_and_origin() {
    let cases: Vec<(KeeperConfig, HashMap<String, String>, &[&str])> = vec![
        (
            yaml("shared_connections: 30\n"),
            no_env(),
            &[
                "shared_connections",
                "30",
                "<string> key shared_connections",
            ],
        ),
        (yaml("port: 0\n"), no_env(), &["port", "<string> key port"]),
        (
            yaml("redis_databases:\n  main: {host: ''}\n"),
            no_env(),
            &["host", "redis_databases.main.host"],
        ),
        (
            yaml("retry_min: 40\n"),
            no_env(),
            &["retry_min", "retry_max"],
        ),
        (
            KeeperConfig::default().database("x", 16),
            no_env(),
            &["db", "16", "code"],
        ),
        (
            KeeperConfig::default().configure("typo", |d| d.max_connections(3)),
            no_env(),
            &["unknown database typo"],
        ),
        (
            KeeperConfig::default().database("a b", 3),
            no_env(),
            &["database name", "code"],
        ),
        (
            KeeperConfig::default().database("MAIN", 3),
            no_env(),
            &["duplicate database MAIN"],
        ),
        (
            KeeperConfig::default(),
            env(&[("REDIS_PORT", "x")]),
            &["REDIS_PORT", "`x`"],
        ),
        (
            KeeperConfig::default(),
            env(&[("REDIS_KEEPER_MAIN_DB", "-1")]),
            &["REDIS_KEEPER_MAIN_DB", "-1"],
        ),
        (
            KeeperConfig::default(),
            env(&[("REDIS_KEEPER_MAIN_DB", "16")]),
            &["REDIS_KEEPER_MAIN_DB", "16"],
        ),
        (
            KeeperConfig::default(),
            env(&[("REDIS_KEEPER_MAIN_SOCKET_TIMEOUT", "-3")]),
            &["REDIS_KEEPER_MAIN_SOCKET_TIMEOUT", "-3"],
        ),
        (
            KeeperConfig::default(),
            env(&[("REDIS_KEEPER_LOG_LEVEL", "loud")]),
            &["REDIS_KEEPER_LOG_LEVEL", "loud"],
        ),
        (
            KeeperConfig::default()
                .configure_all(|d| d.idle_timeout(Duration::from_secs(400 * 86400))),
            no_env(),
            &["idle_timeout", "one year"],
        ),
        (
            KeeperConfig::default().configure("main", |d| d.health_check_interval(Duration::ZERO)),
            no_env(),
            &["health_check_interval", "greater than 0"],
        ),
    ];
    for (config, e, wanted) in cases {
        let msg = config.resolve(None, &e).unwrap_err().to_string();
        for w in wanted {
            assert!(msg.contains(w), "{msg:?} lacks {w:?}");
        }
    }
}

#[test]
fn unknown_and_ambiguous_env_vars_are_errors() {
    for var in [
        "REDIS_KEEPER_MAIN_COLOUR",
        "REDIS_KEEPER_NOPE_MAX_CONNECTIONS",
        "REDIS_KEEPER_COLOUR",
        "REDIS_KEEPER_DB",
        "REDIS_KEEPER_main_MAX_CONNECTIONS",
    ] {
        let err = KeeperConfig::default()
            .resolve(None, &env(&[(var, "1")]))
            .unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnknownEnvVar { name } if name == var),
            "{var}: {err}"
        );
    }
    let config = yaml("redis_databases:\n  socket: {db: 1}\n");
    let err = config
        .resolve(None, &env(&[("REDIS_KEEPER_SOCKET_TIMEOUT", "1")]))
        .unwrap_err();
    assert!(matches!(err, ConfigError::AmbiguousEnvVar { .. }), "{err}");
    // Unrelated variables are ignored; REDIS_KEEPER_CONFIG is discovery's.
    resolve(
        &KeeperConfig::default(),
        &env(&[
            ("PATH", "/bin"),
            ("REDISX", "1"),
            ("REDIS_KEEPER_CONFIG", "/x"),
        ]),
    );
}

#[test]
fn env_scheme() {
    let config = yaml("redis_databases:\n  my-db: {db: 4}\n");
    let r = resolve(
        &config,
        &env(&[
            ("REDIS_HOST", "10.1.1.1"),
            ("REDIS_PORT", "7000"),
            ("REDIS_USERNAME", "app"),
            ("REDIS_PASSWORD", "pw"),
            ("REDIS_KEEPER_MAX_CONNECTIONS", "40"),
            ("REDIS_KEEPER_MAIN_MAX_CONNECTIONS", "50"),
            ("REDIS_KEEPER_MY_DB_SHARED_CONNECTIONS", "3"),
            ("REDIS_KEEPER_CACHE_TIMEOUT", "1.5"),
            ("REDIS_KEEPER_JOBS_RETRY_DELAY", "1"),
            ("REDIS_KEEPER_JOBS_RETRY_JITTER", "full"),
            ("REDIS_KEEPER_SEARCH_SOCKET_KEEPALIVE", "off"),
            ("REDIS_KEEPER_GRAPH_MAX_LIFETIME", "3600"),
            ("REDIS_KEEPER_LOG_LEVEL", "debug"),
        ]),
    );
    let main = r.database("main").unwrap();
    assert_eq!(main.endpoint.to_string(), "10.1.1.1:7000");
    assert_eq!(main.username.as_deref(), Some("app"));
    assert_eq!(main.password.as_ref().unwrap().expose(), "pw");
    assert_eq!(main.max_connections, 50);
    assert_eq!(r.database("cache").unwrap().max_connections, 40);
    assert_eq!(r.database("my-db").unwrap().shared_connections, 3);
    assert_eq!(
        r.database("cache").unwrap().response_timeout,
        Duration::from_millis(1500)
    );
    let jobs = r.database("jobs").unwrap();
    assert_eq!(jobs.retry.min, Duration::from_secs(1));
    assert_eq!(jobs.retry.multiplier, Duration::from_secs(1));
    assert_eq!(jobs.retry.jitter, Jitter::Full);
    assert_eq!(r.database("search").unwrap().tcp.keepalive, None);
    assert_eq!(
        r.database("graph").unwrap().idle.max_lifetime,
        Some(Duration::from_secs(3600))
    );
    assert_eq!(r.log_level, LevelFilter::DEBUG);
    // Two variables for one key must agree.
    let err = KeeperConfig::default()
        .resolve(
            None,
            &env(&[("REDIS_PASSWORD", "a"), ("REDIS_KEEPER_PASSWORD", "b")]),
        )
        .unwrap_err();
    assert!(matches!(err, ConfigError::ConflictingKeys { .. }), "{err}");
    assert!(!err.to_string().contains("\"a\"") && !err.to_string().contains("`b`"));
    // An empty REDIS_PASSWORD removes a YAML password.
    let r = resolve(&yaml("password: p\n"), &env(&[("REDIS_PASSWORD", "")]));
    assert_eq!(r.database("main").unwrap().password, None);
}

#[derive(Debug)]
struct Registry;

impl ServiceRegistry for Registry {
    fn redis_service(&self, database: &str) -> Result<Option<RegistryEntry>, ConfigError> {
        Ok(match database {
            "audit" => Some(RegistryEntry::new().host("reg-audit").port(1111)),
            "graph" => None,
            _ => Some(
                RegistryEntry::new()
                    .host("reg")
                    .port(2222)
                    .username("reg-user")
                    .password("reg-pw"),
            ),
        })
    }
}

#[derive(Debug)]
struct Failing;

impl ServiceRegistry for Failing {
    fn redis_service(&self, _: &str) -> Result<Option<RegistryEntry>, ConfigError> {
        Err(ConfigError::registry("down"))
    }
}

/// One row per layer boundary and key: the upper layer must beat the lower one.
#[test]
fn precedence_each_layer_beats_the_one_below() {
    type Host = fn(&ResolvedConfig) -> String;
    let host: Host = |r| r.database("main").unwrap().endpoint.to_string();
    let maxc = |r: &ResolvedConfig| r.database("main").unwrap().max_connections.to_string();
    let pw = |r: &ResolvedConfig| {
        r.database("main")
            .unwrap()
            .password
            .as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_default()
    };
    let reg: Option<&dyn ServiceRegistry> = Some(&Registry);
    #[allow(clippy::type_complexity)]
    let rows: Vec<(
        &str,
        KeeperConfig,
        Option<&dyn ServiceRegistry>,
        HashMap<String, String>,
        fn(&ResolvedConfig) -> String,
        &str,
    )> = vec![
        (
            "default",
            KeeperConfig::default(),
            None,
            no_env(),
            host,
            "127.0.0.1:6379",
        ),
        (
            "registry > default",
            KeeperConfig::default(),
            reg,
            no_env(),
            host,
            "reg:2222",
        ),
        (
            "registry > default (pw)",
            KeeperConfig::default(),
            reg,
            no_env(),
            pw,
            "reg-pw",
        ),
        (
            "yaml top > registry",
            yaml("host: y\n"),
            reg,
            no_env(),
            host,
            "y:2222",
        ),
        (
            "yaml top > registry (pw)",
            yaml("password: ypw\n"),
            reg,
            no_env(),
            pw,
            "ypw",
        ),
        (
            "yaml db > yaml top",
            yaml("host: y\nredis_databases:\n  main: {host: yd}\n"),
            reg,
            no_env(),
            host,
            "yd:2222",
        ),
        (
            "env > yaml db",
            yaml("redis_databases:\n  main: {host: yd}\n"),
            reg,
            env(&[("REDIS_HOST", "e")]),
            host,
            "e:2222",
        ),
        (
            "env > yaml db (pw)",
            yaml("redis_databases:\n  main: {password: ydpw}\n"),
            reg,
            env(&[("REDIS_PASSWORD", "epw")]),
            pw,
            "epw",
        ),
        (
            "env db > env global",
            KeeperConfig::default(),
            None,
            env(&[("REDIS_HOST", "e"), ("REDIS_KEEPER_MAIN_HOST", "ed")]),
            host,
            "ed:6379",
        ),
        (
            "code > env db",
            KeeperConfig::default().host("c"),
            None,
            env(&[("REDIS_KEEPER_MAIN_HOST", "ed")]),
            host,
            "c:6379",
        ),
        (
            "code > env (pw)",
            KeeperConfig::default().password("cpw"),
            None,
            env(&[("REDIS_PASSWORD", "epw")]),
            pw,
            "cpw",
        ),
        (
            "code db > code global",
            KeeperConfig::default()
                .host("c")
                .configure("main", |d| d.host("cd")),
            None,
            no_env(),
            host,
            "cd:6379",
        ),
        (
            "yaml top (max)",
            yaml("max_connections: 7\n"),
            None,
            no_env(),
            maxc,
            "7",
        ),
        (
            "yaml db > top (max)",
            yaml("max_connections: 7\nredis_databases:\n  main: {max_connections: 8}\n"),
            None,
            no_env(),
            maxc,
            "8",
        ),
        (
            "env global > yaml db (max)",
            yaml("redis_databases:\n  main: {max_connections: 8}\n"),
            None,
            env(&[("REDIS_KEEPER_MAX_CONNECTIONS", "9")]),
            maxc,
            "9",
        ),
        (
            "env db > env global (max)",
            KeeperConfig::default(),
            None,
            env(&[
                ("REDIS_KEEPER_MAX_CONNECTIONS", "9"),
                ("REDIS_KEEPER_MAIN_MAX_CONNECTIONS", "10"),
            ]),
            maxc,
            "10",
        ),
        (
            "code > env (max)",
            KeeperConfig::default().configure_all(|d| d.max_connections(11)),
            None,
            env(&[("REDIS_KEEPER_MAIN_MAX_CONNECTIONS", "10")]),
            maxc,
            "11",
        ),
        (
            "code db > code all (max)",
            KeeperConfig::default()
                .configure_all(|d| d.max_connections(11))
                .configure("main", |d| d.max_connections(12)),
            None,
            no_env(),
            maxc,
            "12",
        ),
    ];
    for (label, config, registry, e, get, want) in rows {
        let r = config
            .resolve(registry, &e)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(get(&r), want, "{label}");
    }
    // Registry per-database entries, and None falling through.
    let r = KeeperConfig::default().resolve(reg, &no_env()).unwrap();
    assert_eq!(
        r.database("audit").unwrap().endpoint.to_string(),
        "reg-audit:1111"
    );
    assert_eq!(
        r.database("graph").unwrap().endpoint.to_string(),
        "127.0.0.1:6379"
    );
    let err = KeeperConfig::default()
        .resolve(Some(&Failing), &no_env())
        .unwrap_err();
    assert_eq!(err.to_string(), "service registry failed: down");
    // Log level: yaml < env < code.
    let r = resolve(&yaml("log_level: warning\n"), &no_env());
    assert_eq!(r.log_level, LevelFilter::WARN);
    let r = resolve(
        &yaml("log_level: warn\n"),
        &env(&[("REDIS_KEEPER_LOG_LEVEL", "trace")]),
    );
    assert_eq!(r.log_level, LevelFilter::TRACE);
    let r = resolve(
        &yaml("log_level: warn\n").log_level(LevelFilter::ERROR),
        &env(&[("REDIS_KEEPER_LOG_LEVEL", "trace")]),
    );
    assert_eq!(r.log_level, LevelFilter::ERROR);
}

#[test]
fn secrets_never_show() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s}"), "***");
    assert_eq!(format!("{s:?}"), "***");
    let config = yaml("password: hunter2\nredis_databases:\n  main: {password: hunter3}\n")
        .password("hunter4")
        .configure("cache", |d| d.password("hunter5"));
    let r = resolve(&config, &env(&[("REDIS_KEEPER_JOBS_PASSWORD", "hunter6")]));
    let dumps = [
        format!("{config:?}"),
        format!("{r:?}"),
        format!("{:?}", r.database("main").unwrap()),
        format!("{:?}", RegistryEntry::new().password("hunter7")),
    ];
    for d in &dumps {
        assert!(!d.contains("hunter"), "{d}");
    }
    // Error paths that carry a password value.
    let errs = [
        KeeperConfig::default()
            .resolve(
                None,
                &env(&[
                    ("REDIS_PASSWORD", "hunter8"),
                    ("REDIS_KEEPER_PASSWORD", "hunter9"),
                ]),
            )
            .unwrap_err(),
        KeeperConfig::from_yaml_str("password: hunter10\nbogus: 1\n").unwrap_err(),
        KeeperConfig::from_yaml_str("password: [hunter11]\n").unwrap_err(),
        KeeperConfig::from_yaml_str("password: {hunter12: 1}\n").unwrap_err(),
    ];
    for e in &errs {
        assert!(!e.to_string().contains("hunter"), "{e}");
        assert!(!format!("{e:?}").contains("hunter"), "{e:?}");
    }
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// A fresh temporary directory (no tempfile crate); removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "redis-keeper-config-test-{}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn discovery_order() {
    let t = TempDir::new();
    let explicit = t.file("explicit.yaml", "port: 1001\n");
    let by_env = t.file("env.yaml", "port: 1002\n");
    let container = t.file("container.yaml", "port: 1003\n");
    let host = t.file("host.yaml", "port: 1004\n");
    let missing = t.0.join("missing.yaml");
    let port = |c: KeeperConfig| {
        resolve(&c, &no_env())
            .database("main")
            .unwrap()
            .endpoint
            .to_string()
    };
    let var = |p: &PathBuf| env(&[("REDIS_KEEPER_CONFIG", p.to_str().unwrap())]);
    let both = [container.clone(), host.clone()];

    let c = discover_in(Some(&explicit), &var(&by_env), &both).unwrap();
    assert_eq!(port(c), "127.0.0.1:1001");
    let c = discover_in(None, &var(&by_env), &both).unwrap();
    assert_eq!(port(c), "127.0.0.1:1002");
    let c = discover_in(None, &no_env(), &both).unwrap();
    assert_eq!(c.source(), Some(container.to_str().unwrap()));
    assert_eq!(port(c), "127.0.0.1:1003");
    let c = discover_in(None, &no_env(), &[missing.clone(), host.clone()]).unwrap();
    assert_eq!(port(c), "127.0.0.1:1004");
    let c = discover_in(None, &no_env(), &[missing.clone(), t.0.join("nope.yaml")]).unwrap();
    assert_eq!(c.source(), None);
    assert_eq!(port(c), "127.0.0.1:6379");

    // Explicit and REDIS_KEEPER_CONFIG must exist.
    let err = discover_in(Some(&missing), &no_env(), &both).unwrap_err();
    assert!(
        matches!(
            &err,
            ConfigError::MissingFile {
                named_by: Origin::Code,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("missing.yaml"));
    let err = discover_in(None, &var(&missing), &both).unwrap_err();
    assert!(
        err.to_string().contains("missing.yaml") && err.to_string().contains("REDIS_KEEPER_CONFIG"),
        "{err}"
    );
    let err = discover_in(None, &env(&[("REDIS_KEEPER_CONFIG", "")]), &both).unwrap_err();
    assert!(err.to_string().contains("REDIS_KEEPER_CONFIG"), "{err}");
    let err = KeeperConfig::from_yaml_file(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::MissingFile { .. }));

    // A malformed file is an error naming the file, line and column, not a fallback.
    let bad = t.file(
        "bad.yaml",
        "port: 1\nredis_databases:\n  main:\n    db: 16\n",
    );
    let err = discover_in(None, &no_env(), &[bad.clone(), host])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.yaml") && err.contains("line 4") && err.contains("column"),
        "{err}"
    );
    // A directory where a file is expected is an I/O error, not defaults.
    let err = discover_in(None, &no_env(), std::slice::from_ref(&t.0)).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }), "{err}");
    // The seed system's file loads from a file.
    let seed =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed-redis-databases.yaml");
    let c = KeeperConfig::from_yaml_file(&seed).unwrap();
    let r = resolve(&c, &no_env());
    assert_eq!(r.database("audit").unwrap().max_connections, 15);
    assert_eq!(r.database("workflows").unwrap().db, 7);
}

fn yamlish() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("db".to_owned()),
        Just("host".to_owned()),
        Just("port".to_owned()),
        Just("password".to_owned()),
        Just("timeout".to_owned()),
        Just("socket_timeout".to_owned()),
        Just("max_connections".to_owned()),
        Just("redis_databases".to_owned()),
        Just("databases".to_owned()),
        Just("retry_jitter".to_owned()),
        Just("main".to_owned()),
        "[a-z_]{0,8}",
    ];
    let value = prop_oneof![
        Just("16".to_owned()),
        Just("-1".to_owned()),
        Just("1e400".to_owned()),
        Just(".nan".to_owned()),
        Just("~".to_owned()),
        Just("[1, 2]".to_owned()),
        Just("{db: 3}".to_owned()),
        Just("&a 1".to_owned()),
        Just("*a".to_owned()),
        Just("!tag x".to_owned()),
        "-?[0-9]{1,12}(\\.[0-9]{0,3})?",
        "[a-z ]{0,6}",
    ];
    proptest::collection::vec((0usize..3, key, value), 0..12).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(indent, k, v)| format!("{}{k}: {v}\n", "  ".repeat(indent)))
            .collect()
    })
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,200}") {
        if let Ok(c) = KeeperConfig::from_yaml_str(&s) {
            let _ = c.resolve(None, &no_env());
        }
    }

    #[test]
    fn arbitrary_yamlish_documents_never_panic(s in yamlish()) {
        if let Ok(c) = KeeperConfig::from_yaml_str(&s) {
            let _ = c.resolve(None, &no_env());
        }
    }

    #[test]
    fn arbitrary_env_values_never_panic(k in "[A-Z_]{0,20}", v in "\\PC{0,20}") {
        let e = env(&[(&format!("REDIS_KEEPER_{k}"), &v), ("REDIS_PORT", &v)]);
        let _ = KeeperConfig::default().resolve(None, &e);
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
