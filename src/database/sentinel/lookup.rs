//! Asking the sentinels: a short-lived connection to each in turn (through the database's
//! transport, under a short timeout) for `SENTINEL get-master-addr-by-name`, `SENTINEL
//! sentinels` to learn the others, and the `ROLE` check on a data connection.

use std::io;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Value;

use super::{bump, Learnt, LookupError, SentinelBackend};
use crate::classify::classify;
use crate::config::ConfigError;
use crate::database::dial::{handshake, Failure, OnPush};
use crate::database::driver::Driver;
use crate::policy::FailureKind;
use crate::seams::{timeout_at, Endpoint, Runtime, TcpOptions};

/// How long one sentinel may take to answer a lookup (connect included), at most: a dead
/// sentinel must not hold the others' turn for a whole connect timeout.
pub(super) const SENTINEL_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection to one sentinel, and the flags of its driver (stop it when done).
pub(super) struct SentinelConn {
    pub(super) conn: MultiplexedConnection,
    pub(super) driver: std::sync::Arc<Driver>,
}

impl Drop for SentinelConn {
    fn drop(&mut self) {
        self.driver.stop();
    }
}

fn io_failure(kind: io::ErrorKind, what: String) -> Failure {
    let e = redis::RedisError::from(io::Error::new(kind, what));
    (classify(&e), e)
}

impl SentinelBackend {
    /// The handshake of a sentinel connection: its own credentials, no database.
    fn info(&self) -> redis::RedisConnectionInfo {
        let mut info = redis::RedisConnectionInfo::default();
        if let Some(user) = &self.settings.username {
            info = info.set_username(user);
        }
        if let Some(password) = &self.settings.password {
            info = info.set_password(password.expose());
        }
        info
    }

    /// Opens a connection to the sentinel `node` within `limit`.
    pub(super) async fn connect(
        &self,
        runtime: &Runtime,
        node: &Endpoint,
        tcp: &TcpOptions,
        limit: Duration,
        push: Option<OnPush>,
    ) -> Result<SentinelConn, Failure> {
        let clock = runtime.clock();
        let attempt = async {
            let stream = self.transport.connect(node, tcp).await.map_err(|e| {
                let e = redis::RedisError::from(e);
                (classify(&e), e)
            })?;
            let (conn, driver) = handshake(stream, &self.info(), push.as_ref(), runtime)
                .await
                .map_err(|e| (classify(&e), e))?;
            Ok(SentinelConn { conn, driver })
        };
        match timeout_at(&**clock, clock.now() + limit, attempt).await {
            Ok(result) => result,
            Err(_) => Err(io_failure(
                io::ErrorKind::TimedOut,
                format!("sentinel {node} did not answer within {limit:?}"),
            )),
        }
    }

