//! RESP2 and RESP3 on the wire, for tests that talk raw bytes to a [`SimRedis`](super::SimRedis): encode
//! a request as a client does, and find where a reply ends.

use super::resp::Reply;

/// Encodes a request as a RESP2 multibulk array, exactly as clients send it.
///
/// ```
/// use redis_keeper::sim::wire::encode_request;
/// assert_eq!(encode_request(&[b"GET", b"k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
/// ```
pub fn encode_request(args: &[&[u8]]) -> Vec<u8> {
    Reply::Array(args.iter().map(|a| Reply::bulk(*a)).collect()).to_bytes()
}

/// The length of the complete, well-formed RESP2 or RESP3 value at the front of `buf`, or
/// `None` when it is cut short or malformed (integers and lengths must parse, bulk strings end
/// in CRLF; a map holds twice its count).
///
/// ```
/// use redis_keeper::sim::wire::reply_len;
/// assert_eq!(reply_len(b"+OK\r\n:1\r\n"), Some(5));
/// assert_eq!(reply_len(b"*2\r\n$1\r\na\r\n$-1\r\n"), Some(16));
/// assert_eq!(reply_len(b"$3\r\nab"), None);
/// assert_eq!(reply_len(b"%1\r\n+a\r\n:1\r\n"), Some(12)); // RESP3, after HELLO 3
/// assert_eq!(reply_len(b"#x\r\n"), None);
/// ```
pub fn reply_len(buf: &[u8]) -> Option<usize> {
    let eol = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(buf.get(1..eol)?).ok()?;
    let after = eol + 2;
    // RESP2, and the RESP3 types a connection speaks after `HELLO 3`.
    let elements = |count: usize| {
        let mut pos = after;
        for _ in 0..count {
            pos += reply_len(buf.get(pos..)?)?;
        }
        Some(pos)
    };
    match buf.first()? {
        b'+' | b'-' => Some(after),
        b':' => line.parse::<i64>().ok().map(|_| after),
        b'(' => {
            let digits = line.strip_prefix('-').unwrap_or(line);
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(after)
        }
        b'_' => line.is_empty().then_some(after),
        b'#' => matches!(line, "t" | "f").then_some(after),
        b',' => {
            (line.parse::<f64>().is_ok() || matches!(line, "inf" | "-inf" | "nan")).then_some(after)
        }
        b'$' | b'*' if line == "-1" => Some(after),
        b'$' | b'=' | b'!' => {
            let n: usize = line.parse().ok()?;
            let end = after.checked_add(n)?;
            let stop = end.checked_add(2)?;
            (buf.get(end..stop)? == b"\r\n").then_some(stop)
        }
        b'*' | b'~' | b'>' => elements(line.parse::<usize>().ok()?),
        b'%' => elements(line.parse::<usize>().ok()?.checked_mul(2)?),
        _ => None,
    }
}
