//! The `cluster` section: its YAML map and flat keys, origins, the db-0 rule and the rule
//! that a cluster database names no server or Sentinel master beside its nodes.

use super::*;

#[test]
fn a_cluster_map_per_database_resolves_with_its_defaults() {
    let config = yaml(
        "redis_databases:\n  main:\n    cluster:\n      nodes: [\"127.0.0.1:7000\", \"127.0.0.1:7001\"]\n      max_attempts: 4\n",
    );
    let resolved = resolve(&config, &no_env());
    let c = resolved.database("main").unwrap().cluster.as_ref().unwrap();
    let nodes: Vec<String> = c.nodes.iter().map(ToString::to_string).collect();
    assert_eq!(nodes, ["127.0.0.1:7000", "127.0.0.1:7001"]);
    assert_eq!(c.max_attempts, 4);
    assert_eq!(c.refresh_interval, Duration::from_secs(5));
    assert_eq!(c.command_deadline, Duration::from_secs(10));
    assert!(
        resolved.database("knowledge").unwrap().cluster.is_none(),
        "other databases are not clusters"
    );
}

#[test]
fn the_flat_keys_and_the_environment_set_the_same_settings() {
    let env = HashMap::from([(
        "REDIS_KEEPER_MAIN_CLUSTER_NODES".to_owned(),
        "10.0.0.1:7000, 10.0.0.2:7000".to_owned(),
    )]);
    let config = yaml("redis_databases:\n  main:\n    cluster_command_deadline: 3\n");
    let resolved = resolve(&config, &env);
    let c = resolved.database("main").unwrap().cluster.as_ref().unwrap();
    assert_eq!(c.nodes.len(), 2);
    assert_eq!(c.command_deadline, Duration::from_secs(3));
}

#[test]
fn a_cluster_database_on_another_db_number_is_an_error_naming_it() {
    let config = yaml("redis_databases:\n  main:\n    db: 3\n    cluster: {nodes: [\"h:7000\"]}\n");
    let err = config.resolve(None, &no_env()).unwrap_err();
    let ConfigError::InvalidValue { key, value, .. } = &err else {
        panic!("expected an invalid value, got {err:?}");
    };
    assert_eq!((key.as_str(), value.as_str()), ("db", "3"));
    assert!(err.to_string().contains("db 0"), "{err}");
    // A canonical name other than `main` needs its db moved to 0 explicitly.
    let moved =
        yaml("redis_databases:\n  knowledge:\n    db: 0\n    cluster: {nodes: [\"h:7000\"]}\n");
    assert!(moved.resolve(None, &no_env()).is_ok());
    let not_moved = yaml("redis_databases:\n  knowledge:\n    cluster: {nodes: [\"h:7000\"]}\n");
    assert!(not_moved.resolve(None, &no_env()).is_err());
}

#[test]
fn a_cluster_beside_a_server_or_a_sentinel_master_is_an_error_naming_both() {
    for (beside, other) in [
        ("host: 10.0.0.1", "host"),
        (
            "sentinel: {master_name: m, nodes: [\"h:26379\"]}",
            "sentinel_master_name",
        ),
    ] {
        let config = yaml(&format!(
            "redis_databases:\n  main:\n    {beside}\n    cluster: {{nodes: [\"h:7000\"]}}\n"
        ));
        let err = config.resolve(None, &no_env()).unwrap_err();
        let ConfigError::ClusterAndOther { db, other: o, .. } = &err else {
            panic!("expected ClusterAndOther, got {err:?}");
        };
        assert_eq!((db.as_str(), o.as_str()), ("main", other));
        assert!(err.to_string().contains("cluster.nodes"), "{err}");
    }
    // A top-level host below the database's cluster is not the database's: no conflict.
    let config =
        yaml("host: 10.0.0.1\nredis_databases:\n  main:\n    cluster: {nodes: [\"h:7000\"]}\n");
    assert!(config.resolve(None, &no_env()).is_ok());
}

#[test]
fn bad_cluster_values_are_typed_errors_naming_the_key() {
    let err = yaml_err("redis_databases:\n  main:\n    cluster: {nodes: [\"nohost\"]}\n");
    assert!(err.contains("host:port"), "{err}");
    let err =
        yaml_err("redis_databases:\n  main:\n    cluster: {nodes: [\"h:7000\"], colour: red}\n");
    assert!(err.contains("unknown field `colour` in `cluster`"), "{err}");
    let err = yaml_err("cluster: {nodes: [\"h:7000\"]}\n");
    assert!(err.contains("cluster"), "a cluster is per database: {err}");
    let config = yaml(
        "redis_databases:\n  main:\n    ssl: true\n    tls_server_name: redis.test\n    \
         cluster: {nodes: [\"h:7000\"]}\n",
    );
    let err = config.resolve(None, &no_env()).unwrap_err().to_string();
    let expected = if cfg!(feature = "cluster-tls") {
        "tls_server_name"
    } else {
        "cluster-tls"
    };
    assert!(err.contains(expected), "{err}");
}

#[cfg(feature = "cluster-tls")]
#[test]
fn tls_to_a_cluster_is_read_with_the_databases_tls_keys() {
    let config =
        yaml("redis_databases:\n  main:\n    ssl: true\n    cluster: {nodes: [\"h:7000\"]}\n");
    let resolved = config.resolve(None, &no_env()).expect("TLS to a cluster");
    let main = resolved.database("main").unwrap();
    assert!(main.cluster.is_some() && main.tls.is_some());
}

#[cfg(any(feature = "tokio", feature = "smol"))]
#[test]
fn a_keeper_is_not_built_for_a_cluster_database_it_cannot_serve() {
    use crate::seams::Runtime;
    let config = yaml("redis_databases:\n  main:\n    cluster: {nodes: [\"127.0.0.1:7000\"]}\n");
    // redis-rs's cluster client dials on tokio or smol only: any other runtime (here the smol
    // seams under another name, as a custom runtime would be) cannot serve one.
    let smol = Runtime::smol();
    let custom = Runtime::new(
        "custom",
        smol.clock().clone(),
        smol.spawner().clone(),
        smol.transport().clone(),
    );
    let err = crate::Keeper::builder(config.clone())
        .runtime(custom)
        .env(HashMap::<String, String>::new())
        .build()
        .unwrap_err();
    let expected = if cfg!(feature = "cluster") {
        "`custom` runtime"
    } else {
        "feature is off"
    };
    assert!(
        matches!(&err, crate::Error::ClusterNotServed { db, reason } if db == "main" && reason.contains(expected)),
        "{err:?}"
    );
    assert!(err.to_string().contains("main"), "{err}");
    let on_smol = crate::Keeper::builder(config)
        .runtime(Runtime::smol())
        .env(HashMap::<String, String>::new())
        .build();
    assert_eq!(
        on_smol.is_ok(),
        cfg!(feature = "cluster"),
        "{:?}",
        on_smol.err()
    );
}
