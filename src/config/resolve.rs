//! Layering: defaults < registry < YAML top < YAML per-database < env < code, then validation.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tracing::level_filters::LevelFilter;

use super::env::{self, EnvSource, ProcessEnv};
use super::layer::{Layer, Origins, Partial, MAX_SECONDS};
use super::names::{check_name, env_form};
use super::settings::{
    BreakerSettings, DatabaseSettings, IdleSettings, ReadinessSettings, ResolvedConfig,
    RetrySettings,
};
use super::{ConfigError, Jitter, KeeperConfig, Origin, RedisDatabase, Secret, ServiceRegistry};
use crate::seams::{Endpoint, Keepalive, TcpOptions};

impl KeeperConfig {
    /// Stacks every layer and validates the result, lowest precedence first: built-in defaults
    /// < `registry` < YAML top-level keys < YAML per-database keys < environment (`REDIS_*`
    /// and `REDIS_KEEPER_*`, global then per-database) < code (global then per-database).
    ///
    /// Fails on an out-of-range or inconsistent value (naming the key, value and [`Origin`]), an
    /// unknown or ambiguous `REDIS_KEEPER_` variable, a code override of an unknown database, or
    /// a registry failure.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use redis_keeper::{ConfigError, KeeperConfig};
    /// let env = HashMap::from([("REDIS_KEEPER_MAIN_DB".to_string(), "16".to_string())]);
    /// let err = KeeperConfig::default().resolve(None, &env).unwrap_err();
    /// assert!(err.to_string().contains("REDIS_KEEPER_MAIN_DB"), "{err}");
    /// ```
    pub fn resolve(
        &self,
        registry: Option<&dyn ServiceRegistry>,
        env: &dyn EnvSource,
    ) -> Result<ResolvedConfig, ConfigError> {
        let names = self.names()?;
        let env_layers = env::read(env, &names)?;
        let defaults = defaults();
        let mut databases = BTreeMap::new();
        for name in &names {
            let mut merged = Partial::default();
            let mut origins = Origins::default();
            merged.overlay(&defaults, &mut origins);
            if let Ok(canonical) = name.parse::<RedisDatabase>() {
                merged.db = Some(canonical.number());
            }
            if let Some(registry) = registry {
                if let Some(entry) = registry.redis_service(name)? {
                    merged.overlay(&entry.into_layer(), &mut origins);
                }
            }
            merged.overlay(&self.yaml.top, &mut origins);
            for (_, layer) in self.yaml.databases.iter().filter(|(n, _)| n == name) {
                merged.overlay(layer, &mut origins);
            }
            merged.overlay(&env_layers.global, &mut origins);
            if let Some(layer) = env_layers.databases.get(name) {
                merged.overlay(layer, &mut origins);
            }
            merged.overlay(&self.code_global, &mut origins);
            for (_, layer) in self.code_databases.iter().filter(|(n, _)| n == name) {
                merged.overlay(layer, &mut origins);
            }
            databases.insert(name.clone(), finalize(name, &merged, &origins)?);
        }
        let log_level = self
            .code_log_level
            .or(env_layers.log_level.map(|(l, _)| l))
            .or(self.yaml.log_level.as_ref().map(|(l, _)| *l))
            .unwrap_or(LevelFilter::INFO);
        Ok(ResolvedConfig {
            log_level,
            source: self.source.clone(),
            databases,
        })
    }

    /// [`KeeperConfig::resolve`] with the real process environment.
    pub fn resolve_with_process_env(
        &self,
        registry: Option<&dyn ServiceRegistry>,
    ) -> Result<ResolvedConfig, ConfigError> {
        self.resolve(registry, &ProcessEnv)
    }

    /// Every configured database name: canonical, then YAML, then declared in code. Checks code
    /// names and that no two names collide in environment-variable form.
    fn names(&self) -> Result<Vec<String>, ConfigError> {
        let mut names: Vec<String> = RedisDatabase::ALL
            .iter()
            .map(|d| d.name().to_owned())
            .collect();
        let mut by_env: HashMap<String, String> =
            names.iter().map(|n| (env_form(n), n.clone())).collect();
        let yaml = self.yaml.databases.iter().map(|(n, l)| (n, l, true));
        let code = self.code_databases.iter().map(|(n, l)| (n, l, false));
        for (name, layer, from_yaml) in yaml.chain(code) {
            let origin = if from_yaml {
                layer.origin_of("db")
            } else {
                Origin::Code
            };
            if !from_yaml {
                check_name(name).map_err(|reason| ConfigError::InvalidValue {
                    key: "database name".to_owned(),
                    value: name.escape_debug().to_string(),
                    origin: Origin::Code,
                    reason,
                })?;
            }
            match by_env.get(&env_form(name)) {
                Some(existing) if existing == name => {}
                Some(_) => {
                    return Err(ConfigError::DuplicateDatabase {
                        name: name.clone(),
                        origin,
                    })
                }
                None if layer.values.db.is_none() => {
                    return Err(ConfigError::UnknownDatabase { name: name.clone() })
                }
                None => {
                    by_env.insert(env_form(name), name.clone());
                    names.push(name.clone());
                }
            }
        }
        Ok(names)
    }
}