    /// Asks one sentinel connection where the master is and in which configuration epoch
    /// (`SENTINEL MASTER`: `get-master-addr-by-name`'s address plus `config-epoch`): `None` if
    /// it does not know the name.
    pub(super) async fn ask(
        &self,
        runtime: &Runtime,
        conn: &SentinelConn,
        limit: Duration,
    ) -> Result<Option<(Endpoint, Option<u64>)>, Failure> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("master").arg(&self.settings.master_name);
        let reply = match query(runtime, conn, &cmd, limit).await {
            Ok(reply) => reply,
            Err((_, e)) if e.to_string().contains("No such master") => return Ok(None),
            Err(f) => return Err(f),
        };
        let fields = fields_of(&reply)
            .ok_or_else(|| protocol(format!("SENTINEL master: unexpected reply {reply:?}")))?;
        let epoch = field(&fields, "config-epoch").and_then(|e| e.parse().ok());
        match addr_of(&fields) {
            Some(addr) => Ok(Some((addr, epoch))),
            None => Err(protocol(format!(
                "SENTINEL master: no address in {fields:?}"
            ))),
        }
    }

    /// Asks one sentinel connection for the healthy replicas of the master (flags without
    /// `s_down`, `o_down` or `disconnected`, master link `ok`): `None` if it does not know the
    /// name.
    pub(super) async fn ask_replicas(
        &self,
        runtime: &Runtime,
        conn: &SentinelConn,
        limit: Duration,
    ) -> Result<Option<Vec<Endpoint>>, Failure> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("replicas").arg(&self.settings.master_name);
        let entries = match query(runtime, conn, &cmd, limit).await {
            Ok(Value::Array(entries)) => entries,
            Ok(other) => return Err(protocol(format!("SENTINEL replicas: {other:?}"))),
            Err((_, e)) if e.to_string().contains("No such master") => return Ok(None),
            Err(f) => return Err(f),
        };
        let healthy = entries
            .iter()
            .filter_map(|entry| {
                let fields = fields_of(entry)?;
                let flags = field(&fields, "flags")?;
                let down = ["s_down", "o_down", "disconnected"]
                    .iter()
                    .any(|f| flags.contains(f));
                let linked = field(&fields, "master-link-status").is_none_or(|l| l == "ok");
                (!down && linked).then(|| addr_of(&fields)).flatten()
            })
            .collect();
        Ok(Some(healthy))
    }

    /// Asks one sentinel connection and learns the answer: the master's address, or the
    /// healthy replicas for `role: replica`. `Ok(None)`: the sentinel does not know the master;
    /// otherwise where to connect and what the answer did. No healthy replica is a failure.
    pub(super) async fn refresh_on(
        &self,
        runtime: &Runtime,
        conn: &SentinelConn,
        limit: Duration,
        via: &'static str,
    ) -> Result<Option<(Endpoint, Learnt)>, Failure> {
        if !self.reads_replicas() {
            let Some((master, config_epoch)) = self.ask(runtime, conn, limit).await? else {
                return Ok(None);
            };
            let learnt = self.switched_to(master.clone(), config_epoch, via);
            return Ok(Some((master, learnt)));
        }
        let Some(list) = self.ask_replicas(runtime, conn, limit).await? else {
            return Ok(None);
        };
        let Some(first) = list.first().cloned() else {
            return Err(io_failure(
                io::ErrorKind::NotFound,
                format!(
                    "the sentinels list no healthy replica of `{}`",
                    self.settings.master_name
                ),
            ));
        };
        let learnt = if self.learn_replicas(list) {
            Learnt::Switched
        } else {
            Learnt::Same
        };
        Ok(Some((first, learnt)))
    }

    /// The other sentinels one sentinel knows of (`SENTINEL sentinels`), added to the list.
    pub(super) async fn refresh_peers(
        &self,
        runtime: &Runtime,
        conn: &SentinelConn,
        limit: Duration,
    ) -> Result<usize, Failure> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("sentinels").arg(&self.settings.master_name);
        let Value::Array(entries) = query(runtime, conn, &cmd, limit).await? else {
            return Err(protocol("SENTINEL sentinels: not an array".to_owned()));
        };
        let peers = entries
            .iter()
            .filter_map(|entry| addr_of(&fields_of(entry)?))
            .collect();
        Ok(self.add_peers(peers))
    }

    /// Asks the sentinels in turn (the one that answered last first) where the master is, and
    /// learns the answer (a changed address is a switch, see [`SentinelBackend::learn`]).
    pub(crate) async fn lookup(
        &self,
        runtime: &Runtime,
        tcp: &TcpOptions,
        connect_timeout: Duration,
    ) -> Result<Endpoint, LookupError> {
        let limit = connect_timeout.min(SENTINEL_TIMEOUT);
        let mut failed = Vec::new();
        let mut unknown_to = Vec::new();
        let mut stale = Vec::new();
        for node in self.nodes() {
            let answer = match self.connect(runtime, &node, tcp, limit, None).await {
                Ok(conn) => self.refresh_on(runtime, &conn, limit, "lookup").await,
                Err(f) => Err(f),
            };
            match answer {
                Ok(Some((_, Learnt::Stale))) => stale.push(node.to_string()),
                Ok(Some((found, _))) => {
                    self.answered(&node);
                    bump(&self.counters.lookups);
                    return Ok(found);
                }
                Ok(None) => unknown_to.push(node.to_string()),
                Err((kind, e)) => failed.push((node.to_string(), kind, e)),
            }
        }
        bump(&self.counters.lookup_failures);
        // A configuration error only when every sentinel answered, and none knew the master: one
        // that timed out (or restarted with an empty table) may be the one that knows.
        if !unknown_to.is_empty() && failed.is_empty() && stale.is_empty() {
            return Err(LookupError::Unknown(ConfigError::InvalidValue {
                key: "sentinel_master_name".to_owned(),
                value: self.settings.master_name.escape_debug().to_string(),
                origin: self.settings.master_name_origin.clone(),
                reason: format!(
                    "no sentinel knows this master (asked {})",
                    unknown_to.join(", ")
                ),
            }));
        }
        // One kind for the policies: TLS when every sentinel refused the handshake (not
        // retried, not a breaker failure), else the first failure's.
        let kind = match failed.first() {
            Some(_) if failed.iter().all(|(_, k, _)| *k == FailureKind::Tls) => FailureKind::Tls,
            Some((_, kind, _)) => *kind,
            None => FailureKind::Io,
        };
        let detail: Vec<String> = failed
            .iter()
            .map(|(node, _, e)| format!("{node}: {e}"))
            .chain(
                unknown_to
                    .iter()
                    .map(|n| format!("{n}: does not know the master")),
            )
            .chain(stale.iter().map(|n| format!("{n}: an older configuration")))
            .collect();
        let e = redis::RedisError::from(io::Error::new(
            if kind.is_timeout() {
                io::ErrorKind::TimedOut
            } else {
                io::ErrorKind::ConnectionRefused
            },
            format!(
                "no sentinel answered for master `{}` ({})",
                self.settings.master_name,
                detail.join("; ")
            ),
        ));
        Err(LookupError::Failed((kind, e)))
    }
}

