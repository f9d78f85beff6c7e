//! Command dispatch for the simulated server: the command table (names, arities, flags) and the
//! generic key and server commands (DEL, EXPIRE, SCAN, PING, …).
//!
//! String commands live in [`strings`](super::strings) and hash/list/set commands in
//! [`collections`](super::collections); connection-state commands (SELECT, AUTH, MULTI, …) are
//! run by the server itself, which owns the per-connection state.

use std::time::Instant;

pub(crate) use super::args::{arity_error, deadline, int_arg, is, DataFn, Res, SYNTAX};
use super::collections as coll;
use super::keyspace::{glob_match, Db};
use super::resp::Reply;
use super::strings as st;

/// Commands the server runs against the connection's own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Session {
    Select,
    Auth,
    Hello,
    Quit,
    Client,
    Info,
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
    FlushAll,
    /// `BLPOP` (false) or `BRPOP` (true).
    BlockingPop(bool),
    /// `SUBSCRIBE` (false) or `PSUBSCRIBE` (true).
    Subscribe(bool),
    /// `UNSUBSCRIBE` (false) or `PUNSUBSCRIBE` (true).
    Unsubscribe(bool),
    /// `PUBLISH channel message`.
    Publish,
    /// `ROLE`.
    Role,
    /// `SENTINEL <subcommand> …` (a Sentinel's own command).
    Sentinel,
}

/// What runs a command.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// A keyspace command.
    Data(DataFn),
    /// A connection or server command.
    Session(Session),
}

/// One row of the command table.
#[derive(Debug)]
pub(crate) struct Spec {
    /// Lowercase name, as in Redis's error texts.
    pub(crate) name: &'static str,
    /// Redis's arity: `n` exactly, or `-n` for at least `n` (the name included).
    pub(crate) arity: i32,
    /// Allowed while the dataset is loading (Redis's `loading` flag).
    pub(crate) loading_ok: bool,
    /// Allowed before authentication (AUTH, HELLO, QUIT).
    pub(crate) no_auth: bool,
    /// Modifies the keyspace (Redis's `write` flag): a replica refuses it with `-READONLY`.
    pub(crate) write: bool,
    /// What runs it.
    pub(crate) kind: Kind,
}

const fn data(name: &'static str, arity: i32, f: DataFn) -> Spec {
    Spec {
        name,
        arity,
        loading_ok: false,
        no_auth: false,
        write: false,
        kind: Kind::Data(f),
    }
}

/// A keyspace command that modifies the keyspace.
const fn write(name: &'static str, arity: i32, f: DataFn) -> Spec {
    Spec {
        name,
        arity,
        loading_ok: false,
        no_auth: false,
        write: true,
        kind: Kind::Data(f),
    }
}

const fn session(name: &'static str, arity: i32, loading_ok: bool, s: Session) -> Spec {
    Spec {
        name,
        arity,
        loading_ok,
        no_auth: matches!(s, Session::Auth | Session::Hello | Session::Quit),
        write: matches!(s, Session::FlushAll | Session::BlockingPop(_)),
        kind: Kind::Session(s),
    }
}

