//! Fuzz target: arbitrary bytes as a YAML config give a valid config or a typed error, never a panic.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use redis_keeper::KeeperConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = KeeperConfig::from_yaml_str(text) {
        let env: HashMap<String, String> = HashMap::new();
        if let Ok(resolved) = config.resolve(None, &env) {
            for db in resolved.databases() {
                assert!(db.db <= 15, "db number out of range: {}", db.db);
                assert!(db.max_connections >= 1);
            }
        }
    }
});
