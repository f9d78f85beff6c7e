//! Layering: defaults < registry < YAML top < YAML per-database < env < code, then validation.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use tracing::level_filters::LevelFilter;

use super::cluster::ClusterSettings;
use super::env::{self, EnvSource, ProcessEnv};
use super::keys::{defaults, Layer, Origins, Partial, Values};
use super::kinds::Kind;
use super::names::{check_name, env_form};
use super::sentinel::SentinelSettings;
use super::sentinel_kinds::parse_node;
use super::settings::{
    BreakerSettings, DatabaseSettings, IdleSettings, ReadinessSettings, ResolvedConfig,
    RetrySettings,
};
use super::tls::{TlsCache, TlsKeys};
use super::url::{RedisUrl, Url, UrlTarget};
use super::{ConfigError, KeeperConfig, Origin, RedisDatabase, ServerRole, ServiceRegistry};
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
        let mut tls_cache = TlsCache::default();
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
            let mut stack: Vec<(&Layer, bool)> = vec![(&self.yaml.top, false)];
            stack.extend(
                self.yaml
                    .databases
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, l)| (l, true)),
            );
            stack.push((&env_layers.global, false));
            stack.extend(env_layers.databases.get(name).map(|l| (l, true)));
            stack.push((&self.code_global, false));
            stack.extend(
                self.code_databases
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, l)| (l, true)),
            );
            let mut shape = BackendShape::default();
            for (layer, per_database) in stack {
                let layer = with_url(layer, per_database)?;
                shape.see(&layer);
                merged.overlay(&layer, &mut origins);
            }
            shape.check(name)?;
            databases.insert(
                name.clone(),
                finalize(name, &merged, &origins, &mut tls_cache)?,
            );
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

/// Checks a merged layer (each key by its row in the key table, then the rules between keys)
/// and builds the settings.
fn finalize(
    name: &str,
    p: &Partial,
    origins: &Origins,
    tls_cache: &mut TlsCache,
) -> Result<DatabaseSettings, ConfigError> {
    let bad = |key: &str, reason: &str| ConfigError::InvalidValue {
        key: key.to_owned(),
        value: p.show(key).unwrap_or_else(|| "(unset)".to_owned()),
        origin: origins.get(key),
        reason: reason.to_owned(),
    };
    let v = Values::resolve(p, &bad)?;
    let db = v.db.ok_or_else(|| bad("db", "missing"))?;
    if v.shared_connections > v.max_connections {
        return Err(bad(
            "shared_connections",
            &format!("must not exceed max_connections ({})", v.max_connections),
        ));
    }
    if v.min_idle > v.max_connections {
        return Err(bad(
            "min_idle",
            &format!("must not exceed max_connections ({})", v.max_connections),
        ));
    }
    if v.retry_min > v.retry_max {
        return Err(bad(
            "retry_min",
            &format!("must not exceed retry_max ({}s)", v.retry_max.as_secs_f64()),
        ));
    }
    let cluster = match &v.cluster_nodes {
        None => None,
        Some(nodes) => Some(cluster_settings(db, nodes, &v, &bad)?),
    };
    let _accepted_for_the_seed = v.decode_responses;
    let _read_into_its_parts_by_with_url = v.url;
    let endpoint = match v.unix_socket_path.filter(|p| !p.is_empty()) {
        Some(path) => Endpoint::unix(path),
        None => Endpoint::tcp(v.host, v.port),
    };
    let tls_keys = |ssl: bool| TlsKeys {
        ssl,
        ca_certs: v.ssl_ca_certs.clone(),
        certfile: v.ssl_certfile.clone(),
        keyfile: v.ssl_keyfile.clone(),
        cert_reqs: v.ssl_cert_reqs,
        server_name: v.tls_server_name.clone(),
    };
    let sentinel = match v.sentinel_master_name.filter(|m| !m.is_empty()) {
        None if v.role == ServerRole::Replica => {
            return Err(bad(
                "role",
                "`replica` needs a Sentinel-backed database (set `sentinel.master_name`)",
            ))
        }
        None => None,
        Some(master_name) => {
            let nodes = v
                .sentinel_nodes
                .ok_or_else(|| bad("sentinel_nodes", "missing: the sentinels to ask"))?
                .iter()
                .map(|n| parse_node(n).map_err(|why| bad("sentinel_nodes", &why)))
                .collect::<Result<Vec<_>, _>>()?;
            Some(SentinelSettings {
                master_name,
                // Each sentinel's certificate is checked against its own host:
                // `tls_server_name` is the data nodes'.
                tls: TlsKeys {
                    server_name: None,
                    ..tls_keys(v.sentinel_ssl)
                }
                .settings(&nodes[0], &bad, tls_cache)?,
                nodes,
                role: v.role,
                username: v.sentinel_username.filter(|u| !u.is_empty()),
                password: v.sentinel_password.filter(|s| !s.is_empty()),
                poll_interval: v.sentinel_poll_interval,
                failover_hold: v.sentinel_failover_hold,
                master_name_origin: origins.get("sentinel_master_name"),
            })
        }
    };
    // TLS to the sentinels only: the `ssl_*` files are theirs, not a mistake beside `ssl: false`.
    let tls = if !v.ssl && sentinel.as_ref().is_some_and(|s| s.tls.is_some()) {
        None
    } else {
        tls_keys(v.ssl).settings(&endpoint, &bad, tls_cache)?
    };
    Ok(DatabaseSettings {
        name: name.to_owned(),
        db,
        description: v.description,
        endpoint,
        tls,
        sentinel,
        cluster,
        username: v.username.filter(|u| !u.is_empty()),
        password: v.password.filter(|s| !s.is_empty()),
        max_connections: v.max_connections,
        shared_connections: v.shared_connections,
        connect_timeout: v.socket_connect_timeout,
        response_timeout: v.socket_timeout,
        tcp: TcpOptions {
            nodelay: v.tcp_nodelay,
            keepalive: v.socket_keepalive.then_some(Keepalive {
                idle: v.keepalive_idle,
                interval: v.keepalive_interval,
                probes: v.keepalive_probes,
            }),
        },
        health_check_interval: v.health_check_interval,
        check_on_checkout_after: v.check_on_checkout_after,
        retry: RetrySettings {
            multiplier: v.retry_multiplier,
            min: v.retry_min,
            max: v.retry_max,
            attempts: v.retry_attempts,
            jitter: v.retry_jitter,
            retry_on_timeout: v.retry_on_timeout,
        },
        breaker: BreakerSettings {
            failure_threshold: v.breaker_failure_threshold,
            open_for: v.breaker_open_seconds,
            loss_window: v.breaker_loss_window,
        },
        readiness: ReadinessSettings {
            loading_poll_interval: v.loading_poll_interval,
            loading_timeout: v.loading_timeout,
        },
        idle: IdleSettings {
            idle_timeout: v.idle_timeout,
            sweep_interval: v.idle_sweep_interval,
            min_idle: v.min_idle,
            max_lifetime: v.max_lifetime,
        },
        pool_wait_timeout: v.pool_wait_timeout,
        log_commands: v.log_commands,
    })
}

