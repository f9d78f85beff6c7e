//! Finding and reading the YAML file: explicit path, `REDIS_KEEPER_CONFIG`, container, host.

use std::io;
use std::path::{Path, PathBuf};

use super::env::{EnvSource, ProcessEnv, CONFIG_VAR};
use super::{ConfigError, KeeperConfig, Origin};

/// The container location, tried after the explicit path and `REDIS_KEEPER_CONFIG`.
pub(crate) const CONTAINER_PATH: &str = "/app/config/redis-databases.yaml";
/// The host location (relative to the working directory), tried last.
pub(crate) const HOST_PATH: &str = "./config/redis-databases.yaml";

impl KeeperConfig {
    /// Reads and parses a YAML file; errors name the file. A missing file is
    /// [`ConfigError::MissingFile`].
    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        load_required(path.as_ref(), Origin::Code)
    }

    /// Finds the configuration: same as [`KeeperConfig::discover_from`]`(None)`.
    pub fn discover() -> Result<Self, ConfigError> {
        Self::discover_from(None)
    }

    /// Finds the configuration, first match wins:
    /// 1. `explicit`, if given (must exist);
    /// 2. the file named by `REDIS_KEEPER_CONFIG`, if set (must exist; empty is an error);
    /// 3. `/app/config/redis-databases.yaml` (container);
    /// 4. `./config/redis-databases.yaml` (host);
    /// 5. otherwise the built-in defaults ([`KeeperConfig::default`]).
    ///
    /// A file that exists but cannot be read or parsed is an error naming it (with line and
    /// column for YAML errors), never a silent fallback.
    ///
    /// ```no_run
    /// use redis_keeper::KeeperConfig;
    /// let config = KeeperConfig::discover_from(Some(std::path::Path::new("deploy/redis.yaml")))?;
    /// # Ok::<(), redis_keeper::ConfigError>(())
    /// ```
    pub fn discover_from(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let candidates = [PathBuf::from(CONTAINER_PATH), PathBuf::from(HOST_PATH)];
        discover_in(explicit, &ProcessEnv, &candidates)
    }
}

/// Discovery with injectable environment and candidate paths (tests never touch `/app`).
pub(crate) fn discover_in(
    explicit: Option<&Path>,
    env: &dyn EnvSource,
    candidates: &[PathBuf],
) -> Result<KeeperConfig, ConfigError> {
    if let Some(path) = explicit {
        return load_required(path, Origin::Code);
    }
    if let Some(value) = env.var(CONFIG_VAR) {
        let origin = Origin::Env {
            var: CONFIG_VAR.to_owned(),
        };
        if value.trim().is_empty() {
            return Err(ConfigError::InvalidValue {
                key: CONFIG_VAR.to_owned(),
                value,
                origin,
                reason: "expected a file path".to_owned(),
            });
        }
        return load_required(Path::new(&value), origin);
    }
    for path in candidates {
        match read(path)? {
            Some(text) => return KeeperConfig::from_yaml_named(&text, &path.display().to_string()),
            None => continue,
        }
    }
    Ok(KeeperConfig::default())
}

/// Loads a file that must exist.
fn load_required(path: &Path, named_by: Origin) -> Result<KeeperConfig, ConfigError> {
    match read(path)? {
        Some(text) => KeeperConfig::from_yaml_named(&text, &path.display().to_string()),
        None => Err(ConfigError::MissingFile {
            path: path.to_owned(),
            named_by,
        }),
    }
}

/// The file's text; `None` if it does not exist.
fn read(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Io {
            path: path.to_owned(),
            source: std::sync::Arc::new(source),
        }),
    }
}
