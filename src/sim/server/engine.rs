//! The server's engine: accepting, parsing and running commands, queuing replies, and applying
//! faults as virtual time passes.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use super::commands::{arity_error, arity_ok, available, lookup, Kind, Session, Spec};
use super::conn::{Conn, End};
use super::resp::{self, quote_args, Parse, Reply};
use super::role::READONLY;
use super::{fresh_dbs, State};
use crate::seams::Clock;
use crate::sim::doubles::{Episode, Fault, Latency, Restart};

/// Roughly a century: what "forever" means when a duration would overflow an `Instant`.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl State {
    pub(super) fn clock_now(&self) -> Instant {
        self.clock.now()
    }

    /// Records `event` at the current virtual time.
    pub(super) fn record(&self, event: impl fmt::Display) {
        self.trace.record(self.clock.elapsed(), event);
    }

    /// `from + duration`, saturating at a far future.
    pub(super) fn until(&self, from: Instant, duration: Duration) -> Instant {
        from.checked_add(duration)
            .or_else(|| from.checked_add(FOREVER))
            .unwrap_or(from)
    }

    /// When the next plan episode starts.
    pub(super) fn next_episode(&self) -> Option<Instant> {
        let epoch = self.clock.epoch();
        self.plan.front().map(|e| self.until(epoch, e.at))
    }

    /// Applies the plan episodes that have started and notes the timed faults that are over.
    pub(super) fn tick(&mut self, now: Instant) {
        while let Some(start) = self.next_episode().filter(|s| *s <= now) {
            if let Some(episode) = self.plan.pop_front() {
                self.apply(episode, start, now);
            }
        }
        let ended = |slot: Option<Instant>| slot.is_some_and(|t| t <= now);
        if ended(self.loading_until) {
            self.loading_until = None;
            self.record("loading ended");
        }
        if ended(self.stall_until) {
            self.stall_until = None;
            self.record("stall ended");
        }
        if ended(self.refuse_until) {
            self.refuse_until = None;
            self.record("refusing ended");
        }
        if ended(self.latency_episode.map(|(_, t)| t)) {
            self.latency_episode = None;
            self.record("latency episode ended");
        }
        if ended(self.failure_episode.map(|(_, t)| t)) {
            self.failure_episode = None;
            self.record("failure-rate episode ended");
        }
    }

    fn apply(&mut self, episode: Episode, start: Instant, now: Instant) {
        self.record(format_args!("fault {}", episode.fault));
        let later = |a: Option<Instant>, b: Instant| Some(a.map_or(b, |a| a.max(b)));
        match episode.fault {
            Fault::Refuse { duration } => {
                self.refuse_until = later(self.refuse_until, self.until(start, duration));
            }
            Fault::Loading { duration } => {
                self.loading_until = later(self.loading_until, self.until(start, duration));
            }
            Fault::Latency { latency, duration } => {
                self.latency_episode = Some((latency, self.until(start, duration)));
            }
            Fault::Stall { duration } => {
                self.stall_until = later(self.stall_until, self.until(start, duration));
            }
            Fault::ResetMidReply => self.reset_next = true,
            Fault::Restart(r) => self.restart(r, start, now),
            Fault::KillAll => {
                self.kill_all();
            }
            Fault::KillOne => {
                let open: Vec<u64> = self
                    .conns
                    .values()
                    .filter(|c| c.is_open())
                    .map(|c| c.id)
                    .collect();
                if !open.is_empty() {
                    let pick = self.rng.below(open.len() as u64) as usize;
                    self.kill(open[pick]);
                }
            }
            Fault::FailureRate { rate, duration } => {
                self.failure_episode = Some((rate, self.until(start, duration)));
            }
        }
    }

    pub(super) fn restart(&mut self, r: Restart, start: Instant, now: Instant) {
        self.record(format_args!(
            "restart (down {}ms, loading {}ms)",
            r.down.as_millis(),
            r.loading.as_millis()
        ));
        self.kill_all();
        self.dbs = fresh_dbs();
        self.restarts += 1;
        self.started = now;
        self.stall_until = None;
        if !r.down.is_zero() {
            self.refuse_until = Some(self.until(start, r.down));
        }
        if !r.loading.is_zero() {
            let from = self.until(start, r.down);
            self.loading_until = Some(self.until(from, r.loading));
        }
    }

    pub(super) fn kill(&mut self, id: u64) -> bool {
        let now = self.clock_now();
        match self.conns.get_mut(&id) {
            Some(conn) if conn.is_open() => {
                conn.kill(now);
                self.record(format_args!("kill #{id}"));
                true
            }
            _ => false,
        }
    }

    pub(super) fn kill_all(&mut self) -> usize {
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        ids.into_iter().filter(|id| self.kill(*id)).count()
    }

    pub(super) fn connected(&self) -> usize {
        self.conns.values().filter(|c| c.is_open()).count()
    }

    pub(super) fn is_loading(&self, now: Instant) -> bool {
        self.loading_until.is_some_and(|t| t > now)
    }

    fn latency(&self, now: Instant) -> Latency {
        match self.latency_episode {
            Some((l, until)) if until > now => l,
            _ => self.faults.latency,
        }
    }

    fn failure_rate(&self, now: Instant) -> f64 {
        match self.failure_episode {
            Some((p, until)) if until > now => p,
            _ => self.faults.failure_rate,
        }
    }

    /// A new connection, or `ConnectionRefused`.
    pub(super) fn accept(&mut self, peer: &str) -> io::Result<u64> {
        let now = self.clock_now();
        if self.faults.refuse || self.refuse_until.is_some_and(|t| t > now) {
            self.record(format_args!("refuse {peer}"));
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "simulated redis refused the connection",
            ));
        }
        self.next_id += 1;
        self.accepted += 1;
        let id = self.next_id;
        self.conns
            .insert(id, Conn::new(id, self.password.is_none(), now));
        self.record(format_args!("connect #{id} from {peer}"));
        Ok(id)
    }

    /// Takes bytes from the client and runs every complete command in them.
    pub(super) fn on_write(&mut self, id: u64, bytes: &[u8]) -> io::Result<usize> {
        let now = self.clock_now();
        let Some(conn) = self.conns.get_mut(&id) else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        match conn.end() {
            Some(End::Reset) => return Err(io::ErrorKind::ConnectionReset.into()),
            Some(End::Eof) => return Err(io::ErrorKind::BrokenPipe.into()),
            None => conn.input.extend_from_slice(bytes),
        }
        self.run_input(id, now);
        Ok(bytes.len())
    }

    /// Runs every complete command buffered on connection `id`, until it blocks or closes.
    pub(super) fn run_input(&mut self, id: u64, now: Instant) {
        while let Some(conn) = self
            .conns
            .get_mut(&id)
            .filter(|c| c.is_open() && c.blocked.is_none())
        {
            match resp::parse(&conn.input) {
                Parse::Incomplete => break,
                Parse::Request(args, used) => {
                    conn.input.drain(..used);
                    if !args.is_empty() {
                        self.command(id, args, now);
                    }
                }
                Parse::Error(msg) => {
                    self.record(format_args!("#{id} protocol error"));
                    self.reply(id, &Reply::err(format!("ERR Protocol error: {msg}")), now);
                    self.close(id, End::Eof, now);
                    break;
                }
            }
        }
    }

    fn command(&mut self, id: u64, args: Vec<Vec<u8>>, now: Instant) {
        self.commands += 1;
        let name = match lookup(&args[0]) {
            Some(spec) => spec.name.to_ascii_uppercase(),
            None => "(unknown)".to_string(),
        };
        self.record(format_args!("#{id} {name}"));
        let rate = self.failure_rate(now);
        if rate > 0.0 && self.rng.chance(rate) {
            let after = self.rng.chance(0.5);
            if after {
                let _ = self.dispatch(id, &args, now);
                self.flag_dirty();
            }
            let when = if after { "after" } else { "before" };
            self.record(format_args!("#{id} reset {when} applying {name}"));
            self.close(id, End::Reset, now);
            return;
        }
        let (reply, quit) = self.dispatch(id, &args, now);
        self.flag_dirty();
        if !matches!(reply, Reply::Blocked) {
            self.reply(id, &reply, now);
        }
        self.serve_blocked(now);
        if quit {
            self.record(format_args!("#{id} closed by server"));
            self.close(id, End::Eof, now);
        }
    }

    /// Checks a command the way Redis's `processCommand` does, then queues it (inside MULTI) or
    /// runs it. The flag asks to close the connection after the reply (QUIT).
    fn dispatch(&mut self, id: u64, args: &[Vec<u8>], now: Instant) -> (Reply, bool) {
        let needs_auth = self.password.is_some();
        let loading = self.is_loading(now);
        let server = Server {
            read_only: self.is_replica(),
            sentinel: self.is_sentinel(),
        };
        let Some(conn) = self.conns.get_mut(&id) else {
            return (Reply::err("ERR no such connection"), true);
        };
        let in_multi = conn.multi.is_some();
        let spec = match check(args, needs_auth && !conn.authed, loading, in_multi, server) {
            Ok(spec) => spec,
            Err(reply) => {
                if let Some(m) = conn.multi.as_mut() {
                    m.aborted = true;
                }
                return (reply, false);
            }
        };
        let queue = !matches!(
            spec.kind,
            Kind::Session(Session::Exec | Session::Discard | Session::Quit)
        );
        if let Some(m) = conn.multi.as_mut().filter(|_| queue) {
            m.queue.push(args.to_vec());
            return (Reply::Status("QUEUED".into()), false);
        }
        self.run(id, spec, args, now)
    }

    /// Runs a checked command.
    pub(super) fn run(
        &mut self,
        id: u64,
        spec: &Spec,
        args: &[Vec<u8>],
        now: Instant,
    ) -> (Reply, bool) {
        match spec.kind {
            Kind::Data(f) => {
                let db = self.conns.get(&id).map_or(0, |c| c.db);
                let Some(db) = self.dbs.get_mut(db) else {
                    return (Reply::err("ERR DB index is out of range"), false);
                };
                (f(db, now, args).unwrap_or_else(|e| e), false)
            }
            Kind::Session(s) => self.session(id, s, args, now),
        }
    }

    /// Queues `reply` on connection `id`, readable after the latency (and after any stall).
    pub(super) fn reply(&mut self, id: u64, reply: &Reply, now: Instant) {
        let mut bytes = reply.to_bytes();
        let delay = self.latency(now).draw(&mut self.rng);
        let mut due = self.until(now, delay);
        if let Some(stall) = self.stall_until.filter(|t| *t > now) {
            due = due.max(stall);
        }
        let cut = if self.reset_next {
            self.reset_next = false;
            let cut = self.rng.below(bytes.len() as u64) as usize;
            bytes.truncate(cut);
            self.record(format_args!("#{id} reply cut after {cut} bytes"));
            true
        } else {
            false
        };
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.push(due, bytes);
            if cut {
                conn.close(End::Reset, due);
            }
        }
    }

    fn close(&mut self, id: u64, end: End, now: Instant) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.close(end, now);
        }
    }

    /// Marks dirty every connection watching a key modified since the last call.
    pub(super) fn flag_dirty(&mut self) {
        for (i, db) in self.dbs.iter_mut().enumerate() {
            for key in db.take_touched() {
                let watched = (i, key);
                for conn in self.conns.values_mut() {
                    if conn.watched.contains_key(&watched) {
                        conn.dirty = true;
                    }
                }
            }
        }
    }
}

