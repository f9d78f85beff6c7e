//! Fuzz target: redis-rs's reply parser fed reply bytes split at arbitrary points. A
//! `MultiplexedConnection` talks to `SimRedis` through a pipe that hands out at most the next
//! chunk length per read; the values (and errors) it returns must equal those of a pipe that
//! hands out everything at once, for the same commands in the same simulated world.
#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis_keeper::seams::Spawn;
use redis_keeper::sim::{Sim, SimRedis, SimStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug, Arbitrary)]
struct Input {
    seed: u64,
    commands: Vec<Command>,
    /// Read sizes (0 counts as 1), cycled.
    chunks: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
enum Command {
    Set(u8, Vec<u8>),
    Get(u8),
    Incr(u8),
    Rpush(u8, Vec<Vec<u8>>),
    Lrange(u8),
    Hset(u8, Vec<u8>, Vec<u8>),
    Hgetall(u8),
    Unknown(Vec<u8>),
    Pipeline(Vec<u8>),
    Info,
}

fn key(k: u8) -> String {
    format!("k{}", k % 4)
}

/// A pipe over a `SimStream` whose reads return at most the next chunk length.
struct Chunked {
    inner: SimStream,
    chunks: Arc<Vec<u8>>,
    next: usize,
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let limit = if self.chunks.is_empty() {
            buf.remaining()
        } else {
            let c = self.chunks[self.next % self.chunks.len()];
            usize::from(c).max(1).min(buf.remaining())
        };
        let mut small = vec![0u8; limit];
        let mut rb = ReadBuf::new(&mut small);
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                if !rb.filled().is_empty() {
                    this.next += 1;
                }
                buf.put_slice(rb.filled());
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl AsyncWrite for Chunked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn build(c: &Command) -> Result<redis::Cmd, redis::Pipeline> {
    let cmd = match c {
        Command::Set(k, v) => {
            let mut x = redis::cmd("SET");
            x.arg(key(*k)).arg(v.as_slice());
            x
        }
        Command::Get(k) => {
            let mut x = redis::cmd("GET");
            x.arg(key(*k));
            x
        }
        Command::Incr(k) => {
            let mut x = redis::cmd("INCR");
            x.arg(key(*k));
            x
        }
        Command::Rpush(k, vs) => {
            let mut x = redis::cmd("RPUSH");
            x.arg(format!("l{}", k % 4));
            if vs.is_empty() {
                x.arg("x");
            }
            for v in vs.iter().take(16) {
                x.arg(v.as_slice());
            }
            x
        }
        Command::Lrange(k) => {
            let mut x = redis::cmd("LRANGE");
            x.arg(format!("l{}", k % 4)).arg(0).arg(-1);
            x
        }
        Command::Hset(k, f, v) => {
            let mut x = redis::cmd("HSET");
            x.arg(format!("h{}", k % 4))
                .arg(f.as_slice())
                .arg(v.as_slice());
            x
        }
        Command::Hgetall(k) => {
            let mut x = redis::cmd("HGETALL");
            x.arg(format!("h{}", k % 4));
            x
        }
        Command::Unknown(name) => redis::cmd(&String::from_utf8_lossy(name)),
        Command::Info => redis::cmd("INFO"),
        Command::Pipeline(keys) => {
            let mut p = redis::pipe();
            if keys.len() % 2 == 1 {
                p.atomic();
            }
            p.cmd("PING");
            for k in keys.iter().take(8) {
                p.incr(key(*k), 1).get(key(*k));
            }
            return Err(p);
        }
    };
    Ok(cmd)
}

/// Runs the commands over a chunked pipe; returns each reply (or error) as text.
fn session(input: &Input, chunks: Vec<u8>) -> Vec<String> {
    let sim = Sim::new(input.seed);
    let server = SimRedis::new(sim.clock().clone(), sim.rng(), sim.trace().clone());
    let stream = Chunked {
        inner: server.connect().expect("no faults set"),
        chunks: Arc::new(chunks),
        next: 0,
    };
    let spawner = sim.spawner();
    sim.block_on(async move {
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(None);
        let info = redis::RedisConnectionInfo::default();
        let (mut conn, driver) =
            match MultiplexedConnection::new_with_config(&info, stream, config).await {
                Ok(pair) => pair,
                Err(e) => return vec![format!("handshake: {e}")],
            };
        spawner.spawn(Box::pin(driver));
        let mut out = Vec::new();
        for c in input.commands.iter().take(24) {
            let r = match build(c) {
                Ok(cmd) => conn.req_packed_command(&cmd).await.map(|v| vec![v]),
                Err(p) => {
                    let n = p.cmd_iter().count();
                    let atomic = matches!(c, Command::Pipeline(keys) if keys.len() % 2 == 1);
                    let (offset, count) = if atomic { (n + 1, 1) } else { (0, n) };
                    conn.req_packed_commands(&p, offset, count).await
                }
            };
            out.push(match r {
                Ok(v) => format!("{v:?}"),
                Err(e) => format!("error {:?}: {e}", e.kind()),
            });
        }
        out
    })
}

fuzz_target!(|input: Input| {
    let whole = session(&input, Vec::new());
    assert!(
        !whole.iter().any(|r| r.starts_with("handshake")),
        "the handshake failed on a healthy server: {whole:?}"
    );
    if std::env::var_os("FUZZ_DEBUG").is_some() {
        eprintln!("{input:?}\n=> {whole:?}");
    }
    let split = session(&input, input.chunks.clone());
    assert_eq!(
        whole, split,
        "replies differ when read in chunks of {:?}",
        input.chunks
    );
});
