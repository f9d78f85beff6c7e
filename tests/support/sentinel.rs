//! A real Sentinel deployment for one test: a master, one replica and three sentinels
//! (`redis-server <conf> --sentinel`), each on a free loopback port in a directory of its own,
//! all killed when dropped; every wait has a deadline.
//!
//! ```ignore
//! let mut set = SentinelSet::start();
//! let old = set.master_port();
//! set.failover();
//! let (new, switched_at) = set.wait_for_new_master(old, Duration::from_secs(10));
//! ```
//!
//! Measured by hand on the 2-core test machine, redis 7.0.15, with exactly this setup:
//! - Start: the replica links up ≈ 0.02–0.05 s after spawning (with `repl-diskless-sync-delay
//!   0`; with the default 5 s the first sync waits 5 s); the three sentinels agree on the
//!   replica and on each other ≈ 1.1 s after they start, with the timers set here (`SENTINEL
//!   DEBUG publish-period 1000 info-period 1000`), ≈ 2.1 s with the default 2 s hello period.
//!   Started before the replica has synced, a sentinel's first `INFO` of the master misses the
//!   replica and the next comes 10 s later: hence the sentinels start after the link is up.
//! - `SENTINEL FAILOVER`: the sentinel asked (the leader) publishes `+try-failover` at once;
//!   the replica is promoted (`REPLICAOF NO ONE`) ≈ 150–200 ms after the command;
//!   `+switch-master` comes ≈ 650 ms after the command from the leader, ≈ 3 ms later from the
//!   two others (only the leader announces the steps in between: `+selected-slave`,
//!   `+failover-state-*`, `+promoted-slave`). Polled, the first sentinel names the new master
//!   ≈ 0.65–1.0 s after the command, all three ≈ 0.65–1.1 s after.
//! - The old master keeps accepting writes until the sentinels demote it (`REPLICAOF` plus
//!   `CLIENT KILL TYPE normal`: its clients' connections are closed): ≈ 4.1 s after the switch
//!   (5.1 s after the command) with the timers set here, ≈ 10 s after the switch (11.2 s after
//!   the command) with the defaults (the demotion waits 4 publish periods, then an `INFO`).
//!   Every write it acknowledges after the promotion is lost: one sequential client had ≈ 390
//!   `INCR`s acknowledged between the promotion and the first sentinel naming the new master
//!   (≈ 0.8 s), ≈ 2350 until the demotion. The master is deliberately left without
//!   `min-replicas-to-write` (with `1`, it answers `-NOREPLICAS` from the moment the promoted
//!   replica drops its link, measured, and would hide whether a client stops writing to it).
//! - `SIGSTOP` of the master (`down-after-milliseconds 1000`): promotion ≈ 2.1–2.3 s after the
//!   freeze, all three sentinels name the new master ≈ 3.0–3.1 s after (the same with the
//!   default timers).
//! - `failover-timeout 2000` works (so did 5000); short keeps the retry after a split election
//!   (2 × failover-timeout) short.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::redis_server::{free_port, RedisServer, ServerOptions, START_TIMEOUT};

/// The name the sentinels monitor the master under.
pub const MASTER_NAME: &str = "mymaster";
/// How long [`SentinelSet::start`] waits for the sentinels to agree (measured: ≈ 1.1 s).
pub const READY_LIMIT: Duration = Duration::from_secs(15);
/// `sentinel down-after-milliseconds`.
pub const DOWN_AFTER_MS: u64 = 1000;
/// `sentinel failover-timeout`.
pub const FAILOVER_TIMEOUT_MS: u64 = 2000;
/// Read/write/connect timeout of the helper's own connections to the sentinels.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between two polls of the sentinels.
const POLL: Duration = Duration::from_millis(20);

/// A master, its replica and three sentinels (quorum 2), owned by one test.
pub struct SentinelSet {
    // Fields drop in order: the sentinels go before the nodes they watch.
    sentinels: Vec<SentinelNode>,
    /// `[first master, first replica]`; roles change with failovers, ports do not.
    data: Vec<RedisServer>,
}

