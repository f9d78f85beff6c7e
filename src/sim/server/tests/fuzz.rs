//! Fuzz-style properties: no client input panics the server, and replies stay framed RESP2.

use std::time::Duration;

use proptest::prelude::*;

use super::{drain, send, server, After};
use crate::rng::Rng;
use crate::sim::server::wire::{encode_request, reply_len};
use crate::sim::{FaultPlan, SimStream};

const WORDS: &[&str] = &[
    "GET",
    "SET",
    "MGET",
    "MSET",
    "INCR",
    "INCRBY",
    "DECR",
    "APPEND",
    "STRLEN",
    "DEL",
    "EXISTS",
    "EXPIRE",
    "PEXPIRE",
    "TTL",
    "PTTL",
    "TYPE",
    "KEYS",
    "SCAN",
    "DBSIZE",
    "FLUSHDB",
    "HSET",
    "HGET",
    "HGETALL",
    "HDEL",
    "HINCRBY",
    "LPUSH",
    "RPUSH",
    "LPOP",
    "RPOP",
    "LRANGE",
    "LLEN",
    "SADD",
    "SREM",
    "SMEMBERS",
    "SISMEMBER",
    "SELECT",
    "PING",
    "ECHO",
    "AUTH",
    "HELLO",
    "CLIENT",
    "INFO",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "SETNAME",
    "GETNAME",
    "ID",
    "NX",
    "XX",
    "EX",
    "PX",
    "GET",
    "KEEPTTL",
    "MATCH",
    "COUNT",
    "TYPE",
    "AUTH",
    "k",
    "h",
    "l",
    "s",
    "0",
    "1",
    "-1",
    "2",
    "15",
    "16",
    "*",
    "k*",
    "[a-",
    "9223372036854775807",
    "x",
    "",
];

fn word() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(WORDS).prop_map(|w| w.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..6),
    ]
}

/// One step of a client: a command, raw bytes, time passing, or a reconnect.
#[derive(Debug, Clone)]
enum Step {
    Command(Vec<Vec<u8>>),
    Raw(Vec<u8>),
    Advance(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => prop::collection::vec(word(), 1..6).prop_map(Step::Command),
        1 => prop::collection::vec(any::<u8>(), 0..20).prop_map(Step::Raw),
        1 => (0u64..3000).prop_map(Step::Advance),
    ]
}

/// Runs `steps`, reconnecting whenever the server ends the connection; returns every byte read.
fn run(steps: &[Step], seed: u64, faults: bool) -> Vec<u8> {
    let (sim, clock, _) = server(seed);
    if faults {
        let plan = FaultPlan::random(&mut Rng::new(seed), Duration::from_secs(20));
        sim.set_plan(plan);
        sim.set_failure_rate(0.05);
    }
    let mut out = Vec::new();
    let mut conn: Option<SimStream> = None;
    for step in steps {
        if let Step::Advance(ms) = step {
            clock.advance(Duration::from_millis(*ms));
            continue;
        }
        if conn.is_none() {
            conn = sim.connect().ok();
        }
        let Some(c) = conn.as_mut() else {
            continue;
        };
        let bytes = match step {
            Step::Command(args) => {
                let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                encode_request(&refs)
            }
            Step::Raw(bytes) => bytes.clone(),
            Step::Advance(_) => unreachable!(),
        };
        let wrote = send(c, &bytes).is_ok();
        let (read, after) = drain(c);
        out.extend(read);
        if !wrote || after != After::Pending {
            conn = None;
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn commands_never_panic_and_replies_stay_framed(
        steps in prop::collection::vec(
            prop_oneof![
                8 => prop::collection::vec(word(), 1..6).prop_map(Step::Command),
                1 => (0u64..3000).prop_map(Step::Advance),
            ],
            1..60,
        ),
        seed in any::<u64>(),
    ) {
        // Only well-formed requests, no faults: every byte read is a complete reply (RESP2, or
        // RESP3 after a `HELLO 3`).
        let out = run(&steps, seed, false);
        let mut pos = 0;
        while pos < out.len() {
            let n = reply_len(&out[pos..]);
            prop_assert!(n.is_some(), "bad framing at {pos}: {:?}", String::from_utf8_lossy(&out[pos..]));
            pos += n.unwrap_or(0);
        }
    }

    #[test]
    fn arbitrary_input_under_faults_never_panics(
        steps in prop::collection::vec(step(), 1..80),
        seed in any::<u64>(),
    ) {
        let _ = run(&steps, seed, true);
    }
}
