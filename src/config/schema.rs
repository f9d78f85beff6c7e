//! The YAML document's shape, read key by key through the key table ([`keys`](super::keys)),
//! checked while parsing so errors carry a line and column.
//!
//! Every key is either honoured or rejected (an unknown key is an error at its position).
//! Mapping decisions for the seed's keys (the aliases in the key table):
//! - `timeout`, `socket_timeout`, `timeout_seconds` all set the response timeout;
//! - `retry_attempts` and `max_retries` both set the number of attempts;
//! - `retry_delay` sets both `retry_multiplier` and `retry_min`;
//! - keys meaning the same setting may appear together at one level only with equal values;
//! - `decode_responses` is accepted for seed compatibility and only checked to be a boolean: in
//!   Rust the requested return type decides decoding (any reply reads as `String` or bytes);
//! - `max_lifetime: 0` means no limit; an empty `password` means no password.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use tracing::level_filters::LevelFilter;

use super::keys::{read_yaml, Layer, YamlSink, ALIASES, KEYS};
use super::kinds::parsed;
use super::names::{check_name, env_form};
use super::section::SectionSeed;
use super::settings::parse_log_level;
use super::table::Level;
use super::{ConfigError, Origin, RedisDatabase};

/// The map keys of the top level that are not per-database settings.
const TOP_ONLY: &[&str] = &["log_level", "redis_databases", "databases", "sentinel"];

/// The nested maps a database entry may hold.
const DB_MAPS: &[&str] = &["sentinel", "cluster"];

/// The nested map `key` of a database entry, and the keys it may hold.
fn section_of(key: &str) -> Option<(&'static str, &'static [&'static str])> {
    match key {
        "sentinel" => Some(("sentinel", super::sentinel::SECTION_KEYS)),
        "cluster" => Some(("cluster", super::cluster::SECTION_KEYS)),
        _ => None,
    }
}

/// The key name `name` as the table spells it, if it may appear at `level`.
fn known_name(name: &str, level: Level) -> Option<&'static str> {
    let extras = match level {
        Level::Top => TOP_ONLY,
        Level::Db => DB_MAPS,
    };
    KEYS.iter()
        .filter(|k| k.scope.allows(level))
        .map(|k| k.name)
        .chain(ALIASES.iter().map(|a| a.name))
        .chain(extras.iter().copied())
        .find(|k| *k == name)
}

/// Reads a map key, rejecting unknown names at the key's own position.
struct KeyName(Level);

impl<'de> DeserializeSeed<'de> for KeyName {
    type Value = &'static str;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyName {
    type Value = &'static str;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a configuration key")
    }
    fn visit_str<E: de::Error>(self, name: &str) -> Result<&'static str, E> {
        known_name(name, self.0).ok_or_else(|| {
            let mut expected: Vec<&str> = KEYS
                .iter()
                .filter(|k| k.scope.allows(self.0))
                .map(|k| k.name)
                .collect();
            expected.extend(if self.0 == Level::Top {
                TOP_ONLY
            } else {
                DB_MAPS
            });
            E::custom(format!(
                "unknown field `{}`, expected one of `{}`",
                name.escape_debug(),
                expected.join("`, `")
            ))
        })
    }
}

/// Reads `log_level`.
struct LogLevelSeed;

impl<'de> DeserializeSeed<'de> for LogLevelSeed {
    type Value = LevelFilter;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<LevelFilter, D::Error> {
        parsed(d, "log_level", parse_log_level)
    }
}

