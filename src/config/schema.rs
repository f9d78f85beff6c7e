//! The YAML document's shape (serde), checked while parsing so errors carry a line and column.
//!
//! Every key is either honoured or rejected (`deny_unknown_fields`). Mapping decisions for the
//! seed's keys:
//! - `timeout`, `socket_timeout`, `timeout_seconds` all set the response timeout;
//! - `retry_attempts` and `max_retries` both set the number of attempts;
//! - `retry_delay` sets both `retry_multiplier` and `retry_min`;
//! - keys meaning the same setting may appear together at one level only with equal values;
//! - `decode_responses` is accepted for seed compatibility and only checked to be a boolean: in
//!   Rust the requested return type decides decoding (any reply reads as `String` or bytes);
//! - `max_lifetime: 0` means no limit; an empty `password` means no password.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use tracing::level_filters::LevelFilter;

use super::layer::{seconds, Layer};
use super::names::{check_name, env_form};
use super::settings::parse_log_level;
use super::{ConfigError, Jitter, Origin, RedisDatabase, Secret};

/// A duration in seconds: an integer or float, finite, ≥ 0, ≤ one year.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Seconds(pub(crate) Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
                seconds(v)
                    .map(Seconds)
                    .map_err(|why| E::custom(format!("invalid duration {v:?}: {why}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads an integer in `min..=max`, failing inside the value's own deserialization so
/// serde_yaml marks the error with the value's line, column and key path.
struct IntIn {
    what: &'static str,
    min: i64,
    max: i64,
}

impl Visitor<'_> for IntIn {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer in {}..={}", self.min, self.max)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        if (self.min..=self.max).contains(&v) {
            Ok(v)
        } else {
            Err(E::custom(format!(
                "invalid {} {v}: expected {}..={}",
                self.what, self.min, self.max
            )))
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => Err(E::custom(format!(
                "invalid {} {v}: expected {}..={}",
                self.what, self.min, self.max
            ))),
        }
    }
}

/// Reads a string and parses it inside the value's own deserialization (see [`IntIn`]).
struct Parsed<T> {
    what: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

impl<T> Visitor<'_> for Parsed<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {}", self.what)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v).map_err(|why| {
            E::custom(format!(
                "invalid {} `{}`: {why}",
                self.what,
                v.escape_debug()
            ))
        })
    }
}

/// A count that must be at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Count(pub(crate) u32);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_i64(IntIn {
            what: "count",
            min: 1,
            max: i64::from(u32::MAX),
        })?;
        Ok(Count(u32::try_from(v).unwrap_or(u32::MAX)))
    }
}

/// A logical database number, `0..=15`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DbNumber(pub(crate) u8);

impl<'de> Deserialize<'de> for DbNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_i64(IntIn {
            what: "db",
            min: 0,
            max: 15,
        })?;
        Ok(DbNumber(u8::try_from(v).unwrap_or(u8::MAX)))
    }
}

/// A log level name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LogLevel(pub(crate) LevelFilter);

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Parsed {
            what: "log_level",
            parse: parse_log_level,
        })
        .map(LogLevel)
    }
}

/// A retry jitter name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct JitterName(pub(crate) Jitter);

impl<'de> Deserialize<'de> for JitterName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Parsed {
            what: "retry_jitter",
            parse: str::parse::<Jitter>,
        })
        .map(JitterName)
    }
}

/// Copies one YAML field into a layer, recording the key it came from.
macro_rules! put {
    ($layer:ident, $origin:ident, $src:ident, $field:ident <- $yaml:ident $(. $inner:tt)?) => {
        if let Some(v) = &$src.$yaml {
            $layer.values.$field = Some(v.clone() $(. $inner)?);
            $layer.record(stringify!($field), $origin(stringify!($yaml)));
        }
    };
}

