//! `SimRedis`: an in-memory Redis server in virtual time, with its connections and fault knobs.

mod args;
mod blocking;
mod collections;
mod commands;
mod conn;
mod engine;
mod keyspace;
mod network;
mod pubsub;
mod resp;
mod role;
mod sentinel;
mod session;
mod strings;
#[cfg(test)]
mod tests;
mod transport;
pub mod wire;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use tokio::io::ReadBuf;

use crate::rng::Rng;
use crate::sim::doubles::{Episode, FaultPlan, Faults, Latency, Restart, SimClock, Trace};
use conn::{Conn, End, Read};
use keyspace::{Db, Value, DATABASES};
use sentinel::Sentinel;

pub use network::SimNetwork;
pub use role::SimRole;
pub use transport::{SimStream, SimTransport};

/// A simulated Redis server: 16 keyspaces, connections with their session state, and faults.
///
/// Cloning gives another handle to the same server. There is no server task: a command runs when
/// a client writes it to a [`SimStream`], at the clock's current time, and its reply is queued
/// with the instant it becomes readable (now plus the [`Latency`]). Every random choice comes from
/// the [`Rng`] given here and every notable event goes to the [`Trace`], so the same seed and the
/// same client behaviour give the same trace.
///
/// ```
/// use redis_keeper::sim::{SimClock, SimRedis, Trace};
/// use redis_keeper::Rng;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let sim = SimRedis::new(SimClock::new(), Rng::new(1), Trace::new());
/// let mut stream = sim.connect().unwrap();
/// futures::executor::block_on(async {
///     stream.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n").await.unwrap();
///     let mut buf = [0u8; 16];
///     let n = stream.read(&mut buf).await.unwrap();
///     assert_eq!(&buf[..n], b"+OK\r\n");
/// });
/// assert_eq!(sim.get(0, b"k"), Some(b"v".to_vec()));
/// assert_eq!(sim.commands_processed(), 1);
/// ```
#[derive(Clone)]
pub struct SimRedis {
    inner: Arc<Mutex<State>>,
}

/// Everything behind the lock.
struct State {
    clock: SimClock,
    trace: Trace,
    rng: Rng,
    dbs: Vec<Db>,
    conns: BTreeMap<u64, Conn>,
    next_id: u64,
    password: Option<Vec<u8>>,
    acl_user: Option<(Vec<u8>, Vec<u8>)>,
    faults: Faults,
    latency_episode: Option<(Latency, Instant)>,
    failure_episode: Option<(f64, Instant)>,
    refuse_until: Option<Instant>,
    loading_until: Option<Instant>,
    stall_until: Option<Instant>,
    reset_next: bool,
    plan: VecDeque<Episode>,
    accepted: u64,
    commands: u64,
    restarts: u64,
    started: Instant,
    /// Blocking order of the next client that blocks.
    next_block_seq: u64,
    /// Blocked clients are being served (guards against re-entry).
    serving: bool,
    /// Queued commands of an `EXEC` are running (blocking pops answer at once).
    in_exec: bool,
    /// Master or read-only replica.
    role: SimRole,
    /// The Sentinel personality (off unless set).
    sentinel: Sentinel,
}

/// What the stream should do after a read attempt.
pub(super) enum ReadStep {
    /// The read is complete (bytes, EOF or an error).
    Done(io::Result<()>),
    /// Nothing readable yet: the waker is registered; also sleep until this instant, if any.
    Wait(Option<Instant>),
}

fn fresh_dbs() -> Vec<Db> {
    (0..DATABASES).map(|_| Db::default()).collect()
}

impl SimRedis {
    /// A server with empty keyspaces, no password and no faults, living on `clock`, drawing every
    /// random choice from `rng` and recording events to `trace`.
    pub fn new(clock: SimClock, rng: Rng, trace: Trace) -> Self {
        let now = crate::seams::Clock::now(&clock);
        let state = State {
            clock,
            trace,
            rng,
            dbs: fresh_dbs(),
            conns: BTreeMap::new(),
            next_id: 0,
            password: None,
            acl_user: None,
            faults: Faults::default(),
            latency_episode: None,
            failure_episode: None,
            refuse_until: None,
            loading_until: None,
            stall_until: None,
            reset_next: false,
            plan: VecDeque::new(),
            accepted: 0,
            commands: 0,
            restarts: 0,
            started: now,
            next_block_seq: 0,
            serving: false,
            in_exec: false,
            role: SimRole::Master,
            sentinel: Sentinel::default(),
        };
        Self {
            inner: Arc::new(Mutex::new(state)),
        }
    }

    /// Accepts a connection from `peer` (the transport's side of a connect): its id.
    pub(super) fn accept_from(&self, peer: &str) -> io::Result<u64> {
        self.with(|st| st.accept(peer))
    }

    /// The server's clock.
    pub fn clock(&self) -> SimClock {
        self.lock().clock.clone()
    }

