//! RESP2 for the simulated server: an incremental parser of client requests and a reply encoder.
//!
//! The parser reads one request from the front of the connection's input buffer: a multibulk
//! array (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or an inline command (`GET k\r\n`), as Redis accepts
//! both. A buffer cut at any byte answers [`Parse::Incomplete`]; nothing in here panics on any
//! input. Limits and error texts are Redis's own (`networking.c`).

use std::fmt::Write as _;

/// Longest inline request, or count line, Redis buffers before giving up (64 KiB).
const MAX_INLINE: usize = 64 * 1024;
/// Largest multibulk count Redis accepts.
const MAX_MULTIBULK: i64 = 1024 * 1024;
/// Largest bulk length Redis accepts (`proto-max-bulk-len`, 512 MiB).
const MAX_BULK: i64 = 512 * 1024 * 1024;

/// The outcome of parsing the front of an input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parse {
    /// A complete request and how many bytes of the buffer it used (always at least one).
    /// The request may be empty (`*0\r\n`, a blank inline line): the server skips it.
    Request(Vec<Vec<u8>>, usize),
    /// More bytes are needed.
    Incomplete,
    /// The bytes are not RESP: the server answers `-ERR Protocol error: <text>` and closes.
    Error(String),
}

/// Parses one request from the front of `buf`.
pub(crate) fn parse(buf: &[u8]) -> Parse {
    match buf.first() {
        None => Parse::Incomplete,
        Some(b'*') => parse_multibulk(buf),
        Some(_) => parse_inline(buf),
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

/// Redis's `string2ll`: an optional `-`, digits, no leading zeros, no spaces, fits an `i64`.
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if (digits.len() > 1 && digits[0] == b'0') || s == b"-0" {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn parse_multibulk(buf: &[u8]) -> Parse {
    let Some(eol) = find_crlf(buf, 1) else {
        return if buf.len() > MAX_INLINE {
            Parse::Error("too big mbulk count string".into())
        } else {
            Parse::Incomplete
        };
    };
    let count = match parse_i64(&buf[1..eol]) {
        Some(n) if n <= MAX_MULTIBULK => n,
        _ => return Parse::Error("invalid multibulk length".into()),
    };
    let mut pos = eol + 2;
    if count <= 0 {
        return Parse::Request(Vec::new(), pos);
    }
    let mut args = Vec::with_capacity(count.min(64) as usize);
    for _ in 0..count {
        match buf.get(pos) {
            None => return Parse::Incomplete,
            Some(b'$') => {}
            Some(&other) => {
                return Parse::Error(format!("expected '$', got '{}'", printable(other)));
            }
        }
        let Some(eol) = find_crlf(buf, pos + 1) else {
            return if buf.len() - pos > MAX_INLINE {
                Parse::Error("too big bulk count string".into())
            } else {
                Parse::Incomplete
            };
        };
        let len = match parse_i64(&buf[pos + 1..eol]) {
            Some(n) if (0..=MAX_BULK).contains(&n) => n as usize,
            _ => return Parse::Error("invalid bulk length".into()),
        };
        let start = eol + 2;
        let end = start + len;
        // Like Redis, the two bytes after the payload are taken as the CRLF without checking.
        if buf.len() < end + 2 {
            return Parse::Incomplete;
        }
        args.push(buf[start..end].to_vec());
        pos = end + 2;
    }
    Parse::Request(args, pos)
}

fn printable(b: u8) -> char {
    if b.is_ascii_graphic() || b == b' ' {
        b as char
    } else {
        '?'
    }
}

fn parse_inline(buf: &[u8]) -> Parse {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_INLINE {
            Parse::Error("too big inline request".into())
        } else {
            Parse::Incomplete
        };
    };
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match split_args(line) {
        Some(args) => Parse::Request(args, nl + 1),
        None => Parse::Error("unbalanced quotes in request".into()),
    }
}

/// Redis's `sdssplitargs`: whitespace-separated words, `"…"` with C escapes, `'…'` with `\'`.
/// `None` when quotes are unbalanced or a closing quote is not followed by a space.
fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut cur = Vec::new();
        let mut quote: Option<u8> = None;
        loop {
            match (quote, line.get(i).copied()) {
                (Some(_), None) => return None,
                (None, None) => break,
                (None, Some(c)) if c.is_ascii_whitespace() => break,
                (None, Some(c @ (b'"' | b'\''))) => quote = Some(c),
                (None, Some(c)) => cur.push(c),
                (Some(q), Some(c)) if c == q => {
                    if line.get(i + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                        return None;
                    }
                    i += 1;
                    break;
                }
                (Some(b'"'), Some(b'\\')) if i + 1 < line.len() => {
                    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
                    if let (b'x', Some(h), Some(l)) =
                        (line[i + 1], hex(line.get(i + 2)), hex(line.get(i + 3)))
                    {
                        cur.push((h * 16 + l) as u8);
                        i += 3;
                    } else {
                        i += 1;
                        cur.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                    }
                }
                (Some(b'\''), Some(b'\\')) if line.get(i + 1) == Some(&b'\'') => {
                    i += 1;
                    cur.push(b'\'');
                }
                (Some(_), Some(c)) => cur.push(c),
            }
            i += 1;
        }
        args.push(cur);
    }
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+text` (a status such as `OK`).
    Status(String),
    /// `-text`, where the text starts with the error code (`ERR …`, `WRONGTYPE …`).
    Error(String),
    /// `:n`.
    Int(i64),
    /// `$len` and the bytes.
    Bulk(Vec<u8>),
    /// `$-1`.
    Nil,
    /// `*len` and the elements.
    Array(Vec<Reply>),
    /// `*-1` (EXEC aborted by WATCH, LPOP with a count on a missing key).
    NilArray,
    /// RESP3 `_`: the null a RESP3 connection gets where a RESP2 one gets `*-1`.
    Null,
    /// No reply now: the client blocked (its reply is queued when it is served or times out).
    Blocked,
    /// RESP3 `>len` and the elements: a pushed pub/sub frame.
    Push(Vec<Reply>),
    /// RESP3 `%len` and the pairs (the reply to `HELLO 3`).
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// `+OK`.
    pub(crate) fn ok() -> Self {
        Reply::Status("OK".into())
    }

    /// An error reply; `text` starts with the code, e.g. `"ERR syntax error"`.
    pub(crate) fn err(text: impl Into<String>) -> Self {
        Reply::Error(text.into())
    }

    /// A bulk string.
    pub(crate) fn bulk(bytes: impl Into<Vec<u8>>) -> Self {
        Reply::Bulk(bytes.into())
    }

    /// Appends the RESP2 encoding to `out`. Line breaks inside status and error texts become
    /// spaces (as Redis does), so the framing holds whatever the text.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        fn line(out: &mut Vec<u8>, prefix: u8, text: &str) {
            out.push(prefix);
            out.extend(
                text.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
        match self {
            Reply::Status(s) => line(out, b'+', s),
            Reply::Error(s) => line(out, b'-', s),
            Reply::Int(n) => line(out, b':', &n.to_string()),
            Reply::Bulk(b) => {
                line(out, b'$', &b.len().to_string());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
            Reply::Array(items) => {
                line(out, b'*', &items.len().to_string());
                for item in items {
                    item.encode(out);
                }
            }
            Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
            Reply::Null => out.extend_from_slice(b"_\r\n"),
            Reply::Blocked => {}
            Reply::Push(items) => {
                line(out, b'>', &items.len().to_string());
                for item in items {
                    item.encode(out);
                }
            }
            Reply::Map(pairs) => {
                line(out, b'%', &pairs.len().to_string());
                for (k, v) in pairs {
                    k.encode(out);
                    v.encode(out);
                }
            }
        }
    }

    /// The RESP2 encoding as a new buffer.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Quotes up to 128 bytes of each argument the way Redis's "unknown command" error does:
/// `'a' 'b' ` (each followed by a space).
pub(crate) fn quote_args(args: &[Vec<u8>]) -> String {
    let mut s = String::new();
    for arg in args {
        if s.len() >= 128 {
            break;
        }
        let room = 128 - s.len();
        let shown = String::from_utf8_lossy(&arg[..arg.len().min(room)]);
        let _ = write!(s, "'{shown}' ");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A request as clients send it (what `sim::wire::encode_request` does).
    fn encode_request(args: &[&[u8]]) -> Vec<u8> {
        Reply::Array(args.iter().map(|a| Reply::bulk(*a)).collect()).to_bytes()
    }

    /// Feeds `chunks` one after another, parsing every complete request as it becomes available.
    fn feed(chunks: &[&[u8]]) -> Result<Vec<Vec<Vec<u8>>>, String> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                match parse(&buf) {
                    Parse::Request(args, used) => {
                        assert!(used > 0 && used <= buf.len());
                        buf.drain(..used);
                        if !args.is_empty() {
                            out.push(args);
                        }
                    }
                    Parse::Incomplete => break,
                    Parse::Error(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_inline() {
        let got = feed(&[b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\nset a \"b c\"\n"]).unwrap();
        let want: Vec<Vec<Vec<u8>>> = vec![
            vec![b"GET".to_vec(), b"k".to_vec()],
            vec![b"PING".to_vec()],
            vec![b"set".to_vec(), b"a".to_vec(), b"b c".to_vec()],
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn inline_quotes_and_escapes() {
        assert_eq!(
            split_args(br#"a "x\n\x41" 'it\'s'"#),
            Some(vec![b"a".to_vec(), b"x\nA".to_vec(), b"it's".to_vec()])
        );
        assert_eq!(split_args(b"\"open"), None);
        assert_eq!(split_args(b"\"a\"b"), None);
        assert_eq!(split_args(b"   "), Some(vec![]));
    }

    #[test]
    fn protocol_errors_have_redis_texts() {
        assert_eq!(
            parse(b"*x\r\n"),
            Parse::Error("invalid multibulk length".into())
        );
        assert_eq!(
            parse(b"*1\r\n+a\r\n"),
            Parse::Error("expected '$', got '+'".into())
        );
        assert_eq!(
            parse(b"*1\r\n$-5\r\n"),
            Parse::Error("invalid bulk length".into())
        );
        assert_eq!(
            parse(b"\"a\n"),
            Parse::Error("unbalanced quotes in request".into())
        );
        let long = vec![b'a'; MAX_INLINE + 1];
        assert_eq!(parse(&long), Parse::Error("too big inline request".into()));
        assert_eq!(parse(b"*0\r\n"), Parse::Request(vec![], 4));
        assert_eq!(parse(b"*-1\r\n"), Parse::Request(vec![], 5));
    }

    #[test]
    fn integers_are_strict() {
        assert_eq!(parse_i64(b"42"), Some(42));
        assert_eq!(parse_i64(b"-7"), Some(-7));
        assert_eq!(parse_i64(b"0"), Some(0));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"01",
            b"-0",
            b"1.5",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
    }

    #[test]
    fn replies_encode_byte_exact() {
        let r = Reply::Array(vec![
            Reply::ok(),
            Reply::err("ERR a\r\nb"),
            Reply::Int(-3),
            Reply::bulk("hi"),
            Reply::Nil,
            Reply::NilArray,
            Reply::Array(vec![]),
            Reply::Null,
        ]);
        assert_eq!(
            r.to_bytes(),
            b"*8\r\n+OK\r\n-ERR a  b\r\n:-3\r\n$2\r\nhi\r\n$-1\r\n*-1\r\n*0\r\n_\r\n"
        );
        let push = Reply::Push(vec![
            Reply::bulk("message"),
            Reply::bulk("c"),
            Reply::bulk("m"),
        ]);
        assert_eq!(
            push.to_bytes(),
            b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n"
        );
        let map = Reply::Map(vec![(Reply::bulk("proto"), Reply::Int(3))]);
        assert_eq!(map.to_bytes(), b"%1\r\n$5\r\nproto\r\n:3\r\n");
    }

    #[test]
    fn quote_args_matches_redis() {
        assert_eq!(quote_args(&[b"a".to_vec(), b"b".to_vec()]), "'a' 'b' ");
        assert_eq!(quote_args(&[]), "");
        assert!(quote_args(&[vec![b'x'; 500], b"y".to_vec()]).len() <= 131);
    }

    fn arg() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 0..12)
    }

    proptest! {
        #[test]
        fn a_pipeline_split_at_every_byte_parses_the_same(
            cmds in prop::collection::vec(prop::collection::vec(arg(), 1..4), 1..5),
            inline in prop::collection::vec("[a-z]{1,5}( [a-z0-9]{1,4}){0,2}", 0..3),
        ) {
            let mut wire = Vec::new();
            let mut want: Vec<Vec<Vec<u8>>> = Vec::new();
            for c in &cmds {
                let refs: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
                wire.extend(encode_request(&refs));
                want.push(c.clone());
            }
            for line in &inline {
                wire.extend_from_slice(line.as_bytes());
                wire.extend_from_slice(b"\r\n");
                want.push(line.split(' ').map(|w| w.as_bytes().to_vec()).collect());
            }
            for cut in 0..=wire.len() {
                let got = feed(&[&wire[..cut], &wire[cut..]]).unwrap();
                prop_assert_eq!(&got, &want);
            }
            let bytes: Vec<&[u8]> = wire.chunks(1).collect();
            prop_assert_eq!(feed(&bytes).unwrap(), want);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            data in prop::collection::vec(any::<u8>(), 0..300),
            chunk in 1usize..40,
        ) {
            let chunks: Vec<&[u8]> = data.chunks(chunk).collect();
            let _ = feed(&chunks);
        }

        #[test]
        fn arbitrary_resp_like_bytes_never_panic(
            parts in prop::collection::vec(
                prop_oneof![
                    Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b"\r\n".to_vec()),
                    Just(b"-1".to_vec()), Just(b"3".to_vec()), Just(b"99999999999".to_vec()),
                    Just(b"\"".to_vec()), Just(b"'".to_vec()), Just(b"\\x".to_vec()),
                    prop::collection::vec(any::<u8>(), 0..4),
                ],
                0..40,
            ),
        ) {
            let data = parts.concat();
            let _ = feed(&[&data]);
        }
    }
}
