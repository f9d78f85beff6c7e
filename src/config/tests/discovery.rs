//! Discovery of the YAML file, and inputs that must never panic.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;

use super::super::discover::discover_in;
use super::*;

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
