//! Malformed and hostile configurations (`tests/fixtures/bad-configs/*.yaml`): each one must give a
//! typed `ConfigError` that names the offending key or value, never a panic, and no secret may
//! appear in the error's text (`Display` or `Debug`).
//!
//! Each fixture says what it expects in leading comments:
//! `# expect: <text>` — the error message contains `<text>` (case-insensitive), repeatable;
//! `# secret: <text>` — `<text>` must not appear anywhere in the error;
//! `# needs: tls` — the expectations hold with the `tls` feature (without it, `ssl: true` is
//! itself the error, naming `ssl` and the feature).

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use redis_keeper::{ConfigError, KeeperConfig};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn directives(text: &str, tag: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(&format!("# {tag}:")))
        .map(|s| s.trim().to_string())
        .collect()
}

/// Loads and resolves `path` as a user would, with an empty environment.
fn load(path: &Path) -> Result<(), ConfigError> {
    let env: HashMap<String, String> = HashMap::new();
    KeeperConfig::from_yaml_file(path)?.resolve(None, &env)?;
    Ok(())
}

#[test]
fn every_bad_config_is_a_typed_error_naming_the_value_without_secrets() {
    let files = fixtures();
    assert!(
        files.len() >= 30,
        "the corpus shrank: {} files",
        files.len()
    );
    let mut problems = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let needs_tls = directives(&text, "needs").iter().any(|n| n == "tls");
        let expects = if needs_tls && !cfg!(feature = "tls") {
            vec!["ssl".to_owned(), "`tls` feature".to_owned()]
        } else {
            directives(&text, "expect")
        };
        let secrets = directives(&text, "secret");
        assert!(!expects.is_empty(), "{name}: no `# expect:` line");
        let outcome = catch_unwind(AssertUnwindSafe(|| load(path)));
        let err = match outcome {
            Err(_) => {
                problems.push(format!("{name}: panicked"));
                continue;
            }
            Ok(Ok(())) => {
                problems.push(format!("{name}: accepted"));
                continue;
            }
            Ok(Err(e)) => e,
        };
        let shown = err.to_string();
        let debug = format!("{err:?}");
        for want in &expects {
            if !shown.to_lowercase().contains(&want.to_lowercase()) {
                problems.push(format!("{name}: error does not name `{want}`: {shown}"));
            }
        }
        for secret in &secrets {
            if shown.contains(secret.as_str()) || debug.contains(secret.as_str()) {
                problems.push(format!(
                    "{name}: error shows the secret `{secret}`: {debug}"
                ));
            }
        }
        println!("{name}: {shown}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_same_bad_values_from_the_environment_are_typed_errors_without_secrets() {
    let cases: &[(&str, &str, &str)] = &[
        ("REDIS_PORT", "six", "six"),
        ("REDIS_PORT", "70000", "70000"),
        ("REDIS_KEEPER_MAIN_DB", "16", "16"),
        ("REDIS_KEEPER_MAIN_DB", "-1", "-1"),
        ("REDIS_KEEPER_MAX_CONNECTIONS", "0", "0"),
        (
            "REDIS_KEEPER_MAX_CONNECTIONS",
            "99999999999999999999",
            "99999999999999999999",
        ),
        ("REDIS_KEEPER_SOCKET_TIMEOUT", "1e300", "1e300"),
        ("REDIS_KEEPER_SOCKET_TIMEOUT", "NaN", "NaN"),
        ("REDIS_KEEPER_COLOUR", "red", "REDIS_KEEPER_COLOUR"),
        ("REDIS_KEEPER_NOSUCHDB_DB", "3", "REDIS_KEEPER_NOSUCHDB_DB"),
        ("REDIS_HOST", "redis://:env-secret-77@cache:6379", "host"),
        (
            "REDIS_KEEPER_MAIN_HOST",
            "admin:env-secret-77@cache",
            "host",
        ),
    ];
    for (var, value, want) in cases {
        let env = HashMap::from([
            (var.to_string(), value.to_string()),
            ("REDIS_PASSWORD".to_string(), "env-secret-77".to_string()),
        ]);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            KeeperConfig::default().resolve(None, &env).map(|_| ())
        }));
        let err = match outcome {
            Ok(Err(e)) => e,
            Ok(Ok(())) => panic!("{var}={value} was accepted"),
            Err(_) => panic!("{var}={value} panicked"),
        };
        let shown = err.to_string();
        assert!(shown.contains(want), "{var}={value}: {shown}");
        assert!(
            !shown.contains("env-secret-77") && !format!("{err:?}").contains("env-secret-77"),
            "{var}={value}: secret shown: {err:?}"
        );
    }
}
