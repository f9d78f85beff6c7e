//! Fuzz target: request bytes split at arbitrary points give the same replies as the same bytes
//! in one write. The bytes are raw (any RESP, inline or garbage) followed by well-formed commands
//! built from the input; the server is `SimRedis`, and its replies must also stay framed RESP2.
#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use redis_keeper::sim::wire::{encode_request, reply_len};
use redis_keeper::sim::{SimClock, SimRedis, SimStream, Trace};
use redis_keeper::Rng;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug, Arbitrary)]
struct Input {
    raw: Vec<u8>,
    commands: Vec<Vec<Word>>,
    /// Chunk lengths the bytes are written in (0 counts as 1), cycled.
    splits: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
enum Word {
    Known(u8),
    Bytes(Vec<u8>),
    Int(i64),
}

const WORDS: &[&str] = &[
    "GET", "SET", "INCR", "DEL", "MULTI", "EXEC", "DISCARD", "WATCH", "SELECT", "PING", "ECHO",
    "HSET", "HGET", "LPUSH", "LRANGE", "EXPIRE", "TTL", "CLIENT", "SETNAME", "INFO", "QUIT", "k",
    "v", "EX", "PX", "NX",
];

fn encode(words: &[Word]) -> Vec<u8> {
    let args: Vec<Vec<u8>> = words
        .iter()
        .map(|w| match w {
            Word::Known(i) => WORDS[usize::from(*i) % WORDS.len()].as_bytes().to_vec(),
            Word::Bytes(b) => b.clone(),
            Word::Int(n) => n.to_string().into_bytes(),
        })
        .collect();
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    encode_request(&refs)
}

/// Reads every byte readable now (the simulated clock never moves here: no latency is set).
fn drain(stream: &mut SimStream, out: &mut Vec<u8>) -> bool {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    let mut buf = [0u8; 4096];
    loop {
        let mut rb = ReadBuf::new(&mut buf);
        match Pin::new(&mut *stream).poll_read(&mut cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => return false, // EOF
            Poll::Ready(Ok(())) => out.extend_from_slice(rb.filled()),
            Poll::Ready(Err(_)) => return false,
            Poll::Pending => return true,
        }
    }
}

/// Writes `bytes` in chunks, reading after each; returns everything read and whether the
/// connection is still open.
fn session(bytes: &[u8], splits: &[u8]) -> (Vec<u8>, bool) {
    let server = SimRedis::new(SimClock::new(), Rng::new(1), Trace::hash_only());
    let mut stream = server.connect().expect("no faults set");
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    let mut open = true;
    while !rest.is_empty() && open {
        let n = if splits.is_empty() {
            rest.len()
        } else {
            usize::from(splits[i % splits.len()]).max(1).min(rest.len())
        };
        i += 1;
        match Pin::new(&mut stream).poll_write(&mut cx, &rest[..n]) {
            Poll::Ready(Ok(w)) => rest = &rest[w..],
            _ => open = false,
        }
        if open {
            open = drain(&mut stream, &mut out);
        }
    }
    if open {
        open = drain(&mut stream, &mut out);
    }
    (out, open)
}

fuzz_target!(|input: Input| {
    let mut bytes = input.raw.clone();
    bytes.truncate(4096);
    for c in input.commands.iter().take(32) {
        bytes.extend(encode(c));
    }
    let whole = session(&bytes, &[]);
    let split = session(&bytes, &input.splits);
    assert_eq!(
        whole, split,
        "replies differ when the same requests arrive split at {:?}",
        input.splits
    );
    // The replies are framed RESP2, one value after another, and each parses with redis-rs.
    let mut rest = &whole.0[..];
    while !rest.is_empty() {
        let n = reply_len(rest).unwrap_or_else(|| {
            panic!(
                "reply bytes are not RESP2: {:?}",
                String::from_utf8_lossy(rest)
            )
        });
        if let Err(e) = redis::parse_redis_value(&rest[..n]) {
            panic!(
                "redis-rs cannot parse {:?}: {e}",
                String::from_utf8_lossy(&rest[..n])
            );
        }
        rest = &rest[n..];
    }
});
