//! A nested YAML map of settings (`sentinel: {…}`, `cluster: {…}`): its key `k` is the key
//! table's `<section>_k`, read and checked through the table like any other key.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::keys::{read_yaml, YamlSink};
use super::table::Level;

/// Reads the YAML map of section `name` (keys `keys`) into `sink`, key by key.
pub(crate) struct SectionSeed<'s, 'a> {
    /// The section's YAML name, and the prefix of its keys in the table.
    pub(crate) name: &'static str,
    /// The keys the map may hold.
    pub(crate) keys: &'static [&'static str],
    pub(crate) level: Level,
    pub(crate) sink: &'s mut YamlSink<'a>,
}

impl<'de> DeserializeSeed<'de> for SectionSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SectionSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a map of {} settings", self.name)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.sink.section = Some(self.name);
        let result = (|| {
            while let Some(key) = map.next_key::<String>()? {
                if !self.keys.contains(&key.as_str()) {
                    return Err(de::Error::custom(format!(
                        "unknown field `{}` in `{}`, expected one of `{}`",
                        key.escape_debug(),
                        self.name,
                        self.keys.join("`, `")
                    )));
                }
                let table_key = format!("{}_{key}", self.name);
                if !read_yaml(&table_key, self.level, &mut map, self.sink)? {
                    return Err(de::Error::custom(format!("unknown field `{key}`")));
                }
            }
            Ok(())
        })();
        self.sink.section = None;
        result
    }
}