/// The built-in defaults, every key but `db`, `description`, `username`, `password` and
/// `check_on_checkout_after` (which follows `health_check_interval`) and `breaker_loss_window`
/// (which follows `socket_timeout`).
fn defaults() -> Layer {
    let secs = Duration::from_secs;
    let keepalive = Keepalive::default();
    let mut layer = Layer::new(Origin::Default);
    let v = &mut layer.values;
    v.host = Some("127.0.0.1".to_owned());
    v.port = Some(6379);
    v.max_connections = Some(20);
    v.shared_connections = Some(2);
    v.socket_connect_timeout = Some(secs(5));
    v.socket_timeout = Some(secs(5));
    v.socket_keepalive = Some(true);
    v.keepalive_idle = Some(keepalive.idle);
    v.keepalive_interval = Some(keepalive.interval);
    v.keepalive_probes = Some(keepalive.probes);
    v.tcp_nodelay = Some(true);
    v.health_check_interval = Some(secs(30));
    v.retry_multiplier = Some(secs(2));
    v.retry_min = Some(secs(2));
    v.retry_max = Some(secs(30));
    v.retry_attempts = Some(5);
    v.retry_jitter = Some(Jitter::None);
    v.retry_on_timeout = Some(true);
    v.breaker_failure_threshold = Some(5);
    v.breaker_open_seconds = Some(secs(60));
    v.loading_poll_interval = Some(secs(2));
    v.loading_timeout = Some(secs(60));
    v.idle_timeout = Some(secs(300));
    v.idle_sweep_interval = Some(secs(60));
    v.min_idle = Some(0);
    v.max_lifetime = Some(Duration::ZERO);
    v.pool_wait_timeout = Some(secs(5));
    v.decode_responses = Some(true);
    v.log_commands = Some(false);
    layer
}

