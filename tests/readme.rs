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