macro_rules! yaml_level {
    ($(#[$m:meta])* $name:ident { $($extra:ident : $ety:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct $name {
            $(pub(crate) $extra: Option<$ety>,)*
            host: Option<String>,
            port: Option<u16>,
            username: Option<String>,
            password: Option<Secret>,
            max_connections: Option<Count>,
            shared_connections: Option<Count>,
            timeout: Option<Seconds>,
            socket_timeout: Option<Seconds>,
            timeout_seconds: Option<Seconds>,
            socket_connect_timeout: Option<Seconds>,
            socket_keepalive: Option<bool>,
            keepalive_idle: Option<Seconds>,
            keepalive_interval: Option<Seconds>,
            keepalive_probes: Option<Count>,
            tcp_nodelay: Option<bool>,
            health_check_interval: Option<Seconds>,
            check_on_checkout_after: Option<Seconds>,
            retry_attempts: Option<Count>,
            max_retries: Option<Count>,
            retry_delay: Option<Seconds>,
            retry_multiplier: Option<Seconds>,
            retry_min: Option<Seconds>,
            retry_max: Option<Seconds>,
            retry_jitter: Option<JitterName>,
            retry_on_timeout: Option<bool>,
            breaker_failure_threshold: Option<Count>,
            breaker_open_seconds: Option<Seconds>,
            breaker_loss_window: Option<Seconds>,
            loading_poll_interval: Option<Seconds>,
            loading_timeout: Option<Seconds>,
            idle_timeout: Option<Seconds>,
            idle_sweep_interval: Option<Seconds>,
            min_idle: Option<u32>,
            max_lifetime: Option<Seconds>,
            pool_wait_timeout: Option<Seconds>,
            decode_responses: Option<bool>,
            log_commands: Option<bool>,
        }

        impl $name {
            /// Keys at this level that mean the same setting but disagree.
            fn conflicts(&self) -> Result<(), String> {
                agree(&[
                    ("timeout", self.timeout),
                    ("socket_timeout", self.socket_timeout),
                    ("timeout_seconds", self.timeout_seconds),
                ])?;
                agree(&[("retry_attempts", self.retry_attempts), ("max_retries", self.max_retries)])?;
                agree(&[("retry_delay", self.retry_delay), ("retry_multiplier", self.retry_multiplier)])?;
                agree(&[("retry_delay", self.retry_delay), ("retry_min", self.retry_min)])
            }

            /// This level's settings as a layer; `prefix` is the key path, e.g. `redis_databases.main.`.
            fn layer(&self, source_name: &str, prefix: &str) -> Layer {
                let mut layer = Layer::new(Origin::Default);
                let origin = |key: &str| Origin::Yaml {
                    source_name: source_name.to_owned(),
                    path: format!("{prefix}{key}"),
                };
                let s = self;
                put!(layer, origin, s, host <- host);
                put!(layer, origin, s, port <- port);
                put!(layer, origin, s, username <- username);
                put!(layer, origin, s, password <- password);
                put!(layer, origin, s, max_connections <- max_connections.0);
                put!(layer, origin, s, shared_connections <- shared_connections.0);
                put!(layer, origin, s, socket_timeout <- timeout.0);
                put!(layer, origin, s, socket_timeout <- timeout_seconds.0);
                put!(layer, origin, s, socket_timeout <- socket_timeout.0);
                put!(layer, origin, s, socket_connect_timeout <- socket_connect_timeout.0);
                put!(layer, origin, s, socket_keepalive <- socket_keepalive);
                put!(layer, origin, s, keepalive_idle <- keepalive_idle.0);
                put!(layer, origin, s, keepalive_interval <- keepalive_interval.0);
                put!(layer, origin, s, keepalive_probes <- keepalive_probes.0);
                put!(layer, origin, s, tcp_nodelay <- tcp_nodelay);
                put!(layer, origin, s, health_check_interval <- health_check_interval.0);
                put!(layer, origin, s, check_on_checkout_after <- check_on_checkout_after.0);
                put!(layer, origin, s, retry_attempts <- max_retries.0);
                put!(layer, origin, s, retry_attempts <- retry_attempts.0);
                put!(layer, origin, s, retry_multiplier <- retry_delay.0);
                put!(layer, origin, s, retry_min <- retry_delay.0);
                put!(layer, origin, s, retry_multiplier <- retry_multiplier.0);
                put!(layer, origin, s, retry_min <- retry_min.0);
                put!(layer, origin, s, retry_max <- retry_max.0);
                put!(layer, origin, s, retry_jitter <- retry_jitter.0);
                put!(layer, origin, s, retry_on_timeout <- retry_on_timeout);
                put!(layer, origin, s, breaker_failure_threshold <- breaker_failure_threshold.0);
                put!(layer, origin, s, breaker_open_seconds <- breaker_open_seconds.0);
                put!(layer, origin, s, breaker_loss_window <- breaker_loss_window.0);
                put!(layer, origin, s, loading_poll_interval <- loading_poll_interval.0);
                put!(layer, origin, s, loading_timeout <- loading_timeout.0);
                put!(layer, origin, s, idle_timeout <- idle_timeout.0);
                put!(layer, origin, s, idle_sweep_interval <- idle_sweep_interval.0);
                put!(layer, origin, s, min_idle <- min_idle);
                put!(layer, origin, s, max_lifetime <- max_lifetime.0);
                put!(layer, origin, s, pool_wait_timeout <- pool_wait_timeout.0);
                put!(layer, origin, s, decode_responses <- decode_responses);
                put!(layer, origin, s, log_commands <- log_commands);
                layer
            }
        }
    };
}

