//! Data commands: reply shapes and error texts, byte for byte where it matters.

use std::time::Duration;

use super::{cmd, connected, drain, send, After};

#[test]
fn strings_byte_exact() {
    let (sim, _, _, mut c) = connected(1);
    assert_eq!(cmd(&mut c, &["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["GET", "k"]), "$1\r\nv\r\n");
    assert_eq!(cmd(&mut c, &["get", "missing"]), "$-1\r\n");
    assert_eq!(cmd(&mut c, &["MSET", "a", "1", "b", "2"]), "+OK\r\n");
    assert_eq!(
        cmd(&mut c, &["MGET", "a", "nope", "b"]),
        "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n"
    );
    assert_eq!(cmd(&mut c, &["INCR", "a"]), ":2\r\n");
    assert_eq!(cmd(&mut c, &["INCRBY", "a", "40"]), ":42\r\n");
    assert_eq!(cmd(&mut c, &["DECR", "n"]), ":-1\r\n");
    assert_eq!(cmd(&mut c, &["DECRBY", "n", "2"]), ":-3\r\n");
    assert_eq!(cmd(&mut c, &["APPEND", "k", "xyz"]), ":4\r\n");
    assert_eq!(cmd(&mut c, &["STRLEN", "k"]), ":4\r\n");
    assert_eq!(cmd(&mut c, &["STRLEN", "nope"]), ":0\r\n");
    assert_eq!(sim.get(0, b"k"), Some(b"vxyz".to_vec()));
}

#[test]
fn string_errors_have_redis_texts() {
    let (_, _, _, mut c) = connected(1);
    cmd(&mut c, &["SET", "k", "v"]);
    assert_eq!(
        cmd(&mut c, &["INCR", "k"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["INCRBY", "x", "1.5"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    cmd(&mut c, &["SET", "max", "9223372036854775807"]);
    assert_eq!(
        cmd(&mut c, &["INCR", "max"]),
        "-ERR increment or decrement would overflow\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["GET"]),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["MSET", "a", "1", "b"]),
        "-ERR wrong number of arguments for 'mset' command\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["SET", "k", "v", "EX", "0"]),
        "-ERR invalid expire time in 'set' command\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["SET", "k", "v", "NX", "XX"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["SET", "k", "v", "EX"]),
        "-ERR syntax error\r\n"
    );
    cmd(&mut c, &["LPUSH", "l", "x"]);
    assert_eq!(
        cmd(&mut c, &["GET", "l"]),
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
}

#[test]
fn set_options() {
    let (_, clock, _, mut c) = connected(1);
    assert_eq!(cmd(&mut c, &["SET", "k", "1", "NX"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["SET", "k", "2", "NX"]), "$-1\r\n");
    assert_eq!(cmd(&mut c, &["SET", "new", "2", "XX"]), "$-1\r\n");
    assert_eq!(cmd(&mut c, &["SET", "k", "3", "XX", "GET"]), "$1\r\n1\r\n");
    assert_eq!(cmd(&mut c, &["SET", "k", "4", "PX", "1500"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["SET", "k", "5", "KEEPTTL"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["PTTL", "k"]), ":1500\r\n");
    assert_eq!(cmd(&mut c, &["SETEX", "s", "10", "v"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["TTL", "s"]), ":10\r\n");
    clock.advance(Duration::from_millis(1500));
    assert_eq!(cmd(&mut c, &["GET", "k"]), "$-1\r\n");
}

#[test]
fn expiry_follows_the_virtual_clock() {
    let (sim, clock, _, mut c) = connected(1);
    cmd(&mut c, &["SET", "k", "v", "EX", "10"]);
    assert_eq!(cmd(&mut c, &["TTL", "k"]), ":10\r\n");
    clock.advance(Duration::from_millis(4_400));
    assert_eq!(cmd(&mut c, &["TTL", "k"]), ":6\r\n");
    assert_eq!(cmd(&mut c, &["PTTL", "k"]), ":5600\r\n");
    assert_eq!(sim.ttl(0, b"k"), Some(Duration::from_millis(5_600)));
    clock.advance(Duration::from_millis(5_599));
    assert_eq!(cmd(&mut c, &["EXISTS", "k"]), ":1\r\n");
    clock.advance(Duration::from_millis(1));
    assert_eq!(cmd(&mut c, &["EXISTS", "k"]), ":0\r\n");
    assert_eq!(cmd(&mut c, &["TTL", "k"]), ":-2\r\n");
    cmd(&mut c, &["SET", "p", "v"]);
    assert_eq!(cmd(&mut c, &["TTL", "p"]), ":-1\r\n");
    assert_eq!(cmd(&mut c, &["EXPIRE", "p", "5"]), ":1\r\n");
    assert_eq!(cmd(&mut c, &["EXPIRE", "p", "50", "NX"]), ":0\r\n");
    assert_eq!(cmd(&mut c, &["EXPIRE", "p", "50", "GT"]), ":1\r\n");
    assert_eq!(cmd(&mut c, &["PEXPIRE", "p", "100", "LT"]), ":1\r\n");
    assert_eq!(cmd(&mut c, &["EXPIRE", "missing", "5"]), ":0\r\n");
    assert_eq!(
        cmd(&mut c, &["EXPIRE", "p", "x"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["EXPIRE", "p", "5", "NX", "XX"]),
        "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"
    );
    assert_eq!(cmd(&mut c, &["EXPIRE", "p", "-1"]), ":1\r\n");
    assert_eq!(sim.dbsize(0), 0);
    cmd(&mut c, &["SET", "big", "v"]);
    assert_eq!(
        cmd(&mut c, &["EXPIRE", "big", "9223372036854775807"]),
        "-ERR invalid expire time in 'expire' command\r\n"
    );
}

#[test]
fn key_commands() {
    let (_, _, _, mut c) = connected(1);
    cmd(
        &mut c,
        &["MSET", "user:1", "a", "user:2", "b", "other", "c"],
    );
    cmd(&mut c, &["HSET", "h", "f", "v"]);
    assert_eq!(cmd(&mut c, &["TYPE", "user:1"]), "+string\r\n");
    assert_eq!(cmd(&mut c, &["TYPE", "h"]), "+hash\r\n");
    assert_eq!(cmd(&mut c, &["TYPE", "nope"]), "+none\r\n");
    assert_eq!(
        cmd(&mut c, &["KEYS", "user:*"]),
        "*2\r\n$6\r\nuser:1\r\n$6\r\nuser:2\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["KEYS", "user:[2-9]"]),
        "*1\r\n$6\r\nuser:2\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["EXISTS", "user:1", "user:1", "nope"]),
        ":2\r\n"
    );
    assert_eq!(cmd(&mut c, &["DBSIZE"]), ":4\r\n");
    assert_eq!(cmd(&mut c, &["DEL", "user:1", "nope"]), ":1\r\n");
    assert_eq!(
        cmd(&mut c, &["SCAN", "0", "COUNT", "100"]),
        "*2\r\n$1\r\n0\r\n*3\r\n$6\r\nuser:2\r\n$5\r\nother\r\n$1\r\nh\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["SCAN", "0", "MATCH", "o*"]),
        "*2\r\n$1\r\n0\r\n*1\r\n$5\r\nother\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["SCAN", "0", "TYPE", "hash"]),
        "*2\r\n$1\r\n0\r\n*1\r\n$1\r\nh\r\n"
    );
    assert_eq!(cmd(&mut c, &["SCAN", "x"]), "-ERR invalid cursor\r\n");
    assert_eq!(
        cmd(&mut c, &["SCAN", "0", "COUNT", "0"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(cmd(&mut c, &["FLUSHDB"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["DBSIZE"]), ":0\r\n");
}

#[test]
fn scan_cursor_walks_everything_once() {
    let (_, _, _, mut c) = connected(1);
    for i in 0..25 {
        cmd(&mut c, &["SET", &format!("k{i:02}"), "v"]);
    }
    let mut cursor = "0".to_string();
    let mut seen = 0;
    let mut rounds = 0;
    loop {
        let reply = cmd(&mut c, &["SCAN", &cursor, "COUNT", "10"]);
        rounds += 1;
        let lines: Vec<&str> = reply.split("\r\n").collect();
        cursor = lines[2].to_string();
        seen += lines.iter().filter(|l| l.starts_with('k')).count();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!((seen, rounds), (25, 3));
}

#[test]
fn hashes() {
    let (_, _, _, mut c) = connected(1);
    assert_eq!(cmd(&mut c, &["HSET", "h", "a", "1", "b", "2"]), ":2\r\n");
    assert_eq!(cmd(&mut c, &["HSET", "h", "a", "3"]), ":0\r\n");
    assert_eq!(cmd(&mut c, &["HGET", "h", "a"]), "$1\r\n3\r\n");
    assert_eq!(cmd(&mut c, &["HGET", "h", "z"]), "$-1\r\n");
    assert_eq!(
        cmd(&mut c, &["HGETALL", "h"]),
        "*4\r\n$1\r\na\r\n$1\r\n3\r\n$1\r\nb\r\n$1\r\n2\r\n"
    );
    assert_eq!(cmd(&mut c, &["HGETALL", "nope"]), "*0\r\n");
    assert_eq!(cmd(&mut c, &["HINCRBY", "h", "a", "5"]), ":8\r\n");
    assert_eq!(cmd(&mut c, &["HINCRBY", "h", "n", "-2"]), ":-2\r\n");
    cmd(&mut c, &["HSET", "h", "s", "x"]);
    assert_eq!(
        cmd(&mut c, &["HINCRBY", "h", "s", "1"]),
        "-ERR hash value is not an integer\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["HSET", "h", "a"]),
        "-ERR wrong number of arguments for 'hset' command\r\n"
    );
    assert_eq!(cmd(&mut c, &["HDEL", "h", "a", "b", "zz"]), ":2\r\n");
    assert_eq!(cmd(&mut c, &["HLEN", "h"]), ":2\r\n");
    assert_eq!(cmd(&mut c, &["HDEL", "h", "n", "s"]), ":2\r\n");
    assert_eq!(cmd(&mut c, &["EXISTS", "h"]), ":0\r\n");
}

#[test]
fn lists() {
    let (_, _, _, mut c) = connected(1);
    assert_eq!(cmd(&mut c, &["LPUSH", "l", "a", "b"]), ":2\r\n");
    assert_eq!(cmd(&mut c, &["RPUSH", "l", "c"]), ":3\r\n");
    assert_eq!(
        cmd(&mut c, &["LRANGE", "l", "0", "-1"]),
        "*3\r\n$1\r\nb\r\n$1\r\na\r\n$1\r\nc\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["LRANGE", "l", "-2", "10"]),
        "*2\r\n$1\r\na\r\n$1\r\nc\r\n"
    );
    assert_eq!(cmd(&mut c, &["LRANGE", "l", "5", "10"]), "*0\r\n");
    assert_eq!(cmd(&mut c, &["LLEN", "l"]), ":3\r\n");
    assert_eq!(cmd(&mut c, &["LPOP", "l"]), "$1\r\nb\r\n");
    assert_eq!(
        cmd(&mut c, &["RPOP", "l", "5"]),
        "*2\r\n$1\r\nc\r\n$1\r\na\r\n"
    );
    assert_eq!(cmd(&mut c, &["LPOP", "l"]), "$-1\r\n");
    assert_eq!(cmd(&mut c, &["LPOP", "l", "2"]), "*-1\r\n");
    assert_eq!(
        cmd(&mut c, &["LPOP", "l", "-1"]),
        "-ERR value is out of range, must be positive\r\n"
    );
    assert_eq!(cmd(&mut c, &["EXISTS", "l"]), ":0\r\n");
}

#[test]
fn sets() {
    let (_, _, _, mut c) = connected(1);
    assert_eq!(cmd(&mut c, &["SADD", "s", "b", "a", "b"]), ":2\r\n");
    assert_eq!(
        cmd(&mut c, &["SMEMBERS", "s"]),
        "*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
    assert_eq!(cmd(&mut c, &["SISMEMBER", "s", "a"]), ":1\r\n");
    assert_eq!(cmd(&mut c, &["SISMEMBER", "s", "z"]), ":0\r\n");
    assert_eq!(cmd(&mut c, &["SCARD", "s"]), ":2\r\n");
    assert_eq!(cmd(&mut c, &["SREM", "s", "a", "z"]), ":1\r\n");
    assert_eq!(cmd(&mut c, &["SREM", "s", "b"]), ":1\r\n");
    assert_eq!(cmd(&mut c, &["TYPE", "s"]), "+none\r\n");
    cmd(&mut c, &["SET", "str", "v"]);
    assert!(cmd(&mut c, &["SADD", "str", "x"]).starts_with("-WRONGTYPE"));
}

#[test]
fn unknown_commands_and_case() {
    let (sim, _, _, mut c) = connected(1);
    assert_eq!(
        cmd(&mut c, &["FOO", "a", "b"]),
        "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"
    );
    assert_eq!(
        cmd(&mut c, &["nope"]),
        "-ERR unknown command 'nope', with args beginning with: \r\n"
    );
    assert_eq!(cmd(&mut c, &["pInG"]), "+PONG\r\n");
    assert_eq!(cmd(&mut c, &["PING", "hi"]), "$2\r\nhi\r\n");
    assert_eq!(
        cmd(&mut c, &["PING", "a", "b"]),
        "-ERR wrong number of arguments for 'ping' command\r\n"
    );
    assert_eq!(cmd(&mut c, &["ECHO", "x y"]), "$3\r\nx y\r\n");
    assert_eq!(sim.commands_processed(), 6);
}

#[test]
fn inline_commands_and_pipelines() {
    let (_, _, _, mut c) = connected(1);
    send(
        &mut c,
        b"SET a 1\r\nINCR a\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\nPING\n",
    )
    .unwrap();
    assert_eq!(
        drain(&mut c),
        (
            b"+OK\r\n:2\r\n$1\r\n2\r\n+PONG\r\n".to_vec(),
            After::Pending
        )
    );
    // A command split across writes runs once complete.
    send(&mut c, b"*2\r\n$4\r\nEC").unwrap();
    assert_eq!(drain(&mut c).0, b"");
    send(&mut c, b"HO\r\n$2\r\nhi\r\n").unwrap();
    assert_eq!(drain(&mut c).0, b"$2\r\nhi\r\n");
}

#[test]
fn protocol_error_answers_then_closes() {
    let (sim, _, _, mut c) = connected(1);
    send(&mut c, b"*1\r\n+PING\r\n").unwrap();
    assert_eq!(
        drain(&mut c),
        (
            b"-ERR Protocol error: expected '$', got '+'\r\n".to_vec(),
            After::Eof
        )
    );
    assert_eq!(sim.connected_clients(), 0);
    assert_eq!(
        send(&mut c, b"PING\r\n").unwrap_err().kind(),
        std::io::ErrorKind::BrokenPipe
    );
}

#[test]
fn select_isolates_keyspaces() {
    let (sim, _, _, mut c) = connected(1);
    assert_eq!(cmd(&mut c, &["SELECT", "3"]), "+OK\r\n");
    cmd(&mut c, &["SET", "k", "three"]);
    assert_eq!(
        cmd(&mut c, &["SELECT", "16"]),
        "-ERR DB index is out of range\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["SELECT", "-1"]),
        "-ERR DB index is out of range\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["SELECT", "x"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(sim.get(3, b"k"), Some(b"three".to_vec()));
    assert_eq!(sim.get(0, b"k"), None);
    assert_eq!(sim.get(99, b"k"), None);
    assert_eq!(sim.dbsize(3), 1);
    assert_eq!(sim.keys(3), vec![b"k".to_vec()]);
    cmd(&mut c, &["SELECT", "0"]);
    assert_eq!(cmd(&mut c, &["GET", "k"]), "$-1\r\n");
    sim.set(0, b"k", b"zero");
    assert_eq!(cmd(&mut c, &["GET", "k"]), "$4\r\nzero\r\n");
    assert_eq!(cmd(&mut c, &["FLUSHALL"]), "+OK\r\n");
    assert_eq!(sim.dbsize(3), 0);
}
