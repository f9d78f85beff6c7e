//! A real Redis Cluster for one test file: six `redis-server --cluster-enabled yes` nodes (or
//! three over TLS, [`ClusterSet::start_tls`]) on free
//! loopback ports (each with its bus on a second free port, `cluster-port`), joined by
//! `redis-cli --cluster create … --cluster-replicas 1`: three masters, three replicas. Every
//! node is killed when the set is dropped; every wait has a deadline.
//!
//! ```ignore
//! let set = ClusterSet::start();
//! let owner = set.owner_of("key");
//! set.freeze(owner);
//! ```

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[cfg(feature = "tls")]
use super::certs::Pki;
use super::harness::bounded;
use super::redis_server::{free_port, RedisServer, ServerOptions};
use redis::AsyncCommands;
use redis_keeper::seams::Runtime;
use redis_keeper::Keeper;

/// `cluster-node-timeout`: a master silent this long is failed over to its replica.
pub const NODE_TIMEOUT_MS: u64 = 2000;
/// How long the set may take to agree after `--cluster create` (measured: ≈ 2–4 s).
pub const READY_LIMIT: Duration = Duration::from_secs(30);
/// How long one `redis-cli --cluster` run may take.
const CLI_LIMIT: Duration = Duration::from_secs(60);
/// Read/write timeout of the helper's own connections.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between two polls.
const POLL: Duration = Duration::from_millis(50);

/// The nodes of a cluster owned by one test file.
pub struct ClusterSet {
    nodes: Vec<RedisServer>,
    /// Each node's TLS port, in the order of `nodes` (empty for a plaintext cluster).
    tls_ports: Vec<u16>,
    /// Replicas per master.
    replicas: usize,
}

impl ClusterSet {
    /// Starts six nodes, joins them (three masters with one replica each) and waits until
    /// every node reports `cluster_state:ok`, knows the five others, and every replica is linked.
    pub fn start() -> ClusterSet {
        Self::start_with(6, 1, None)
    }

    /// Starts three masters (no replicas) that also serve TLS on a port of their own with
    /// `pki.server`, require a client certificate from `pki.ca`, and talk TLS on their bus.
    /// The plaintext ports stay open for the helper; `CLUSTER SLOTS` over TLS names the TLS
    /// ports (Redis 7 answers each connection with its own kind of port).
    #[cfg(feature = "tls")]
    pub fn start_tls(pki: &Pki) -> ClusterSet {
        let path = |p: &std::path::Path| p.to_str().expect("utf-8 path").to_owned();
        let tls = [
            ("tls-cert-file", path(&pki.server.cert)),
            ("tls-key-file", path(&pki.server.key)),
            ("tls-ca-cert-file", path(&pki.ca)),
            ("tls-auth-clients", "yes".to_owned()),
            ("tls-cluster", "yes".to_owned()),
            ("tls-replication", "yes".to_owned()),
        ];
        Self::start_with(3, 0, Some(&tls))
    }

    /// `size` nodes joined with `replicas` replicas per master; with `tls`, each also serves
    /// TLS on a port of its own, with these settings.
    fn start_with(size: usize, replicas: usize, tls: Option<&[(&str, String)]>) -> ClusterSet {
        let mut tls_ports = Vec::new();
        let nodes = (0..size)
            .map(|_| {
                let bus = free_port().to_string();
                let mut options = ServerOptions::new()
                    .arg("cluster-enabled", "yes")
                    .arg("cluster-config-file", "nodes.conf")
                    .arg("cluster-node-timeout", &NODE_TIMEOUT_MS.to_string())
                    .arg("cluster-port", &bus)
                    .arg("repl-diskless-sync-delay", "0");
                if let Some(tls) = tls {
                    let tls_port = free_port();
                    tls_ports.push(tls_port);
                    options = options.arg("tls-port", &tls_port.to_string());
                    for (name, value) in tls {
                        options = options.arg(name, value);
                    }
                }
                RedisServer::start(options)
            })
            .collect();
        let set = ClusterSet {
            nodes,
            tls_ports,
            replicas,
        };
        let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
        create.extend(set.seeds());
        create.extend(
            ["--cluster-replicas", &replicas.to_string(), "--cluster-yes"].map(String::from),
        );
        cli_ok(&create);
        set.wait_until_settled(READY_LIMIT);
        set
    }

