//! What every simulated command handler shares: its result type, the common error texts and
//! the argument parsers (so the handlers do not depend on the command table, nor it on them
//! but one way).

use std::time::{Duration, Instant};

use super::keyspace::Db;
use super::resp::{parse_i64, Reply};

/// The result of a data command: the reply, success or error alike (`Err` lets `?` return early).
pub(crate) type Res = Result<Reply, Reply>;

/// A command that only needs the selected keyspace and the time.
pub(crate) type DataFn = fn(&mut Db, Instant, &[Vec<u8>]) -> Res;

/// `WRONGTYPE` error text.
pub(crate) const WRONGTYPE: &str =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
/// The error text for an argument that should be an integer.
pub(crate) const NOT_INT: &str = "ERR value is not an integer or out of range";
/// The generic syntax error text.
pub(crate) const SYNTAX: &str = "ERR syntax error";

/// `-ERR wrong number of arguments for '<name>' command`.
pub(crate) fn arity_error(name: &str) -> Reply {
    Reply::err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Parses an integer argument, or the Redis error for it.
pub(crate) fn int_arg(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(|| Reply::err(NOT_INT))
}

/// `now + ms`, or `None` when that is not a representable instant.
pub(crate) fn deadline(now: Instant, ms: i64) -> Option<Instant> {
    now.checked_add(Duration::from_millis(u64::try_from(ms).ok()?))
}

/// Whether two arguments are equal ignoring ASCII case (option names).
pub(crate) fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// Splits `"host:port"` (or `"[v6 address]:port"`) at its last colon; the port is empty when
/// there is no colon.
pub(crate) fn split_addr(addr: &str) -> (&str, &str) {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, ""));
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (host, port)
}
