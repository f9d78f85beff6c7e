//! Connection commands: AUTH, HELLO, CLIENT, INFO, QUIT.

use super::{cmd, connected, drain, server, After};

const NOAUTH: &str = "-NOAUTH Authentication required.\r\n";
const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";

#[test]
fn auth_with_requirepass() {
    let (sim, _, _) = server(1);
    sim.set_password(Some("s3cret"));
    let mut c = sim.connect().unwrap();
    assert_eq!(cmd(&mut c, &["GET", "k"]), NOAUTH);
    assert_eq!(cmd(&mut c, &["AUTH", "wrong"]), WRONGPASS);
    assert_eq!(cmd(&mut c, &["AUTH", "default", "wrong"]), WRONGPASS);
    assert_eq!(
        cmd(&mut c, &["AUTH", "a", "b", "c"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(cmd(&mut c, &["AUTH", "s3cret"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["GET", "k"]), "$-1\r\n");
    let mut d = sim.connect().unwrap();
    assert_eq!(cmd(&mut d, &["AUTH", "default", "s3cret"]), "+OK\r\n");
    // Changing the password leaves authenticated connections alone, as in Redis.
    sim.set_password(Some("other"));
    assert_eq!(cmd(&mut c, &["PING"]), "+PONG\r\n");
    let mut e = sim.connect().unwrap();
    assert_eq!(cmd(&mut e, &["PING"]), NOAUTH);
}

#[test]
fn auth_with_acl_user_and_without_password() {
    let (sim, _, _, mut c) = connected(1);
    assert_eq!(
        cmd(&mut c, &["AUTH", "x"]),
        "-ERR AUTH <password> called without any password configured for the default user. \
         Are you sure your configuration is correct?\r\n"
    );
    sim.set_acl_user(Some(("app", "pw")));
    sim.set_password(Some("root"));
    let mut d = sim.connect().unwrap();
    assert_eq!(cmd(&mut d, &["AUTH", "app", "nope"]), WRONGPASS);
    assert_eq!(cmd(&mut d, &["AUTH", "app", "pw"]), "+OK\r\n");
    assert_eq!(cmd(&mut d, &["SET", "k", "v"]), "+OK\r\n");
}

#[test]
fn hello() {
    let (sim, _, _) = server(1);
    sim.set_password(Some("pw"));
    let mut c = sim.connect().unwrap();
    assert_eq!(
        cmd(&mut c, &["HELLO", "2"]),
        "-NOAUTH HELLO must be called with the client already authenticated, otherwise the \
         HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
         select the RESP protocol version at the same time\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["HELLO", "4"]),
        "-NOPROTO unsupported protocol version\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["HELLO", "x"]),
        "-ERR Protocol version is not an integer or out of range\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["HELLO", "2", "AUTH", "default", "no"]),
        WRONGPASS
    );
    assert_eq!(
        cmd(&mut c, &["HELLO", "2", "FOO"]),
        "-ERR Syntax error in HELLO option 'FOO'\r\n"
    );
    let id = c.id();
    assert_eq!(
        cmd(
            &mut c,
            &["HELLO", "2", "AUTH", "default", "pw", "SETNAME", "app"]
        ),
        format!(
            "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.4\r\n$5\r\nproto\r\n\
             :2\r\n$2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n\
             $6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
        )
    );
    assert_eq!(cmd(&mut c, &["CLIENT", "GETNAME"]), "$3\r\napp\r\n");
    assert!(cmd(&mut c, &["HELLO"]).starts_with("*14\r\n"));
}

#[test]
fn client_subcommands() {
    let (sim, _, _, mut c) = connected(1);
    let mut other = sim.connect().unwrap();
    assert_eq!(cmd(&mut c, &["CLIENT", "GETNAME"]), "$-1\r\n");
    assert_eq!(cmd(&mut c, &["CLIENT", "SETNAME", "worker-1"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["client", "getname"]), "$8\r\nworker-1\r\n");
    assert_eq!(
        cmd(&mut c, &["CLIENT", "SETNAME", "a b"]),
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(cmd(&mut c, &["CLIENT", "ID"]), format!(":{}\r\n", c.id()));
    assert_eq!(
        cmd(&mut c, &["CLIENT", "SETINFO", "LIB-NAME", "redis-rs"]),
        "+OK\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["CLIENT", "SETINFO", "lib-ver", "1.0"]),
        "+OK\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["CLIENT", "SETINFO", "x", "1"]),
        "-ERR Unrecognized option 'x'\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["CLIENT", "SETNAME"]),
        "-ERR wrong number of arguments for 'client|setname' command\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["CLIENT", "NOPE"]),
        "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n"
    );
    let target = other.id().to_string();
    assert_eq!(cmd(&mut c, &["CLIENT", "KILL", "ID", &target]), ":1\r\n");
    assert_eq!(drain(&mut other).1, After::Eof);
    assert_eq!(cmd(&mut c, &["CLIENT", "KILL", "ID", &target]), ":0\r\n");
}

#[test]
fn info_sections() {
    let (sim, _, _, mut c) = connected(1);
    cmd(&mut c, &["SET", "k", "v", "EX", "100"]);
    cmd(&mut c, &["SELECT", "2"]);
    cmd(&mut c, &["SET", "k", "v"]);
    let info = cmd(&mut c, &["INFO"]);
    for needle in [
        "# Server\r\nredis_version:7.2.4\r\n",
        "# Clients\r\nconnected_clients:1\r\n",
        "# Persistence\r\nloading:0\r\n",
        "# Stats\r\ntotal_connections_received:1\r\n",
        "# Keyspace\r\ndb0:keys=1,expires=1,avg_ttl=0\r\ndb2:keys=1,expires=0,avg_ttl=0\r\n",
    ] {
        assert!(info.contains(needle), "{needle:?} not in {info:?}");
    }
    let only = cmd(&mut c, &["INFO", "persistence"]);
    assert_eq!(only, "$26\r\n# Persistence\r\nloading:0\r\n\r\n");
    sim.set_loading(std::time::Duration::from_secs(1));
    assert!(cmd(&mut c, &["INFO", "persistence"]).contains("loading:1"));
}

#[test]
fn quit_answers_then_closes() {
    let (sim, _, _, mut c) = connected(1);
    super::send(&mut c, b"QUIT\r\nPING\r\n").unwrap();
    assert_eq!(drain(&mut c), (b"+OK\r\n".to_vec(), After::Eof));
    assert_eq!(sim.connected_clients(), 0);
}

#[test]
fn hello_3_switches_to_resp3_and_pubsub_frames_become_pushes() {
    let (sim, _, _, mut sub) = connected(1);
    assert!(cmd(&mut sub, &["HELLO", "3"]).starts_with("%7\r\n"));
    assert_eq!(
        cmd(&mut sub, &["SUBSCRIBE", "orders"]),
        ">3\r\n$9\r\nsubscribe\r\n$6\r\norders\r\n:1\r\n"
    );
    assert_eq!(
        cmd(&mut sub, &["PSUBSCRIBE", "orders.*"]),
        ">3\r\n$10\r\npsubscribe\r\n$8\r\norders.*\r\n:2\r\n"
    );
    let mut resp2 = sim.connect().unwrap();
    assert_eq!(
        cmd(&mut resp2, &["SUBSCRIBE", "orders"]),
        "*3\r\n$9\r\nsubscribe\r\n$6\r\norders\r\n:1\r\n"
    );
    let mut publisher = sim.connect().unwrap();
    assert_eq!(cmd(&mut publisher, &["PUBLISH", "orders", "o-1"]), ":2\r\n");
    assert_eq!(
        read_all(&mut sub),
        ">3\r\n$7\r\nmessage\r\n$6\r\norders\r\n$3\r\no-1\r\n"
    );
    assert_eq!(
        read_all(&mut resp2),
        "*3\r\n$7\r\nmessage\r\n$6\r\norders\r\n$3\r\no-1\r\n"
    );
    assert_eq!(
        cmd(&mut publisher, &["PUBLISH", "orders.new", "o-2"]),
        ":1\r\n"
    );
    assert_eq!(
        read_all(&mut sub),
        ">4\r\n$8\r\npmessage\r\n$8\r\norders.*\r\n$10\r\norders.new\r\n$3\r\no-2\r\n"
    );
    assert_eq!(
        cmd(&mut sub, &["UNSUBSCRIBE"]),
        ">3\r\n$11\r\nunsubscribe\r\n$6\r\norders\r\n:1\r\n"
    );
    assert_eq!(cmd(&mut publisher, &["PUBLISH", "orders", "o-3"]), ":1\r\n");
    assert_eq!(cmd(&mut sub, &["PING"]), "+PONG\r\n");
}

#[test]
fn blpop_blocks_until_a_push_or_its_timeout() {
    let (sim, clock, _, mut worker) = connected(1);
    let mut producer = sim.connect().unwrap();
    assert_eq!(
        cmd(&mut worker, &["BLPOP", "q", "x"]),
        "-ERR timeout is not a float or out of range\r\n"
    );
    assert_eq!(cmd(&mut producer, &["RPUSH", "q", "a"]), ":1\r\n");
    assert_eq!(
        cmd(&mut worker, &["BLPOP", "q", "0"]),
        "*2\r\n$1\r\nq\r\n$1\r\na\r\n"
    );
    write_cmd(&mut worker, &["BLPOP", "q", "0"]);
    write_cmd(&mut worker, &["PING"]);
    assert_eq!(
        read_all(&mut worker),
        "",
        "blocked: the PING behind it waits"
    );
    assert_eq!(cmd(&mut producer, &["RPUSH", "q", "b"]), ":1\r\n");
    assert_eq!(
        read_all(&mut worker),
        "*2\r\n$1\r\nq\r\n$1\r\nb\r\n+PONG\r\n"
    );
    assert_eq!(cmd(&mut producer, &["LLEN", "q"]), ":0\r\n");
    write_cmd(&mut worker, &["BRPOP", "q", "2"]);
    clock.advance(std::time::Duration::from_secs(2));
    assert_eq!(read_all(&mut worker), "*-1\r\n", "nil at the timeout");
}

fn read_all(s: &mut crate::sim::SimStream) -> String {
    String::from_utf8_lossy(&drain(s).0).into_owned()
}

fn write_cmd(s: &mut crate::sim::SimStream, args: &[&str]) {
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    super::send(s, &crate::sim::server::wire::encode_request(&refs)).expect("write");
}
