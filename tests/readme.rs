//! The README's YAML example must load: documentation that cannot drift from the code.

use std::collections::HashMap;

use redis_keeper::KeeperConfig;

#[test]
fn the_readme_yaml_example_loads_and_resolves() {
    let readme = include_str!("../README.md");
    let yaml = readme
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README has a yaml example");
    let config = KeeperConfig::from_yaml_str(yaml).expect("README yaml loads");
    let resolved = config
        .resolve(None, &HashMap::<String, String>::new())
        .expect("README yaml resolves");
    assert_eq!(resolved.database("knowledge").unwrap().max_connections, 50);
    assert_eq!(resolved.database("cache-hot").unwrap().db, 6);
    assert_eq!(resolved.database("cache").unwrap().db, 6);
    assert_eq!(
        resolved
            .database("reports")
            .unwrap()
            .breaker
            .failure_threshold,
        3
    );
}

#[test]
fn the_readme_cluster_example_loads_and_resolves() {
    let readme = include_str!("../README.md");
    let yaml = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.contains("cluster:"))
        .expect("README has a cluster yaml example");
    let config = KeeperConfig::from_yaml_str(yaml).expect("README cluster yaml loads");
    let resolved = config
        .resolve(None, &HashMap::<String, String>::new())
        .expect("README cluster yaml resolves");
    let main = resolved.database("main").unwrap();
    let cluster = main.cluster.as_ref().expect("main is a cluster database");
    assert_eq!(cluster.nodes.len(), 2);
    assert_eq!(cluster.max_attempts, 16);
    assert_eq!(cluster.refresh_interval, std::time::Duration::from_secs(5));
}
