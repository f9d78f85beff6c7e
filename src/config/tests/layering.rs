//! Layering: resolution errors, the environment scheme, precedence, secrets.

use std::time::Duration;

use super::*;

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
        (KeeperConfig::default().port(0), no_env(), &["port", "code"]),
        (
            KeeperConfig::default().configure("main", |d| d.host("")),
            no_env(),
            &["host", "code"],
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
