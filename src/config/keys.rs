//! The configuration keys: one row per key, from which the layer ([`Partial`], [`Layer`]), the
//! YAML reader, the environment, the default, the check, the code setter and the README table
//! all come.
//!
//! A row is `name: Kind, scope, default, [env "VAR",] [set method(Type)];` under its doc:
//! - `Kind` (from [`kinds`](super::kinds)) says how the value reads and what it accepts;
//! - `scope` is `Both` (top level and per database) or `Db` (per database only);
//! - `default` is `value(expr)`, `follows(other_key)` or `unset("what the README says")`;
//! - `env "VAR"` adds a short variable for every database (every key also has
//!   `REDIS_KEEPER_<KEY>` and `REDIS_KEEPER_<DB>_<KEY>`);
//! - `set method(Type)` adds a [`DatabaseOverrides`] setter.
//!
//! Adding a key: one row here, then its use (a field of
//! [`DatabaseSettings`](super::DatabaseSettings) filled in `resolve.rs`), then
//! `cargo test readme_key_table` prints the README table to paste.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::{self, MapAccess};

use super::kinds::{
    read_checked, CertReqsName, Count, DbNumber, Flag, Host, JitterName, Kind, Limit, Number,
    Password, Period, Port, Seconds, Text,
};
use super::sentinel_kinds::{Nodes, RoleName};
#[cfg(test)]
use super::table::default_doc;
use super::table::{
    config_keys, default_value, first_of, resolve_key, resolved_type, setter, AliasSpec, KeySpec,
    Level, Scope,
};
use super::url::Url;
use super::{CertReqs, ConfigError, DatabaseOverrides, Origin, Secret, ServerRole};
use crate::policy::{
    BreakerConfig, HealthConfig, IdleConfig, Jitter, ReadinessConfig, RetryConfig,
};
use crate::seams::{Keepalive, TcpOptions};

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