/// Every command the simulator knows. Loading-ok flags follow Redis 7 (`AUTH`, `HELLO`, `SELECT`,
/// `CLIENT`, `INFO`, `QUIT`, `MULTI`, `EXEC`, `DISCARD`, `WATCH`, `UNWATCH`, `ROLE`); `PING` is
/// not. Rows built with `write` (and FLUSHALL, BLPOP, BRPOP) carry Redis's `write` flag.
static TABLE: &[Spec] = &[
    data("get", 2, st::get),
    write("set", -3, st::set),
    write("setex", 4, st::setex),
    write("psetex", 4, st::psetex),
    data("mget", -2, st::mget),
    write("mset", -3, st::mset),
    write("incr", 2, st::incr),
    write("incrby", 3, st::incrby),
    write("decr", 2, st::decr),
    write("decrby", 3, st::decrby),
    write("append", 3, st::append),
    data("strlen", 2, st::strlen),
    write("del", -2, del),
    data("exists", -2, exists),
    write("expire", -3, expire),
    write("pexpire", -3, pexpire),
    data("ttl", 2, ttl),
    data("pttl", 2, pttl),
    data("type", 2, type_),
    data("keys", 2, keys),
    data("scan", -2, scan),
    data("dbsize", 1, dbsize),
    write("flushdb", -1, flushdb),
    data("ping", -1, ping),
    data("echo", 2, echo),
    write("hset", -4, coll::hset),
    data("hget", 3, coll::hget),
    data("hgetall", 2, coll::hgetall),
    write("hdel", -3, coll::hdel),
    write("hincrby", 4, coll::hincrby),
    data("hlen", 2, coll::hlen),
    data("hexists", 3, coll::hexists),
    write("lpush", -3, coll::lpush),
    write("rpush", -3, coll::rpush),
    write("lpop", -2, coll::lpop),
    write("rpop", -2, coll::rpop),
    data("lrange", 4, coll::lrange),
    data("llen", 2, coll::llen),
    write("sadd", -3, coll::sadd),
    write("srem", -3, coll::srem),
    data("smembers", 2, coll::smembers),
    data("sismember", 3, coll::sismember),
    data("scard", 2, coll::scard),
    session("select", 2, true, Session::Select),
    session("auth", -2, true, Session::Auth),
    session("hello", -1, true, Session::Hello),
    session("quit", -1, true, Session::Quit),
    session("client", -2, true, Session::Client),
    session("info", -1, true, Session::Info),
    session("multi", 1, true, Session::Multi),
    session("exec", 1, true, Session::Exec),
    session("discard", 1, true, Session::Discard),
    session("watch", -2, true, Session::Watch),
    session("unwatch", 1, true, Session::Unwatch),
    session("flushall", -1, false, Session::FlushAll),
    session("blpop", -3, false, Session::BlockingPop(false)),
    session("brpop", -3, false, Session::BlockingPop(true)),
    session("subscribe", -2, true, Session::Subscribe(false)),
    session("psubscribe", -2, true, Session::Subscribe(true)),
    session("unsubscribe", -1, true, Session::Unsubscribe(false)),
    session("punsubscribe", -1, true, Session::Unsubscribe(true)),
    session("publish", 3, true, Session::Publish),
    session("role", 1, true, Session::Role),
    session("sentinel", -2, true, Session::Sentinel),
];

/// The table row for `name` (case-insensitive).
pub(crate) fn lookup(name: &[u8]) -> Option<&'static Spec> {
    TABLE
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Whether `spec` exists on this kind of server: a Sentinel knows only PING, AUTH, HELLO, QUIT,
/// CLIENT, INFO, ROLE, SENTINEL and the pub/sub commands, and only a Sentinel knows SENTINEL.
pub(crate) fn available(spec: &Spec, sentinel: bool) -> bool {
    match spec.kind {
        Kind::Session(Session::Sentinel) => sentinel,
        _ if !sentinel => true,
        Kind::Data(_) => spec.name == "ping",
        Kind::Session(s) => matches!(
            s,
            Session::Auth
                | Session::Hello
                | Session::Quit
                | Session::Client
                | Session::Info
                | Session::Role
                | Session::Subscribe(_)
                | Session::Unsubscribe(_)
                | Session::Publish
        ),
    }
}