    /// Requires `password` for the `default` user (`requirepass`), or no password with `None`.
    /// Connections already authenticated stay so, as in Redis.
    pub fn set_password(&self, password: Option<&str>) {
        self.with(|st| st.password = password.map(|p| p.as_bytes().to_vec()));
    }

    /// Adds an ACL user accepted by `AUTH user password` and `HELLO 2 AUTH user password`
    /// (`None` removes it).
    pub fn set_acl_user(&self, user: Option<(&str, &str)>) {
        let user = user.map(|(u, p)| (u.as_bytes().to_vec(), p.as_bytes().to_vec()));
        self.with(|st| st.acl_user = user);
    }

    /// The standing fault knobs.
    pub fn faults(&self) -> Faults {
        self.lock().faults
    }

    /// Replaces the standing fault knobs.
    pub fn set_faults(&self, faults: Faults) {
        self.with(|st| {
            st.record(format_args!("faults set {faults:?}"));
            st.faults = faults;
        });
    }

    /// Refuses (or accepts again) new connections.
    pub fn refuse(&self, on: bool) {
        self.with(|st| {
            st.record(format_args!("refuse {on}"));
            st.faults.refuse = on;
        });
    }

    /// Delays every later reply by `latency`.
    pub fn set_latency(&self, latency: Latency) {
        self.with(|st| {
            st.record(format_args!("latency {latency:?}"));
            st.faults.latency = latency;
        });
    }

    /// Resets the connection of each command with probability `rate`, before or after applying
    /// it (see [`Faults::failure_rate`]).
    pub fn set_failure_rate(&self, rate: f64) {
        self.with(|st| {
            st.record(format_args!("failure rate {rate}"));
            st.faults.failure_rate = rate;
        });
    }

    /// Answers `-LOADING` to every command but the loading-ok ones from now for `duration`
    /// (zero ends a loading phase).
    pub fn set_loading(&self, duration: Duration) {
        self.with(|st| {
            let now = st.clock_now();
            st.record(format_args!("loading for {}ms", duration.as_millis()));
            st.loading_until = Some(st.until(now, duration));
        });
    }

    /// Whether the server is loading its dataset now.
    pub fn is_loading(&self) -> bool {
        self.with(|st| st.is_loading(st.clock_now()))
    }

    /// Stalls the server's output for `duration`: commands are still read and applied, but every
    /// reply produced during the stall is held and becomes readable when the stall ends (unless
    /// the connection is killed first, which discards it).
    pub fn stall(&self, duration: Duration) {
        self.with(|st| {
            let now = st.clock_now();
            st.record(format_args!("stall for {}ms", duration.as_millis()));
            st.stall_until = Some(st.until(now, duration));
        });
    }

    /// Cuts the next reply (on any connection) after a seeded number of bytes, then resets that
    /// connection: the client reads the prefix, then `ConnectionReset`.
    pub fn reset_next_reply(&self) {
        self.with(|st| {
            st.record("reset next reply");
            st.reset_next = true;
        });
    }

    /// Restarts the server: kills every connection, clears every keyspace, then refuses
    /// connections for `restart.down` and answers `-LOADING` for `restart.loading` after that.
    pub fn restart(&self, restart: Restart) {
        self.with(|st| {
            let now = st.clock_now();
            st.restart(restart, now, now);
        });
    }

    /// Kills connection `client_id` (as `CLIENT KILL ID`): undelivered replies are dropped, its
    /// reads return EOF and its writes fail with `BrokenPipe`. Whether it was open.
    pub fn kill(&self, client_id: u64) -> bool {
        self.with(|st| st.kill(client_id))
    }

    /// Kills every open connection; how many.
    pub fn kill_all(&self) -> usize {
        self.with(State::kill_all)
    }

    /// Schedules `plan`'s episodes (replacing any left of an earlier plan). Episodes whose start
    /// has already passed are applied at once.
    pub fn set_plan(&self, plan: FaultPlan) {
        self.with(|st| {
            st.plan = plan.episodes().iter().copied().collect();
            let now = st.clock_now();
            st.tick(now);
        });
    }

    /// Ends every fault at once: drops the rest of the plan, resets the standing knobs to
    /// [`Faults::default`] and ends any LOADING, stall, refusal, latency or failure-rate episode
    /// and a pending mid-reply reset (the heal phase of a swarm run). Data and connections stay.
    pub fn heal(&self) {
        self.with(|st| {
            st.record("healed");
            st.plan.clear();
            st.faults = Faults::default();
            st.latency_episode = None;
            st.failure_episode = None;
            st.refuse_until = None;
            st.loading_until = None;
            st.stall_until = None;
            st.reset_next = false;
            let now = st.clock_now();
            for conn in st.conns.values_mut() {
                conn.release_held(now);
            }
        });
    }

    /// How many times the server restarted (and lost its data) since it was created.
    pub fn restarts(&self) -> u64 {
        self.lock().restarts
    }