impl SentinelSet {
    /// Starts the master and the replica, waits (bounded) until the replica is linked and the
    /// master accepts a write, then starts three sentinels and waits (bounded by
    /// [`READY_LIMIT`]) until every one knows the master, the replica (not down) and the two
    /// other sentinels.
    pub fn start() -> SentinelSet {
        Self::start_with(None)
    }

    /// [`SentinelSet::start`] with every sentinel also serving TLS (`tls-port`, with `tls`'s
    /// certificate, key and CA; client certificates not asked for) beside its plaintext port,
    /// which the helper keeps using. [`SentinelSet::sentinel_tls_nodes`] lists the TLS ports.
    pub fn start_with_tls(tls: &SentinelTls) -> SentinelSet {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<&SentinelTls>) -> SentinelSet {
        let master = RedisServer::start(ServerOptions::new().arg("repl-diskless-sync-delay", "0"));
        // `--replicaof "127.0.0.1 PORT"` as one argument is accepted (checked by hand).
        let replica = RedisServer::start(
            ServerOptions::new()
                .arg("repl-diskless-sync-delay", "0")
                .arg("replicaof", &format!("127.0.0.1 {}", master.port())),
        );
        let mut set = SentinelSet {
            sentinels: Vec::new(),
            data: vec![master, replica],
        };
        set.wait_for_replication();
        let master_port = set.data[0].port();
        for _ in 0..3 {
            set.sentinels.push(SentinelNode::start(master_port, tls));
        }
        set.wait_until_ready();
        set
    }