/// Whether `argc` arguments (the name included) fit `spec`'s arity.
pub(crate) fn arity_ok(spec: &Spec, argc: usize) -> bool {
    let argc = i64::try_from(argc).unwrap_or(i64::MAX);
    let arity = i64::from(spec.arity);
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

fn del(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let n = args[1..].iter().filter(|k| db.remove(k, now)).count();
    Ok(Reply::Int(n as i64))
}

fn exists(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let n = args[1..]
        .iter()
        .filter(|k| db.get(k, now).is_some())
        .count();
    Ok(Reply::Int(n as i64))
}

fn expire(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let secs = int_arg(&args[2])?;
    let ms = secs
        .checked_mul(1000)
        .ok_or_else(|| Reply::err("ERR invalid expire time in 'expire' command"))?;
    set_expiry(db, now, args, ms, "expire")
}

fn pexpire(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let ms = int_arg(&args[2])?;
    set_expiry(db, now, args, ms, "pexpire")
}

/// EXPIRE/PEXPIRE with Redis 7's NX | XX | GT | LT options.
fn set_expiry(db: &mut Db, now: Instant, args: &[Vec<u8>], ms: i64, cmd: &str) -> Res {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        match () {
            () if is(opt, "nx") => nx = true,
            () if is(opt, "xx") => xx = true,
            () if is(opt, "gt") => gt = true,
            () if is(opt, "lt") => lt = true,
            () => {
                let opt = String::from_utf8_lossy(opt);
                return Err(Reply::err(format!("ERR Unsupported option {opt}")));
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Reply::err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(Reply::err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let key = &args[1];
    let new = if ms <= 0 {
        None
    } else {
        let at = deadline(now, ms)
            .ok_or_else(|| Reply::err(format!("ERR invalid expire time in '{cmd}' command")))?;
        Some(at)
    };
    let Some(entry) = db.get_mut(key, now) else {
        return Ok(Reply::Int(0));
    };
    let current = entry.expires;
    // A deadline in the past is "now", which is before every live deadline.
    let new_at = new.unwrap_or(now);
    let allowed = match current {
        _ if nx => current.is_none(),
        None => !xx && !gt,
        Some(cur) => (!gt || new_at > cur) && (!lt || new_at < cur),
    };
    if !allowed {
        return Ok(Reply::Int(0));
    }
    match new {
        Some(at) => {
            entry.expires = Some(at);
            db.touch(key);
        }
        None => {
            db.remove(key, now);
        }
    }
    Ok(Reply::Int(1))
}

fn remaining_ms(db: &mut Db, now: Instant, key: &[u8]) -> i64 {
    match db.get(key, now) {
        None => -2,
        Some(e) => match e.expires {
            None => -1,
            Some(at) => {
                i64::try_from(at.saturating_duration_since(now).as_millis()).unwrap_or(i64::MAX)
            }
        },
    }
}

fn ttl(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let ms = remaining_ms(db, now, &args[1]);
    Ok(Reply::Int(if ms < 0 { ms } else { (ms + 500) / 1000 }))
}

fn pttl(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    Ok(Reply::Int(remaining_ms(db, now, &args[1])))
}

fn type_(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let name = db
        .get(&args[1], now)
        .map_or("none", |e| e.value.type_name());
    Ok(Reply::Status(name.into()))
}

fn keys(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let found = db.keys(now).into_iter().filter(|k| glob_match(&args[1], k));
    Ok(Reply::Array(found.map(Reply::Bulk).collect()))
}

fn scan(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let cursor = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Reply::err("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut kind) = (None, 10usize, None);
    let mut opts = args[2..].iter();
    while let Some(opt) = opts.next() {
        let value = opts.next().ok_or_else(|| Reply::err(SYNTAX))?;
        match () {
            () if is(opt, "match") => pattern = Some(value.clone()),
            () if is(opt, "type") => kind = Some(value.to_ascii_lowercase()),
            () if is(opt, "count") => {
                let n = int_arg(value)?;
                if n < 1 {
                    return Err(Reply::err(SYNTAX));
                }
                count = usize::try_from(n).unwrap_or(usize::MAX);
            }
            () => return Err(Reply::err(SYNTAX)),
        }
    }
    let (next, keys) = db.scan(cursor, count, now);
    let keys = keys.into_iter().filter(|k| {
        pattern.as_ref().is_none_or(|p| glob_match(p, k))
            && kind.as_ref().is_none_or(|t| {
                db.get(k, now)
                    .is_some_and(|e| e.value.type_name().as_bytes() == t.as_slice())
            })
    });
    let keys: Vec<Reply> = keys.map(Reply::Bulk).collect();
    Ok(Reply::Array(vec![
        Reply::bulk(next.to_string()),
        Reply::Array(keys),
    ]))
}

fn dbsize(db: &mut Db, now: Instant, _: &[Vec<u8>]) -> Res {
    Ok(Reply::Int(db.len(now) as i64))
}

fn flushdb(db: &mut Db, _: Instant, args: &[Vec<u8>]) -> Res {
    match &args[1..] {
        [] => {}
        [mode] if is(mode, "async") || is(mode, "sync") => {}
        _ => return Err(Reply::err(SYNTAX)),
    }
    db.flush();
    Ok(Reply::ok())
}

fn ping(_: &mut Db, _: Instant, args: &[Vec<u8>]) -> Res {
    match &args[1..] {
        [] => Ok(Reply::Status("PONG".into())),
        [msg] => Ok(Reply::Bulk(msg.clone())),
        _ => Err(arity_error("ping")),
    }
}

fn echo(_: &mut Db, _: Instant, args: &[Vec<u8>]) -> Res {
    Ok(Reply::Bulk(args[1].clone()))
}