/// The top level as read: its own layer, `log_level`, and the database map.
#[derive(Default)]
struct Top {
    layer: Option<Layer>,
    log_level: Option<LevelFilter>,
    /// `redis_databases` or `databases`, and its entries in document order.
    databases: Option<(&'static str, Vec<(String, Layer)>)>,
}

/// Reads the top level.
struct TopSeed<'a> {
    source_name: &'a str,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Top;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Top;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of settings")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Top, E> {
        Ok(Top::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let origin = yaml_origin(self.source_name, "");
        let mut sink = YamlSink::new(&origin);
        let mut top = Top::default();
        while let Some(key) = map.next_key_seed(KeyName(Level::Top))? {
            match key {
                "log_level" => {
                    sink.first_time(key)?;
                    top.log_level = Some(map.next_value_seed(LogLevelSeed)?);
                }
                "redis_databases" | "databases" => {
                    sink.first_time(key)?;
                    if top.databases.is_some() {
                        return Err(de::Error::custom(
                            "both redis_databases and databases are present: use one",
                        ));
                    }
                    let entries = map.next_value_seed(DatabaseMap {
                        source_name: self.source_name,
                        map_key: key,
                    })?;
                    top.databases = Some((key, entries));
                }
                "sentinel" => {
                    sink.first_time(key)?;
                    map.next_value_seed(SectionSeed {
                        name: "sentinel",
                        keys: super::sentinel::SECTION_KEYS,
                        level: Level::Top,
                        sink: &mut sink,
                    })?;
                }
                _ => {
                    if !read_yaml(key, Level::Top, &mut map, &mut sink)? {
                        return Err(de::Error::custom(format!("unknown field `{key}`")));
                    }
                }
            }
        }
        top.layer = Some(sink.layer);
        Ok(top)
    }
}

/// `Origin::Yaml` of a key under `prefix` in `source_name`.
fn yaml_origin<'a>(source_name: &'a str, prefix: &'a str) -> impl Fn(&str) -> Origin + 'a {
    move |key| Origin::Yaml {
        source_name: source_name.to_owned(),
        path: format!("{prefix}{key}"),
    }
}

/// The database map, in document order; names are checked and unique.
struct DatabaseMap<'a> {
    source_name: &'a str,
    map_key: &'static str,
}

impl<'de> DeserializeSeed<'de> for DatabaseMap<'_> {
    type Value = Vec<(String, Layer)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DatabaseMap<'_> {
    type Value = Vec<(String, Layer)>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of database name to settings")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        while let Some(name) = map.next_key_seed(NameSeed { seen: &seen })? {
            let prefix = format!("{}.{name}.", self.map_key);
            let entry = map.next_value_seed(EntrySeed {
                name: &name,
                source_name: self.source_name,
                prefix: &prefix,
            })?;
            seen.insert(env_form(&name));
            out.push((name, entry));
        }
        Ok(out)
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
    source_name: &'a str,
    prefix: &'a str,
}

impl EntrySeed<'_> {
    /// A non-canonical name needs its own `db:`.
    fn check(&self, layer: &Layer) -> Result<(), String> {
        if layer.values.db.is_none() && self.name.parse::<RedisDatabase>().is_err() {
            return Err(format!(
                "database `{}` is not canonical and needs an explicit `db:` number",
                self.name
            ));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = Layer;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Layer, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Layer;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of settings")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Layer, E> {
        let layer = Layer::new(Origin::Default);
        self.check(&layer).map_err(E::custom)?;
        Ok(layer)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Layer, A::Error> {
        let origin = yaml_origin(self.source_name, self.prefix);
        let mut sink = YamlSink::new(&origin);
        while let Some(key) = map.next_key_seed(KeyName(Level::Db))? {
            if let Some((name, keys)) = section_of(key) {
                sink.first_time(key)?;
                map.next_value_seed(SectionSeed {
                    name,
                    keys,
                    level: Level::Db,
                    sink: &mut sink,
                })?;
                continue;
            }
            if !read_yaml(key, Level::Db, &mut map, &mut sink)? {
                return Err(de::Error::custom(format!("unknown field `{key}`")));
            }
        }
        self.check(&sink.layer).map_err(de::Error::custom)?;
        Ok(sink.layer)
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
        Top::default()
    } else {
        let d = serde_yaml::Deserializer::from_str(text);
        TopSeed { source_name }
            .deserialize(d)
            .map_err(|e| ConfigError::from_yaml(source_name, &e))?
    };
    let log_level = top
        .log_level
        .map(|l| (l, yaml_origin(source_name, "")("log_level")));
    Ok(YamlLayers {
        top: top.layer.unwrap_or_else(|| Layer::new(Origin::Default)),
        log_level,
        databases: top.databases.map(|(_, d)| d).unwrap_or_default(),
    })
}
