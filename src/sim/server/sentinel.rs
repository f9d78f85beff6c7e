//! The Sentinel personality: the masters it knows, its peer sentinels and the `SENTINEL` command.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::args::{arity_error, is, split_addr};
use super::resp::Reply;
use super::{SimRedis, State};

/// What a server playing Sentinel knows.
#[derive(Debug, Default)]
pub(super) struct Sentinel {
    /// The server is a Sentinel.
    on: bool,
    /// Master name → `"host:port"`.
    masters: BTreeMap<String, String>,
    /// Master name → its configuration epoch (0, then one more at each `sentinel_set_master`).
    epochs: BTreeMap<String, u64>,
    /// The other sentinels, `"host:port"` each.
    peers: Vec<String>,
    /// Master name → its replicas, `("host:port", flags)` each.
    replicas: BTreeMap<String, Vec<(String, String)>>,
}

impl SimRedis {
    /// Turns the server into a Sentinel watching `masters` (name → `"host:port"`, replacing any
    /// earlier table). From the next command on it knows only `PING`, `AUTH`, `HELLO`, `QUIT`,
    /// `CLIENT`, `INFO`, `ROLE`, the pub/sub commands and `SENTINEL`; every other command answers
    /// `-ERR unknown command`, as a real Sentinel does. `SENTINEL GET-MASTER-ADDR-BY-NAME name`
    /// answers `[host, port]` (a null for an unknown name: `*-1`, or `_` under RESP3) and
    /// `SENTINEL SENTINELS name` lists the peers set with [`SimRedis::set_sentinel_peers`].
    /// Sentinel events are announced with [`SimRedis::publish`].
    ///
    /// ```
    /// use redis_keeper::sim::wire::encode_request;
    /// use redis_keeper::sim::{SimClock, SimRedis, Trace};
    /// use redis_keeper::Rng;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let sentinel = SimRedis::new(SimClock::new(), Rng::new(3), Trace::new());
    /// sentinel.set_sentinel(&[("mymaster", "10.0.0.1:6379")]);
    /// let mut stream = sentinel.connect().unwrap();
    /// futures::executor::block_on(async {
    ///     let ask = encode_request(&[b"SENTINEL", b"get-master-addr-by-name", b"mymaster"]);
    ///     stream.write_all(&ask).await.unwrap();
    ///     let mut buf = [0u8; 64];
    ///     let n = stream.read(&mut buf).await.unwrap();
    ///     assert_eq!(&buf[..n], &b"*2\r\n$8\r\n10.0.0.1\r\n$4\r\n6379\r\n"[..]);
    /// });
    /// ```
    pub fn set_sentinel(&self, masters: &[(&str, &str)]) {
        let masters: BTreeMap<String, String> = masters
            .iter()
            .map(|(name, addr)| ((*name).to_owned(), (*addr).to_owned()))
            .collect();
        self.with(|st| {
            st.record(format_args!("sentinel of {} master(s)", masters.len()));
            st.sentinel.on = true;
            st.sentinel.masters = masters;
        });
    }

    /// Sets the other sentinels (`"host:port"` each) that `SENTINEL SENTINELS <name>` lists for
    /// every known master, replacing any earlier list. Each is listed as `name` (a 40-hex-digit
    /// id derived from its address), `ip`, `port` and `flags` (`sentinel`).
    ///
    /// ```
    /// use redis_keeper::sim::wire::encode_request;
    /// use redis_keeper::sim::{SimClock, SimRedis, Trace};
    /// use redis_keeper::Rng;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let sentinel = SimRedis::new(SimClock::new(), Rng::new(3), Trace::new());
    /// sentinel.set_sentinel(&[("mymaster", "10.0.0.1:6379")]);
    /// sentinel.set_sentinel_peers(&["10.0.0.9:26379"]);
    /// let mut stream = sentinel.connect().unwrap();
    /// let reply = futures::executor::block_on(async {
    ///     let ask = encode_request(&[b"SENTINEL", b"sentinels", b"mymaster"]);
    ///     stream.write_all(&ask).await.unwrap();
    ///     let mut buf = [0u8; 256];
    ///     let n = stream.read(&mut buf).await.unwrap();
    ///     String::from_utf8_lossy(&buf[..n]).into_owned()
    /// });
    /// assert!(reply.starts_with("*1\r\n*8\r\n$4\r\nname\r\n$40\r\n"));
    /// assert!(reply.ends_with("$2\r\nip\r\n$8\r\n10.0.0.9\r\n$4\r\nport\r\n$5\r\n26379\r\n\
    ///                          $5\r\nflags\r\n$8\r\nsentinel\r\n"));
    /// ```
    pub fn set_sentinel_peers(&self, peers: &[&str]) {
        let peers: Vec<String> = peers.iter().map(|p| (*p).to_owned()).collect();
        self.with(|st| {
            st.record(format_args!("sentinel peers {peers:?}"));
            st.sentinel.peers = peers;
        });
    }