/// What kind of server checks a command.
#[derive(Debug, Clone, Copy)]
struct Server {
    /// A replica: write commands answer `-READONLY`.
    read_only: bool,
    /// A Sentinel: only its own commands exist.
    sentinel: bool,
}

/// The checks before a command runs or is queued, in Redis's order: known name (on this kind of
/// server), arity, authentication, writes on a replica, loading, commands refused inside MULTI.
fn check(
    args: &[Vec<u8>],
    needs_auth: bool,
    loading: bool,
    in_multi: bool,
    server: Server,
) -> Result<&'static Spec, Reply> {
    let Some(spec) = lookup(&args[0]).filter(|s| available(s, server.sentinel)) else {
        let name = String::from_utf8_lossy(&args[0][..args[0].len().min(128)]).into_owned();
        let rest = quote_args(&args[1..]);
        return Err(Reply::err(format!(
            "ERR unknown command '{name}', with args beginning with: {rest}"
        )));
    };
    if !arity_ok(spec, args.len()) {
        return Err(arity_error(spec.name));
    }
    if needs_auth && !spec.no_auth {
        return Err(Reply::err("NOAUTH Authentication required."));
    }
    if server.read_only && spec.write {
        return Err(Reply::err(READONLY));
    }
    if loading && !spec.loading_ok {
        return Err(Reply::err("LOADING Redis is loading the dataset in memory"));
    }
    if in_multi && matches!(spec.kind, Kind::Session(Session::Multi | Session::Watch)) {
        return Err(Reply::err("ERR Command not allowed inside a transaction"));
    }
    Ok(spec)
}