config_keys! {
    keys {
        /// Logical database number `0..=15`. Required for a non-canonical name; two names may
        /// share a number (alias); a canonical name may be moved explicitly.
        db: DbNumber, Db, unset("canonical number");
        /// Free text.
        description: Text, Db, unset("none"), set description(impl Into<String>);
        /// Server host name or address.
        host: Host, Both, value("127.0.0.1".to_owned()), env "REDIS_HOST",
            set host(impl Into<String>);
        /// Server port (1..=65535).
        port: Port, Both, value(6379), env "REDIS_PORT", set port(u16);
        /// ACL user name (empty = none).
        username: Text, Both, unset("none"), env "REDIS_USERNAME",
            set username(impl Into<String>);
        /// Password (empty = none). Never printed.
        password: Password, Both, unset("none"), env "REDIS_PASSWORD",
            set password(impl Into<Secret>);
        /// The whole address in one string: `redis://[user[:password]@]host[:port][/db]`,
        /// `rediss://…` (TLS: sets `ssl`), `unix:///path/redis.sock[?db=N]` or
        /// `redis+unix://…`. Its parts count as the keys
        /// they stand for, at the URL's layer: a key set beside it that disagrees is an error
        /// naming both. A database number only per database. The password may be URL-encoded;
        /// never printed. Empty = none.
        url: Url, Both, unset("none"), env "REDIS_URL", set url(impl Into<Secret>);
        /// Path of the server's Unix socket (redis-py's name): when set, `host` and `port` are
        /// not used, nor keepalive and nodelay. Empty = none.
        unix_socket_path: Text, Both, unset("none"), set unix_socket_path(impl Into<String>);
        /// TLS (rustls; the `tls` feature, on by default). A `rediss://` URL sets it. Not over
        /// a Unix socket.
        ssl: Flag, Both, value(false), set ssl(bool);
        /// PEM bundle of the CAs trusted to sign the server's certificate, read when the
        /// Keeper is built. Empty = the platform's trust store (rustls-native-certs).
        ssl_ca_certs: Text, Both, unset("platform roots"), set ssl_ca_certs(impl Into<String>);
        /// PEM client certificate chain, for mutual TLS; its key in `ssl_keyfile`, or in this
        /// file when `ssl_keyfile` is empty. Empty = none.
        ssl_certfile: Text, Both, unset("none"), set ssl_certfile(impl Into<String>);
        /// PEM private key of `ssl_certfile` (PKCS#8, PKCS#1 or SEC1). Empty = none.
        ssl_keyfile: Text, Both, unset("none"), set ssl_keyfile(impl Into<String>);
        /// `required` (verify the chain, dates and name), `optional` (the same, on a client,
        /// as in Python's `ssl`) or `none` (accept any certificate: test setups only).
        ssl_cert_reqs: CertReqsName, Both, value(CertReqs::Required),
            set ssl_cert_reqs(CertReqs);
        /// The name sent in SNI and verified against the certificate, when it differs from
        /// `host` (e.g. connecting by address). Empty = `host`.
        tls_server_name: Text, Both, unset("`host`"), set tls_server_name(impl Into<String>);
        /// Sentinel: the name of the master the sentinels watch (YAML `sentinel.master_name`).
        /// Set = the database's master is found and followed through the sentinels, never
        /// `host`/`port`/`url`/`unix_socket_path` (set at the same or a more specific layer:
        /// an error naming both). Empty = none.
        sentinel_master_name: Text, Both, unset("none (direct)"),
            set sentinel_master_name(impl Into<String>);
        /// Sentinel: `master` (reads and writes) or `replica` (reads from a healthy replica
        /// the sentinels list, round robin, each checked with `ROLE`; a write gets
        /// `READONLY`). Only with `sentinel_master_name`.
        role: RoleName, Both, value(ServerRole::Master), set role(ServerRole);
        /// Sentinel: the sentinels' `host:port` addresses, a YAML list or one comma-separated
        /// string (YAML `sentinel.nodes`), at least one.
        sentinel_nodes: Nodes, Both, unset("none"), set sentinel_nodes(Vec<String>);
        /// Sentinel: ACL user for the sentinels, not the data nodes (YAML
        /// `sentinel.username`). Empty = none.
        sentinel_username: Text, Both, unset("none"), set sentinel_username(impl Into<String>);
        /// Sentinel: password for the sentinels, not the data nodes (YAML
        /// `sentinel.password`). Never printed. Empty = none.
        sentinel_password: Password, Both, unset("none"),
            set sentinel_password(impl Into<Secret>);
        /// Sentinel: TLS to the sentinels, with the `ssl_*` files, each sentinel checked against
        /// its own host (`tls_server_name` is the data nodes') (YAML `sentinel.ssl`).
        sentinel_ssl: Flag, Both, follows(ssl), set sentinel_ssl(bool);
        /// Sentinel: how often the master's address is asked for, as a backstop to the
        /// sentinels' events, > 0.
        sentinel_poll_interval: Period, Both, value(secs(2)),
            set sentinel_poll_interval(Duration);
        /// Sentinel: the longest time commands wait while a failover the sentinels announced
        /// is under way (then they go to the master the sentinels name).
        sentinel_failover_hold: Seconds, Both, value(secs(5)),
            set sentinel_failover_hold(Duration);
        /// Cluster: seed nodes of a Redis Cluster, a YAML list or one
        /// comma-separated string of `host:port` (YAML `cluster.nodes`). Set = the database is
        /// served by the cluster (its `db` must be 0; `host`/`port` and `sentinel` not set).
        cluster_nodes: Nodes, Db, unset("none (not a cluster)"), set cluster_nodes(Vec<String>);
        /// Cluster: how often the slot map is asked for, > 0.
        cluster_refresh_interval: Period, Db, value(secs(5)),
            set cluster_refresh_interval(Duration);
        /// Cluster: the longest one command may take in all, redirections and waits (`TRYAGAIN`,
        /// `CLUSTERDOWN`, `LOADING`) included, > 0.
        cluster_command_deadline: Period, Db, value(secs(10)),
            set cluster_command_deadline(Duration);
        /// Cluster: sends of one command in all, redirections and retries after a refusal
        /// included, ≥ 1.
        cluster_max_attempts: Count, Db, value(16), set cluster_max_attempts(u32);
        /// Bound on shared + exclusive connections together, ≥ 1.
        max_connections: Count, Both, value(20), set max_connections(u32);
        /// Multiplexed connections shared by `get`, `1..=max_connections`.
        shared_connections: Count, Both, value(2), set shared_connections(u32);
        /// Response timeout, > 0.
        socket_timeout: Period, Both, value(secs(5)), set response_timeout(Duration);
        /// TCP connect timeout, > 0.
        socket_connect_timeout: Period, Both, value(secs(5)), set connect_timeout(Duration);
        /// TCP keepalive on/off.
        socket_keepalive: Flag, Both, value(TcpOptions::default().keepalive.is_some()),
            set socket_keepalive(bool);
        /// Idle time before the first keepalive probe (`TCP_KEEPIDLE`), > 0.
        keepalive_idle: Period, Both, value(Keepalive::default().idle),
            set keepalive_idle(Duration);
        /// Time between keepalive probes (`TCP_KEEPINTVL`), > 0.
        keepalive_interval: Period, Both, value(Keepalive::default().interval),
            set keepalive_interval(Duration);
        /// Unanswered probes before the connection drops (`TCP_KEEPCNT`), ≥ 1.
        keepalive_probes: Count, Both, value(Keepalive::default().probes),
            set keepalive_probes(u32);
        /// `TCP_NODELAY`.
        tcp_nodelay: Flag, Both, value(TcpOptions::default().nodelay), set tcp_nodelay(bool);
        /// Background PING period, > 0.
        health_check_interval: Period, Both, value(HealthConfig::default().interval),
            set health_check_interval(Duration);
        /// A connection idle longer than this is validated (PING) on checkout.
        check_on_checkout_after: Seconds, Both, follows(health_check_interval),
            set check_on_checkout_after(Duration);
        /// Connection attempts in total, ≥ 1.
        retry_attempts: Count, Both, value(RetryConfig::default().max_attempts),
            set retry_attempts(u32);
        /// Retry wait base: wait after attempt n = `clamp(multiplier · 2^(n-1), min, max)`.
        retry_multiplier: Seconds, Both, value(RetryConfig::default().multiplier),
            set retry_multiplier(Duration);
        /// Shortest retry wait, ≤ `retry_max`.
        retry_min: Seconds, Both, value(RetryConfig::default().min), set retry_min(Duration);
        /// Longest retry wait.
        retry_max: Seconds, Both, value(RetryConfig::default().max), set retry_max(Duration);
        /// `none` or `full` (uniform in `[min, wait(n)]`, seeded).
        retry_jitter: JitterName, Both, value(RetryConfig::default().jitter),
            set retry_jitter(Jitter);
        /// Whether connect/response timeouts are retried.
        retry_on_timeout: Flag, Both, value(RetryConfig::default().retry_on_timeout),
            set retry_on_timeout(bool);
        /// Consecutive failures that open the circuit breaker, ≥ 1.
        breaker_failure_threshold: Count, Both, value(BreakerConfig::default().failure_threshold),
            set breaker_failure_threshold(u32);
        /// How long the breaker stays open before a half-open probe.
        breaker_open_seconds: Seconds, Both, value(BreakerConfig::default().open_for),
            set breaker_open_for(Duration);
        /// Connections already open that are lost within this long after a loss the breaker
        /// counted went down in the same event: no further failure (a `CLIENT KILL` of the
        /// whole pool is one failure).
        breaker_loss_window: Seconds, Both, follows(socket_timeout),
            set breaker_loss_window(Duration);
        /// PING interval while the server answers `LOADING`, > 0.
        loading_poll_interval: Period, Both, value(ReadinessConfig::default().poll_interval),
            set loading_poll_interval(Duration);
        /// Give up this long after the first `LOADING`.
        loading_timeout: Seconds, Both, value(ReadinessConfig::default().timeout),
            set loading_timeout(Duration);
        /// An idle connection older than this is stale and closed.
        idle_timeout: Seconds, Both, value(IdleConfig::default().idle_timeout),
            set idle_timeout(Duration);
        /// Idle sweep period, > 0.
        idle_sweep_interval: Period, Both, value(IdleConfig::default().sweep_interval),
            set idle_sweep_interval(Duration);
        /// Idle connections the sweep keeps, ≤ `max_connections`.
        min_idle: Number, Both, value(0), set min_idle(u32);
        /// Close connections older than this; `0` = no limit.
        max_lifetime: Limit, Both, value(IdleConfig::default().max_lifetime),
            set max_lifetime(Option<Duration>);
        /// How long a caller waits for a free connection (`0` = fail at once).
        pool_wait_timeout: Seconds, Both, value(secs(5)), set pool_wait_timeout(Duration);
        /// Accepted for seed compatibility; only checked to be `true`/`false`. In Rust the
        /// requested return type decides decoding (every reply reads as `String` or bytes).
        decode_responses: Flag, Both, value(true);
        /// A `debug` event per command: database, command name and argument count, never the
        /// values.
        log_commands: Flag, Both, value(false), set log_commands(bool);
    }
    aliases {
        /// Seed alias of `socket_timeout` (must agree if both set).
        timeout: Period => socket_timeout;
        /// Seed alias of `socket_timeout` (must agree if both set).
        timeout_seconds: Period => socket_timeout;
        /// Seed alias of `retry_attempts` (must agree if both set).
        max_retries: Count => retry_attempts;
        /// Seed key: sets both `retry_multiplier` and `retry_min` (must agree with them if set).
        retry_delay: Seconds => retry_multiplier, retry_min;
    }
}

