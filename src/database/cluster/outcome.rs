//! How the cluster backend reads a send's result ([`ClusterOutcome`]) and a request
//! (refused on a cluster, safe to repeat, split by redis-rs over several nodes).

use redis::cluster_routing::Slot;
use redis::{Cmd, ErrorKind, RedisError, ServerErrorKind};

use crate::database::CommandKind;
use crate::policy::ClusterOutcome;

/// What a failed send came back with. (A reply, error replies like `CROSSSLOT` included, is
/// [`ClusterOutcome::Answered`] without asking.)
pub(crate) fn outcome_of(err: &RedisError) -> ClusterOutcome {
    match err.kind() {
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask) => {
            ClusterOutcome::Redirected
        }
        ErrorKind::Server(
            ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly,
        ) => ClusterOutcome::Refused,
        ErrorKind::ClusterConnectionNotFound => ClusterOutcome::NotSent,
        ErrorKind::Io => ClusterOutcome::Lost,
        _ if err.is_timeout() || err.is_connection_dropped() || err.is_io_error() => {
            ClusterOutcome::Lost
        }
        _ => ClusterOutcome::Answered,
    }
}

/// Whether a send that ended so says nothing about the cluster's health (the breaker is not
/// fed a failure): every outcome but no reply at all.
pub(crate) fn node_answered(outcome: ClusterOutcome) -> bool {
    !matches!(outcome, ClusterOutcome::Lost | ClusterOutcome::NotSent)
}

/// How a request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resend {
    /// Every command only reads: it may run twice (a lost one is sent again).
    pub(crate) repeatable: bool,
    /// One command on one slot: a redirection or refusal means nothing ran. A pipeline or a
    /// command redis-rs splits over several nodes (`MGET`, `DEL`, `MSET` of keys in several
    /// slots) may have run in part: after one it goes again only when `repeatable`.
    pub(crate) atomic_refusal: bool,
}

impl Resend {
    /// How `req` may be sent again.
    pub(crate) fn of(req: CommandKind<'_>) -> Self {
        match req {
            CommandKind::Single(cmd) => Self {
                repeatable: reads_only(cmd),
                atomic_refusal: !is_split(cmd),
            },
            CommandKind::Pipeline(p, _, _) => Self {
                repeatable: p.cmd_iter().all(reads_only),
                atomic_refusal: false,
            },
        }
    }

    /// `outcome` as the retry policy must see it: a redirection or refusal of a request that
    /// may have run in part counts as lost.
    pub(crate) fn adjust(self, outcome: ClusterOutcome) -> ClusterOutcome {
        match outcome {
            ClusterOutcome::Redirected | ClusterOutcome::Refused if !self.atomic_refusal => {
                ClusterOutcome::Lost
            }
            other => other,
        }
    }
}

/// Whether redis-rs may send `cmd` to several nodes: one it sends to every node (`DBSIZE`,
/// `FLUSHALL`, `CONFIG SET`, …; counted by its first word, which errs on the safe side), or a
/// multi-key command (`MGET`, `DEL`, `MSET`, …) whose keys lie in more than one slot.
fn is_split(cmd: &Cmd) -> bool {
    const FAN_OUT: &[&str] = &[
        "ACL",
        "CLIENT",
        "SLOWLOG",
        "CONFIG",
        "SCRIPT",
        "LATENCY",
        "PUBSUB",
        "FUNCTION",
        "MEMORY",
        "DBSIZE",
        "DEBUG",
        "FLUSHALL",
        "FLUSHDB",
        "INFO",
        "KEYS",
        "PING",
        "RANDOMKEY",
        "UNWATCH",
        "WAIT",
        "WAITAOF",
        "FT._LIST",
        "FT._ALIASLIST",
    ];
    const KEYS_ONLY: &[&str] = &["MGET", "DEL", "EXISTS", "UNLINK", "TOUCH", "WATCH"];
    let Some(name) = name_of(cmd) else {
        return false;
    };
    let keys: Vec<&[u8]> = match name.as_str() {
        n if FAN_OUT.contains(&n) => return true,
        n if KEYS_ONLY.contains(&n) => simple_args(cmd).skip(1).collect(),
        "MSET" => simple_args(cmd).skip(1).step_by(2).collect(),
        _ => return false,
    };
    keys.split_first().is_some_and(|(first, rest)| {
        let slot = Slot::for_key(first);
        rest.iter().any(|k| Slot::for_key(k) != slot)
    })
}