    /// Every node's TLS address as `127.0.0.1:port` (a cluster from [`ClusterSet::start_tls`]).
    pub fn tls_seeds(&self) -> Vec<String> {
        assert!(!self.tls_ports.is_empty(), "not a TLS cluster");
        self.tls_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }

    /// The TLS port of the node on `port`.
    pub fn tls_port_of(&self, port: u16) -> u16 {
        let i = self
            .ports()
            .position(|p| p == port)
            .unwrap_or_else(|| panic!("no node on {port}"));
        self.tls_ports[i]
    }

    /// The local port of every client connected to the node on `port` but the helper's own
    /// query (`CLIENT LIST`'s `laddr`).
    pub fn client_ports(&self, port: u16) -> Vec<u16> {
        let list: String =
            query(port, &redis::cmd("CLIENT").arg("LIST").clone()).expect("CLIENT LIST");
        list.lines()
            .filter(|l| !l.contains("cmd=client|list"))
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("laddr=")))
            .filter_map(|a| a.rsplit(':').next()?.parse().ok())
            .collect()
    }

    /// Every node as `127.0.0.1:port`.
    pub fn seeds(&self) -> Vec<String> {
        self.ports().map(|p| format!("127.0.0.1:{p}")).collect()
    }

    /// Every node's port.
    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes.iter().map(RedisServer::port)
    }

    /// Waits (bounded) until the nodes agree: every running node has `cluster_state:ok` and
    /// knows every node, every slot range is served by a master with a linked replica, and no
    /// node is flagged failing.
    pub fn wait_until_settled(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            match self.settled() {
                Ok(()) => return,
                Err(why) => assert!(
                    Instant::now() < deadline,
                    "the cluster did not settle within {limit:?}: {why}"
                ),
            }
            std::thread::sleep(POLL);
        }
    }

    fn settled(&self) -> Result<(), String> {
        for port in self.ports() {
            let info: String = query(port, &redis::cmd("CLUSTER").arg("INFO").clone())
                .map_err(|e| format!("CLUSTER INFO on {port}: {e}"))?;
            if field(&info, "cluster_state").as_deref() != Some("ok") {
                return Err(format!("{port}: state not ok"));
            }
            let size = self.nodes.len().to_string();
            if field(&info, "cluster_known_nodes").as_deref() != Some(size.as_str()) {
                return Err(format!("{port}: does not know {size} nodes"));
            }
            let nodes: String = query(port, &redis::cmd("CLUSTER").arg("NODES").clone())
                .map_err(|e| format!("CLUSTER NODES on {port}: {e}"))?;
            if nodes.contains("fail") || nodes.contains("handshake") {
                return Err(format!(
                    "{port}: a node is failing or in handshake:\n{nodes}"
                ));
            }
            let replication: String = query(port, &redis::cmd("INFO").arg("replication").clone())
                .map_err(|e| format!("INFO on {port}: {e}"))?;
            if field(&replication, "role").as_deref() == Some("slave")
                && field(&replication, "master_link_status").as_deref() != Some("up")
            {
                return Err(format!("{port}: replica not linked"));
            }
        }
        for port in self.ports() {
            // A replica is listed in `CLUSTER SLOTS` some seconds after it linked (measured
            // ≈ 8 s after the create): until then a client would not know it.
            let slots = query(port, &redis::cmd("CLUSTER").arg("SLOTS").clone())
                .map_err(|e| format!("CLUSTER SLOTS on {port}: {e}"))?;
            let listed: usize = parse_slots(&slots).values().map(Vec::len).sum();
            if listed != self.nodes.len() {
                return Err(format!(
                    "{port}: CLUSTER SLOTS lists {listed} nodes, not {}",
                    self.nodes.len()
                ));
            }
        }
        let masters = self.masters().len();
        let expected = self.nodes.len() / (1 + self.replicas);
        if masters != expected {
            return Err(format!("{masters} masters serve slots, not {expected}"));
        }
        Ok(())
    }

    /// The slot map as the first node that answers sees it: `(first, last) → master port`.
    pub fn slot_map(&self) -> BTreeMap<(u16, u16), u16> {
        let slots = self
            .ask_any(&redis::cmd("CLUSTER").arg("SLOTS").clone())
            .expect("CLUSTER SLOTS");
        parse_slots(&slots)
            .into_iter()
            .map(|(range, ports)| (range, ports[0]))
            .collect()
    }

    /// The ports of the masters that serve slots, sorted.
    pub fn masters(&self) -> Vec<u16> {
        let mut masters: Vec<u16> = self.slot_map().into_values().collect();
        masters.sort_unstable();
        masters.dedup();
        masters
    }

    /// The slot of `key`.
    pub fn slot_of(&self, key: &str) -> u16 {
        self.ask_any(&redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).clone())
            .expect("CLUSTER KEYSLOT")
    }

    /// The slots of `keys`, asked in one pipeline.
    pub fn slots_of(&self, keys: &[String]) -> Vec<u16> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("CLUSTER").arg("KEYSLOT").arg(key);
        }
        let port = self.masters()[0];
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("url");
        let mut conn = client
            .get_connection_with_timeout(QUERY_TIMEOUT)
            .expect("connect");
        pipe.query(&mut conn).expect("CLUSTER KEYSLOT pipeline")
    }

    /// The first slot range the master on `port` serves.
    pub fn first_range_of(&self, port: u16) -> (u16, u16) {
        self.slot_map()
            .into_iter()
            .find(|(_, master)| *master == port)
            .map(|(range, _)| range)
            .unwrap_or_else(|| panic!("{port} serves no slots"))
    }

    /// The port of the master serving `key`'s slot.
    pub fn owner_of(&self, key: &str) -> u16 {
        let slot = self.slot_of(key);
        self.slot_map()
            .into_iter()
            .find(|((first, last), _)| (*first..=*last).contains(&slot))
            .map(|(_, port)| port)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// The node's id (`CLUSTER MYID`).
    pub fn node_id(&self, port: u16) -> String {
        query(port, &redis::cmd("CLUSTER").arg("MYID").clone()).expect("CLUSTER MYID")
    }

    /// The replica of the master on `port`.
    pub fn replica_of(&self, port: u16) -> u16 {
        let id = self.node_id(port);
        self.ports()
            .find(|p| {
                *p != port
                    && query::<String>(*p, &redis::cmd("CLUSTER").arg("NODES").clone())
                        .ok()
                        .is_some_and(|nodes| {
                            myself_line(&nodes)
                                .is_some_and(|line| line.split(' ').nth(3) == Some(id.as_str()))
                        })
            })
            .unwrap_or_else(|| panic!("no replica of {port}"))
    }

    /// The keys starting with `prefix:` stored on the node on `port`.
    pub fn keys_with_prefix_on(&self, port: u16, prefix: &str) -> Vec<String> {
        let start = format!("{prefix}:");
        self.keys_on(port)
            .into_iter()
            .filter(|k| k.starts_with(&start))
            .collect()
    }

    /// Every key stored on the node on `port` (`KEYS *`: a test's few thousand keys).
    pub fn keys_on(&self, port: u16) -> Vec<String> {
        query(port, &redis::cmd("KEYS").arg("*").clone()).expect("KEYS")
    }

    /// `GET key` through `redis-cli -c` (which follows redirections itself).
    pub fn cli_get(&self, key: &str) -> String {
        let port = self.masters()[0].to_string();
        let out = cli(&["-c", "-p", &port, "GET", key].map(String::from));
        assert!(out.status.success(), "redis-cli GET {key}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `GET key` on the node on `port` (no redirection followed), as a number (0 when missing).
    pub fn counter_on(&self, port: u16, key: &str) -> i64 {
        let value: Option<i64> =
            query(port, &redis::cmd("GET").arg(key).clone()).expect("GET on the owner");
        value.unwrap_or(0)
    }

    /// The `redis-cli` arguments that move `slots` slots from the master on `from` to the
    /// master on `to`, keys and all (`--cluster reshard`); run them with [`cli_ok`].
    pub fn reshard_args(&self, from: u16, to: u16, slots: u32) -> Vec<String> {
        vec![
            "--cluster".to_owned(),
            "reshard".to_owned(),
            format!("127.0.0.1:{to}"),
            "--cluster-from".to_owned(),
            self.node_id(from),
            "--cluster-to".to_owned(),
            self.node_id(to),
            "--cluster-slots".to_owned(),
            slots.to_string(),
            "--cluster-yes".to_owned(),
        ]
    }

    /// Freezes the node on `port` (SIGSTOP).
    pub fn freeze(&mut self, port: u16) {
        self.node_mut(port).pause();
    }

    /// Thaws the node on `port` (SIGCONT).
    pub fn thaw(&mut self, port: u16) {
        self.node_mut(port).resume();
    }

    /// The role (`master`/`slave`) of the node on `port`.
    pub fn role(&self, port: u16) -> String {
        let info: String =
            query(port, &redis::cmd("INFO").arg("replication").clone()).expect("INFO");
        field(&info, "role").expect("role field")
    }

    /// What each running node says about the cluster, for a failure message.
    pub fn diagnostics(&self) -> String {
        self.ports()
            .map(
                |p| match query::<String>(p, &redis::cmd("CLUSTER").arg("NODES").clone()) {
                    Ok(nodes) => format!("{p}:\n{nodes}"),
                    Err(e) => format!("{p}: {e}"),
                },
            )
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `cmd` on the first node that answers it.
    fn ask_any<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let mut last = None;
        for port in self.ports() {
            match query(port, cmd) {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("a node"))
    }

    /// The node on `port`, for what [`RedisServer`] does (a slow reload: a real `LOADING`).
    pub fn node(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no node on {port}"))
    }

    fn node_mut(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no node on {port}"))
    }
}

/// Writes `prefix:i` = `i` for every `i` below `n` through one handle of `main`, then reads
/// each back through it.
pub async fn write_and_read_back(rt: &Runtime, keeper: &Keeper, prefix: &str, n: usize) {
    let mut conn = bounded(rt, "get", keeper.get("main"))
        .await
        .expect("handle");
    for i in 0..n {
        let () = bounded(rt, "SET", conn.set(format!("{prefix}:{i}"), i))
            .await
            .expect("SET");
    }
    for i in 0..n {
        let v: usize = bounded(rt, "GET", conn.get(format!("{prefix}:{i}")))
            .await
            .expect("GET");
        assert_eq!(v, i, "{prefix}:{i} read back");
    }
}

/// `cmd` on a new connection to the node on `port` (bounded by [`QUERY_TIMEOUT`]).
fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = client.get_connection_with_timeout(QUERY_TIMEOUT)?;
    conn.set_read_timeout(Some(QUERY_TIMEOUT))?;
    conn.set_write_timeout(Some(QUERY_TIMEOUT))?;
    cmd.query(&mut conn)
}

/// Runs `redis-cli args`; fails the test after [`CLI_LIMIT`] (the output is read as it
/// comes, so a long one cannot stall the tool on a full pipe).
fn cli(args: &[String]) -> Output {
    let child = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}); install redis-tools"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(CLI_LIMIT) {
        Ok(out) => out.expect("redis-cli output"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("redis-cli {args:?} did not finish within {CLI_LIMIT:?}");
        }
    }
}