    /// Points master `name` at `addr` (`"host:port"`), adding it if it is new, in the next
    /// configuration epoch (what `SENTINEL MASTER` shows as `config-epoch`): what a
    /// Sentinel's table says after a failover. Nothing is announced; publish `+switch-master`
    /// with [`SimRedis::publish`] for that.
    ///
    /// ```
    /// use redis_keeper::sim::wire::encode_request;
    /// use redis_keeper::sim::{SimClock, SimRedis, Trace};
    /// use redis_keeper::Rng;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let sentinel = SimRedis::new(SimClock::new(), Rng::new(3), Trace::new());
    /// sentinel.set_sentinel(&[("mymaster", "10.0.0.1:6379")]);
    /// sentinel.sentinel_set_master("mymaster", "10.0.0.2:6380");
    /// let mut stream = sentinel.connect().unwrap();
    /// futures::executor::block_on(async {
    ///     let ask = encode_request(&[b"SENTINEL", b"get-master-addr-by-name", b"mymaster"]);
    ///     stream.write_all(&ask).await.unwrap();
    ///     let mut buf = [0u8; 64];
    ///     let n = stream.read(&mut buf).await.unwrap();
    ///     assert_eq!(&buf[..n], &b"*2\r\n$8\r\n10.0.0.2\r\n$4\r\n6380\r\n"[..]);
    /// });
    /// ```
    pub fn sentinel_set_master(&self, name: &str, addr: &str) {
        self.with(|st| {
            st.record(format_args!("sentinel master {name} at {addr}"));
            st.sentinel.masters.insert(name.to_owned(), addr.to_owned());
            *st.sentinel.epochs.entry(name.to_owned()).or_default() += 1;
        });
    }
}

impl SimRedis {
    /// Sets the replicas `SENTINEL REPLICAS <name>` lists for master `name`: `("host:port",
    /// flags)` each, flags as Sentinel shows them (`slave`, or `slave,s_down` for one it
    /// considers down). Each is listed with `name`, `ip`, `port`, `flags` and
    /// `master-link-status` (`ok`, or `err` when its flags say it is down).
    ///
    /// ```
    /// use redis_keeper::sim::wire::encode_request;
    /// use redis_keeper::sim::{SimClock, SimRedis, Trace};
    /// use redis_keeper::Rng;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let sentinel = SimRedis::new(SimClock::new(), Rng::new(3), Trace::new());
    /// sentinel.set_sentinel(&[("mymaster", "10.0.0.1:6379")]);
    /// sentinel.sentinel_set_replicas("mymaster", &[("10.0.0.2:6380", "slave")]);
    /// let mut stream = sentinel.connect().unwrap();
    /// let reply = futures::executor::block_on(async {
    ///     let ask = encode_request(&[b"SENTINEL", b"replicas", b"mymaster"]);
    ///     stream.write_all(&ask).await.unwrap();
    ///     let mut buf = [0u8; 256];
    ///     let n = stream.read(&mut buf).await.unwrap();
    ///     String::from_utf8_lossy(&buf[..n]).into_owned()
    /// });
    /// assert!(reply.starts_with("*1\r\n*10\r\n$4\r\nname\r\n$13\r\n10.0.0.2:6380\r\n"), "{reply}");
    /// assert!(reply.ends_with("$18\r\nmaster-link-status\r\n$2\r\nok\r\n"), "{reply}");
    /// ```
    pub fn sentinel_set_replicas(&self, name: &str, replicas: &[(&str, &str)]) {
        let list: Vec<(String, String)> = replicas
            .iter()
            .map(|(a, f)| ((*a).to_owned(), (*f).to_owned()))
            .collect();
        self.with(|st| {
            st.record(format_args!("sentinel replicas of {name}: {list:?}"));
            st.sentinel.replicas.insert(name.to_owned(), list);
        });
    }
}

impl State {
    /// Whether the server plays Sentinel.
    pub(super) fn is_sentinel(&self) -> bool {
        self.sentinel.on
    }