    /// How many connections were accepted since the server was created.
    pub fn connections_accepted(&self) -> u64 {
        self.lock().accepted
    }

    /// How many connections are open now.
    pub fn connected_clients(&self) -> usize {
        self.lock().connected()
    }

    /// The ids of the open connections, ascending.
    pub fn client_ids(&self) -> Vec<u64> {
        let st = self.lock();
        st.conns
            .values()
            .filter(|c| c.is_open())
            .map(|c| c.id)
            .collect()
    }

    /// How many commands were received (rejected ones included).
    pub fn commands_processed(&self) -> u64 {
        self.lock().commands
    }

    /// The string at `key` in keyspace `db`, read directly (`None` if missing, expired, not a
    /// string, or `db` out of range).
    pub fn get(&self, db: usize, key: &[u8]) -> Option<Vec<u8>> {
        self.with(|st| {
            let now = st.clock_now();
            let db = st.dbs.get_mut(db)?;
            match &db.get(key, now)?.value {
                Value::Str(s) => Some(s.clone()),
                _ => None,
            }
        })
    }

    /// Stores the string `value` at `key` in keyspace `db` directly (ignored if `db` is out of
    /// range). Counts as a modification for WATCH.
    pub fn set(&self, db: usize, key: &[u8], value: &[u8]) {
        self.with(|st| {
            let now = st.clock_now();
            if let Some(d) = st.dbs.get_mut(db) {
                d.set(key, Value::Str(value.to_vec()), None, now);
                st.flag_dirty();
            }
        });
    }

    /// The time left before `key` in keyspace `db` expires (`None` if missing or persistent).
    pub fn ttl(&self, db: usize, key: &[u8]) -> Option<Duration> {
        self.with(|st| {
            let now = st.clock_now();
            let at = st.dbs.get_mut(db)?.get(key, now)?.expires?;
            Some(at.saturating_duration_since(now))
        })
    }

    /// How many live keys keyspace `db` holds (0 if out of range).
    pub fn dbsize(&self, db: usize) -> usize {
        self.with(|st| {
            let now = st.clock_now();
            st.dbs.get_mut(db).map_or(0, |d| d.len(now))
        })
    }

    /// The live keys of keyspace `db`, sorted.
    pub fn keys(&self, db: usize) -> Vec<Vec<u8>> {
        self.with(|st| {
            let now = st.clock_now();
            st.dbs.get_mut(db).map_or_else(Vec::new, |d| d.keys(now))
        })
    }

    pub(super) fn write(&self, id: u64, bytes: &[u8]) -> io::Result<usize> {
        self.with(|st| st.on_write(id, bytes))
    }

    pub(super) fn read_step(&self, id: u64, buf: &mut ReadBuf<'_>, waker: &Waker) -> ReadStep {
        self.with(|st| {
            let now = st.clock_now();
            let next_episode = st.next_episode();
            st.expire_blocked(id, now);
            let unblock_at = st.block_deadline(id);
            let Some(conn) = st.conns.get_mut(&id) else {
                return ReadStep::Done(Ok(()));
            };
            let wait = |at: Option<Instant>| match (at.or(unblock_at), next_episode) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match conn.read(now, buf) {
                Read::Data | Read::Eof => ReadStep::Done(Ok(())),
                Read::Reset => ReadStep::Done(Err(io::ErrorKind::ConnectionReset.into())),
                Read::NotDue(at) => {
                    conn.set_reader(waker);
                    ReadStep::Wait(wait(Some(at)))
                }
                Read::Empty => {
                    conn.set_reader(waker);
                    ReadStep::Wait(wait(None))
                }
            }
        })
    }

    /// The client shut its side down: the server closes the connection (reads then see EOF).
    pub(super) fn shutdown(&self, id: u64) {
        self.with(|st| {
            let now = st.clock_now();
            if let Some(conn) = st.conns.get_mut(&id) {
                if conn.is_open() {
                    conn.close(End::Eof, now);
                    st.record(format_args!("#{id} shut down by client"));
                }
            }
        });
    }

    /// The client dropped its stream.
    pub(super) fn disconnect(&self, id: u64) {
        self.with(|st| {
            if let Some(conn) = st.conns.remove(&id) {
                if conn.is_open() {
                    st.record(format_args!("#{id} closed by client"));
                }
            }
        });
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state after applying the fault episodes due now, then wakes the readers
    /// that have something to look at (outside the lock).
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (out, wake) = {
            let mut st = self.lock();
            let now = st.clock_now();
            st.tick(now);
            let out = f(&mut st);
            let wake: Vec<Waker> = st.conns.values_mut().filter_map(Conn::take_wake).collect();
            (out, wake)
        };
        for waker in wake {
            waker.wake();
        }
        out
    }
}

impl fmt::Debug for SimRedis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("SimRedis")
            .field("connected", &st.connected())
            .field("accepted", &st.accepted)
            .field("commands", &st.commands)
            .field("faults", &st.faults)
            .finish_non_exhaustive()
    }
}
