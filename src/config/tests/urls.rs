//! `url` / `REDIS_URL` and `unix_socket_path`: a URL's parts at its layer, conflicts, secrets.

use crate::seams::Endpoint;

use super::*;

fn main_of(r: &ResolvedConfig) -> &DatabaseSettings {
    r.database("main").unwrap()
}

#[test]
fn redis_url_sets_the_address_and_credentials_of_every_database() {
    let r = resolve(
        &KeeperConfig::default(),
        &env(&[("REDIS_URL", "redis://app:p%40ss%3A1@cache.internal:6380")]),
    );
    for name in ["main", "cache", "audit"] {
        let d = r.database(name).unwrap();
        assert_eq!(d.endpoint, Endpoint::tcp("cache.internal", 6380), "{name}");
        assert_eq!(d.username.as_deref(), Some("app"));
        assert_eq!(d.password.as_ref().map(Secret::expose), Some("p@ss:1"));
    }
    assert_eq!(
        r.database("audit").unwrap().db,
        10,
        "each name keeps its number"
    );
    assert!(!format!("{r:?}").contains("p@ss"));
}

#[test]
fn a_url_sits_at_its_layer_in_the_precedence_order() {
    // env URL beats YAML host; code port beats the env URL's port.
    let config = yaml("host: yaml-host\nport: 7000\n").port(7001);
    let r = resolve(&config, &env(&[("REDIS_URL", "redis://env-host")]));
    assert_eq!(main_of(&r).endpoint, Endpoint::tcp("env-host", 7001));
    // A per-database YAML url, with its db, beats the top-level host.
    let r = resolve(
        &yaml("host: a\nredis_databases:\n  main:\n    url: redis://b:6390/3\n"),
        &no_env(),
    );
    assert_eq!(main_of(&r).endpoint, Endpoint::tcp("b", 6390));
    assert_eq!(main_of(&r).db, 3);
    assert_eq!(
        r.database("cache").unwrap().endpoint,
        Endpoint::tcp("a", 6379)
    );
}

#[test]
fn a_url_and_a_key_beside_it_must_agree() {
    let err = KeeperConfig::default()
        .resolve(
            None,
            &env(&[("REDIS_URL", "redis://h:6380"), ("REDIS_PORT", "6381")]),
        )
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::ConflictingKeys { first, second, .. } if first == "url" && second == "port"),
        "{err}"
    );
    // Equal values are fine.
    let r = resolve(&yaml("url: redis://h:6380\nport: 6380\n"), &no_env());
    assert_eq!(main_of(&r).endpoint, Endpoint::tcp("h", 6380));
}

#[test]
fn bad_urls_are_errors_that_name_the_key_and_hide_the_password() {
    let cases: &[(&str, &str)] = &[
        ("REDIS_URL", "redis://:hunter2@h/0"),
        ("REDIS_URL", "rediss://:hunter2@/run/redis.sock"),
        ("REDIS_URL", "http://:hunter2@h"),
        ("REDIS_KEEPER_MAIN_URL", "redis://:hunter2@h/16"),
    ];
    for (var, value) in cases {
        let err = KeeperConfig::default()
            .resolve(None, &env(&[(var, value)]))
            .unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("url") || shown.contains("db"),
            "{var}={value}: {shown}"
        );
        assert!(
            !shown.contains("hunter2") && !format!("{err:?}").contains("hunter2"),
            "{var}={value}: {err:?}"
        );
    }
    let msg = KeeperConfig::default()
        .resolve(
            None,
            &env(&[("REDIS_URL", "rediss://h"), ("REDIS_KEEPER_SSL", "false")]),
        )
        .unwrap_err()
        .to_string();
    assert!(msg.contains("url") && msg.contains("ssl"), "{msg}");
    let msg = KeeperConfig::default()
        .resolve(None, &env(&[("REDIS_URL", "redis://h/2")]))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("per database") && msg.contains("REDIS_URL"),
        "{msg}"
    );
    let msg = yaml_err("port: 1\nurl: \"ftp://:hunter2@h\"\n");
    assert!(
        msg.contains("url") && msg.contains("line 2") && !msg.contains("hunter2"),
        "{msg}"
    );
}

#[test]
fn unix_sockets_by_key_or_url_and_a_tcp_url_above_clears_them() {
    let r = resolve(&yaml("unix_socket_path: /run/redis.sock\n"), &no_env());
    assert_eq!(main_of(&r).endpoint, Endpoint::unix("/run/redis.sock"));
    let r = resolve(
        &KeeperConfig::default(),
        &env(&[("REDIS_KEEPER_MAIN_URL", "unix:///tmp/r.sock?db=4")]),
    );
    assert_eq!(main_of(&r).endpoint, Endpoint::unix("/tmp/r.sock"));
    assert_eq!(main_of(&r).db, 4);
    let config = yaml("unix_socket_path: /run/redis.sock\n")
        .configure_all(|d| d.url("redis://10.0.0.7:6379"));
    assert_eq!(
        main_of(&resolve(&config, &no_env())).endpoint,
        Endpoint::tcp("10.0.0.7", 6379)
    );
    // An empty path means none (a higher layer can go back to TCP).
    let r = resolve(
        &yaml("unix_socket_path: /run/redis.sock\n"),
        &env(&[("REDIS_KEEPER_UNIX_SOCKET_PATH", "")]),
    );
    assert_eq!(main_of(&r).endpoint, Endpoint::tcp("127.0.0.1", 6379));
}

#[test]
fn any_yaml_scalar_reads_as_text_in_a_string_key() {
    let r = resolve(
        &yaml("password: 1234\nredis_databases:\n  main: {description: 42, host: 10.0.0.1}\n"),
        &no_env(),
    );
    assert_eq!(
        main_of(&r).password.as_ref().map(Secret::expose),
        Some("1234")
    );
    assert_eq!(main_of(&r).description.as_deref(), Some("42"));
}