/// The settings of a cluster database (`cluster_nodes` set): on db 0; TLS with `cluster-tls`,
/// without `tls_server_name`.
fn cluster_settings(
    db: u8,
    nodes: &[String],
    v: &Values,
    bad: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<ClusterSettings, ConfigError> {
    if db != 0 {
        return Err(bad(
            "db",
            "a cluster database must use db 0: Redis Cluster has only database 0 (SELECT is refused)",
        ));
    }
    if v.ssl && !cfg!(feature = "cluster-tls") {
        return Err(bad(
            "ssl",
            "TLS to a Redis Cluster needs redis-keeper's `cluster-tls` feature (on by default; \
             this build has it off)",
        ));
    }
    if v.ssl && v.tls_server_name.as_deref().is_some_and(|n| !n.is_empty()) {
        return Err(bad(
            "tls_server_name",
            "not used with a cluster: each node's certificate is checked against the address \
             the slot map names (unset it)",
        ));
    }
    Ok(ClusterSettings {
        nodes: nodes
            .iter()
            .map(|n| parse_node(n).map_err(|why| bad("cluster_nodes", &why)))
            .collect::<Result<Vec<_>, _>>()?,
        refresh_interval: v.cluster_refresh_interval,
        command_deadline: v.cluster_command_deadline,
        max_attempts: v.cluster_max_attempts,
    })
}

/// Whether a database is direct, Sentinel-backed or a cluster, as the layers stack up: the
/// more specific layer decides; one layer that says two of them is an error.
#[derive(Default)]
struct BackendShape {
    /// The layer (its index) that set a non-empty `sentinel_master_name` last, and where.
    sentinel: Option<(usize, Origin)>,
    /// The layer that set a direct key last, the key and where.
    direct: Option<(usize, &'static str, Origin)>,
    /// The layer that set `cluster_nodes` last, and where.
    cluster: Option<(usize, Origin)>,
    layers: usize,
}

impl BackendShape {
    /// Notes what one layer (its URL already read into its parts) sets.
    fn see(&mut self, layer: &Layer) {
        let at = self.layers;
        self.layers += 1;
        let v = &layer.values;
        let direct = if v.url.as_ref().is_some_and(|u| !u.is_empty()) {
            Some("url")
        } else if v.host.is_some() {
            Some("host")
        } else if v.port.is_some() {
            Some("port")
        } else {
            v.unix_socket_path
                .as_ref()
                .filter(|p| !p.is_empty())
                .map(|_| "unix_socket_path")
        };
        if let Some(key) = direct {
            self.direct = Some((at, key, layer.origin_of(key)));
        }
        match v.sentinel_master_name.as_deref() {
            Some("") => self.sentinel = None,
            Some(_) => self.sentinel = Some((at, layer.origin_of("sentinel_master_name"))),
            None => {}
        }
        if v.cluster_nodes.is_some() {
            self.cluster = Some((at, layer.origin_of("cluster_nodes")));
        }
    }

    /// A direct key at the same layer as the Sentinel master or the cluster's nodes, or at a
    /// more specific one, is an error naming both; so is a cluster with a Sentinel master.
    fn check(&self, db: &str) -> Result<(), ConfigError> {
        if let Some((c, cluster_origin)) = &self.cluster {
            let other = match (&self.sentinel, &self.direct) {
                (Some((_, origin)), _) => Some(("sentinel_master_name", origin)),
                (None, Some((d, key, origin))) if d >= c => Some((*key, origin)),
                _ => None,
            };
            if let Some((other, other_origin)) = other {
                return Err(ConfigError::ClusterAndOther {
                    db: db.to_owned(),
                    other: other.to_owned(),
                    other_origin: other_origin.clone(),
                    cluster_origin: Box::new(cluster_origin.clone()),
                });
            }
        }
        match (&self.sentinel, &self.direct) {
            (Some((s, sentinel_origin)), Some((d, key, direct_origin))) if d >= s => {
                Err(ConfigError::DirectAndSentinel {
                    db: db.to_owned(),
                    direct: (*key).to_owned(),
                    direct_origin: direct_origin.clone(),
                    sentinel_origin: Box::new(sentinel_origin.clone()),
                })
            }
            _ => Ok(()),
        }
    }
}

/// `layer` with its `url` (if set and not empty) read as the keys it stands for, at the same
/// layer and with the URL's origin. A key set beside the URL must agree with it.
fn with_url(layer: &Layer, per_database: bool) -> Result<Cow<'_, Layer>, ConfigError> {
    let Some(text) = layer.values.url.as_ref().filter(|u| !u.is_empty()) else {
        return Ok(Cow::Borrowed(layer));
    };
    let origin = layer.origin_of("url");
    let invalid = |reason: String| ConfigError::InvalidValue {
        key: "url".to_owned(),
        value: Url::show(text),
        origin: origin.clone(),
        reason,
    };
    let url = RedisUrl::parse(text.expose()).map_err(&invalid)?;
    if url.db.is_some() && !per_database {
        return Err(invalid(
            "a database number in a URL is only accepted per database (each named database has \
             its own `db`)"
                .to_owned(),
        ));
    }
    let mut out = layer.clone();
    match url.target {
        UrlTarget::Tcp { host, port } => {
            part(&mut out, "host", host, |p| &mut p.host)?;
            part(&mut out, "port", port, |p| &mut p.port)?;
            part(&mut out, "ssl", url.tls, |p| &mut p.ssl)?;
            part(&mut out, "unix_socket_path", String::new(), |p| {
                &mut p.unix_socket_path
            })?;
        }
        UrlTarget::Unix { path } => {
            part(&mut out, "unix_socket_path", path, |p| {
                &mut p.unix_socket_path
            })?;
        }
    }
    if let Some(user) = url.username {
        part(&mut out, "username", user, |p| &mut p.username)?;
    }
    if let Some(password) = url.password {
        part(&mut out, "password", password, |p| &mut p.password)?;
    }
    if let Some(db) = url.db {
        part(&mut out, "db", db, |p| &mut p.db)?;
    }
    Ok(Cow::Owned(out))
}

/// Sets `key` from the layer's URL; a different value set beside it is a conflict.
fn part<T: PartialEq>(
    layer: &mut Layer,
    key: &'static str,
    value: T,
    slot: impl FnOnce(&mut Partial) -> &mut Option<T>,
) -> Result<(), ConfigError> {
    let origin = layer.origin_of("url");
    let slot = slot(&mut layer.values);
    if slot.as_ref().is_some_and(|old| *old != value) {
        return Err(ConfigError::ConflictingKeys {
            first: "url".to_owned(),
            second: key.to_owned(),
            origin,
        });
    }
    *slot = Some(value);
    layer.record(key, origin);
    Ok(())
}
