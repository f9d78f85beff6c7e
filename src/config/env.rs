//! The environment layer: [`EnvSource`], and the `REDIS_*` / `REDIS_KEEPER_*` variable scheme.
//!
//! | variable | meaning |
//! |---|---|
//! | `REDIS_HOST`, `REDIS_PORT`, `REDIS_USERNAME`, `REDIS_PASSWORD` | host, port, user, password of every database |
//! | `REDIS_KEEPER_CONFIG` | path of the YAML file (discovery) |
//! | `REDIS_KEEPER_<KEY>` | a top-level YAML key for every database, e.g. `REDIS_KEEPER_SOCKET_TIMEOUT=2.5`, `REDIS_KEEPER_LOG_LEVEL=debug` |
//! | `REDIS_KEEPER_<DB>_<KEY>` | a per-database YAML key, e.g. `REDIS_KEEPER_MAIN_MAX_CONNECTIONS=50` |
//!
//! `<DB>` is a configured database name upper-cased with `-` as `_`; `<KEY>` is a YAML key
//! upper-cased (aliases such as `TIMEOUT` or `MAX_RETRIES` included). Per-database variables beat
//! global ones. Any other `REDIS_KEEPER_` variable is an error, as is a name with two readings
//! (e.g. a database called `socket` makes `REDIS_KEEPER_SOCKET_TIMEOUT` ambiguous) or two
//! variables setting one key differently (`REDIS_PASSWORD` and `REDIS_KEEPER_PASSWORD`).
//! Values: integers, seconds (`1.5`), booleans (`true`/`false`/`1`/`0`/`yes`/`no`/`on`/`off`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use tracing::level_filters::LevelFilter;

use super::keys::{canonical_keys, spec, Layer, KEYS};
use super::names::env_form;
use super::settings::parse_log_level;
use super::table::Scope;
use super::{ConfigError, Origin};

/// The prefix of the crate's own variables.
pub(crate) const PREFIX: &str = "REDIS_KEEPER_";
/// The variable naming the YAML file.
pub(crate) const CONFIG_VAR: &str = "REDIS_KEEPER_CONFIG";

/// Where environment variables come from: [`ProcessEnv`] in production, a `HashMap` in tests
/// (so tests never mutate the real process environment).
///
/// ```
/// use std::collections::HashMap;
/// use redis_keeper::config::EnvSource;
/// let env = HashMap::from([("REDIS_PORT".to_string(), "6380".to_string())]);
/// assert_eq!(env.var("REDIS_PORT").as_deref(), Some("6380"));
/// assert_eq!(env.names(), vec!["REDIS_PORT".to_string()]);
/// ```
pub trait EnvSource: fmt::Debug {
    /// The value of `name`, if set (and valid Unicode).
    fn var(&self, name: &str) -> Option<String>;
    /// The names of all set variables.
    fn names(&self) -> Vec<String>;
}

/// The real process environment.
///
/// ```
/// use redis_keeper::config::{EnvSource, ProcessEnv};
/// let _ = ProcessEnv.var("PATH");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn names(&self) -> Vec<String> {
        std::env::vars_os()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect()
    }
}

impl<S: std::hash::BuildHasher> EnvSource for HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// The environment, as layers.
#[derive(Debug)]
pub(crate) struct EnvLayers {
    /// Variables for every database.
    pub(crate) global: Layer,
    /// Variables for one database, by name.
    pub(crate) databases: BTreeMap<String, Layer>,
    /// `REDIS_KEEPER_LOG_LEVEL`.
    pub(crate) log_level: Option<(LevelFilter, Origin)>,
}

