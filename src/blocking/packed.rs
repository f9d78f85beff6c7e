//! Turns packed command bytes (what redis-rs's sync `ConnectionLike` receives) back into
//! [`redis::Cmd`]s, so the blocking API can run them through the async, policy-aware path.
//!
//! redis-rs packs every command as a RESP array of bulk strings: `*N\r\n` then, per argument,
//! `$len\r\n<bytes>\r\n`. Anything else (inline commands, other RESP types) is refused.

use redis::{Cmd, Pipeline};

/// Why packed bytes could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) String);

fn line(bytes: &[u8], at: &mut usize, what: char) -> Result<usize, Malformed> {
    let rest = &bytes[*at..];
    if rest.first() != Some(&(what as u8)) {
        return Err(Malformed(format!(
            "expected `{what}` at byte {}, found {:?}",
            *at,
            rest.first().map(|b| *b as char)
        )));
    }
    let end = rest
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or_else(|| Malformed(format!("unterminated `{what}` header at byte {}", *at)))?;
    let digits = std::str::from_utf8(&rest[1..end])
        .ok()
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| Malformed(format!("bad `{what}` length at byte {}", *at)))?;
    let n = digits
        .parse::<usize>()
        .map_err(|_| Malformed(format!("`{what}` length out of range at byte {}", *at)))?;
    *at += end + 2;
    Ok(n)
}

/// Parses every command in `bytes`.
pub(crate) fn parse_commands(bytes: &[u8]) -> Result<Vec<Cmd>, Malformed> {
    let mut at = 0;
    let mut cmds = Vec::new();
    while at < bytes.len() {
        let argc = line(bytes, &mut at, '*')?;
        if argc == 0 {
            return Err(Malformed("empty command".into()));
        }
        let mut cmd = Cmd::new();
        for _ in 0..argc {
            let len = line(bytes, &mut at, '$')?;
            let end = at
                .checked_add(len)
                .filter(|end| end + 2 <= bytes.len())
                .ok_or_else(|| Malformed(format!("truncated argument at byte {at}")))?;
            if &bytes[end..end + 2] != b"\r\n" {
                return Err(Malformed(format!("argument not terminated at byte {end}")));
            }
            cmd.arg(&bytes[at..end]);
            at = end + 2;
        }
        cmds.push(cmd);
    }
    Ok(cmds)
}

/// Parses exactly one command.
pub(crate) fn parse_command(bytes: &[u8]) -> Result<Cmd, Malformed> {
    let mut cmds = parse_commands(bytes)?;
    match cmds.len() {
        1 => Ok(cmds.remove(0)),
        n => Err(Malformed(format!("expected one command, found {n}"))),
    }
}

fn is_bare(cmd: &Cmd, name: &[u8]) -> bool {
    let mut args = cmd.args_iter();
    matches!(args.next(), Some(redis::Arg::Simple(a)) if a.eq_ignore_ascii_case(name))
        && args.next().is_none()
}

/// Parses a packed pipeline. `MULTI … EXEC` around the commands (how redis-rs packs an atomic
/// pipeline) becomes an atomic pipeline again, which packs to the same bytes and which a shared
/// connection accepts as one unit.
pub(crate) fn parse_pipeline(bytes: &[u8]) -> Result<Pipeline, Malformed> {
    let mut cmds = parse_commands(bytes)?;
    let mut pipe = Pipeline::with_capacity(cmds.len());
    let n = cmds.len();
    if n >= 2 && is_bare(&cmds[0], b"MULTI") && is_bare(&cmds[n - 1], b"EXEC") {
        pipe.atomic();
        cmds.pop();
        cmds.remove(0);
    }
    for cmd in cmds {
        pipe.add_command(cmd);
    }
    Ok(pipe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_command_round_trips() {
        let mut cmd = redis::cmd("SET");
        cmd.arg("key")
            .arg(b"va\r\nl\0ue".as_slice())
            .arg(42)
            .arg("");
        let back = parse_command(&cmd.get_packed_command()).unwrap();
        assert_eq!(back.get_packed_command(), cmd.get_packed_command());
    }

    #[test]
    fn pipelines_round_trip_plain_and_atomic() {
        let mut p = redis::pipe();
        p.set("a", 1).incr("n", 2).get("a");
        let back = parse_pipeline(&p.get_packed_pipeline()).unwrap();
        assert!(!back.is_transaction());
        assert_eq!(back.len(), 3);
        assert_eq!(back.get_packed_pipeline(), p.get_packed_pipeline());
        p.atomic();
        let back = parse_pipeline(&p.get_packed_pipeline()).unwrap();
        assert!(back.is_transaction());
        assert_eq!(back.len(), 3);
        assert_eq!(back.get_packed_pipeline(), p.get_packed_pipeline());
    }

    #[test]
    fn multi_with_arguments_is_not_taken_for_a_transaction() {
        let mut p = redis::pipe();
        p.cmd("MULTI").arg("x").cmd("EXEC");
        let back = parse_pipeline(&p.get_packed_pipeline()).unwrap();
        assert!(!back.is_transaction());
        assert_eq!(back.len(), 2);
    }

    #[test]
    fn malformed_input_is_refused_not_guessed() {
        for bad in [
            &b"PING\r\n"[..],
            b"*1\r\n$4\r\nPIN",
            b"*1\r\n$4\r\nPINGXX",
            b"*2\r\n$4\r\nPING\r\n",
            b"*0\r\n",
            b"*x\r\n",
            b"*1\r\n:4\r\n",
            b"*1\r\n$99999999999999999999999\r\n",
            b"*1\r\n$18446744073709551615\r\n",
        ] {
            assert!(
                parse_commands(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let two = b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n";
        assert_eq!(parse_commands(two).unwrap().len(), 2);
        assert!(parse_command(two).is_err());
        assert!(parse_command(b"").is_err());
    }

    proptest! {
        #[test]
        fn any_arguments_round_trip(args in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..40), 1..8)) {
            let mut cmd = Cmd::new();
            for a in &args {
                cmd.arg(a.as_slice());
            }
            let packed = cmd.get_packed_command();
            let back = parse_command(&packed).unwrap();
            prop_assert_eq!(back.get_packed_command(), packed);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_commands(&bytes);
        }
    }
}