    /// The monitored master's name (`mymaster`).
    pub fn master_name(&self) -> &'static str {
        MASTER_NAME
    }

    /// The sentinels' addresses, `127.0.0.1:PORT` each.
    pub fn sentinel_nodes(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect()
    }

    /// The sentinels' TLS addresses, `127.0.0.1:PORT` each (a set started with TLS only).
    pub fn sentinel_tls_nodes(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.tls_port.expect("started with TLS")))
            .collect()
    }

    /// The clients of sentinel `i` that came in on its TLS port, as `CLIENT LIST` shows them.
    pub fn tls_clients(&self, i: usize) -> Vec<String> {
        let s = &self.sentinels[i];
        let port = s.tls_port.expect("started with TLS");
        let list: String = s
            .query(redis::cmd("CLIENT").arg("LIST"))
            .unwrap_or_else(|e| panic!("CLIENT LIST on sentinel {}: {e}", s.port));
        list.lines()
            .filter(|l| l.contains(&format!("laddr=127.0.0.1:{port} ")))
            .map(str::to_owned)
            .collect()
    }

    /// The sentinels' addresses as `redis://127.0.0.1:PORT` URLs (for redis-rs's own client).
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}", s.port))
            .collect()
    }

    /// The master's port as sentinel 0 names it now (`SENTINEL get-master-addr-by-name`).
    pub fn master_port(&self) -> u16 {
        let sentinel = &self.sentinels[0];
        match sentinel.master_addr() {
            Ok(Some(port)) => port,
            Ok(None) => panic!("sentinel {} names no master {MASTER_NAME}", sentinel.port),
            Err(e) => panic!("sentinel {}: get-master-addr-by-name: {e}", sentinel.port),
        }
    }

    /// `SENTINEL FAILOVER mymaster` on sentinel 0 (a forced failover, no agreement needed);
    /// returns once the sentinel accepted it (`OK`).
    pub fn failover(&self) {
        let sentinel = &self.sentinels[0];
        let reply: redis::RedisResult<String> =
            sentinel.query(redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER_NAME));
        match reply {
            Ok(ok) if ok == "OK" => {}
            other => panic!(
                "SENTINEL FAILOVER on {}: {other:?}\n{}",
                sentinel.port,
                self.diagnostics()
            ),
        }
    }

    /// Polls every sentinel (every 20 ms) until all of them name the same master, on a port
    /// other than `old_port`; returns that port and the instant the first sentinel was seen
    /// naming it. Fails the test after `limit`.
    pub fn wait_for_new_master(&self, old_port: u16, limit: Duration) -> (u16, Instant) {
        let deadline = Instant::now() + limit;
        let mut first_seen: Option<Instant> = None;
        loop {
            let named: Vec<Option<u16>> = self
                .sentinels
                .iter()
                .map(|s| s.master_addr().ok().flatten())
                .collect();
            if first_seen.is_none() && named.iter().any(|p| p.is_some_and(|p| p != old_port)) {
                first_seen = Some(Instant::now());
            }
            let agreed = match named.first() {
                Some(Some(port))
                    if *port != old_port && named.iter().all(|p| *p == Some(*port)) =>
                {
                    Some(*port)
                }
                _ => None,
            };
            if let Some(port) = agreed {
                let seen = first_seen.expect("seen in this very poll at the latest");
                return (port, seen);
            }
            assert!(
                Instant::now() < deadline,
                "the sentinels did not all name a master other than {old_port} within \
                 {limit:?}: they name {named:?}\n{}",
                self.diagnostics()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Freezes the data node on `port` (SIGSTOP): it accepts connections, answers nothing.
    pub fn freeze(&mut self, port: u16) {
        self.node_mut(port).pause();
    }

    /// Thaws the data node on `port` (SIGCONT).
    pub fn thaw(&mut self, port: u16) {
        self.node_mut(port).resume();
    }

    /// `GET key` on the data node on `port`, as a number (0 when the key is missing).
    pub fn counter(&self, port: u16, key: &str) -> i64 {
        let value: Option<i64> = self.node(port).query(redis::cmd("GET").arg(key));
        value.unwrap_or(0)
    }

    /// [`SentinelSet::counter`] that reports a failed `GET` instead of failing the test (a
    /// demoted master answers `-LOADING` while it loads the new master's data).
    pub fn try_counter(&self, port: u16, key: &str) -> redis::RedisResult<i64> {
        let value: Option<i64> = redis::cmd("GET")
            .arg(key)
            .query(&mut self.try_connection(port)?)?;
        Ok(value.unwrap_or(0))
    }

    /// The data node's role, or the error of asking (a node being demoted closes its clients).
    pub fn try_role(&self, port: u16) -> redis::RedisResult<String> {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut self.try_connection(port)?)?;
        Ok(info_field(&info, "role").unwrap_or_default())
    }

    /// A fresh connection to the data node on `port`, or the error of opening it.
    fn try_connection(&self, port: u16) -> redis::RedisResult<redis::Connection> {
        let node = self.node(port);
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", node.port()))?;
        let conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(conn)
    }

    /// The data node's role as it reports it (`INFO replication`): `master` or `slave`.
    pub fn role(&self, port: u16) -> String {
        let info: String = self.node(port).query(redis::cmd("INFO").arg("replication"));
        info_field(&info, "role")
            .unwrap_or_else(|| panic!("INFO replication on {port} has no role:\n{info}"))
    }

    /// `CONFIG SET name value` on the data node on `port`.
    pub fn config_set(&self, port: u16, name: &str, value: &str) {
        let _: () = self
            .node(port)
            .query(redis::cmd("CONFIG").arg("SET").arg(name).arg(value));
    }

    /// What every sentinel names as the master, and the tail of its log: for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        for s in &self.sentinels {
            out.push_str(&format!(
                "--- sentinel {} names {:?}; log tail:\n{}\n",
                s.port,
                s.master_addr(),
                tail(&s.log(), 25)
            ));
        }
        out
    }

    /// The port of the data node that is not on `port` (the replica of the master on `port`).
    pub fn other_node(&self, port: u16) -> u16 {
        let ports = self.data_ports();
        assert!(
            ports.contains(&port),
            "no data node on port {port}: {ports:?}"
        );
        self.data
            .iter()
            .map(RedisServer::port)
            .find(|p| *p != port)
            .expect("two data nodes")
    }

    /// The data node on `port`.
    fn node(&self, port: u16) -> &RedisServer {
        self.data
            .iter()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no data node on port {port}: {:?}", self.data_ports()))
    }

    fn node_mut(&mut self, port: u16) -> &mut RedisServer {
        let ports = self.data_ports();
        self.data
            .iter_mut()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no data node on port {port}: {ports:?}"))
    }

    fn data_ports(&self) -> Vec<u16> {
        self.data.iter().map(RedisServer::port).collect()
    }

    /// Waits (bounded) until the replica's link is up and the master accepts a write.
    fn wait_for_replication(&self) {
        let (master, replica) = (&self.data[0], &self.data[1]);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let info: String = replica.query(redis::cmd("INFO").arg("replication"));
            let linked = info_field(&info, "master_link_status").as_deref() == Some("up");
            let writable = linked
                && redis::cmd("SET")
                    .arg("sentinel-set:probe")
                    .arg(1)
                    .query::<()>(&mut master.connection())
                    .is_ok();
            if writable {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replica {} did not sync with the master {} (or the master refuses writes) \
                 within {START_TIMEOUT:?}:\n{info}",
                replica.port(),
                master.port()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits (bounded by [`READY_LIMIT`]) until every sentinel is ready to fail over.
    fn wait_until_ready(&self) {
        let (master, replica) = (self.data[0].port(), self.data[1].port());
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            let missing: Vec<String> = self
                .sentinels
                .iter()
                .filter_map(|s| {
                    s.readiness(master, replica)
                        .err()
                        .map(|why| format!("sentinel {}: {why}", s.port))
                })
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the sentinels were not ready within {READY_LIMIT:?} (master {master}, replica \
                 {replica}):\n{}\n{}",
                missing.join("\n"),
                self.diagnostics()
            );
            std::thread::sleep(POLL);
        }
    }
}

