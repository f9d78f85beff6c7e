//! [`ConfigError`], and [`Origin`]: where a configuration value came from.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from, named in errors so the user knows what to fix.
///
/// ```
/// use redis_keeper::config::Origin;
/// let o = Origin::Env { var: "REDIS_PORT".into() };
/// assert_eq!(o.to_string(), "environment variable REDIS_PORT");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The [`ServiceRegistry`](super::ServiceRegistry).
    Registry,
    /// A YAML document: its name (file path or `<string>`) and the key's path inside it.
    Yaml {
        /// The file path, or `<string>` for [`KeeperConfig::from_yaml_str`](super::KeeperConfig::from_yaml_str).
        source_name: String,
        /// The key's path, e.g. `redis_databases.main.max_connections`.
        path: String,
    },
    /// An environment variable.
    Env {
        /// The variable's name.
        var: String,
    },
    /// Set in code through the [`KeeperConfig`](super::KeeperConfig) builder methods.
    Code,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("built-in default"),
            Self::Registry => f.write_str("service registry"),
            Self::Yaml { source_name, path } => write!(f, "{source_name} key {path}"),
            Self::Env { var } => write!(f, "environment variable {var}"),
            Self::Code => f.write_str("code"),
        }
    }
}

/// Why a configuration could not be loaded or resolved.
///
/// Messages never contain a password: secret values are shown as `***`.
///
/// ```
/// use redis_keeper::KeeperConfig;
/// let err = KeeperConfig::from_yaml_str("port: [1]\n").unwrap_err();
/// assert!(err.to_string().contains("line 1"));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The YAML document is malformed, has an unknown key, a wrong type or an invalid value.
    #[error("invalid yaml in {source_name}{}: {message}", at(*.line, *.column))]
    Yaml {
        /// The file path, or `<string>`.
        source_name: String,
        /// 1-based line of the offending node, when known.
        line: Option<usize>,
        /// 1-based column of the offending node, when known.
        column: Option<usize>,
        /// What is wrong, including the key's path.
        message: String,
    },
    /// A configuration file exists but could not be read.
    #[error("cannot read config file {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (shared, so the error can be cloned for every waiter).
        source: std::sync::Arc<std::io::Error>,
    },
    /// A configuration file named explicitly (argument or `REDIS_KEEPER_CONFIG`) does not exist.
    #[error("config file {} does not exist (named by {named_by})", .path.display())]
    MissingFile {
        /// The file.
        path: PathBuf,
        /// Who named it: [`Origin::Code`] for an explicit path, [`Origin::Env`] for the variable.
        named_by: Origin,
    },
    /// A value is out of range or cannot be parsed.
    #[error("invalid {key} `{value}` from {origin}: {reason}")]
    InvalidValue {
        /// The key (or environment variable) that holds the value.
        key: String,
        /// The value as given (`***` for secrets).
        value: String,
        /// Where the value came from.
        origin: Origin,
        /// What a valid value looks like.
        reason: String,
    },
    /// Two keys that mean the same setting disagree at the same level.
    #[error("conflicting {first} and {second} in {origin}")]
    ConflictingKeys {
        /// The first key or variable.
        first: String,
        /// The second key or variable.
        second: String,
        /// Where both were found.
        origin: Origin,
    },
    /// A database is given both a direct address and a Sentinel master, at the same layer (or
    /// the address at a more specific one): it is one or the other.
    #[error(
        "database `{db}` is set both direct ({direct} in {direct_origin}) and through Sentinel \
         (sentinel_master_name in {sentinel_origin}): use one"
    )]
    DirectAndSentinel {
        /// The database.
        db: String,
        /// The direct key (`host`, `port`, `url`, `unix_socket_path`).
        direct: String,
        /// Where it was set.
        direct_origin: Origin,
        /// Where `sentinel_master_name` was set (boxed: keeps the error small).
        sentinel_origin: Box<Origin>,
    },
    /// A cluster database (`cluster_nodes` set) also names a server or a Sentinel master.
    #[error(
        "database `{db}` is a cluster database (`cluster.nodes` from {cluster_origin}) but \
         `{other}` is also set (in {other_origin}): a cluster database is reached through its \
         nodes only"
    )]
    ClusterAndOther {
        /// The database.
        db: String,
        /// The other key (`host`, `port`, `url`, `unix_socket_path`, `sentinel_master_name`).
        other: String,
        /// Where it was set.
        other_origin: Origin,
        /// Where `cluster_nodes` was set (boxed: keeps the error small).
        cluster_origin: Box<Origin>,
    },
    /// An environment variable starts with `REDIS_KEEPER_` but names no database or key.
    #[error("unknown environment variable {name}: no database or key matches")]
    UnknownEnvVar {
        /// The variable's name.
        name: String,
    },
    /// An environment variable can be read as more than one database/key pair.
    #[error("ambiguous environment variable {name}: {readings}")]
    AmbiguousEnvVar {
        /// The variable's name.
        name: String,
        /// The possible readings, e.g. `database socket key timeout, or key socket_timeout`.
        readings: String,
    },
    /// Two database names are the same, or collide once mapped to environment variable form.
    #[error("duplicate database {name} in {origin}")]
    DuplicateDatabase {
        /// The name.
        name: String,
        /// Where the second one was declared.
        origin: Origin,
    },
    /// A database name that is not configured.
    #[error("unknown database {name}")]
    UnknownDatabase {
        /// The name.
        name: String,
    },
    /// The [`ServiceRegistry`](super::ServiceRegistry) failed.
    #[error("service registry failed: {message}")]
    Registry {
        /// What went wrong (must not contain secrets).
        message: String,
    },
}

impl ConfigError {
    /// A [`ConfigError::Registry`], for [`ServiceRegistry`](super::ServiceRegistry) implementations.
    ///
    /// ```
    /// use redis_keeper::ConfigError;
    /// let e = ConfigError::registry("consul unreachable");
    /// assert_eq!(e.to_string(), "service registry failed: consul unreachable");
    /// ```
    pub fn registry(message: impl Into<String>) -> Self {
        Self::Registry {
            message: message.into(),
        }
    }

    /// Converts a serde_yaml error, keeping its line and column.
    pub(crate) fn from_yaml(source_name: &str, err: &serde_yaml::Error) -> Self {
        let location = err.location();
        let mut message = err.to_string();
        if let Some(loc) = &location {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_owned();
            }
        }
        Self::Yaml {
            source_name: source_name.to_owned(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            message,
        }
    }
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l} column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}