/// Runs `redis-cli args` (bounded) and fails the test with its output if it fails.
pub fn cli_ok(args: &[String]) {
    let out = cli(args);
    assert!(
        out.status.success(),
        "redis-cli {args:?} failed: {}",
        text(&out)
    );
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The value of `name:` in an `INFO`-style reply.
fn field(info: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}:");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|v| v.trim().to_owned())
}

/// A `CLUSTER SLOTS` reply as `(first, last) → [master port, replica ports…]`.
fn parse_slots(reply: &redis::Value) -> BTreeMap<(u16, u16), Vec<u16>> {
    let redis::Value::Array(entries) = reply else {
        panic!("CLUSTER SLOTS reply: {reply:?}");
    };
    let number = |v: &redis::Value| -> u16 { redis::from_redis_value(v.clone()).expect("number") };
    entries
        .iter()
        .map(|entry| match entry {
            redis::Value::Array(fields) if fields.len() >= 3 => {
                let ports = fields[2..]
                    .iter()
                    .map(|node| match node {
                        redis::Value::Array(node) if node.len() >= 2 => number(&node[1]),
                        other => panic!("node entry {other:?}"),
                    })
                    .collect();
                ((number(&fields[0]), number(&fields[1])), ports)
            }
            other => panic!("slot entry {other:?}"),
        })
        .collect()
}

/// The `myself` line of a `CLUSTER NODES` reply.
fn myself_line(nodes: &str) -> Option<&str> {
    nodes.lines().find(|l| l.contains("myself"))
}
