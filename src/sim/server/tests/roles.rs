//! Replica and Sentinel personalities: ROLE, READONLY, SENTINEL, server-side publish, SimNetwork.

use std::io::ErrorKind;
use std::time::Duration;

use futures::executor::block_on;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{cmd, connected, drain, server};
use crate::rng::Rng;
use crate::seams::{BoxStream, Endpoint, TcpOptions, Transport};
use crate::sim::server::wire::encode_request;
use crate::sim::{Latency, SimNetwork, SimRedis, SimRole, SimStream};

const READONLY: &str = "-READONLY You can't write against a read only replica.\r\n";
const MASTER_ROLE: &str = "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n";

fn replica_of(master: &str) -> SimRole {
    SimRole::Replica {
        master: master.to_string(),
    }
}

fn read_all(s: &mut SimStream) -> String {
    String::from_utf8_lossy(&drain(s).0).into_owned()
}

/// `INFO <section>` as a bulk reply holding `body`.
fn bulk(body: &str) -> String {
    format!("${}\r\n{body}\r\n", body.len())
}

#[test]
fn role_on_master_replica_and_sentinel() {
    let (sim, _, _, mut c) = connected(1);
    assert_eq!(sim.role(), SimRole::Master);
    assert_eq!(cmd(&mut c, &["ROLE"]), MASTER_ROLE);
    assert_eq!(
        cmd(&mut c, &["ROLE", "x"]),
        "-ERR wrong number of arguments for 'role' command\r\n"
    );
    sim.set_loading(Duration::from_secs(5));
    assert_eq!(cmd(&mut c, &["role"]), MASTER_ROLE, "ROLE is loading-ok");
    sim.set_loading(Duration::ZERO);

    sim.set_role(replica_of("10.0.0.1:6379"));
    assert_eq!(sim.role(), replica_of("10.0.0.1:6379"));
    assert_eq!(
        cmd(&mut c, &["ROLE"]),
        "*5\r\n$5\r\nslave\r\n$8\r\n10.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n:0\r\n"
    );

    sim.set_sentinel(&[("mymaster", "10.0.0.1:6379"), ("cache", "10.0.0.3:6379")]);
    assert_eq!(
        cmd(&mut c, &["ROLE"]),
        "*2\r\n$8\r\nsentinel\r\n*2\r\n$5\r\ncache\r\n$8\r\nmymaster\r\n"
    );
}