/// The certificate files a TLS sentinel serves with.
pub struct SentinelTls {
    /// The sentinel's certificate (PEM).
    pub cert: PathBuf,
    /// Its key (PEM).
    pub key: PathBuf,
    /// The CA it trusts (PEM; client certificates are not asked for).
    pub ca: PathBuf,
}

/// One `redis-server --sentinel` process with its own writable config file (the sentinel
/// rewrites it as it learns), killed (SIGKILL, which ends a stopped process too) when dropped.
struct SentinelNode {
    port: u16,
    /// Its TLS port, when started with TLS.
    tls_port: Option<u16>,
    dir: PathBuf,
    child: Child,
    /// The helper's connection, opened on first use and again after an error.
    conn: Mutex<Option<redis::Connection>>,
}

impl SentinelNode {
    /// Starts a sentinel monitoring `127.0.0.1:master_port` on a free port (another port if the
    /// one handed out was taken meanwhile, up to 3 tries), waits (bounded) until it answers,
    /// then shortens its hello and `INFO` periods (best effort: `SENTINEL DEBUG` is 7.0+).
    fn start(master_port: u16, tls: Option<&SentinelTls>) -> SentinelNode {
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let tls_port = tls.map(|_| free_port());
            let dir = unique_dir(port);
            let conf = dir.join("sentinel.conf");
            let tls_lines = match (tls, tls_port) {
                (Some(t), Some(tls_port)) => format!(
                    "tls-port {tls_port}\n\
                     tls-cert-file \"{}\"\n\
                     tls-key-file \"{}\"\n\
                     tls-ca-cert-file \"{}\"\n\
                     tls-auth-clients no\n",
                    t.cert.display(),
                    t.key.display(),
                    t.ca.display()
                ),
                _ => String::new(),
            };
            std::fs::write(
                &conf,
                format!(
                    "port {port}\n\
                     bind 127.0.0.1\n\
                     dir \"{}\"\n\
                     {tls_lines}\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
                     sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n",
                    dir.display()
                ),
            )
            .expect("write sentinel.conf");
            let log = File::create(dir.join("sentinel.log")).expect("sentinel log file");
            let child = Command::new("redis-server")
                .arg(conf)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("sentinel log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run redis-server --sentinel ({e}); install redis-server")
                });
            let mut node = SentinelNode {
                port,
                tls_port,
                dir,
                child,
                conn: Mutex::new(None),
            };
            match node.wait_until_up() {
                Ok(()) => {
                    node.speed_up_timers();
                    return node;
                }
                // The port was taken between free_port() and the bind: try another one.
                Err(why) if why.contains("Address already in use") => failures.push(why),
                Err(why) => panic!("sentinel on port {port} did not start: {why}"),
            }
        }
        panic!(
            "no sentinel could bind a port in 3 tries:\n{}",
            failures.join("\n")
        );
    }

    /// Waits (bounded by [`START_TIMEOUT`]) until the sentinel answers `PING`; the reason (with
    /// its log) when it exits or stays silent.
    fn wait_until_up(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(format!("exited ({status}):\n{}", self.log()));
            }
            let pong: redis::RedisResult<String> = self.query(&redis::cmd("PING"));
            if pong.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no answer within {START_TIMEOUT:?} ({pong:?}):\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Hello (publish) and `INFO` every second instead of every 2 s and 10 s: the sentinels find
    /// each other sooner, and a demoted master is reconfigured ≈ 4 s after a switch instead of
    /// ≈ 10 s. Ignored where `SENTINEL DEBUG` does not exist (the waits are bounded anyway).
    fn speed_up_timers(&self) {
        let _: redis::RedisResult<()> = self.query(
            redis::cmd("SENTINEL")
                .arg("DEBUG")
                .arg("publish-period")
                .arg(1000)
                .arg("info-period")
                .arg(1000),
        );
    }

    /// The master's port this sentinel names now; `None` when it names none.
    fn master_addr(&self) -> redis::RedisResult<Option<u16>> {
        let addr: Option<(String, String)> = self.query(
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(MASTER_NAME),
        )?;
        Ok(addr.and_then(|(_, port)| port.parse().ok()))
    }

    /// `Ok` when this sentinel knows the master on `master` (flags `master`), the replica on
    /// `replica` (neither down nor disconnected) and two other sentinels; else what is missing.
    fn readiness(&self, master: u16, replica: u16) -> Result<(), String> {
        let named = self.master_addr().map_err(|e| e.to_string())?;
        if named != Some(master) {
            return Err(format!("names master {named:?}"));
        }
        let state: HashMap<String, String> = self
            .query(redis::cmd("SENTINEL").arg("MASTER").arg(MASTER_NAME))
            .map_err(|e| format!("SENTINEL MASTER: {e}"))?;
        let flags = state.get("flags").map(String::as_str).unwrap_or("?");
        if flags != "master" {
            return Err(format!("master flags {flags}"));
        }
        let replicas: Vec<HashMap<String, String>> = self
            .query(redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER_NAME))
            .map_err(|e| format!("SENTINEL REPLICAS: {e}"))?;
        let port = replica.to_string();
        let known = replicas
            .iter()
            .find(|r| r.get("port") == Some(&port))
            .ok_or_else(|| format!("does not know the replica yet ({replicas:?})"))?;
        let flags = known.get("flags").map(String::as_str).unwrap_or("?");
        if flags.contains("s_down") || flags.contains("disconnected") {
            return Err(format!("replica flags {flags}"));
        }
        let others: Vec<HashMap<String, String>> = self
            .query(redis::cmd("SENTINEL").arg("SENTINELS").arg(MASTER_NAME))
            .map_err(|e| format!("SENTINEL SENTINELS: {e}"))?;
        if others.len() != 2 {
            return Err(format!("knows {} other sentinels, not 2", others.len()));
        }
        Ok(())
    }

    /// Runs `cmd` on the helper's connection (reopened after any error).
    fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let mut slot = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(self.connect()?);
        }
        let conn = slot.as_mut().expect("connected just above");
        let result = cmd.query(conn);
        if result.is_err() {
            *slot = None;
        }
        result
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?;
        let conn = client.get_connection_with_timeout(QUERY_TIMEOUT)?;
        conn.set_read_timeout(Some(QUERY_TIMEOUT))?;
        conn.set_write_timeout(Some(QUERY_TIMEOUT))?;
        Ok(conn)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sentinel.log")).unwrap_or_default()
    }
}

impl Drop for SentinelNode {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The value of `field:` in an `INFO` reply.
fn info_field(info: &str, field: &str) -> Option<String> {
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|v| v.trim().to_string())
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A fresh directory for one sentinel.
fn unique_dir(port: u16) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "redis-keeper-sentinel-{}-{}-{port}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("sentinel directory");
    dir
}
