//! Hash, list and set commands of the simulated server.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use super::args::{arity_error, int_arg, Res, WRONGTYPE};
use super::keyspace::{Db, Value};
use super::resp::{parse_i64, Reply};

type Hash = BTreeMap<Vec<u8>, Vec<u8>>;
type List = VecDeque<Vec<u8>>;
type Set = BTreeSet<Vec<u8>>;

fn as_hash(v: &mut Value) -> Option<&mut Hash> {
    match v {
        Value::Hash(h) => Some(h),
        _ => None,
    }
}

fn as_list(v: &mut Value) -> Option<&mut List> {
    match v {
        Value::List(l) => Some(l),
        _ => None,
    }
}

fn as_set(v: &mut Value) -> Option<&mut Set> {
    match v {
        Value::Set(s) => Some(s),
        _ => None,
    }
}

/// The collection at `key` for writing, created empty first when `create` is given and the key is
/// missing. `Err(WRONGTYPE)` when the key holds another type.
fn open<'a, T>(
    db: &'a mut Db,
    key: &[u8],
    now: Instant,
    create: Option<Value>,
    pick: fn(&mut Value) -> Option<&mut T>,
) -> Result<Option<&'a mut T>, Reply> {
    if let Some(empty) = create {
        if db.get(key, now).is_none() {
            db.set(key, empty, None, now);
        }
    }
    match db.get_mut(key, now) {
        None => Ok(None),
        Some(e) => pick(&mut e.value)
            .map(Some)
            .ok_or_else(|| Reply::err(WRONGTYPE)),
    }
}

/// Records a write to `key` and drops it if the collection became empty.
fn written(db: &mut Db, key: &[u8]) {
    db.touch(key);
    db.remove_if_empty(key);
}

pub(crate) fn hset(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    if !args.len().is_multiple_of(2) {
        return Err(arity_error("hset"));
    }
    let key = &args[1];
    let Some(h) = open(db, key, now, Some(Value::Hash(Hash::new())), as_hash)? else {
        return Ok(Reply::Int(0));
    };
    let mut added = 0;
    for pair in args[2..].chunks_exact(2) {
        if h.insert(pair[0].clone(), pair[1].clone()).is_none() {
            added += 1;
        }
    }
    written(db, key);
    Ok(Reply::Int(added))
}

pub(crate) fn hget(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let h = open(db, &args[1], now, None, as_hash)?;
    Ok(h.and_then(|h| h.get(&args[2]))
        .map_or(Reply::Nil, |v| Reply::Bulk(v.clone())))
}

pub(crate) fn hgetall(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let h = open(db, &args[1], now, None, as_hash)?;
    let flat = h
        .into_iter()
        .flat_map(|h| h.iter())
        .flat_map(|(k, v)| [Reply::Bulk(k.clone()), Reply::Bulk(v.clone())]);
    Ok(Reply::Array(flat.collect()))
}

pub(crate) fn hdel(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let key = &args[1];
    let Some(h) = open(db, key, now, None, as_hash)? else {
        return Ok(Reply::Int(0));
    };
    let removed = args[2..].iter().filter(|f| h.remove(*f).is_some()).count();
    if removed > 0 {
        written(db, key);
    }
    Ok(Reply::Int(removed as i64))
}

pub(crate) fn hincrby(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let delta = int_arg(&args[3])?;
    let key = &args[1];
    let h = open(db, key, now, Some(Value::Hash(Hash::new())), as_hash)?;
    let Some(h) = h else {
        return Ok(Reply::Int(0));
    };
    let current = match h.get(&args[2]) {
        None => 0,
        Some(v) => parse_i64(v).ok_or_else(|| Reply::err("ERR hash value is not an integer"))?,
    };
    let new = current
        .checked_add(delta)
        .ok_or_else(|| Reply::err("ERR increment or decrement would overflow"))?;
    h.insert(args[2].clone(), new.to_string().into_bytes());
    written(db, key);
    Ok(Reply::Int(new))
}

pub(crate) fn hlen(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let h = open(db, &args[1], now, None, as_hash)?;
    Ok(Reply::Int(h.map_or(0, |h| h.len()) as i64))
}

pub(crate) fn hexists(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let h = open(db, &args[1], now, None, as_hash)?;
    Ok(Reply::Int(i64::from(
        h.is_some_and(|h| h.contains_key(&args[2])),
    )))
}

