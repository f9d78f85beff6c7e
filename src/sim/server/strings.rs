//! String commands of the simulated server: GET, SET and its options, MGET, MSET, INCR…, APPEND.

use std::time::Instant;

use super::args::{arity_error, deadline, int_arg, is, Res, NOT_INT, SYNTAX, WRONGTYPE};
use super::keyspace::{Db, Value};
use super::resp::{parse_i64, Reply};

/// The string at `key`: `Ok(None)` when missing, `Err(WRONGTYPE)` when another type.
fn string<'a>(db: &'a mut Db, key: &[u8], now: Instant) -> Result<Option<&'a [u8]>, Reply> {
    match db.get(key, now) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Str(s) => Ok(Some(s)),
            _ => Err(Reply::err(WRONGTYPE)),
        },
    }
}

pub(crate) fn get(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    Ok(string(db, &args[1], now)?.map_or(Reply::Nil, Reply::bulk))
}

/// `SET key value [NX | XX] [GET] [EX seconds | PX milliseconds | KEEPTTL]`.
pub(crate) fn set(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut ttl_ms: Option<i64> = None;
    let mut i = 3;
    while i < args.len() {
        let opt = &args[i];
        let unit = match () {
            () if is(opt, "nx") && !xx => {
                nx = true;
                None
            }
            () if is(opt, "xx") && !nx => {
                xx = true;
                None
            }
            () if is(opt, "get") => {
                get = true;
                None
            }
            () if is(opt, "keepttl") && ttl_ms.is_none() => {
                keepttl = true;
                None
            }
            () if is(opt, "ex") && !keepttl && ttl_ms.is_none() => Some(1000),
            () if is(opt, "px") && !keepttl && ttl_ms.is_none() => Some(1),
            () => return Err(Reply::err(SYNTAX)),
        };
        if let Some(unit) = unit {
            i += 1;
            let value = args.get(i).ok_or_else(|| Reply::err(SYNTAX))?;
            let n = int_arg(value)?;
            let ms = n.checked_mul(unit).filter(|ms| *ms > 0);
            ttl_ms = Some(ms.ok_or_else(|| invalid_expire("set"))?);
        }
        i += 1;
    }
    let key = &args[1];
    let expires = match ttl_ms {
        Some(ms) => Some(deadline(now, ms).ok_or_else(|| invalid_expire("set"))?),
        None => None,
    };
    let old = if get {
        string(db, key, now)?.map(<[u8]>::to_vec)
    } else {
        None
    };
    let existing = db.get(key, now);
    let exists = existing.is_some();
    let kept = existing.and_then(|e| e.expires);
    let apply = !((nx && exists) || (xx && !exists));
    if apply {
        let expires = if keepttl { kept } else { expires };
        db.set(key, Value::Str(args[2].clone()), expires, now);
    }
    Ok(match (get, apply) {
        (true, _) => old.map_or(Reply::Nil, Reply::Bulk),
        (false, true) => Reply::ok(),
        (false, false) => Reply::Nil,
    })
}

fn invalid_expire(cmd: &str) -> Reply {
    Reply::err(format!("ERR invalid expire time in '{cmd}' command"))
}

fn set_with_ttl(db: &mut Db, now: Instant, args: &[Vec<u8>], unit: i64, cmd: &str) -> Res {
    let n = int_arg(&args[2])?;
    let ms = n
        .checked_mul(unit)
        .filter(|ms| *ms > 0)
        .ok_or_else(|| invalid_expire(cmd))?;
    let at = deadline(now, ms).ok_or_else(|| invalid_expire(cmd))?;
    db.set(&args[1], Value::Str(args[3].clone()), Some(at), now);
    Ok(Reply::ok())
}

pub(crate) fn setex(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    set_with_ttl(db, now, args, 1000, "setex")
}

pub(crate) fn psetex(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    set_with_ttl(db, now, args, 1, "psetex")
}

pub(crate) fn mget(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let values = args[1..].iter().map(|k| match string(db, k, now) {
        Ok(Some(s)) => Reply::bulk(s),
        _ => Reply::Nil,
    });
    Ok(Reply::Array(values.collect()))
}

pub(crate) fn mset(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    if args.len().is_multiple_of(2) {
        return Err(arity_error("mset"));
    }
    for pair in args[1..].chunks_exact(2) {
        db.set(&pair[0], Value::Str(pair[1].clone()), None, now);
    }
    Ok(Reply::ok())
}

fn incr_by(db: &mut Db, now: Instant, key: &[u8], delta: i64) -> Res {
    let current = match string(db, key, now)? {
        None => 0,
        Some(s) => parse_i64(s).ok_or_else(|| Reply::err(NOT_INT))?,
    };
    let new = current
        .checked_add(delta)
        .ok_or_else(|| Reply::err("ERR increment or decrement would overflow"))?;
    let expires = db.get(key, now).and_then(|e| e.expires);
    db.set(key, Value::Str(new.to_string().into_bytes()), expires, now);
    Ok(Reply::Int(new))
}

pub(crate) fn incr(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    incr_by(db, now, &args[1], 1)
}

pub(crate) fn decr(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    incr_by(db, now, &args[1], -1)
}

pub(crate) fn incrby(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let delta = int_arg(&args[2])?;
    incr_by(db, now, &args[1], delta)
}

pub(crate) fn decrby(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let delta = int_arg(&args[2])?
        .checked_neg()
        .ok_or_else(|| Reply::err("ERR decrement would overflow"))?;
    incr_by(db, now, &args[1], delta)
}

pub(crate) fn append(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let key = &args[1];
    let mut value = string(db, key, now)?
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    value.extend_from_slice(&args[2]);
    let len = value.len();
    let expires = db.get(key, now).and_then(|e| e.expires);
    db.set(key, Value::Str(value), expires, now);
    Ok(Reply::Int(len as i64))
}

pub(crate) fn strlen(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    Ok(Reply::Int(
        string(db, &args[1], now)?.map_or(0, <[u8]>::len) as i64,
    ))
}
