//! Pub/sub: `SUBSCRIBE`, `PSUBSCRIBE`, their `UNSUBSCRIBE`s and `PUBLISH` fan-out. Frames are
//! RESP3 pushes on a connection that said `HELLO 3`, arrays on a RESP2 one.

use std::time::Instant;

use super::keyspace::glob_match;
use super::resp::Reply;
use super::State;

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
        let (channel, message) = (&args[1], &args[2]);
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
                        Reply::bulk(channel.clone()),
                        Reply::bulk(message.clone()),
                    ]),
                ));
            }
            for p in c.patterns.iter().filter(|p| glob_match(p, channel)) {
                deliveries.push((
                    c.id,
                    wrap(vec![
                        Reply::bulk("pmessage"),
                        Reply::bulk(p.clone()),
                        Reply::bulk(channel.clone()),
                        Reply::bulk(message.clone()),
                    ]),
                ));
            }
        }
        let receivers = deliveries.len() as i64;
        for (to, frame) in deliveries {
            self.reply(to, &frame, now);
        }
        Reply::Int(receivers)
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
