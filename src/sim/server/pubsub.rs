//! Pub/sub: `SUBSCRIBE`, `PSUBSCRIBE`, their `UNSUBSCRIBE`s and `PUBLISH` fan-out (from a client
//! or from the server itself). Frames are RESP3 pushes on a connection that said `HELLO 3`,
//! arrays on a RESP2 one.

use std::time::Instant;

use super::keyspace::glob_match;
use super::resp::Reply;
use super::{SimRedis, State};

impl SimRedis {
    /// Publishes `message` on `channel` from the server itself, at the clock's current time, as
    /// a client's `PUBLISH` would: a `message` frame to each subscriber of the channel and a
    /// `pmessage` frame per matching pattern subscription (RESP3 pushes or RESP2 arrays). How
    /// many frames were delivered (what `PUBLISH` answers). A Sentinel announces its events so:
    /// `publish("+switch-master", "mymaster 10.0.0.1 6379 10.0.0.2 6380")`.
    ///
    /// ```
    /// use redis_keeper::sim::wire::encode_request;
    /// use redis_keeper::sim::{SimClock, SimRedis, Trace};
    /// use redis_keeper::Rng;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let sentinel = SimRedis::new(SimClock::new(), Rng::new(3), Trace::new());
    /// sentinel.set_sentinel(&[("mymaster", "10.0.0.1:6379")]);
    /// let mut sub = sentinel.connect().unwrap();
    /// let mut buf = [0u8; 128];
    /// futures::executor::block_on(async {
    ///     sub.write_all(&encode_request(&[b"PSUBSCRIBE", b"*"])).await.unwrap();
    ///     let n = sub.read(&mut buf).await.unwrap();
    ///     assert_eq!(&buf[..n], &b"*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:1\r\n"[..]);
    /// });
    /// let event = "mymaster 10.0.0.1 6379 10.0.0.2 6380";
    /// assert_eq!(sentinel.publish("+switch-master", event), 1);
    /// futures::executor::block_on(async {
    ///     let n = sub.read(&mut buf).await.unwrap();
    ///     let frame = String::from_utf8_lossy(&buf[..n]).into_owned();
    ///     let head = "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$14\r\n+switch-master\r\n$36\r\n";
    ///     assert_eq!(frame, format!("{head}{event}\r\n"));
    /// });
    /// ```
    pub fn publish(&self, channel: &str, message: &str) -> usize {
        self.with(|st| {
            let now = st.clock_now();
            st.record(format_args!("publish on {channel}"));
            st.deliver(channel.as_bytes(), message.as_bytes(), now)
        })
    }
}

impl State {
    /// `SUBSCRIBE channel …` (or `PSUBSCRIBE pattern …`): one confirmation frame per name.
    pub(super) fn subscribe(
        &mut self,
        id: u64,
        args: &[Vec<u8>],
        pattern: bool,
        now: Instant,
    ) -> Reply {
        let kind = if pattern { "psubscribe" } else { "subscribe" };
        let mut frames = Vec::new();
        if let Some(c) = self.conns.get_mut(&id) {
            for name in &args[1..] {
                let set = if pattern {
                    &mut c.patterns
                } else {
                    &mut c.channels
                };
                set.insert(name.clone());
                let count = (c.channels.len() + c.patterns.len()) as i64;
                frames.push(frame(c.resp3, kind, Reply::bulk(name.clone()), count));
            }
        }
        self.send_frames(id, frames, now)
    }

    /// `UNSUBSCRIBE [channel …]` (or `PUNSUBSCRIBE`): every one when none is named.
    pub(super) fn unsubscribe(
        &mut self,
        id: u64,
        args: &[Vec<u8>],
        pattern: bool,
        now: Instant,
    ) -> Reply {
        let kind = if pattern {
            "punsubscribe"
        } else {
            "unsubscribe"
        };
        let mut frames = Vec::new();
        if let Some(c) = self.conns.get_mut(&id) {
            let set = if pattern { &c.patterns } else { &c.channels };
            let names: Vec<Vec<u8>> = if args.len() > 1 {
                args[1..].to_vec()
            } else {
                set.iter().cloned().collect()
            };
            if names.is_empty() {
                let count = (c.channels.len() + c.patterns.len()) as i64;
                frames.push(frame(c.resp3, kind, Reply::Nil, count));
            }
            for name in names {
                let set = if pattern {
                    &mut c.patterns
                } else {
                    &mut c.channels
                };
                set.remove(&name);
                let count = (c.channels.len() + c.patterns.len()) as i64;
                frames.push(frame(c.resp3, kind, Reply::bulk(name), count));
            }
        }
        self.send_frames(id, frames, now)
    }

    /// `PUBLISH channel message`: a `message` frame to every subscriber of the channel and a
    /// `pmessage` frame per matching pattern, in connection order; replies with the count.
    pub(super) fn publish(&mut self, args: &[Vec<u8>], now: Instant) -> Reply {
        Reply::Int(self.deliver(&args[1], &args[2], now) as i64)
    }

    /// Queues a `message` frame on each subscriber of `channel` and a `pmessage` frame per
    /// matching pattern, in connection order; how many frames.
    fn deliver(&mut self, channel: &[u8], message: &[u8], now: Instant) -> usize {
        let mut deliveries = Vec::new();
        for c in self.conns.values().filter(|c| c.is_open()) {
            let wrap = |items: Vec<Reply>| {
                if c.resp3 {
                    Reply::Push(items)
                } else {
                    Reply::Array(items)
                }
            };
            if c.channels.contains(channel) {
                deliveries.push((
                    c.id,
                    wrap(vec![
                        Reply::bulk("message"),
                        Reply::bulk(channel),
                        Reply::bulk(message),
                    ]),
                ));
            }
            for p in c.patterns.iter().filter(|p| glob_match(p, channel)) {
                deliveries.push((
                    c.id,
                    wrap(vec![
                        Reply::bulk("pmessage"),
                        Reply::bulk(p.clone()),
                        Reply::bulk(channel),
                        Reply::bulk(message),
                    ]),
                ));
            }
        }
        let receivers = deliveries.len();
        for (to, frame) in deliveries {
            self.reply(to, &frame, now);
        }
        receivers
    }

    /// Queues every frame but the last, which is returned as the command's reply.
    fn send_frames(&mut self, id: u64, mut frames: Vec<Reply>, now: Instant) -> Reply {
        let last = frames.pop().unwrap_or_else(|| Reply::Array(vec![]));
        for f in frames {
            self.reply(id, &f, now);
        }
        last
    }
}

/// A subscription confirmation: `[kind, name, count]`, pushed under RESP3.
fn frame(resp3: bool, kind: &str, name: Reply, count: i64) -> Reply {
    let items = vec![Reply::bulk(kind), name, Reply::Int(count)];
    if resp3 {
        Reply::Push(items)
    } else {
        Reply::Array(items)
    }
}