/// A [`Partial`] plus where its values came from.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) values: Partial,
    origins: BTreeMap<&'static str, Origin>,
    fallback: Origin,
}

impl Layer {
    /// An empty layer whose values come from `fallback` unless recorded otherwise.
    pub(crate) fn new(fallback: Origin) -> Self {
        Self {
            values: Partial::default(),
            origins: BTreeMap::new(),
            fallback,
        }
    }

    /// Records that `key` came from `origin`.
    pub(crate) fn record(&mut self, key: &'static str, origin: Origin) {
        self.origins.insert(key, origin);
    }

    /// Where `key` came from.
    pub(crate) fn origin_of(&self, key: &str) -> Origin {
        self.origins
            .get(key)
            .cloned()
            .unwrap_or_else(|| self.fallback.clone())
    }
}

/// Where each key of a merged [`Partial`] came from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins(pub(crate) BTreeMap<&'static str, Origin>);

impl Origins {
    pub(crate) fn get(&self, key: &str) -> Origin {
        self.0.get(key).cloned().unwrap_or(Origin::Default)
    }
}

/// The canonical keys a YAML/env key name stands for (aliases included); `None` if unknown.
pub(crate) fn canonical_keys(key: &str) -> Option<Vec<&'static str>> {
    if let Some(alias) = ALIASES.iter().find(|a| a.name == key) {
        return Some(alias.targets.to_vec());
    }
    KEYS.iter().find(|k| k.name == key).map(|k| vec![k.name])
}