    /// A Sentinel's `ROLE`: `[sentinel, [master names]]`, names sorted.
    pub(super) fn sentinel_role(&self) -> Reply {
        let names = self
            .sentinel
            .masters
            .keys()
            .map(|n| Reply::bulk(n.as_str()));
        Reply::Array(vec![Reply::bulk("sentinel"), Reply::Array(names.collect())])
    }

    /// `SENTINEL GET-MASTER-ADDR-BY-NAME | MASTER | REPLICAS | SENTINELS <name>` for
    /// connection `id`.
    pub(super) fn sentinel_command(&self, id: u64, args: &[Vec<u8>]) -> Reply {
        let by_name = is(&args[1], "get-master-addr-by-name");
        let replicas = is(&args[1], "replicas") || is(&args[1], "slaves");
        let master_entry = is(&args[1], "master");
        if !by_name && !replicas && !master_entry && !is(&args[1], "sentinels") {
            let shown = String::from_utf8_lossy(&args[1]);
            return Reply::err(format!("ERR Unknown sentinel subcommand '{shown}'"));
        }
        if args.len() != 3 {
            let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
            return arity_error(&format!("sentinel|{sub}"));
        }
        let name = String::from_utf8_lossy(&args[2]);
        let master = self.sentinel.masters.get(&*name);
        match master {
            Some(addr) if by_name => {
                let (host, port) = split_addr(addr);
                Reply::Array(vec![Reply::bulk(host), Reply::bulk(port)])
            }
            None if by_name => {
                if self.conns.get(&id).is_some_and(|c| c.resp3) {
                    Reply::Null
                } else {
                    Reply::NilArray
                }
            }
            Some(addr) if master_entry => {
                let (host, port) = split_addr(addr);
                let epoch = self
                    .sentinel
                    .epochs
                    .get(&*name)
                    .copied()
                    .unwrap_or(0)
                    .to_string();
                let fields = [
                    "name",
                    &*name,
                    "ip",
                    host,
                    "port",
                    port,
                    "flags",
                    "master",
                    "config-epoch",
                    epoch.as_str(),
                ];
                Reply::Array(fields.iter().map(|f| Reply::bulk(*f)).collect())
            }
            Some(_) if replicas => {
                let list = self.sentinel.replicas.get(&*name).into_iter().flatten();
                Reply::Array(list.map(|(addr, flags)| replica(addr, flags)).collect())
            }
            Some(_) => {
                let peers = self.sentinel.peers.iter().map(String::as_str).map(peer);
                Reply::Array(peers.collect())
            }
            None => Reply::err("ERR No such master with that name"),
        }
    }

    /// The `# Sentinel` section of a Sentinel's `INFO`.
    pub(super) fn sentinel_info(&self) -> String {
        let masters = &self.sentinel.masters;
        let mut s = format!(
            "# Sentinel\r\nsentinel_masters:{}\r\nsentinel_tilt:0\r\n",
            masters.len()
        );
        let sentinels = self.sentinel.peers.len() + 1;
        for (i, (name, addr)) in masters.iter().enumerate() {
            let _ = write!(
                s,
                "master{i}:name={name},status=ok,address={addr},slaves=0,sentinels={sentinels}\r\n"
            );
        }
        s
    }
}

/// One entry of `SENTINEL SENTINELS`: a flat field/value array.
fn peer(addr: &str) -> Reply {
    let id = run_id(addr);
    let (host, port) = split_addr(addr);
    let fields = [
        "name",
        id.as_str(),
        "ip",
        host,
        "port",
        port,
        "flags",
        "sentinel",
    ];
    Reply::Array(fields.iter().map(|f| Reply::bulk(*f)).collect())
}

/// One entry of `SENTINEL REPLICAS`: a flat field/value array.
fn replica(addr: &str, flags: &str) -> Reply {
    let (host, port) = split_addr(addr);
    let link = if flags.contains("s_down") || flags.contains("disconnected") {
        "err"
    } else {
        "ok"
    };
    let fields = [
        "name",
        addr,
        "ip",
        host,
        "port",
        port,
        "flags",
        flags,
        "master-link-status",
        link,
    ];
    Reply::Array(fields.iter().map(|f| Reply::bulk(*f)).collect())
}

/// A stable 40-hex-digit id for the sentinel at `addr` (a run id's shape), from FNV-1a hashes.
fn run_id(addr: &str) -> String {
    let mut id = String::with_capacity(48);
    for round in 0..3u64 {
        let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for b in addr.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let _ = write!(id, "{h:016x}");
    }
    id.truncate(40);
    id
}