/// What one variable sets.
enum Target {
    Global(Vec<&'static str>),
    Database(String, Vec<&'static str>),
    LogLevel,
}

/// Reads the environment for the configured database `names`.
pub(crate) fn read(env: &dyn EnvSource, names: &[String]) -> Result<EnvLayers, ConfigError> {
    let mut out = EnvLayers {
        global: Layer::new(Origin::Default),
        databases: BTreeMap::new(),
        log_level: None,
    };
    // (level, canonical key) -> (variable, raw value), to catch two variables disagreeing.
    let mut set_by: BTreeMap<(Option<String>, &'static str), (String, String)> = BTreeMap::new();

    let mut vars: Vec<String> = env.names();
    vars.sort();
    vars.dedup();
    for var in vars {
        let short = KEYS.iter().find(|k| k.env == Some(var.as_str()));
        let target = match var.as_str() {
            _ if short.is_some() => Target::Global(short.map(|k| k.name).into_iter().collect()),
            CONFIG_VAR => continue,
            v if v.starts_with(PREFIX) => classify(v, names)?,
            _ => continue,
        };
        let Some(value) = env.var(&var) else {
            continue;
        };
        let (level, keys): (Option<String>, Vec<&'static str>) = match target {
            Target::LogLevel => {
                let level =
                    parse_log_level(&value).map_err(|reason| ConfigError::InvalidValue {
                        key: var.clone(),
                        value: value.clone(),
                        origin: Origin::Env { var: var.clone() },
                        reason,
                    })?;
                out.log_level = Some((level, Origin::Env { var: var.clone() }));
                continue;
            }
            Target::Global(keys) => (None, keys),
            Target::Database(name, keys) => (Some(name), keys),
        };
        for key in keys {
            if let Some((other, raw)) = set_by.get(&(level.clone(), key)) {
                if *raw != value {
                    return Err(ConfigError::ConflictingKeys {
                        first: other.clone(),
                        second: var.clone(),
                        origin: Origin::Env { var: var.clone() },
                    });
                }
            }
            set_by.insert((level.clone(), key), (var.clone(), value.clone()));
            let layer = match &level {
                None => &mut out.global,
                Some(name) => out
                    .databases
                    .entry(name.clone())
                    .or_insert_with(|| Layer::new(Origin::Default)),
            };
            let parsed = layer.values.set_text(key, &value);
            if let Some(Err(reason)) = parsed {
                let shown = if spec(key).is_some_and(|k| k.secret) {
                    "***".to_owned()
                } else {
                    value.escape_debug().to_string()
                };
                return Err(ConfigError::InvalidValue {
                    key: var.clone(),
                    value: shown,
                    origin: Origin::Env { var: var.clone() },
                    reason,
                });
            }
            layer.record(key, Origin::Env { var: var.clone() });
        }
    }
    Ok(out)
}

/// Reads a `REDIS_KEEPER_…` variable name: exactly one reading, or an error naming it.
fn classify(var: &str, names: &[String]) -> Result<Target, ConfigError> {
    let rest = &var[PREFIX.len()..];
    let mut readings: Vec<(String, Target)> = Vec::new();
    for name in names {
        let upper = env_form(name);
        let Some(key) = rest
            .strip_prefix(upper.as_str())
            .and_then(|k| k.strip_prefix('_'))
        else {
            continue;
        };
        if key.bytes().any(|b| b.is_ascii_lowercase()) {
            continue;
        }
        if let Some(keys) = canonical_keys(&key.to_ascii_lowercase()) {
            readings.push((
                format!("database {name} key {}", key.to_ascii_lowercase()),
                Target::Database(name.clone(), keys),
            ));
        }
    }
    if !rest.bytes().any(|b| b.is_ascii_lowercase()) {
        let key = rest.to_ascii_lowercase();
        if key == "log_level" {
            readings.push(("key log_level".to_owned(), Target::LogLevel));
        } else if let Some(keys) = canonical_keys(&key) {
            let per_database_only = |k: &&str| spec(k).is_some_and(|k| k.scope == Scope::Db);
            if !keys.iter().any(per_database_only) {
                readings.push((format!("key {key}"), Target::Global(keys)));
            }
        }
    }
    match readings.len() {
        0 => Err(ConfigError::UnknownEnvVar {
            name: var.to_owned(),
        }),
        1 => Ok(readings.remove(0).1),
        _ => Err(ConfigError::AmbiguousEnvVar {
            name: var.to_owned(),
            readings: readings
                .iter()
                .map(|(r, _)| r.as_str())
                .collect::<Vec<_>>()
                .join(", or "),
        }),
    }
}