/// The spec of a canonical key.
pub(crate) fn spec(key: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.name == key)
}

/// Where the YAML reader puts one map's values: a layer, with each key's origin, and which
/// YAML name set each canonical key (to catch an alias that disagrees).
pub(crate) struct YamlSink<'a> {
    pub(crate) layer: Layer,
    /// YAML names read so far (a repeated one is a duplicate).
    seen: Vec<&'static str>,
    /// Canonical key → the YAML name that set it.
    set_by: BTreeMap<&'static str, &'static str>,
    origin: &'a dyn Fn(&str) -> Origin,
    /// The nested map being read (`sentinel`), whose keys are `<section>_<key>` in the table
    /// and `<section>.<key>` in origins.
    pub(crate) section: Option<&'static str>,
}

impl<'a> YamlSink<'a> {
    /// An empty sink; `origin` names a YAML key's place (file and key path).
    pub(crate) fn new(origin: &'a dyn Fn(&str) -> Origin) -> Self {
        Self {
            layer: Layer::new(Origin::Default),
            seen: Vec::new(),
            set_by: BTreeMap::new(),
            origin,
            section: None,
        }
    }

    /// Notes that the YAML name `name` was read; a second time is a duplicate.
    pub(crate) fn first_time<E: de::Error>(&mut self, name: &'static str) -> Result<(), E> {
        if self.seen.contains(&name) {
            return Err(E::duplicate_field(name));
        }
        self.seen.push(name);
        Ok(())
    }

    /// Sets canonical `key` from YAML name `name`; two names of one key must agree.
    fn put<T: PartialEq, E: de::Error>(
        &mut self,
        key: &'static str,
        name: &'static str,
        value: T,
        slot: impl FnOnce(&mut Partial) -> &mut Option<T>,
    ) -> Result<(), E> {
        let slot = slot(&mut self.layer.values);
        if let (Some(old), Some(other)) = (slot.as_ref(), self.set_by.get(key)) {
            if *old != value {
                return Err(E::custom(format!(
                    "conflicting {other} and {name}: both set, with different values"
                )));
            }
        }
        *slot = Some(value);
        self.set_by.insert(key, name);
        let nested = self.section.and_then(|section| {
            let rest = name.strip_prefix(section)?.strip_prefix('_')?;
            Some(format!("{section}.{rest}"))
        });
        self.layer
            .record(key, (self.origin)(nested.as_deref().unwrap_or(name)));
        Ok(())
    }
}