/// Sends `cmd` on a sentinel connection within `limit`; an error reply is a failure.
pub(super) async fn query(
    runtime: &Runtime,
    conn: &SentinelConn,
    cmd: &redis::Cmd,
    limit: Duration,
) -> Result<Value, Failure> {
    let clock = runtime.clock();
    let mut mc = conn.conn.clone();
    let sent = timeout_at(&**clock, clock.now() + limit, mc.send_packed_command(cmd)).await;
    match sent {
        Ok(Ok(Value::ServerError(e))) => {
            let e = redis::RedisError::from(e);
            Err((classify(&e), e))
        }
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err((classify(&e), e)),
        Err(_) => Err(io_failure(
            io::ErrorKind::TimedOut,
            format!("no sentinel reply within {limit:?}"),
        )),
    }
}

/// Whether `ROLE` on `conn` says `expected` (`master`, or `slave` for a replica); the role it
/// says otherwise.
pub(crate) async fn check_role(
    conn: &MultiplexedConnection,
    expected: &str,
) -> Result<(), (String, Failure)> {
    let mut mc = conn.clone();
    let reply = mc.send_packed_command(&redis::cmd("ROLE")).await;
    let role = match &reply {
        Ok(Value::Array(parts)) => parts.first().and_then(text),
        _ => None,
    };
    match (reply, role) {
        (_, Some(role)) if role == expected => Ok(()),
        (_, Some(role)) => {
            let e = redis::RedisError::from(io::Error::other(format!(
                "the server the sentinels named answers ROLE `{role}`, not `{expected}`"
            )));
            Err((role, (FailureKind::RoleMismatch, e)))
        }
        (Ok(Value::ServerError(e)), None) => {
            let e = redis::RedisError::from(e);
            Err((String::new(), (classify(&e), e)))
        }
        (Err(e), None) => Err((String::new(), (classify(&e), e))),
        (Ok(other), None) => Err((
            String::new(),
            protocol(format!("unexpected ROLE reply {other:?}")),
        )),
    }
}

/// The field/value pairs of one `SENTINEL sentinels`/`replicas` entry (a flat array in
/// RESP2, a map in RESP3).
fn fields_of(entry: &Value) -> Option<Vec<(String, String)>> {
    match entry {
        Value::Array(flat) => Some(
            flat.chunks(2)
                .filter_map(|kv| Some((text(kv.first()?)?, text(kv.get(1)?)?)))
                .collect(),
        ),
        Value::Map(pairs) => Some(
            pairs
                .iter()
                .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
                .collect(),
        ),
        _ => None,
    }
}

/// The value of `name` among an entry's fields.
fn field<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f String> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The `ip` and `port` of an entry, as an endpoint.
fn addr_of(fields: &[(String, String)]) -> Option<Endpoint> {
    Some(Endpoint::tcp(
        field(fields, "ip")?.clone(),
        field(fields, "port")?.parse().ok()?,
    ))
}

/// A bulk or simple string's text.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn protocol(what: String) -> Failure {
    let e = redis::RedisError::from((redis::ErrorKind::Parse, "sentinel reply", what));
    (FailureKind::Protocol, e)
}