/// Checks a merged layer and builds the settings.
fn finalize(name: &str, p: &Partial, origins: &Origins) -> Result<DatabaseSettings, ConfigError> {
    let bad = |key: &str, reason: &str| ConfigError::InvalidValue {
        key: key.to_owned(),
        value: p.show(key).unwrap_or_else(|| "(unset)".to_owned()),
        origin: origins.get(key),
        reason: reason.to_owned(),
    };
    let need = |key: &str, v: Option<u32>| v.ok_or_else(|| bad(key, "missing"));
    let at_least_one = |key: &str, v: Option<u32>| match need(key, v)? {
        0 => Err(bad(key, "must be at least 1")),
        n => Ok(n),
    };
    // Durations: present, ≤ one year, and (for periods) > 0.
    let duration = |key: &str, v: Option<Duration>, positive: bool| {
        let d = v.ok_or_else(|| bad(key, "missing"))?;
        if d.as_secs_f64() > MAX_SECONDS {
            Err(bad(key, "more than one year"))
        } else if positive && d.is_zero() {
            Err(bad(key, "must be greater than 0"))
        } else {
            Ok(d)
        }
    };
    let flag = |key: &str, v: Option<bool>| v.ok_or_else(|| bad(key, "missing"));

    let db = p.db.ok_or_else(|| bad("db", "missing"))?;
    if db > 15 {
        return Err(bad("db", "expected 0..=15"));
    }
    let host = p.host.clone().ok_or_else(|| bad("host", "missing"))?;
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@')
    {
        // A URL here may carry credentials (`redis://:pw@host`): never echo them.
        return Err(ConfigError::InvalidValue {
            key: "host".to_owned(),
            value: redact_userinfo(&host.escape_debug().to_string()),
            origin: origins.get("host"),
            reason: "expected a host name or address, not a URL (set `password` separately)"
                .to_owned(),
        });
    }
    let port = p.port.ok_or_else(|| bad("port", "missing"))?;
    if port == 0 {
        return Err(bad("port", "expected 1..=65535"));
    }
    let max_connections = at_least_one("max_connections", p.max_connections)?;
    let shared_connections = at_least_one("shared_connections", p.shared_connections)?;
    if shared_connections > max_connections {
        return Err(bad(
            "shared_connections",
            &format!("must not exceed max_connections ({max_connections})"),
        ));
    }
    let min_idle = need("min_idle", p.min_idle)?;
    if min_idle > max_connections {
        return Err(bad(
            "min_idle",
            &format!("must not exceed max_connections ({max_connections})"),
        ));
    }
    let keepalive = if flag("socket_keepalive", p.socket_keepalive)? {
        let idle = duration("keepalive_idle", p.keepalive_idle, true)?;
        let interval = duration("keepalive_interval", p.keepalive_interval, true)?;
        let probes = at_least_one("keepalive_probes", p.keepalive_probes)?;
        Some(Keepalive {
            idle,
            interval,
            probes,
        })
    } else {
        None
    };
    let health_check_interval = duration("health_check_interval", p.health_check_interval, true)?;
    let check_on_checkout_after = match p.check_on_checkout_after {
        Some(_) => duration("check_on_checkout_after", p.check_on_checkout_after, false)?,
        None => health_check_interval,
    };
    let retry = RetrySettings {
        multiplier: duration("retry_multiplier", p.retry_multiplier, false)?,
        min: duration("retry_min", p.retry_min, false)?,
        max: duration("retry_max", p.retry_max, false)?,
        attempts: at_least_one("retry_attempts", p.retry_attempts)?,
        jitter: p
            .retry_jitter
            .ok_or_else(|| bad("retry_jitter", "missing"))?,
        retry_on_timeout: flag("retry_on_timeout", p.retry_on_timeout)?,
    };
    if retry.min > retry.max {
        return Err(bad(
            "retry_min",
            &format!("must not exceed retry_max ({}s)", retry.max.as_secs_f64()),
        ));
    }
    let max_lifetime = duration("max_lifetime", p.max_lifetime, false)?;
    flag("decode_responses", p.decode_responses)?;
    Ok(DatabaseSettings {
        name: name.to_owned(),
        db,
        description: p.description.clone(),
        endpoint: Endpoint::tcp(host, port),
        username: p.username.clone().filter(|u| !u.is_empty()),
        password: p.password.clone().filter(|s: &Secret| !s.is_empty()),
        max_connections,
        shared_connections,
        connect_timeout: duration("socket_connect_timeout", p.socket_connect_timeout, true)?,
        response_timeout: duration("socket_timeout", p.socket_timeout, true)?,
        tcp: TcpOptions {
            nodelay: flag("tcp_nodelay", p.tcp_nodelay)?,
            keepalive,
        },
        health_check_interval,
        check_on_checkout_after,
        retry,
        breaker: BreakerSettings {
            failure_threshold: at_least_one(
                "breaker_failure_threshold",
                p.breaker_failure_threshold,
            )?,
            open_for: duration("breaker_open_seconds", p.breaker_open_seconds, false)?,
            loss_window: match p.breaker_loss_window {
                Some(_) => duration("breaker_loss_window", p.breaker_loss_window, false)?,
                None => duration("socket_timeout", p.socket_timeout, true)?,
            },
        },
        readiness: ReadinessSettings {
            loading_poll_interval: duration(
                "loading_poll_interval",
                p.loading_poll_interval,
                true,
            )?,
            loading_timeout: duration("loading_timeout", p.loading_timeout, false)?,
        },
        idle: IdleSettings {
            idle_timeout: duration("idle_timeout", p.idle_timeout, false)?,
            sweep_interval: duration("idle_sweep_interval", p.idle_sweep_interval, true)?,
            min_idle,
            max_lifetime: (!max_lifetime.is_zero()).then_some(max_lifetime),
        },
        pool_wait_timeout: duration("pool_wait_timeout", p.pool_wait_timeout, false)?,
        log_commands: flag("log_commands", p.log_commands)?,
    })
}

/// `scheme://user:password@rest` → `scheme://***@rest` (and `user:pw@rest` → `***@rest`): the
/// part of a URL-like value that may hold credentials, hidden.
fn redact_userinfo(value: &str) -> String {
    let Some(at) = value.rfind('@') else {
        return value.to_owned();
    };
    let start = value.find("://").map_or(0, |i| i + 3).min(at);
    format!("{}***{}", &value[..start], &value[at..])
}

#[cfg(test)]
mod redact_tests {
    use super::redact_userinfo;

    #[test]
    fn userinfo_is_hidden() {
        assert_eq!(
            redact_userinfo("redis://:pw@h:6379/0"),
            "redis://***@h:6379/0"
        );
        assert_eq!(redact_userinfo("u:pw@h"), "***@h");
        assert_eq!(redact_userinfo("a@b@h"), "***@h");
        assert_eq!(redact_userinfo("plain-host"), "plain-host");
    }
}