yaml_level! {
    /// The top level: global defaults for every database, `log_level`, and the database map.
    YamlTop {
        log_level: LogLevel,
        redis_databases: DatabaseMap,
        databases: DatabaseMap,
    }
}

yaml_level! {
    /// One entry of `redis_databases:` (or `databases:`).
    YamlDb {
        db: DbNumber,
        description: String,
    }
}

/// Errors unless every present value equals the others.
fn agree<T: PartialEq + Copy>(keys: &[(&str, Option<T>)]) -> Result<(), String> {
    let present: Vec<_> = keys
        .iter()
        .filter_map(|(k, v)| v.map(|v| (*k, v)))
        .collect();
    for pair in present.windows(2) {
        if pair[0].1 != pair[1].1 {
            return Err(format!(
                "conflicting {} and {}: both set, with different values",
                pair[0].0, pair[1].0
            ));
        }
    }
    Ok(())
}

/// The database map, in document order; names are checked and unique.
#[derive(Debug, Default)]
pub(crate) struct DatabaseMap(pub(crate) Vec<(String, YamlDb)>);

impl<'de> Deserialize<'de> for DatabaseMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DatabaseMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of database name to settings")
            }
            fn visit_unit<E: de::Error>(self) -> Result<DatabaseMap, E> {
                Ok(DatabaseMap::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DatabaseMap, A::Error> {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                while let Some(name) = map.next_key_seed(NameSeed { seen: &seen })? {
                    let entry = map.next_value_seed(EntrySeed { name: &name })?;
                    seen.insert(env_form(&name));
                    out.push((name, entry));
                }
                Ok(DatabaseMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads a database name, rejecting empty, malformed and duplicate names at the key's position.
struct NameSeed<'a> {
    seen: &'a HashSet<String>,
}

impl<'de> DeserializeSeed<'de> for NameSeed<'_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for NameSeed<'_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a database name")
    }
    fn visit_str<E: de::Error>(self, name: &str) -> Result<String, E> {
        check_name(name).map_err(E::custom)?;
        if self.seen.contains(&env_form(name)) {
            return Err(E::custom(format!(
                "duplicate database `{name}` (names are compared upper-cased, `-` as `_`)"
            )));
        }
        Ok(name.to_owned())
    }
}

/// Reads one database entry and checks it as a whole, so errors point at the entry.
struct EntrySeed<'a> {
    name: &'a str,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = YamlDb;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<YamlDb, D::Error> {
        d.deserialize_map(Checked(self, std::marker::PhantomData))
    }
}

