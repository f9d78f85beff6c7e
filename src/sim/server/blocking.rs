//! Blocking list pops (`BLPOP`, `BRPOP`): a client with nothing to pop blocks, reads no further
//! command, and is answered when a push serves it (longest-blocked first) or at its timeout.

use std::time::{Duration, Instant};

use super::collections;
use super::conn::Blocked;
use super::resp::Reply;
use super::State;

impl State {
    /// `BLPOP key [key …] timeout` (or `BRPOP`): pops at once when a list has an element, else
    /// blocks connection `id` (inside `EXEC` it answers nil instead, as Redis does).
    pub(super) fn blocking_pop(
        &mut self,
        id: u64,
        args: &[Vec<u8>],
        right: bool,
        now: Instant,
    ) -> Reply {
        let timeout = match parse_timeout(&args[args.len() - 1]) {
            Ok(t) => t,
            Err(reply) => return reply,
        };
        let keys = args[1..args.len() - 1].to_vec();
        let db = self.conns.get(&id).map_or(0, |c| c.db);
        match self.try_pop(db, &keys, right, now) {
            Some(reply) => return reply,
            None if self.in_exec => return Reply::NilArray,
            None => {}
        }
        let deadline = timeout.map(|t| self.until(now, t));
        self.next_block_seq += 1;
        let seq = self.next_block_seq;
        if let Some(c) = self.conns.get_mut(&id) {
            c.blocked = Some(Blocked {
                db,
                keys,
                right,
                deadline,
                seq,
            });
            // The reader may be parked with no deadline: let it look again and sleep until
            // this block's timeout.
            c.wake_reader();
        }
        self.record(format_args!("#{id} blocked"));
        Reply::Blocked
    }

    /// `[key, element]` from the first of `keys` holding a list element, popping it; an error
    /// reply for a key of another type; `None` when every list is empty.
    fn try_pop(&mut self, db: usize, keys: &[Vec<u8>], right: bool, now: Instant) -> Option<Reply> {
        let db = self.dbs.get_mut(db)?;
        for key in keys {
            let args = [b"pop".to_vec(), key.clone()];
            let popped = if right {
                collections::rpop(db, now, &args)
            } else {
                collections::lpop(db, now, &args)
            };
            match popped {
                Ok(Reply::Bulk(v)) => {
                    return Some(Reply::Array(vec![Reply::bulk(key.clone()), Reply::Bulk(v)]))
                }
                Ok(_) => {}
                Err(e) => return Some(e),
            }
        }
        None
    }

    /// Serves blocked clients whose lists now hold elements, longest-blocked first, then lets
    /// each served client's buffered commands run.
    pub(super) fn serve_blocked(&mut self, now: Instant) {
        if self.serving {
            return; // a served client's commands are running: the outer call goes on
        }
        self.serving = true;
        // Bounded: every round serves one client (a blocked client count only shrinks here).
        for _ in 0..10_000 {
            let mut waiting: Vec<(u64, u64)> = self
                .conns
                .values()
                .filter_map(|c| c.blocked.as_ref().map(|b| (b.seq, c.id)))
                .collect();
            waiting.sort_unstable();
            let served = waiting.into_iter().find_map(|(_, id)| {
                let b = self.conns.get(&id)?.blocked.as_ref()?;
                let (db, keys, right) = (b.db, b.keys.clone(), b.right);
                self.try_pop(db, &keys, right, now).map(|reply| (id, reply))
            });
            let Some((id, reply)) = served else {
                break;
            };
            self.unblock(id, &reply, now);
        }
        self.serving = false;
    }

    /// Answers connection `id` with nil when its block timed out by `now`.
    pub(super) fn expire_blocked(&mut self, id: u64, now: Instant) {
        let expired = self
            .conns
            .get(&id)
            .and_then(|c| c.blocked.as_ref())
            .and_then(|b| b.deadline)
            .is_some_and(|deadline| deadline <= now);
        if expired {
            self.record(format_args!("#{id} block timed out"));
            self.unblock(id, &Reply::NilArray, now);
            self.serve_blocked(now);
        }
    }

    /// When connection `id`'s block ends, if it is blocked.
    pub(super) fn block_deadline(&self, id: u64) -> Option<Instant> {
        self.conns.get(&id)?.blocked.as_ref()?.deadline
    }

    fn unblock(&mut self, id: u64, reply: &Reply, now: Instant) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.blocked = None;
        }
        self.reply(id, reply, now);
        self.run_input(id, now);
    }
}

/// A block timeout in seconds (`0` = forever), as Redis parses it.
fn parse_timeout(arg: &[u8]) -> Result<Option<Duration>, Reply> {
    let secs = std::str::from_utf8(arg)
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|t| t.is_finite())
        .ok_or_else(|| Reply::err("ERR timeout is not a float or out of range"))?;
    if secs < 0.0 {
        return Err(Reply::err("ERR timeout is negative"));
    }
    Ok((secs > 0.0).then(|| Duration::from_secs_f64(secs.min(1e9))))
}
