//! [`RedisDatabase`]: the one canonical database name ↔ number table.

use std::fmt;
use std::str::FromStr;

use super::ConfigError;

macro_rules! databases {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $number:literal; )*) => {
        /// The sixteen canonical databases: the one name ↔ number table of the crate.
        ///
        /// YAML and code may add more names (and aliases); these are always configured.
        ///
        /// ```
        /// use redis_keeper::RedisDatabase;
        /// let db: RedisDatabase = "audit".parse().unwrap();
        /// assert_eq!(db, RedisDatabase::Audit);
        /// assert_eq!(db.number(), 10);
        /// assert_eq!(db.to_string(), "audit");
        /// assert!("nope".parse::<RedisDatabase>().is_err());
        /// assert_eq!(RedisDatabase::ALL.len(), 16);
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum RedisDatabase {
            $( $(#[$doc])* $variant, )*
        }

        impl RedisDatabase {
            /// Every canonical database, in number order.
            pub const ALL: [RedisDatabase; 16] = [$(RedisDatabase::$variant),*];

            /// The canonical name, e.g. `"main"`.
            pub const fn name(self) -> &'static str {
                match self { $(RedisDatabase::$variant => $name,)* }
            }

            /// The Redis logical database number (`SELECT n`), `0..=15`.
            pub const fn number(self) -> u8 {
                match self { $(RedisDatabase::$variant => $number,)* }
            }
        }
    };
}

databases! {
    /// `main`, db 0.
    Main = "main", 0;
    /// `knowledge`, db 1.
    Knowledge = "knowledge", 1;
    /// `prompts`, db 2.
    Prompts = "prompts", 2;
    /// `agents`, db 3.
    Agents = "agents", 3;
    /// `metrics`, db 4.
    Metrics = "metrics", 4;
    /// `sessions`, db 5.
    Sessions = "sessions", 5;
    /// `cache`, db 6.
    Cache = "cache", 6;
    /// `vectors`, db 7.
    Vectors = "vectors", 7;
    /// `temp`, db 8.
    Temp = "temp", 8;
    /// `analytics`, db 9.
    Analytics = "analytics", 9;
    /// `audit`, db 10.
    Audit = "audit", 10;
    /// `notifications`, db 11.
    Notifications = "notifications", 11;
    /// `jobs`, db 12.
    Jobs = "jobs", 12;
    /// `search`, db 13.
    Search = "search", 13;
    /// `timeseries`, db 14.
    Timeseries = "timeseries", 14;
    /// `graph`, db 15.
    Graph = "graph", 15;
}

impl RedisDatabase {
    /// The canonical database with this number, if any.
    ///
    /// ```
    /// use redis_keeper::RedisDatabase;
    /// assert_eq!(RedisDatabase::from_number(15), Some(RedisDatabase::Graph));
    /// assert_eq!(RedisDatabase::from_number(16), None);
    /// ```
    pub fn from_number(number: u8) -> Option<Self> {
        Self::ALL.get(usize::from(number)).copied()
    }
}

impl FromStr for RedisDatabase {
    type Err = ConfigError;

    /// Parses a canonical name (exact, lowercase). Unknown names are an error, never db 0.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| ConfigError::UnknownDatabase { name: s.to_owned() })
    }
}

impl fmt::Display for RedisDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for RedisDatabase {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl AsRef<str> for RedisDatabase {
    fn as_ref(&self) -> &str {
        self.name()
    }
}

/// Checks a database name: non-empty, at most 64 characters, ASCII letters, digits, `_`, `-`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty database name".to_owned());
    }
    if name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "invalid database name `{}`: use at most 64 ASCII letters, digits, `_` and `-`",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// The name as it appears in `REDIS_KEEPER_<DB>_<KEY>`: upper-cased, `-` → `_`.
pub(crate) fn env_form(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (i, d) in RedisDatabase::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(d.number()), i);
            assert_eq!(d.name().parse::<RedisDatabase>().unwrap(), d);
            assert_eq!(RedisDatabase::from_number(d.number()), Some(d));
        }
        assert_eq!(RedisDatabase::Audit.number(), 10);
        assert_eq!(RedisDatabase::Cache.number(), 6);
        assert!("Main".parse::<RedisDatabase>().is_err());
        assert_eq!(
            serde_yaml::to_string(&RedisDatabase::Graph).unwrap().trim(),
            "graph"
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("my-db_2").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert_eq!(env_form("my-db"), "MY_DB");
    }
}