/// Reads the top level and checks it as a whole.
struct TopSeed;

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = YamlTop;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<YamlTop, D::Error> {
        d.deserialize_map(Checked(self, std::marker::PhantomData))
    }
}

/// A struct-level check that runs inside the node's own `deserialize_map`, so serde_yaml marks
/// its error with the node's line and column.
trait Check<T> {
    fn check(&self, value: &T) -> Result<(), String>;
}

impl Check<YamlDb> for EntrySeed<'_> {
    fn check(&self, entry: &YamlDb) -> Result<(), String> {
        entry.conflicts()?;
        if entry.db.is_none() && self.name.parse::<RedisDatabase>().is_err() {
            return Err(format!(
                "database `{}` is not canonical and needs an explicit `db:` number",
                self.name
            ));
        }
        Ok(())
    }
}

impl Check<YamlTop> for TopSeed {
    fn check(&self, top: &YamlTop) -> Result<(), String> {
        top.conflicts()?;
        if top.redis_databases.is_some() && top.databases.is_some() {
            return Err("both redis_databases and databases are present: use one".to_owned());
        }
        Ok(())
    }
}

struct Checked<C, T>(C, std::marker::PhantomData<T>);

impl<'de, C: Check<T>, T: Deserialize<'de> + Default> Visitor<'de> for Checked<C, T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of settings")
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        let value = T::default();
        self.0.check(&value).map_err(E::custom)?;
        Ok(value)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let value = T::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.0.check(&value).map_err(de::Error::custom)?;
        Ok(value)
    }
}

/// A parsed YAML document, as layers.
#[derive(Debug, Clone)]
pub(crate) struct YamlLayers {
    /// Top-level keys (defaults for every database).
    pub(crate) top: Layer,
    /// `log_level`, and where it came from.
    pub(crate) log_level: Option<(LevelFilter, Origin)>,
    /// Per-database keys, in document order (including `db` and `description`).
    pub(crate) databases: Vec<(String, Layer)>,
}

/// Parses a YAML document; `source_name` names it in errors and origins.
pub(crate) fn parse(text: &str, source_name: &str) -> Result<YamlLayers, ConfigError> {
    let top = if text.trim().is_empty() {
        YamlTop::default()
    } else {
        let d = serde_yaml::Deserializer::from_str(text);
        TopSeed
            .deserialize(d)
            .map_err(|e| ConfigError::from_yaml(source_name, &e))?
    };
    let (map_key, map) = match (&top.redis_databases, &top.databases) {
        (Some(m), _) => ("redis_databases", &m.0[..]),
        (None, Some(m)) => ("databases", &m.0[..]),
        (None, None) => ("redis_databases", &[][..]),
    };
    let databases = map
        .iter()
        .map(|(name, entry)| {
            let prefix = format!("{map_key}.{name}.");
            let mut layer = entry.layer(source_name, &prefix);
            let origin = |key: &str| Origin::Yaml {
                source_name: source_name.to_owned(),
                path: format!("{prefix}{key}"),
            };
            if let Some(DbNumber(n)) = entry.db {
                layer.values.db = Some(n);
                layer.record("db", origin("db"));
            }
            if let Some(d) = &entry.description {
                layer.values.description = Some(d.clone());
                layer.record("description", origin("description"));
            }
            (name.clone(), layer)
        })
        .collect();
    let log_level = top.log_level.map(|LogLevel(l)| {
        (
            l,
            Origin::Yaml {
                source_name: source_name.to_owned(),
                path: "log_level".to_owned(),
            },
        )
    });
    Ok(YamlLayers {
        top: top.layer(source_name, ""),
        log_level,
        databases,
    })
}
