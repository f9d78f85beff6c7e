//! Tests of the simulated server through its streams, byte for byte, in virtual time.

mod commands;
mod faults;
mod fuzz;
mod roles;
mod session;
mod transactions;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::wire::encode_request;
use super::{SimRedis, SimStream};
use crate::rng::Rng;
use crate::sim::doubles::{SimClock, Trace};

/// What a stream did after the bytes readable now were drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum After {
    /// Nothing more readable yet.
    Pending,
    /// End of stream.
    Eof,
    /// The read failed.
    Err(io::ErrorKind),
}

pub(super) fn server(seed: u64) -> (SimRedis, SimClock, Trace) {
    let clock = SimClock::new();
    let trace = Trace::new();
    let sim = SimRedis::new(clock.clone(), Rng::new(seed), trace.clone());
    (sim, clock, trace)
}

fn cx_poll<T>(f: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    f(&mut cx)
}

/// Writes raw bytes.
pub(super) fn send(s: &mut SimStream, bytes: &[u8]) -> io::Result<usize> {
    match cx_poll(|cx| Pin::new(&mut *s).poll_write(cx, bytes)) {
        Poll::Ready(r) => r,
        Poll::Pending => panic!("writes never wait"),
    }
}

/// Reads everything readable now.
pub(super) fn drain(s: &mut SimStream) -> (Vec<u8>, After) {
    let mut out = Vec::new();
    loop {
        let mut buf = [0u8; 7]; // small on purpose: replies arrive in pieces
        let mut rb = ReadBuf::new(&mut buf);
        match cx_poll(|cx| Pin::new(&mut *s).poll_read(cx, &mut rb)) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => return (out, After::Eof),
            Poll::Ready(Ok(())) => out.extend_from_slice(rb.filled()),
            Poll::Ready(Err(e)) => return (out, After::Err(e.kind())),
            Poll::Pending => return (out, After::Pending),
        }
    }
}

/// Sends one command (as a multibulk array) and returns the bytes readable right after.
pub(super) fn cmd(s: &mut SimStream, args: &[&str]) -> String {
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    send(s, &encode_request(&refs)).expect("write");
    let (bytes, _) = drain(s);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A fresh server and one connection to it.
pub(super) fn connected(seed: u64) -> (SimRedis, SimClock, Trace, SimStream) {
    let (sim, clock, trace) = server(seed);
    let stream = sim.connect().expect("connect");
    (sim, clock, trace, stream)
}

#[test]
fn shutdown_and_drop_close_the_server_side() {
    let (sim, _, trace, mut a) = connected(1);
    let b = sim.connect().unwrap();
    assert_eq!(sim.connected_clients(), 2);
    assert!(matches!(
        cx_poll(|cx| Pin::new(&mut a).poll_shutdown(cx)),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(drain(&mut a).1, After::Eof);
    assert_eq!(sim.connected_clients(), 1);
    drop(b);
    assert_eq!(sim.connected_clients(), 0);
    assert_eq!(sim.connections_accepted(), 2);
    assert!(trace
        .lines()
        .iter()
        .any(|l| l.ends_with("#2 closed by client")));
}