fn push(db: &mut Db, now: Instant, args: &[Vec<u8>], left: bool) -> Res {
    let key = &args[1];
    let Some(l) = open(db, key, now, Some(Value::List(List::new())), as_list)? else {
        return Ok(Reply::Int(0));
    };
    for v in &args[2..] {
        if left {
            l.push_front(v.clone());
        } else {
            l.push_back(v.clone());
        }
    }
    let len = l.len();
    written(db, key);
    Ok(Reply::Int(len as i64))
}

pub(crate) fn lpush(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    push(db, now, args, true)
}

pub(crate) fn rpush(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    push(db, now, args, false)
}

/// `LPOP key [count]` / `RPOP key [count]`.
fn pop(db: &mut Db, now: Instant, args: &[Vec<u8>], left: bool, name: &str) -> Res {
    let count = match &args[2..] {
        [] => None,
        [n] => {
            let n = int_arg(n)?;
            let n = usize::try_from(n)
                .map_err(|_| Reply::err("ERR value is out of range, must be positive"))?;
            Some(n)
        }
        _ => return Err(arity_error(name)),
    };
    let key = &args[1];
    let Some(l) = open(db, key, now, None, as_list)? else {
        return Ok(if count.is_some() {
            Reply::NilArray
        } else {
            Reply::Nil
        });
    };
    let mut popped = Vec::new();
    for _ in 0..count.unwrap_or(1).min(l.len()) {
        let v = if left { l.pop_front() } else { l.pop_back() };
        popped.extend(v.map(Reply::Bulk));
    }
    if !popped.is_empty() {
        written(db, key);
    }
    Ok(match count {
        Some(_) => Reply::Array(popped),
        None => popped.pop().unwrap_or(Reply::Nil),
    })
}

pub(crate) fn lpop(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    pop(db, now, args, true, "lpop")
}

pub(crate) fn rpop(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    pop(db, now, args, false, "rpop")
}

pub(crate) fn lrange(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let (start, stop) = (int_arg(&args[2])?, int_arg(&args[3])?);
    let Some(l) = open(db, &args[1], now, None, as_list)? else {
        return Ok(Reply::Array(vec![]));
    };
    let len = l.len() as i64;
    let norm = |i: i64| if i < 0 { i.saturating_add(len) } else { i };
    let start = norm(start).max(0);
    let stop = norm(stop).min(len - 1);
    if start > stop || start >= len {
        return Ok(Reply::Array(vec![]));
    }
    let items = l.range(start as usize..=stop as usize).cloned();
    Ok(Reply::Array(items.map(Reply::Bulk).collect()))
}

pub(crate) fn llen(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let l = open(db, &args[1], now, None, as_list)?;
    Ok(Reply::Int(l.map_or(0, |l| l.len()) as i64))
}

pub(crate) fn sadd(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let key = &args[1];
    let Some(s) = open(db, key, now, Some(Value::Set(Set::new())), as_set)? else {
        return Ok(Reply::Int(0));
    };
    let added = args[2..].iter().filter(|m| s.insert((*m).clone())).count();
    written(db, key);
    Ok(Reply::Int(added as i64))
}

pub(crate) fn srem(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let key = &args[1];
    let Some(s) = open(db, key, now, None, as_set)? else {
        return Ok(Reply::Int(0));
    };
    let removed = args[2..].iter().filter(|m| s.remove(*m)).count();
    if removed > 0 {
        written(db, key);
    }
    Ok(Reply::Int(removed as i64))
}

pub(crate) fn smembers(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let s = open(db, &args[1], now, None, as_set)?;
    let members = s.into_iter().flat_map(|s| s.iter().cloned());
    Ok(Reply::Array(members.map(Reply::Bulk).collect()))
}

pub(crate) fn sismember(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let s = open(db, &args[1], now, None, as_set)?;
    Ok(Reply::Int(i64::from(
        s.is_some_and(|s| s.contains(&args[2])),
    )))
}

pub(crate) fn scard(db: &mut Db, now: Instant, args: &[Vec<u8>]) -> Res {
    let s = open(db, &args[1], now, None, as_set)?;
    Ok(Reply::Int(s.map_or(0, |s| s.len()) as i64))
}