#[test]
fn a_replica_refuses_writes_and_keeps_its_data() {
    let (sim, _, _, mut c) = connected(1);
    assert_eq!(cmd(&mut c, &["SET", "k", "v1"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["RPUSH", "l", "a"]), ":1\r\n");
    sim.set_role(replica_of("10.0.0.1:6379"));
    let writes: &[&[&str]] = &[
        &["SET", "k", "v2"],
        &["set", "k", "v2"],
        &["SETEX", "k", "10", "v2"],
        &["MSET", "k", "v2"],
        &["INCR", "n"],
        &["APPEND", "k", "x"],
        &["DEL", "k"],
        &["EXPIRE", "k", "10"],
        &["FLUSHDB"],
        &["FLUSHALL"],
        &["HSET", "h", "f", "v"],
        &["LPUSH", "l", "x"],
        &["LPOP", "l"],
        &["BLPOP", "l", "0"],
        &["BRPOP", "l", "0"],
        &["SADD", "s", "m"],
    ];
    for w in writes {
        assert_eq!(cmd(&mut c, w), READONLY, "{w:?}");
    }
    assert_eq!(sim.get(0, b"k"), Some(b"v1".to_vec()));
    assert_eq!(sim.ttl(0, b"k"), None);
    assert_eq!(sim.keys(0), vec![b"k".to_vec(), b"l".to_vec()]);
    // Reads and connection commands work.
    assert_eq!(cmd(&mut c, &["GET", "k"]), "$2\r\nv1\r\n");
    assert_eq!(
        cmd(&mut c, &["LRANGE", "l", "0", "-1"]),
        "*1\r\n$1\r\na\r\n"
    );
    assert_eq!(cmd(&mut c, &["PING"]), "+PONG\r\n");
    assert_eq!(cmd(&mut c, &["CLIENT", "SETNAME", "reader"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["SELECT", "1"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["GET", "k"]), "$-1\r\n");
    // Arity errors still come first, as in Redis.
    assert_eq!(
        cmd(&mut c, &["SET", "k"]),
        "-ERR wrong number of arguments for 'set' command\r\n"
    );
    // Back to master: writes run again.
    sim.set_role(SimRole::Master);
    assert_eq!(cmd(&mut c, &["SET", "k", "v3"]), "+OK\r\n");
    assert_eq!(sim.get(1, b"k"), Some(b"v3".to_vec()));
}

#[test]
fn info_and_hello_tell_the_role() {
    let (sim, _, _, mut c) = connected(1);
    assert_eq!(
        cmd(&mut c, &["INFO", "replication"]),
        bulk("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n")
    );
    assert!(cmd(&mut c, &["INFO"]).contains("# Replication\r\nrole:master\r\n"));
    sim.set_role(replica_of("10.0.0.1:6380"));
    assert_eq!(
        cmd(&mut c, &["INFO", "replication"]),
        bulk(
            "# Replication\r\nrole:slave\r\nmaster_host:10.0.0.1\r\nmaster_port:6380\r\n\
             master_link_status:up\r\nslave_read_only:1\r\nconnected_slaves:0\r\n"
        )
    );
    let hello = cmd(&mut c, &["HELLO", "3"]);
    assert!(hello.starts_with("%7\r\n"), "{hello:?}");
    assert!(hello.contains("$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$7\r\nreplica\r\n"));
}

#[test]
fn a_write_queued_on_a_replica_aborts_exec() {
    let (sim, _, _, mut c) = connected(1);
    sim.set(0, b"k", b"v1");
    sim.set_role(replica_of("10.0.0.1:6379"));
    assert_eq!(cmd(&mut c, &["MULTI"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["GET", "k"]), "+QUEUED\r\n");
    assert_eq!(cmd(&mut c, &["SET", "k", "v2"]), READONLY);
    assert_eq!(
        cmd(&mut c, &["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(sim.get(0, b"k"), Some(b"v1".to_vec()));
    // A read-only transaction runs on a replica.
    cmd(&mut c, &["MULTI"]);
    cmd(&mut c, &["GET", "k"]);
    assert_eq!(cmd(&mut c, &["EXEC"]), "*1\r\n$2\r\nv1\r\n");
    // Writes queued on a master that became a replica before EXEC: Redis 7's abort.
    sim.set_role(SimRole::Master);
    cmd(&mut c, &["MULTI"]);
    assert_eq!(cmd(&mut c, &["SET", "k", "v3"]), "+QUEUED\r\n");
    sim.set_role(replica_of("10.0.0.1:6379"));
    assert_eq!(
        cmd(&mut c, &["EXEC"]),
        "-EXECABORT Transaction discarded because of: READONLY You can't write against a read \
         only replica.\r\n"
    );
    assert_eq!(sim.get(0, b"k"), Some(b"v1".to_vec()));
    assert_eq!(cmd(&mut c, &["EXEC"]), "-ERR EXEC without MULTI\r\n");
}

#[test]
fn get_master_addr_by_name_in_resp2_and_resp3() {
    let (sim, _, _, mut c) = connected(1);
    sim.set_sentinel(&[("mymaster", "10.0.0.1:6379")]);
    let ask = |name: &'static str| ["SENTINEL", "get-master-addr-by-name", name];
    assert_eq!(
        cmd(&mut c, &ask("mymaster")),
        "*2\r\n$8\r\n10.0.0.1\r\n$4\r\n6379\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["sentinel", "GET-MASTER-ADDR-BY-NAME", "mymaster"]),
        "*2\r\n$8\r\n10.0.0.1\r\n$4\r\n6379\r\n"
    );
    assert_eq!(cmd(&mut c, &ask("nope")), "*-1\r\n");
    // A scripted failover.
    sim.sentinel_set_master("mymaster", "10.0.0.2:6380");
    assert_eq!(
        cmd(&mut c, &ask("mymaster")),
        "*2\r\n$8\r\n10.0.0.2\r\n$4\r\n6380\r\n"
    );
    let mut r3 = sim.connect().unwrap();
    let hello = cmd(&mut r3, &["HELLO", "3"]);
    assert!(hello.contains("$4\r\nmode\r\n$8\r\nsentinel\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"));
    assert_eq!(cmd(&mut r3, &ask("nope")), "_\r\n");
    assert_eq!(
        cmd(&mut r3, &ask("mymaster")),
        "*2\r\n$8\r\n10.0.0.2\r\n$4\r\n6380\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["SENTINEL", "get-master-addr-by-name"]),
        "-ERR wrong number of arguments for 'sentinel|get-master-addr-by-name' command\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["SENTINEL", "MASTERS"]),
        "-ERR Unknown sentinel subcommand 'MASTERS'\r\n"
    );
}

/// The 40-character ids that follow each `$40` header in `reply`.
fn ids(reply: &str) -> Vec<String> {
    reply
        .match_indices("$40\r\n")
        .map(|(at, m)| reply[at + m.len()..at + m.len() + 40].to_string())
        .collect()
}

#[test]
fn sentinel_sentinels_lists_the_peers() {
    let (sim, _, _, mut c) = connected(1);
    sim.set_sentinel(&[("mymaster", "10.0.0.1:6379")]);
    let ask = ["SENTINEL", "SENTINELS", "mymaster"];
    assert_eq!(cmd(&mut c, &ask), "*0\r\n");
    sim.set_sentinel_peers(&["10.0.0.8:26379", "10.0.0.9:26380"]);
    let reply = cmd(&mut c, &ask);
    let ids = ids(&reply);
    assert_eq!(ids.len(), 2, "{reply:?}");
    assert!(ids
        .iter()
        .all(|id| id.bytes().all(|b| b.is_ascii_hexdigit())));
    assert_ne!(ids[0], ids[1]);
    let entry = |id: &str, host: &str, port: &str| {
        format!(
            "*8\r\n$4\r\nname\r\n$40\r\n{id}\r\n$2\r\nip\r\n${}\r\n{host}\r\n$4\r\nport\r\n\
             ${}\r\n{port}\r\n$5\r\nflags\r\n$8\r\nsentinel\r\n",
            host.len(),
            port.len()
        )
    };
    let want = format!(
        "*2\r\n{}{}",
        entry(&ids[0], "10.0.0.8", "26379"),
        entry(&ids[1], "10.0.0.9", "26380")
    );
    assert_eq!(reply, want);
    assert_eq!(cmd(&mut c, &ask), want, "the ids are stable");
    assert_eq!(
        cmd(&mut c, &["SENTINEL", "sentinels", "nope"]),
        "-ERR No such master with that name\r\n"
    );
}

#[test]
fn a_sentinel_knows_only_its_own_commands() {
    let (sim, _, _, mut c) = connected(1);
    // A data server does not know SENTINEL.
    assert_eq!(
        cmd(&mut c, &["SENTINEL", "get-master-addr-by-name", "m"]),
        "-ERR unknown command 'SENTINEL', with args beginning with: 'get-master-addr-by-name' \
         'm' \r\n"
    );
    sim.set_sentinel(&[("mymaster", "10.0.0.1:6379")]);
    assert_eq!(
        cmd(&mut c, &["GET", "k"]),
        "-ERR unknown command 'GET', with args beginning with: 'k' \r\n"
    );
    assert_eq!(
        cmd(&mut c, &["MULTI"]),
        "-ERR unknown command 'MULTI', with args beginning with: \r\n"
    );
    assert_eq!(cmd(&mut c, &["PING"]), "+PONG\r\n");
    assert_eq!(cmd(&mut c, &["CLIENT", "SETNAME", "watcher"]), "+OK\r\n");
    let info = cmd(&mut c, &["INFO"]);
    for needle in [
        "redis_mode:sentinel\r\n",
        "# Sentinel\r\nsentinel_masters:1\r\nsentinel_tilt:0\r\n",
        "master0:name=mymaster,status=ok,address=10.0.0.1:6379,slaves=0,sentinels=1\r\n",
    ] {
        assert!(info.contains(needle), "{needle:?} not in {info:?}");
    }
    assert!(!info.contains("# Keyspace"), "{info:?}");
    assert!(!info.contains("# Replication"), "{info:?}");
    // The role set before stays, but the Sentinel personality wins.
    sim.set_role(replica_of("10.0.0.1:6379"));
    assert_eq!(
        cmd(&mut c, &["SET", "k", "v"]),
        "-ERR unknown command 'SET', with args \
         beginning with: 'k' 'v' \r\n"
    );
    assert!(cmd(&mut c, &["ROLE"]).starts_with("*2\r\n$8\r\nsentinel\r\n"));
}

#[test]
fn publish_reaches_subscribers_and_counts_them() {
    let (sim, clock, trace, mut psub) = connected(1);
    sim.set_sentinel(&[("mymaster", "10.0.0.1:6379")]);
    assert_eq!(
        cmd(&mut psub, &["PSUBSCRIBE", "*"]),
        "*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:1\r\n"
    );
    let mut sub3 = sim.connect().unwrap();
    assert!(cmd(&mut sub3, &["HELLO", "3"]).starts_with("%7\r\n"));
    assert_eq!(
        cmd(&mut sub3, &["SUBSCRIBE", "+switch-master"]),
        ">3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n"
    );
    let event = "mymaster 10.0.0.1 6379 10.0.0.2 6380";
    assert_eq!(sim.publish("+switch-master", event), 2);
    assert_eq!(
        read_all(&mut psub),
        format!("*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$14\r\n+switch-master\r\n$36\r\n{event}\r\n")
    );
    assert_eq!(
        read_all(&mut sub3),
        format!(">3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$36\r\n{event}\r\n")
    );
    assert_eq!(
        sim.publish("+try-failover", "master mymaster 10.0.0.1 6379"),
        1
    );
    assert_eq!(
        read_all(&mut psub),
        "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$13\r\n+try-failover\r\n$29\r\nmaster mymaster \
         10.0.0.1 6379\r\n"
    );
    assert_eq!(read_all(&mut sub3), "");
    assert!(trace
        .lines()
        .iter()
        .any(|l| l.ends_with("publish on +try-failover")));
    // Delivered at the clock's time, through the server's latency.
    sim.set_latency(Latency::Fixed(Duration::from_millis(5)));
    assert_eq!(sim.publish("+sdown", "master mymaster 10.0.0.1 6379"), 1);
    assert_eq!(read_all(&mut psub), "");
    clock.advance(Duration::from_millis(5));
    assert!(read_all(&mut psub).starts_with("*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$6\r\n+sdown\r\n"));
    sim.set_latency(Latency::None);
    assert_eq!(
        cmd(&mut psub, &["PUNSUBSCRIBE"]),
        "*3\r\n$12\r\npunsubscribe\r\n$1\r\n*\r\n:0\r\n"
    );
    assert_eq!(sim.publish("+odown", "master mymaster 10.0.0.1 6379"), 0);
    assert_eq!(read_all(&mut psub), "");
}

/// Sends one command on a transport's stream and reads the reply readable at once.
fn roundtrip(stream: &mut BoxStream, args: &[&str]) -> String {
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    block_on(async {
        stream
            .write_all(&encode_request(&refs))
            .await
            .expect("write");
        let mut buf = [0u8; 256];
        let n = stream.read(&mut buf).await.expect("read");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
}

#[test]
fn sim_network_routes_by_address() {
    let (a, clock, trace) = server(1);
    let b = SimRedis::new(clock, Rng::new(2), trace.clone());
    b.set_role(replica_of("10.0.0.1:6379"));
    let network = SimNetwork::new();
    network.add("10.0.0.1:6379", a.clone());
    let shared = network.clone();
    shared.add("10.0.0.2:6380", b.clone());
    assert_eq!(
        format!("{network:?}"),
        r#"SimNetwork { addresses: ["10.0.0.1:6379", "10.0.0.2:6380"] }"#
    );
    let options = TcpOptions::default();
    let connect =
        |host: &str, port: u16| block_on(network.connect(&Endpoint::tcp(host, port), &options));
    let mut to_a = connect("10.0.0.1", 6379).expect("a");
    let mut to_b = connect("10.0.0.2", 6380).expect("b");
    assert_eq!((a.connections_accepted(), b.connections_accepted()), (1, 1));
    assert_eq!(roundtrip(&mut to_a, &["ROLE"]), MASTER_ROLE);
    assert!(roundtrip(&mut to_b, &["ROLE"]).starts_with("*5\r\n$5\r\nslave\r\n"));
    assert!(trace
        .lines()
        .iter()
        .any(|l| l.ends_with("connect #1 from 10.0.0.2:6380")));

    let Err(err) = connect("10.0.0.3", 6379) else {
        panic!("an unknown address connected");
    };
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    assert!(err.to_string().contains("10.0.0.3:6379"), "{err}");
    // A server that refuses is refused through the network too.
    b.refuse(true);
    let refused = connect("10.0.0.2", 6380).err().map(|e| e.kind());
    assert_eq!(refused, Some(ErrorKind::ConnectionRefused));
    // Removed: refused, and the server sees no new connection.
    network.remove("10.0.0.1:6379");
    let removed = connect("10.0.0.1", 6379).err().map(|e| e.kind());
    assert_eq!(removed, Some(ErrorKind::ConnectionRefused));
    assert_eq!(a.connections_accepted(), 1);
    assert_eq!(
        roundtrip(&mut to_a, &["PING"]),
        "+PONG\r\n",
        "open connections stay"
    );
}
