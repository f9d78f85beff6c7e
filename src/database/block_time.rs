//! How long a request may block on the server: the block time of `BLPOP`, `XREAD … BLOCK`,
//! `WAIT` and the other blocking commands, read from their arguments.
//!
//! Their response deadline is their block time plus the response timeout; a block time of `0`
//! blocks until data arrives, so such a request has no response deadline.

use std::time::Duration;

use redis::{Arg, Cmd};

use super::request::CommandKind;

/// How long a request may block on the server before it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockTime {
    /// Not a blocking command: answered at once.
    None,
    /// Blocks up to this long, then answers (a nil at its timeout is a success).
    For(Duration),
    /// Blocks until data arrives (a block time of `0`).
    Forever,
}

impl BlockTime {
    /// The block time of a request; a pipeline's commands block one after the other.
    pub(crate) fn of(req: CommandKind<'_>) -> BlockTime {
        match req {
            CommandKind::Single(cmd) => of_command(cmd),
            CommandKind::Pipeline(p, _, _) => p
                .cmd_iter()
                .map(of_command)
                .fold(BlockTime::None, BlockTime::then),
        }
    }

    /// This block followed by `next`.
    fn then(self, next: BlockTime) -> BlockTime {
        match (self, next) {
            (BlockTime::Forever, _) | (_, BlockTime::Forever) => BlockTime::Forever,
            (BlockTime::None, other) | (other, BlockTime::None) => other,
            (BlockTime::For(a), BlockTime::For(b)) => BlockTime::For(a.saturating_add(b)),
        }
    }
}

/// Where a command keeps its block time, and in which unit.
enum Unit {
    Seconds,
    Millis,
}

fn of_command(cmd: &Cmd) -> BlockTime {
    // Every blocking command starts with B, W or X: most commands are passed over without a
    // look at their other arguments (and without collecting them).
    match cmd.args_iter().next() {
        Some(Arg::Simple([b'B' | b'b' | b'W' | b'w' | b'X' | b'x', ..])) => {}
        _ => return BlockTime::None,
    }
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|a| match a {
            Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    let Some((name, rest)) = args.split_first() else {
        return BlockTime::None;
    };
    let mut upper = [0u8; 12];
    let Some(name) = upper.get_mut(..name.len()).map(|out| {
        out.copy_from_slice(name);
        out.make_ascii_uppercase();
        &*out
    }) else {
        return BlockTime::None;
    };
    let (arg, unit) = match name {
        b"BLPOP" | b"BRPOP" | b"BRPOPLPUSH" | b"BLMOVE" | b"BZPOPMIN" | b"BZPOPMAX" => {
            (rest.last(), Unit::Seconds)
        }
        b"BLMPOP" | b"BZMPOP" => (rest.first(), Unit::Seconds),
        b"WAIT" | b"WAITAOF" => (rest.last(), Unit::Millis),
        b"XREAD" | b"XREADGROUP" => {
            // `BLOCK ms` comes before `STREAMS`; a key named "block" after it is not an option.
            let options = rest
                .iter()
                .take_while(|a| !a.eq_ignore_ascii_case(b"STREAMS"));
            let mut after_block = options.skip_while(|a| !a.eq_ignore_ascii_case(b"BLOCK"));
            if after_block.next().is_none() {
                return BlockTime::None;
            }
            (after_block.next(), Unit::Millis)
        }
        _ => return BlockTime::None,
    };
    // An unreadable block time is refused by the server at once: it does not block.
    let Some(value) = arg
        .and_then(|a| std::str::from_utf8(a).ok())
        .and_then(|t| t.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    else {
        return BlockTime::None;
    };
    if value == 0.0 {
        return BlockTime::Forever;
    }
    let secs = match unit {
        Unit::Seconds => value,
        Unit::Millis => value / 1000.0,
    };
    // Beyond a century is forever for any caller.
    Duration::try_from_secs_f64(secs).map_or(BlockTime::Forever, BlockTime::For)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(words: &[&str]) -> Cmd {
        let mut c = redis::cmd(words[0]);
        for w in &words[1..] {
            c.arg(*w);
        }
        c
    }

    fn block(words: &[&str]) -> BlockTime {
        BlockTime::of(CommandKind::Single(&cmd(words)))
    }

    const fn secs(s: u64) -> BlockTime {
        BlockTime::For(Duration::from_secs(s))
    }

    #[test]
    fn every_blocking_command_names_its_block_time() {
        assert_eq!(block(&["BLPOP", "a", "b", "3"]), secs(3));
        assert_eq!(
            block(&["brpop", "a", "0.5"]),
            BlockTime::For(Duration::from_millis(500))
        );
        assert_eq!(block(&["BRPOPLPUSH", "a", "b", "2"]), secs(2));
        assert_eq!(block(&["BLMOVE", "a", "b", "LEFT", "RIGHT", "4"]), secs(4));
        assert_eq!(block(&["BZPOPMIN", "z", "5"]), secs(5));
        assert_eq!(block(&["BZPOPMAX", "z", "6"]), secs(6));
        assert_eq!(block(&["BLMPOP", "7", "1", "a", "LEFT"]), secs(7));
        assert_eq!(block(&["BZMPOP", "8", "1", "z", "MIN"]), secs(8));
        assert_eq!(
            block(&["WAIT", "1", "1500"]),
            BlockTime::For(Duration::from_millis(1500))
        );
        assert_eq!(block(&["WAITAOF", "1", "0", "9000"]), secs(9));
        assert_eq!(
            block(&["XREAD", "COUNT", "2", "BLOCK", "2500", "STREAMS", "s", "$"]),
            BlockTime::For(Duration::from_millis(2500))
        );
        assert_eq!(
            block(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "block",
                "0",
                "STREAMS",
                "s",
                ">"
            ]),
            BlockTime::Forever
        );
        assert_eq!(block(&["BLPOP", "a", "0"]), BlockTime::Forever);
        assert_eq!(block(&["WAIT", "0", "0"]), BlockTime::Forever);
    }

    #[test]
    fn other_commands_and_unreadable_times_do_not_block() {
        assert_eq!(block(&["GET", "k"]), BlockTime::None);
        assert_eq!(block(&["XREAD", "STREAMS", "block", "5"]), BlockTime::None);
        assert_eq!(
            block(&["XREAD", "COUNT", "1", "STREAMS", "s", "0"]),
            BlockTime::None
        );
        assert_eq!(block(&["BLPOP", "a", "soon"]), BlockTime::None);
        assert_eq!(block(&["BLPOP", "a", "-1"]), BlockTime::None);
        assert_eq!(block(&["BLPOP"]), BlockTime::None);
        assert_eq!(block(&["BLPOP", "a", "1e300"]), BlockTime::Forever);
    }

    #[test]
    fn a_pipelines_blocks_add_up_and_forever_wins() {
        let mut p = redis::pipe();
        p.cmd("BLPOP")
            .arg("a")
            .arg(2)
            .cmd("GET")
            .arg("k")
            .cmd("BRPOP")
            .arg("b")
            .arg(3);
        assert_eq!(BlockTime::of(CommandKind::Pipeline(&p, 0, 3)), secs(5));
        p.cmd("BLPOP").arg("c").arg(0);
        assert_eq!(
            BlockTime::of(CommandKind::Pipeline(&p, 0, 4)),
            BlockTime::Forever
        );
        let mut plain = redis::pipe();
        plain.get("a").set("b", 1);
        assert_eq!(
            BlockTime::of(CommandKind::Pipeline(&plain, 0, 2)),
            BlockTime::None
        );
    }
}
