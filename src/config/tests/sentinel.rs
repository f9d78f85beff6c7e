//! The `sentinel` section: its YAML map and flat keys, origins, and the direct-or-Sentinel rule.

use super::*;

#[test]
fn a_sentinel_map_per_database_resolves_with_its_origins() {
    let config = yaml(
        "redis_databases:\n  main:\n    sentinel:\n      master_name: mymaster\n      nodes: [\"10.0.0.5:26379\", \"10.0.0.6:26379\"]\n      username: s\n      password: p\n",
    );
    let resolved = resolve(&config, &no_env());
    let main = resolved.database("main").unwrap();
    let s = main.sentinel.as_ref().expect("main is sentinel-backed");
    assert_eq!(s.master_name, "mymaster");
    let nodes: Vec<String> = s.nodes.iter().map(ToString::to_string).collect();
    assert_eq!(nodes, ["10.0.0.5:26379", "10.0.0.6:26379"]);
    assert_eq!(s.username.as_deref(), Some("s"));
    assert_eq!(
        s.password.as_ref().map(|p| p.expose().to_owned()),
        Some("p".into())
    );
    assert_eq!(s.poll_interval, Duration::from_secs(2));
    assert_eq!(s.failover_hold, Duration::from_secs(5));
    assert!(s.tls.is_none());
    assert_eq!(
        s.master_name_origin.to_string(),
        Origin::Yaml {
            source_name: "<string>".into(),
            path: "redis_databases.main.sentinel.master_name".into()
        }
        .to_string()
    );
    assert!(
        !format!("{s:?}").contains("\"p\""),
        "the password is never printed"
    );
    assert!(
        resolved.database("knowledge").unwrap().sentinel.is_none(),
        "other databases stay direct"
    );
}

#[test]
fn a_top_level_map_applies_to_every_database_and_env_sets_the_flat_keys() {
    let config = yaml("sentinel: {master_name: m1, nodes: \"127.0.0.1:26379,127.0.0.1:26380\"}\n");
    let e = env(&[
        ("REDIS_KEEPER_KNOWLEDGE_SENTINEL_MASTER_NAME", "m2"),
        ("REDIS_KEEPER_SENTINEL_POLL_INTERVAL", "0.5"),
    ]);
    let resolved = resolve(&config, &e);
    let main = resolved.database("main").unwrap().sentinel.clone().unwrap();
    assert_eq!(main.master_name, "m1");
    assert_eq!(main.nodes.len(), 2);
    assert_eq!(main.poll_interval, Duration::from_millis(500));
    let knowledge = resolved
        .database("knowledge")
        .unwrap()
        .sentinel
        .clone()
        .unwrap();
    assert_eq!(knowledge.master_name, "m2");
    assert_eq!(
        knowledge.master_name_origin.to_string(),
        "environment variable REDIS_KEEPER_KNOWLEDGE_SENTINEL_MASTER_NAME"
    );
}

#[test]
fn direct_and_sentinel_at_the_same_layer_is_an_error_naming_both() {
    let config = yaml(
        "redis_databases:\n  main:\n    host: 10.0.0.1\n    sentinel: {master_name: m, nodes: [\"h:26379\"]}\n",
    );
    let err = config.resolve(None, &no_env()).unwrap_err();
    assert!(
        matches!(err, ConfigError::DirectAndSentinel { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    for part in [
        "`main`",
        "host in",
        "redis_databases.main.host",
        "redis_databases.main.sentinel.master_name",
    ] {
        assert!(text.contains(part), "{part} missing from: {text}");
    }
    let url = KeeperConfig::default()
        .configure("main", |d| d.url("redis://h:1").sentinel_master_name("m"));
    let err = url.resolve(None, &no_env()).unwrap_err().to_string();
    assert!(err.contains("url in"), "{err}");
}

#[test]
fn the_more_specific_layer_decides_between_direct_and_sentinel() {
    // A top-level address, one database through Sentinel: that database is Sentinel-backed.
    let config = yaml(
        "host: 10.0.0.1\nredis_databases:\n  main:\n    sentinel: {master_name: m, nodes: [\"h:26379\"]}\n",
    );
    let resolved = resolve(&config, &no_env());
    assert!(resolved.database("main").unwrap().sentinel.is_some());
    assert!(resolved.database("prompts").unwrap().sentinel.is_none());
    // Sentinel at the top, an address for one database: that address is an error...
    let config = yaml(
        "sentinel: {master_name: m, nodes: [\"h:26379\"]}\nredis_databases:\n  main:\n    port: 7000\n",
    );
    let err = config.resolve(None, &no_env()).unwrap_err().to_string();
    assert!(
        err.contains("port in") && err.contains("sentinel_master_name in"),
        "{err}"
    );
    // ...unless that layer turns Sentinel off.
    let e = env(&[("REDIS_KEEPER_MAIN_SENTINEL_MASTER_NAME", "")]);
    let resolved = resolve(&config, &e);
    assert!(resolved.database("main").unwrap().sentinel.is_none());
    assert_eq!(
        resolved.database("main").unwrap().endpoint.to_string(),
        "127.0.0.1:7000"
    );
}

#[test]
fn bad_sentinel_values_are_typed_errors_at_their_place() {
    let err = yaml_err("sentinel: {master_name: m, colour: blue}\n");
    assert!(
        err.contains("unknown field `colour` in `sentinel`"),
        "{err}"
    );
    let err = yaml_err("sentinel: {master_name: m, nodes: [\"no-port\"]}\n");
    assert!(
        err.contains("`no-port` is not a host:port address"),
        "{err}"
    );
    let err = yaml_err("sentinel: {master_name: m, nodes: []}\n");
    assert!(err.contains("at least one"), "{err}");
    let err = yaml_err("sentinel: {master_name: m}\nsentinel_master_name: n\n");
    assert!(err.contains("duplicate"), "{err}");
    let missing = yaml("sentinel: {master_name: m}\n");
    let err = missing.resolve(None, &no_env()).unwrap_err().to_string();
    assert!(
        err.contains("sentinel_nodes") && err.contains("missing"),
        "{err}"
    );
    let e = env(&[("REDIS_KEEPER_SENTINEL_NODES", "h:99999")]);
    let err = KeeperConfig::default()
        .resolve(None, &e)
        .unwrap_err()
        .to_string();
    assert!(err.contains("REDIS_KEEPER_SENTINEL_NODES"), "{err}");
}

#[test]
fn a_replica_role_needs_sentinel_and_reads_from_yaml_and_env() {
    let err = yaml("redis_databases:\n  main:\n    role: replica\n")
        .resolve(None, &no_env())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("role") && err.contains("needs a Sentinel-backed database"),
        "{err}"
    );
    let err = yaml_err("role: leader\n");
    assert!(err.contains("expected `master` or `replica`"), "{err}");
    let config = yaml("sentinel: {master_name: m, nodes: [\"h:26379\"]}\n");
    let e = env(&[("REDIS_KEEPER_KNOWLEDGE_ROLE", "replica")]);
    let resolved = resolve(&config, &e);
    let role = |db: &str| {
        resolved
            .database(db)
            .unwrap()
            .sentinel
            .as_ref()
            .unwrap()
            .role
    };
    assert_eq!(role("knowledge"), ServerRole::Replica);
    assert_eq!(role("main"), ServerRole::Master);
}