/// `cmd`'s arguments that are plain bytes.
fn simple_args(cmd: &Cmd) -> impl Iterator<Item = &[u8]> {
    cmd.args_iter().filter_map(|a| match a {
        redis::Arg::Simple(bytes) => Some(bytes),
        _ => None,
    })
}

/// The first argument of `cmd`, upper-cased, if it is a plain name.
pub(crate) fn name_of(cmd: &Cmd) -> Option<String> {
    simple_args(cmd)
        .next()
        .map(|name| String::from_utf8_lossy(name).to_ascii_uppercase())
}

/// Commands that only read: sending one twice changes nothing.
fn reads_only(cmd: &Cmd) -> bool {
    const READS: &[&str] = &[
        "GET",
        "MGET",
        "GETRANGE",
        "STRLEN",
        "EXISTS",
        "TYPE",
        "TTL",
        "PTTL",
        "EXPIRETIME",
        "PEXPIRETIME",
        "HGET",
        "HMGET",
        "HGETALL",
        "HEXISTS",
        "HLEN",
        "HKEYS",
        "HVALS",
        "HSTRLEN",
        "LRANGE",
        "LLEN",
        "LINDEX",
        "LPOS",
        "SMEMBERS",
        "SISMEMBER",
        "SMISMEMBER",
        "SCARD",
        "SRANDMEMBER",
        "ZRANGE",
        "ZRANGEBYSCORE",
        "ZREVRANGE",
        "ZSCORE",
        "ZMSCORE",
        "ZCARD",
        "ZRANK",
        "ZREVRANK",
        "ZCOUNT",
        "XRANGE",
        "XREVRANGE",
        "XLEN",
        "PING",
        "ECHO",
        "DBSIZE",
        "KEYS",
        "SCAN",
        "SSCAN",
        "HSCAN",
        "ZSCAN",
        "BITCOUNT",
        "GETBIT",
        "PFCOUNT",
        "DUMP",
    ];
    name_of(cmd).is_some_and(|n| READS.contains(&n.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: &str) -> RedisError {
        let v = redis::parse_redis_value(format!("-{code} 3999 127.0.0.1:7001\r\n").as_bytes())
            .unwrap();
        v.extract_error().unwrap_err()
    }

    #[test]
    fn sends_are_read_by_what_came_back() {
        assert_eq!(
            outcome_of(&server_error("MOVED")),
            ClusterOutcome::Redirected
        );
        assert_eq!(outcome_of(&server_error("ASK")), ClusterOutcome::Redirected);
        for code in [
            "TRYAGAIN",
            "CLUSTERDOWN",
            "LOADING",
            "MASTERDOWN",
            "READONLY",
        ] {
            assert_eq!(
                outcome_of(&server_error(code)),
                ClusterOutcome::Refused,
                "{code}"
            );
        }
        assert_eq!(
            outcome_of(&server_error("CROSSSLOT")),
            ClusterOutcome::Answered
        );
        let lost = RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "t"));
        assert_eq!(outcome_of(&lost), ClusterOutcome::Lost);
        assert!(!node_answered(ClusterOutcome::Lost));
        assert!(
            node_answered(ClusterOutcome::Refused),
            "CLUSTERDOWN is no breaker failure"
        );
    }

    #[test]
    fn only_reads_repeat_and_only_single_slot_commands_count_refusals_as_nothing_ran() {
        let get = redis::cmd("GET").arg("k").clone();
        let incr = redis::cmd("INCR").arg("k").clone();
        let split = redis::cmd("DEL").arg("{a}1").arg("{b}2").clone();
        let one = |c: &Cmd| Resend::of(CommandKind::Single(c));
        assert!(one(&get).repeatable && one(&get).atomic_refusal);
        assert!(!one(&incr).repeatable && one(&incr).atomic_refusal);
        assert!(!one(&split).atomic_refusal, "redis-rs splits it over slots");
        assert_eq!(
            one(&split).adjust(ClusterOutcome::Redirected),
            ClusterOutcome::Lost
        );
        assert_eq!(
            one(&incr).adjust(ClusterOutcome::Refused),
            ClusterOutcome::Refused
        );
        let mut p = redis::pipe();
        p.get("a").get("b");
        let reads = Resend::of(CommandKind::Pipeline(&p, 0, 2));
        assert!(reads.repeatable && !reads.atomic_refusal);
        p.incr("a", 1);
        assert!(!Resend::of(CommandKind::Pipeline(&p, 0, 3)).repeatable);
    }
}