#[cfg(test)]
/// Rows of the README table for keys outside the per-database table.
const DOCUMENT_ROWS: &[[&str; 4]] = &[
    [
        "`redis_databases` / `databases`",
        "top",
        "Map of database name → settings. Names: ASCII letters, digits, `_`, `-`; unique \
         (compared upper-cased, `-` as `_`). The 16 canonical names always exist; new names \
         need `db:`.",
        "canonical 16",
    ],
    [
        "`log_level`",
        "top",
        "Level filter for the keeper's own tracing events: `error`, `warn` (`warning`), `info`, \
         `debug`, `trace`, case-insensitive.",
        "`info`",
    ],
    [
        "`cluster`",
        "db",
        "Map `{nodes, refresh_interval, command_deadline, max_attempts}`: the `cluster_*` keys \
         below, under one name (`cluster.nodes` = `cluster_nodes`).",
        "none (not a cluster)",
    ],
    [
        "`sentinel`",
        "top, db",
        "Map `{master_name, nodes, username, password, ssl}`: the `sentinel_*` keys below, \
         under one name (`sentinel.master_name` = `sentinel_master_name`).",
        "none (direct)",
    ],
];

#[cfg(test)]
/// The README's key table, generated from the rows (canonical keys, each followed by its
/// aliases).
pub(crate) fn readme_table() -> String {
    let defaults = documented_defaults();
    let mut out = String::from("| Key | Level | Meaning | Default |\n|---|---|---|---|\n");
    let mut row = |cells: [&str; 4]| {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            cells[0], cells[1], cells[2], cells[3]
        ));
    };
    for cells in DOCUMENT_ROWS {
        row(*cells);
    }
    for key in KEYS {
        let default = defaults
            .iter()
            .find(|(k, _)| *k == key.name)
            .map_or("", |(_, d)| d.as_str());
        row([
            &format!("`{}`", key.name),
            key.scope.shown(),
            &one_line(key.doc),
            default,
        ]);
        for alias in ALIASES.iter().filter(|a| a.targets[0] == key.name) {
            row([
                &format!("`{}`", alias.name),
                key.scope.shown(),
                &one_line(alias.doc),
                "—",
            ]);
        }
    }
    out
}

#[cfg(test)]
/// A doc comment's lines as one line of text.
fn one_line(doc: &str) -> String {
    doc.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_names_canonical_keys_of_its_kind() {
        for alias in ALIASES {
            assert!(
                spec(alias.name).is_none(),
                "{} is also canonical",
                alias.name
            );
            for target in alias.targets {
                assert!(spec(target).is_some(), "{} → unknown {target}", alias.name);
            }
        }
        assert_eq!(
            canonical_keys("retry_delay").unwrap(),
            ["retry_multiplier", "retry_min"]
        );
        assert_eq!(canonical_keys("port").unwrap(), ["port"]);
        assert!(canonical_keys("colour").is_none());
    }

    #[test]
    fn text_parsing_goes_through_the_row_kind() {
        let mut p = Partial::default();
        assert!(p.set_text("max_connections", "50").unwrap().is_ok());
        assert_eq!(p.max_connections, Some(50));
        assert!(p.set_text("max_lifetime", "0").unwrap().is_ok());
        assert_eq!(p.max_lifetime, Some(None));
        assert!(p.set_text("socket_timeout", "-1").unwrap().is_err());
        assert!(p.set_text("nope", "1").is_none());
        p.set_text("password", "pw").unwrap().unwrap();
        assert_eq!(p.show("password").unwrap(), "***");
        assert!(spec("password").unwrap().secret);
    }

    #[test]
    fn every_default_passes_its_own_check() {
        let bad = |key: &str, why: &str| ConfigError::InvalidValue {
            key: key.to_owned(),
            value: String::new(),
            origin: Origin::Default,
            reason: why.to_owned(),
        };
        let values = Values::resolve(&defaults().values, &bad).unwrap();
        assert_eq!(values.check_on_checkout_after, values.health_check_interval);
        assert_eq!(values.breaker_loss_window, values.socket_timeout);
        assert_eq!(values.db, None);
    }

    /// The README's table is this table: edit a row, then paste the printed table between the
    /// README's `config-keys` markers.
    #[test]
    fn readme_key_table_is_generated_from_the_rows() {
        let readme = include_str!("../../README.md");
        let begin = "<!-- config-keys:begin -->\n";
        let end = "<!-- config-keys:end -->";
        let start = readme
            .find(begin)
            .expect("README lacks the config-keys:begin marker");
        let stop = readme
            .find(end)
            .expect("README lacks the config-keys:end marker");
        let shown = &readme[start + begin.len()..stop];
        let expected = readme_table();
        assert!(
            shown == expected,
            "README key table differs from src/config/keys.rs; paste this:\n{expected}"
        );
    }
}
