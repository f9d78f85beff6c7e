//! The real-server fault suite: seven faults, each under tokio (multi-thread, 2 workers), smol
//! and the blocking API (plain threads), each test with its own `redis-server` on a free
//! loopback port.
//!
//! | fault | what the server does |
//! |---|---|
//! | `f1_restart` | killed mid-traffic and started again on the same port (AOF, `appendfsync always`) |
//! | `f2_loading` | `DEBUG RELOAD` of a dataset that takes ~10 s to load: a real `-LOADING` |
//! | `f3_client_kill` | `CLIENT KILL TYPE normal`, three times, while pipelines run |
//! | `f4_sigstop` | SIGSTOP for 8 s, then SIGCONT |
//! | `f5_maxclients` | every client slot taken by foreign connections, then freed |
//! | `f6_wrong_password` | the password changes under the Keeper (`-WRONGPASS`), then changes back |
//! | `f7_gone_for_good` | killed, its port kept closed |
//!
//! Four workers run `INCR counter` meanwhile: one on a shared connection, one on an exclusive
//! one, one with pipelines of five INCRs, one with atomic (MULTI/EXEC) pipelines of five. Every
//! call ends in one of three ways, counted per INCR:
//!
//! * **acknowledged**: the server replied; the INCR happened exactly once;
//! * **unknown**: a transport failure or a timeout after the command may have been written (the
//!   server may or may not have run it);
//! * **not sent**: refused before anything was written (`CircuitOpen`, `NotReady`, `PoolTimeout`,
//!   `Auth` or another connect failure).
//!
//! Once the fault is over the counter is read on the server and must satisfy
//! `acknowledged ≤ final ≤ acknowledged + unknown`: no acknowledged INCR lost, none run twice.
//! Every failure must be one of the typed errors; an untyped one fails the test. The Keeper must
//! recover within a bounded time, and without a connection storm (`total_connections_received`
//! on the server, minus the test's own connections, is bounded).
//!
//! Each test prints one summary line (`--nocapture` shows it). About 40 s in all on two cores
//! (the ~10 s LOADING and the 8 s SIGSTOP, three times each, make most of it).
//!
//! Needs `redis-server` on the PATH (`scripts/test.sh` installs it).
#![cfg(all(feature = "tokio", feature = "smol"))]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_keeper::seams::{timeout_at, Runtime};
use redis_keeper::{Error, Keeper, KeeperConfig};
use support::harness::{config_for, keeper, sleep, wait_until, MAX_CONNECTIONS};
use support::redis_server::{RedisServer, ServerOptions};

/// The database and key every worker increments.
const DB: &str = "main";
const KEY: &str = "counter";
/// INCRs in one pipeline.
const PIPE_LEN: u64 = 5;
/// Pause between two calls of a worker (a few hundred calls per second per test in all).
const PACE: Duration = Duration::from_millis(5);
/// Pause after a failed call, as a client backing off a little would.
const BACKOFF: Duration = Duration::from_millis(20);
/// Longest any single call may take before the test calls it a hang (the LOADING test allows
/// more: a command sent as the loading starts waits for all of it).
const CALL_LIMIT: Duration = Duration::from_secs(10);
/// Acknowledged INCRs before a fault is injected, and after it ends for "recovered".
const WARM_UP: u64 = 40;
const RECOVERED: u64 = 40;
/// Bound on the wait for recovery once a fault is over.
const RECOVERY_LIMIT: Duration = Duration::from_secs(6);

// ---------------------------------------------------------------------------------------------
// The three ways to call the Keeper.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    /// Async, on a multi-threaded tokio runtime with 2 worker threads.
    Tokio,
    /// Async, on smol.
    Smol,
    /// The blocking API from plain threads (no runtime of the test's own: the Keeper runs on
    /// smol's threads, as in a sync-only program).
    Blocking,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Tokio => "tokio",
            Api::Smol => "smol",
            Api::Blocking => "blocking",
        }
    }
}

/// What a worker does, over and over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// One INCR on a shared connection (`get`, `get_blocking_shared`).
    Shared,
    /// One INCR on an exclusive connection (`get_exclusive`, `get_blocking`).
    Exclusive,
    /// A pipeline of [`PIPE_LEN`] INCRs (`pipeline`, `pipeline_blocking`).
    Pipeline,
    /// The same pipeline in MULTI/EXEC.
    Atomic,
}

impl Op {
    fn incrs(self) -> u64 {
        match self {
            Op::Shared | Op::Exclusive => 1,
            Op::Pipeline | Op::Atomic => PIPE_LEN,
        }
    }

    fn build(self, p: &mut redis::Pipeline) {
        if self == Op::Atomic {
            p.atomic();
        }
        for _ in 0..PIPE_LEN {
            p.incr(KEY, 1);
        }
    }
}

/// The four workers of every test.
const WORKERS: [Op; 4] = [Op::Shared, Op::Exclusive, Op::Pipeline, Op::Atomic];

// ---------------------------------------------------------------------------------------------
// Outcomes.

/// A failed call, as far as the counter is concerned.
#[derive(Debug)]
enum Failure {
    /// Refused before anything was written: the INCRs did not happen.
    NotSent(&'static str),
    /// Failed after the command may have been written: the INCRs may or may not have happened.
    Unknown(&'static str),
    /// Not one of the typed errors: a test failure (counted as unknown meanwhile).
    Untyped(String),
}

/// Whether an error may have been raised after the user's command was written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// From `get`, `get_exclusive`, `get_blocking*`: no user command was written yet.
    Checkout,
    /// From a command or a pipeline call: it may have been.
    Command,
}

/// A Keeper error, classified; checks that it is typed and that no secret shows in it.
fn keeper_failure(e: &Error, stage: Stage, secrets: &[String]) -> Failure {
    if let Some(leak) = leaked(&format!("{e} {e:?}"), secrets) {
        return Failure::Untyped(format!("secret {leak:?} in {e:?}"));
    }
    match e {
        Error::CircuitOpen { .. } => Failure::NotSent("circuit-open"),
        Error::NotReady { .. } => Failure::NotSent("not-ready"),
        Error::PoolTimeout { .. } => Failure::NotSent("pool-timeout"),
        Error::Connect { .. } => Failure::NotSent("connect"),
        Error::Auth { .. } if e.is_retryable() => Failure::Untyped(format!("retryable auth: {e}")),
        Error::Auth { .. } => Failure::NotSent("auth"),
        // A checkout writes no user command: a transport error there came from a probe.
        Error::Redis(inner) if stage == Stage::Checkout => match command_failure(inner, secrets) {
            Failure::Untyped(m) => Failure::Untyped(m),
            _ => Failure::NotSent("checkout-io"),
        },
        Error::Redis(inner) => command_failure(inner, secrets),
        other => Failure::Untyped(format!("unexpected error: {other:?}")),
    }
}

/// A redis-rs error from a command on a Keeper connection (the Keeper's own refusals arrive in
/// redis-rs's type there, keeping their message), classified.
fn command_failure(e: &redis::RedisError, secrets: &[String]) -> Failure {
    let text = e.to_string();
    if let Some(leak) = leaked(&format!("{text} {e:?}"), secrets) {
        return Failure::Untyped(format!("secret {leak:?} in {e:?}"));
    }
    // Refusals before sending: the Keeper's typed error travels inside redis-rs's type.
    match Error::from(e.clone()) {
        Error::CircuitOpen { .. } => return Failure::NotSent("circuit-open"),
        Error::NotReady { .. } => return Failure::NotSent("not-ready"),
        Error::PoolTimeout { .. } => return Failure::NotSent("pool-timeout"),
        _ => {}
    }
    // A shared handle replacing its broken connection passes the connect failure on: a
    // refused connect, a connect timeout, a full server or refused credentials. No command
    // was written on any of them.
    if e.is_connection_refusal() {
        return Failure::NotSent("connect");
    }
    if e.is_timeout() && text.contains("connect timed out") {
        return Failure::NotSent("connect");
    }
    if text.contains("max number of clients reached") {
        return Failure::NotSent("connect");
    }
    if e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
    {
        return Failure::NotSent("auth");
    }
    // After the command may have been written.
    if e.is_timeout() {
        return Failure::Unknown("timeout");
    }
    if e.is_io_error() || e.is_connection_dropped() {
        return Failure::Unknown("io");
    }
    Failure::Untyped(format!("untyped command error: {e:?}"))
}

fn leaked<'a>(text: &str, secrets: &'a [String]) -> Option<&'a str> {
    secrets
        .iter()
        .find(|s| text.contains(s.as_str()))
        .map(String::as_str)
}

/// Phases of a test, as the workers see them.
const WARMING: u8 = 0;
const FAULT: u8 = 1;
const RECOVERING: u8 = 2;

/// Everything the workers count, shared with the controller.
#[derive(Default)]
struct Tally {
    stop: AtomicBool,
    phase: AtomicU8,
    acked: AtomicU64,
    unknown: AtomicU64,
    not_sent: AtomicU64,
    calls: AtomicU64,
    failed_calls: AtomicU64,
    /// Failed calls during each phase.
    failed_in: [AtomicU64; 3],
    /// The largest INCR reply seen: the counter reached it (so the final value is at least it).
    max_reply: AtomicU64,
    /// Longest call, in microseconds.
    longest_call_us: AtomicU64,
    /// Failed calls per kind.
    kinds: Mutex<BTreeMap<&'static str, u64>>,
    /// Untyped errors, malformed replies, hangs: each one fails the test.
    violations: Mutex<Vec<String>>,
    /// Set by the controller once it has seen the breaker open (fault 7): calls started from
    /// then on must fail fast.
    fast_fail_from: Mutex<Option<Instant>>,
    /// The longest failed call started at or after `fast_fail_from`, in microseconds, and how
    /// many of those were `CircuitOpen`.
    slowest_fast_fail_us: AtomicU64,
    circuit_open_after: AtomicU64,
    /// Words that must never appear in an error message.
    secrets: Vec<String>,
}

impl Tally {
    fn new(secrets: &[&str]) -> Arc<Tally> {
        Arc::new(Tally {
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            ..Tally::default()
        })
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    fn violation(&self, what: String) {
        let mut v = self.violations.lock().unwrap();
        if v.len() < 20 {
            v.push(what);
        }
    }

    /// Fails the test at once if a worker saw something it must never see.
    fn check_violations(&self) {
        let v = self.violations.lock().unwrap();
        assert!(v.is_empty(), "workers saw: {v:#?}");
    }

    fn set_phase(&self, phase: u8) {
        self.phase.store(phase, Ordering::Release);
    }

    /// Records one call of `op` that started at `started` and ended with `result`.
    fn record(&self, op: Op, started: Instant, result: Result<Vec<i64>, Failure>) {
        let took = started.elapsed();
        let took_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.longest_call_us.fetch_max(took_us, Ordering::Relaxed);
        let n = op.incrs();
        let failure = match result {
            Ok(values) => {
                self.check_reply(op, &values);
                self.acked.fetch_add(n, Ordering::AcqRel);
                return;
            }
            Err(f) => f,
        };
        self.failed_calls.fetch_add(1, Ordering::Relaxed);
        let phase = self.phase.load(Ordering::Acquire) as usize;
        self.failed_in[phase.min(2)].fetch_add(1, Ordering::Relaxed);
        let kind = match failure {
            Failure::NotSent(kind) => {
                self.not_sent.fetch_add(n, Ordering::Relaxed);
                kind
            }
            Failure::Unknown(kind) => {
                self.unknown.fetch_add(n, Ordering::Relaxed);
                kind
            }
            Failure::Untyped(what) => {
                self.unknown.fetch_add(n, Ordering::Relaxed);
                self.violation(what);
                "untyped"
            }
        };
        *self.kinds.lock().unwrap().entry(kind).or_default() += 1;
        let from = *self.fast_fail_from.lock().unwrap();
        if from.is_some_and(|from| started >= from) {
            self.slowest_fast_fail_us
                .fetch_max(took_us, Ordering::Relaxed);
            if kind == "circuit-open" {
                self.circuit_open_after.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn check_reply(&self, op: Op, values: &[i64]) {
        if values.len() as u64 != op.incrs() || values.iter().any(|&v| v < 1) {
            self.violation(format!("{op:?}: malformed reply {values:?}"));
            return;
        }
        // A transaction runs as one: its INCRs are consecutive.
        if op == Op::Atomic && values.windows(2).any(|w| w[1] != w[0] + 1) {
            self.violation(format!("MULTI/EXEC not atomic: {values:?}"));
        }
        let max = values.iter().copied().max().unwrap_or(0) as u64;
        self.max_reply.fetch_max(max, Ordering::Relaxed);
    }

    fn kinds(&self) -> String {
        let kinds = self.kinds.lock().unwrap();
        if kinds.is_empty() {
            return "none".to_string();
        }
        kinds
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

// ---------------------------------------------------------------------------------------------
// Workers.

async fn async_call(keeper: &Keeper, op: Op, secrets: &[String]) -> Result<Vec<i64>, Failure> {
    match op {
        Op::Shared | Op::Exclusive => {
            let got = if op == Op::Shared {
                keeper.get(DB).await
            } else {
                keeper.get_exclusive(DB).await
            };
            let mut c = got.map_err(|e| keeper_failure(&e, Stage::Checkout, secrets))?;
            c.incr::<_, _, i64>(KEY, 1)
                .await
                .map(|v| vec![v])
                .map_err(|e| command_failure(&e, secrets))
        }
        Op::Pipeline | Op::Atomic => keeper
            .pipeline::<Vec<i64>, _>(DB, |p| op.build(p))
            .await
            .map_err(|e| keeper_failure(&e, Stage::Command, secrets)),
    }
}

fn blocking_call(keeper: &Keeper, op: Op, secrets: &[String]) -> Result<Vec<i64>, Failure> {
    match op {
        Op::Shared | Op::Exclusive => {
            let got = if op == Op::Shared {
                keeper.get_blocking_shared(DB)
            } else {
                keeper.get_blocking(DB)
            };
            let mut c = got.map_err(|e| keeper_failure(&e, Stage::Checkout, secrets))?;
            redis::Commands::incr::<_, _, i64>(&mut c, KEY, 1)
                .map(|v| vec![v])
                .map_err(|e| command_failure(&e, secrets))
        }
        Op::Pipeline | Op::Atomic => keeper
            .pipeline_blocking::<Vec<i64>, _>(DB, |p| op.build(p))
            .map_err(|e| keeper_failure(&e, Stage::Command, secrets)),
    }
}

/// Longest a worker runs at all, whatever the controller does.
const WORKER_LIMIT: Duration = Duration::from_secs(50);

async fn async_worker(rt: Runtime, keeper: Keeper, tally: Arc<Tally>, op: Op, limit: Duration) {
    let clock = rt.clock().clone();
    let end = Instant::now() + WORKER_LIMIT;
    while !tally.stopped() && Instant::now() < end {
        let started = Instant::now();
        let call = async_call(&keeper, op, &tally.secrets);
        let pause = match timeout_at(&*clock, clock.now() + limit, call).await {
            Ok(result) => {
                let ok = result.is_ok();
                tally.record(op, started, result);
                if ok {
                    PACE
                } else {
                    BACKOFF
                }
            }
            Err(_) => {
                tally.violation(format!("{op:?}: no answer within {limit:?}"));
                tally.unknown.fetch_add(op.incrs(), Ordering::Relaxed);
                BACKOFF
            }
        };
        sleep(&rt, pause).await;
    }
}

fn blocking_worker(keeper: Keeper, tally: Arc<Tally>, op: Op, limit: Duration) {
    let end = Instant::now() + WORKER_LIMIT;
    while !tally.stopped() && Instant::now() < end {
        let started = Instant::now();
        let result = blocking_call(&keeper, op, &tally.secrets);
        if started.elapsed() > limit {
            tally.violation(format!("{op:?}: took {:?}", started.elapsed()));
        }
        let pause = if result.is_ok() { PACE } else { BACKOFF };
        tally.record(op, started, result);
        std::thread::sleep(pause);
    }
}

// ---------------------------------------------------------------------------------------------
// One test: a runtime (if any), a Keeper on it, the workers, and the controller (this thread).

struct Harness {
    api: Api,
    tokio: Option<tokio::runtime::Runtime>,
    /// The Keeper's runtime seams (async APIs).
    seams: Option<Runtime>,
    keeper: Keeper,
    tally: Arc<Tally>,
    traffic: Vec<JoinHandle<()>>,
}

impl Harness {
    /// A Keeper for `api` with `config`; `secrets` must never show in an error.
    fn new(api: Api, config: KeeperConfig, secrets: &[&str]) -> Harness {
        let (tokio, seams, keeper) = match api {
            Api::Tokio => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                let seams = {
                    let _inside = rt.enter();
                    Runtime::tokio()
                };
                let keeper = keeper(&seams, config);
                (Some(rt), Some(seams), keeper)
            }
            Api::Smol => {
                let seams = Runtime::smol();
                let keeper = keeper(&seams, config);
                (None, Some(seams), keeper)
            }
            Api::Blocking => {
                // What a sync-only program does: no runtime, the Keeper picks smol's threads.
                let keeper = Keeper::builder(config)
                    .env(std::collections::HashMap::<String, String>::new())
                    .seed(7)
                    .build()
                    .expect("valid config");
                (None, None, keeper)
            }
        };
        Harness {
            api,
            tokio,
            seams,
            keeper,
            tally: Tally::new(secrets),
            traffic: Vec::new(),
        }
    }

    /// Starts the four workers; each call may take up to `call_limit`.
    fn start(&mut self, call_limit: Duration) {
        let spawn = |op: Op| {
            let (keeper, tally) = (self.keeper.clone(), self.tally.clone());
            let seams = self.seams.clone();
            match (&self.tokio, seams) {
                (Some(rt), Some(seams)) => {
                    let handle = rt.handle().clone();
                    let task = rt.spawn(async_worker(seams, keeper, tally, op, call_limit));
                    // A thread waits for the task, so a panic in it reaches `stop`.
                    std::thread::spawn(move || {
                        if let Err(e) = handle.block_on(task) {
                            if e.is_panic() {
                                std::panic::resume_unwind(e.into_panic());
                            }
                        }
                    })
                }
                (None, Some(seams)) => std::thread::spawn(move || {
                    smol::block_on(async_worker(seams, keeper, tally, op, call_limit))
                }),
                _ => std::thread::spawn(move || blocking_worker(keeper, tally, op, call_limit)),
            }
        };
        self.traffic = WORKERS.iter().map(|&op| spawn(op)).collect();
    }

    /// Waits (bounded) for `check`, failing at once if a worker reported a violation.
    fn wait_for(&self, limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
        let t0 = Instant::now();
        wait_until(limit, what, || {
            self.tally.check_violations();
            check().then_some(())
        });
        t0.elapsed()
    }

    /// Lets the fault last `d` (not an assertion: the workers keep calling meanwhile).
    fn hold(&self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.tally.check_violations();
            std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
        }
    }

    fn warm_up(&self) {
        self.wait_for(Duration::from_secs(5), "traffic before the fault", || {
            self.tally.acked() >= WARM_UP
        });
        let failed = self.tally.failed_in[WARMING as usize].load(Ordering::Relaxed);
        assert_eq!(
            failed,
            0,
            "failures before the fault: {}",
            self.tally.kinds()
        );
    }

    /// Marks the fault over and waits (bounded) until the workers get through again; returns
    /// how long that took.
    fn recover(&self) -> Duration {
        self.tally.set_phase(RECOVERING);
        let from = self.tally.acked();
        self.wait_for(RECOVERY_LIMIT, "recovery after the fault", || {
            self.tally.acked() >= from + RECOVERED
        })
    }

    /// Stops the workers and waits (bounded) for them.
    fn stop(&mut self) {
        self.tally.stop.store(true, Ordering::Release);
        let traffic = std::mem::take(&mut self.traffic);
        wait_until(
            CALL_LIMIT * 2 + Duration::from_secs(5),
            "workers stop",
            || traffic.iter().all(|t| t.is_finished()).then_some(()),
        );
        for t in traffic {
            if let Err(panic) = t.join() {
                std::panic::resume_unwind(panic);
            }
        }
        self.tally.check_violations();
    }

    /// `acknowledged ≤ final ≤ acknowledged + unknown`, and the largest reply seen is at most the
    /// final value.
    fn check_counter(&self, server_final: u64) {
        let t = &self.tally;
        let (acked, unknown) = (t.acked(), t.unknown.load(Ordering::Relaxed));
        assert!(
            acked <= server_final,
            "lost acknowledged INCRs: {acked} acknowledged, {server_final} on the server"
        );
        assert!(
            server_final <= acked + unknown,
            "INCRs ran that nobody sent: {server_final} on the server, {acked} acknowledged, {unknown} unknown"
        );
        let max_reply = t.max_reply.load(Ordering::Relaxed);
        assert!(
            max_reply <= server_final,
            "a reply said {max_reply}, the server ends at {server_final}"
        );
    }

    /// The summary line.
    fn report(&self, fault: &str, server_final: Option<u64>, connects: &str, recovery: &str) {
        let t = &self.tally;
        let db = &self.keeper.stats().databases[DB];
        println!(
            "fault={fault} runtime={} acknowledged={} unknown={} not_sent={} final={} connects={connects} recovery={recovery} calls={} failed_calls={} failures=[{}] breaker_trips={} retries={} connections_created={} connections_failed={}",
            self.api.name(),
            t.acked(),
            t.unknown.load(Ordering::Relaxed),
            t.not_sent.load(Ordering::Relaxed),
            server_final.map_or("-".to_string(), |f| f.to_string()),
            t.calls.load(Ordering::Relaxed),
            t.failed_calls.load(Ordering::Relaxed),
            t.kinds(),
            db.breaker_trips,
            db.retries,
            db.connections_created,
            db.connections_failed,
        );
    }

    /// One `get` (`get_blocking` for the blocking API) made by the controller itself.
    fn get_once(&self) -> Result<(), Error> {
        let k = self.keeper.clone();
        match (&self.tokio, self.api) {
            (_, Api::Blocking) => k.get_blocking(DB).map(drop),
            (Some(rt), _) => rt.block_on(async move { k.get(DB).await.map(drop) }),
            (None, _) => smol::block_on(async move { k.get(DB).await.map(drop) }),
        }
    }

    fn close(&self) {
        self.keeper.check_invariants().expect("pool invariants");
        self.keeper.close_blocking();
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // On a failed assertion: stop the workers so the runtime can go down.
        self.tally.stop.store(true, Ordering::Release);
        if let Some(rt) = self.tokio.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// The counter on the server (0 when absent).
fn counter_on(server: &RedisServer) -> u64 {
    server
        .get_in_db(0, KEY)
        .map_or(0, |v| v.parse().expect("a number"))
}

/// The fault tests' Keeper configuration: the real-server suite's fast policies, a pool wait of
/// one second.
fn fault_config(server: &RedisServer) -> KeeperConfig {
    config_for(server).configure_all(|d| d.pool_wait_timeout(Duration::from_secs(1)))
}

// ---------------------------------------------------------------------------------------------
// 1. Restart mid-traffic, on the same port. Persistence: AOF with `appendfsync always`, so every
// acknowledged INCR is on disk before its reply leaves the server and the restarted server loads
// it again: the whole run is checked against one counter. (An INCR the old server ran but did
// not acknowledge may or may not survive: it counts as unknown either way.)

fn f1_restart(api: Api) {
    let mut server = RedisServer::start(
        ServerOptions::new()
            .arg("appendonly", "yes")
            .arg("appendfsync", "always"),
    );
    let mut h = Harness::new(api, fault_config(&server), &[]);
    h.start(CALL_LIMIT);
    h.warm_up();
    h.tally.set_phase(FAULT);
    // The port stays closed for 300 ms: connects are refused meanwhile.
    server.restart_after(Duration::from_millis(300));
    let recovery = h.recover();
    h.hold(Duration::from_millis(100));
    h.stop();
    let server_final = counter_on(&server);
    // Everything after the restart: the counter is reset with the process.
    let connects = server.foreign_connections_received();
    h.report(
        "restart",
        Some(server_final),
        &connects.to_string(),
        &format!("{recovery:?}"),
    );
    h.check_counter(server_final);
    assert!(
        h.tally.failed_in[FAULT as usize].load(Ordering::Relaxed) >= 1,
        "the restart went unnoticed"
    );
    // No storm: the new server sees each connection of the pool about once.
    let bound = u64::from(MAX_CONNECTIONS) * 2;
    assert!(
        connects <= bound,
        "{connects} connections to the restarted server (bound {bound})"
    );
    h.close();
}

// ---------------------------------------------------------------------------------------------
// 2. A real LOADING of ~10 s: `DEBUG RELOAD` of 1000 keys of 1 KiB with a 10 ms load delay per
// key. Commands meanwhile get `-LOADING`, which means they did not run: the Keeper waits for
// readiness and sends them again. The loading timeout (20 s) is above the loading time, so no
// call may fail at all, and the counter must match the acknowledged INCRs exactly.

fn f2_loading(api: Api) {
    let server = RedisServer::start(ServerOptions::new());
    server.prepare_slow_reload(1000, 1024, Duration::from_millis(10));
    let config = fault_config(&server).configure_all(|d| {
        d.loading_timeout(Duration::from_secs(20))
            .response_timeout(Duration::from_secs(2))
    });
    let mut h = Harness::new(api, config, &[]);
    // A command sent as the loading starts waits all of it.
    h.start(Duration::from_secs(20));
    h.warm_up();
    let before = server.foreign_connections_received();
    h.tally.set_phase(FAULT);
    let t0 = Instant::now();
    let reload = server.reload_in_background(Duration::from_secs(30));
    h.wait_for(Duration::from_secs(30), "DEBUG RELOAD done", || {
        reload.is_finished()
    });
    let loading = t0.elapsed();
    reload.join().expect("reload thread").expect("DEBUG RELOAD");
    let recovery = h.recover();
    h.stop();
    let server_final = counter_on(&server);
    let connects = server.foreign_connections_received() - before;
    h.report(
        "loading",
        Some(server_final),
        &connects.to_string(),
        &format!("{recovery:?} after {loading:?} of LOADING"),
    );
    assert!(
        loading >= Duration::from_secs(8),
        "the loading lasted {loading:?}"
    );
    assert_eq!(
        h.tally.failed_calls.load(Ordering::Relaxed),
        0,
        "LOADING is ridden out: {}",
        h.tally.kinds()
    );
    h.check_counter(server_final);
    let db = &h.keeper.stats().databases[DB];
    assert!(db.loading_episodes >= 1, "{db:?}");
    assert_eq!(
        db.breaker_trips, 0,
        "LOADING never trips the breaker: {db:?}"
    );
    assert_eq!(db.failed_operations, 0, "{db:?}");
    // The connections live through the reload: nothing new is needed.
    assert!(
        connects <= u64::from(MAX_CONNECTIONS),
        "{connects} connections during the loading"
    );
    h.close();
}

// ---------------------------------------------------------------------------------------------
// 3. `CLIENT KILL TYPE normal` three times, 250 ms apart, while pipelines (plain and MULTI/EXEC)
// run. The server itself is fine throughout: each kill is one event, so the breaker must not
// open, and each kill costs at most one new connection per pool slot. A kill drops every
// connection of the pool at the same moment; by default that is up to `max_connections` (20)
// against a breaker threshold of 5. The pool here holds three or four, so the threshold is 3,
// keeping "more connections than the threshold".

const KILLS: u64 = 3;

fn f3_client_kill(api: Api) {
    let server = RedisServer::start(ServerOptions::new());
    let config = fault_config(&server).configure_all(|d| d.breaker_failure_threshold(3));
    let mut h = Harness::new(api, config, &[]);
    h.start(CALL_LIMIT);
    h.warm_up();
    let before = server.foreign_connections_received();
    h.tally.set_phase(FAULT);
    let mut killed = 0;
    for round in 0..KILLS {
        if round > 0 {
            h.hold(Duration::from_millis(250));
        }
        killed += server.kill_normal_clients();
    }
    let recovery = h.recover();
    h.hold(Duration::from_millis(100));
    h.stop();
    let server_final = counter_on(&server);
    let connects = server.foreign_connections_received() - before;
    h.report(
        "client-kill",
        Some(server_final),
        &format!("{connects} (killed {killed})"),
        &format!("{recovery:?}"),
    );
    assert!(killed >= KILLS, "killed {killed}");
    h.check_counter(server_final);
    let db = &h.keeper.stats().databases[DB];
    assert_eq!(
        db.breaker_trips,
        0,
        "the server never went away: {db:?}, failures {}",
        h.tally.kinds()
    );
    let bound = u64::from(MAX_CONNECTIONS) * (KILLS + 1);
    assert!(
        connects <= bound,
        "{connects} connections for {KILLS} kills (bound {bound})"
    );
    h.close();
}

// ---------------------------------------------------------------------------------------------
// 4. SIGSTOP for 8 s, then SIGCONT. Commands time out (1 s) and their connections are closed;
// connects time out too (the kernel still accepts, nobody answers); the breaker opens and only
// a probe per open period (2 s) touches the network. Commands that timed out may still run
// when the server wakes (they sat in its socket buffers): they are the unknown ones.

fn f4_sigstop(api: Api) {
    let mut server = RedisServer::start(ServerOptions::new());
    let open_for = Duration::from_secs(2);
    let stopped_for = Duration::from_secs(8);
    let config = fault_config(&server).configure_all(|d| {
        d.response_timeout(Duration::from_secs(1))
            .connect_timeout(Duration::from_millis(500))
            .breaker_open_for(open_for)
    });
    let mut h = Harness::new(api, config, &[]);
    h.start(CALL_LIMIT);
    h.warm_up();
    let before = server.foreign_connections_received();
    h.tally.set_phase(FAULT);
    server.pause();
    h.hold(stopped_for);
    server.resume();
    let recovery = h.recover();
    h.hold(Duration::from_millis(100));
    h.stop();
    let server_final = counter_on(&server);
    let connects = server.foreign_connections_received() - before;
    let longest = Duration::from_micros(h.tally.longest_call_us.load(Ordering::Relaxed));
    h.report(
        "sigstop",
        Some(server_final),
        &connects.to_string(),
        &format!("{recovery:?}, longest call {longest:?}"),
    );
    h.check_counter(server_final);
    let db = &h.keeper.stats().databases[DB];
    assert!(db.breaker_trips >= 1, "the breaker opened: {db:?}");
    assert!(
        *h.tally
            .kinds
            .lock()
            .unwrap()
            .get("circuit-open")
            .unwrap_or(&0)
            >= 1,
        "calls were refused while the breaker was open: {}",
        h.tally.kinds()
    );
    // No call waits for the server: each gives up well before the 8 s are over.
    assert!(longest < Duration::from_secs(6), "a call took {longest:?}");
    // Connects: one per pool slot to recover, plus the attempts made while stopped (they queue
    // in the kernel's backlog and are accepted on SIGCONT): the threshold's worth before the
    // breaker opens and one probe per open period after.
    let probes = (stopped_for.as_millis() / open_for.as_millis()) as u64 + 1;
    let bound = u64::from(MAX_CONNECTIONS) * 2 + 5 + probes;
    assert!(connects <= bound, "{connects} connections (bound {bound})");
    h.close();
}

// ---------------------------------------------------------------------------------------------
// 5. maxclients reached. The server starts with `--maxclients 16`; at the fault the test fills
// four slots with raw connections of its own, lowers maxclients to exactly the clients that are
// not the Keeper's (its admin connection and the occupants) and kills the Keeper's connections:
// every reconnect is answered `-ERR max number of clients reached`. After 1.5 s the occupants
// leave and maxclients goes back up.

fn f5_maxclients(api: Api) {
    let server = RedisServer::start(ServerOptions::new().arg("maxclients", "16"));
    let mut h = Harness::new(api, fault_config(&server), &[]);
    h.start(CALL_LIMIT);
    h.warm_up();
    let mut admin = server.connection();
    let admin_id: u64 = redis::cmd("CLIENT")
        .arg("ID")
        .query(&mut admin)
        .expect("CLIENT ID");
    let before = server.foreign_connections_received();
    let rejected_before = RedisServer::info_u64_on(&mut admin, "rejected_connections");
    h.tally.set_phase(FAULT);
    let occupants = server.occupy(4);
    let full = 1 + occupants.len();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(full)
        .query(&mut admin)
        .expect("CONFIG SET maxclients");
    let ours: Vec<u64> = occupants.iter().map(|o| o.id).chain([admin_id]).collect();
    let mut killed = 0;
    for id in RedisServer::client_ids_on(&mut admin) {
        if !ours.contains(&id) {
            let n: u64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query(&mut admin)
                .expect("CLIENT KILL ID");
            killed += n;
        }
    }
    let fault_start = Instant::now();
    // What an operator reads meanwhile: the failure at hand, connecting to a full server.
    let k = h.keeper.clone();
    h.wait_for(
        Duration::from_secs(3),
        "failed connects in last_error",
        || {
            let rejected = RedisServer::info_u64_on(&mut admin, "rejected_connections");
            let last_error = k.stats().databases[DB].last_error.clone();
            rejected > rejected_before
                && last_error.is_some_and(|e| e.contains("could not connect"))
        },
    );
    h.hold(Duration::from_millis(1500).saturating_sub(fault_start.elapsed()));
    let rejected = RedisServer::info_u64_on(&mut admin, "rejected_connections") - rejected_before;
    drop(occupants);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(16)
        .query(&mut admin)
        .expect("CONFIG SET maxclients");
    let recovery = h.recover();
    h.hold(Duration::from_millis(100));
    h.stop();
    drop(admin);
    let server_final = counter_on(&server);
    let connects = server.foreign_connections_received() - before;
    h.report(
        "maxclients",
        Some(server_final),
        &format!("{connects} (+{rejected} rejected, killed {killed})"),
        &format!("{recovery:?}"),
    );
    assert!(killed >= 1, "the Keeper had no connection to kill");
    h.check_counter(server_final);
    // Attempts against the full server follow the retry schedule and the breaker: a few per
    // worker and second, not one per call.
    assert!(
        rejected <= 40,
        "{rejected} connects against the full server"
    );
    let bound = u64::from(MAX_CONNECTIONS) * 2;
    assert!(connects <= bound, "{connects} connections (bound {bound})");
    h.close();
}

// ---------------------------------------------------------------------------------------------
// 6. A wrong password: the server's password changes under the Keeper (`CONFIG SET
// requirepass`) and its connections are killed; every reconnect is refused with `WRONGPASS`.
// That is `Error::Auth`: typed, not retryable, never retried, the breaker untouched, and neither
// password in any message. Then the password changes back and the Keeper recovers by itself.
// (Each call meanwhile makes one connect attempt: accepted behaviour, only the connections after
// the recovery are bounded.)

fn f6_wrong_password(api: Api) {
    const RIGHT: &str = "right-pass-3f9a";
    const ROTATED: &str = "rotated-pass-7c21";
    let server = RedisServer::start(ServerOptions::new().password(RIGHT));
    let config = fault_config(&server).password(RIGHT);
    let mut h = Harness::new(api, config, &[RIGHT, ROTATED]);
    h.start(CALL_LIMIT);
    h.warm_up();
    // Authenticated before the change: it stays usable.
    let mut admin = server.connection();
    let retries_before = h.keeper.stats().databases[DB].retries;
    h.tally.set_phase(FAULT);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(ROTATED)
        .query(&mut admin)
        .expect("CONFIG SET requirepass");
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(&mut admin)
        .expect("CLIENT KILL");
    h.wait_for(Duration::from_secs(5), "auth failures", || {
        h.tally
            .kinds
            .lock()
            .unwrap()
            .get("auth")
            .copied()
            .unwrap_or(0)
            >= 5
    });
    h.hold(Duration::from_millis(500));
    let retries_during = h.keeper.stats().databases[DB].retries - retries_before;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(RIGHT)
        .query(&mut admin)
        .expect("CONFIG SET requirepass");
    let before_recovery = RedisServer::info_u64_on(&mut admin, "total_connections_received");
    let recovery = h.recover();
    h.hold(Duration::from_millis(100));
    h.stop();
    let after = RedisServer::info_u64_on(&mut admin, "total_connections_received");
    drop(admin);
    let server_final = counter_on(&server);
    // The admin connection opened none of these.
    let connects = after - before_recovery;
    h.report(
        "wrong-password",
        Some(server_final),
        &format!("{connects} after recovery (killed {killed})"),
        &format!("{recovery:?}"),
    );
    assert!(killed >= 1, "the Keeper had no connection to kill");
    assert_eq!(retries_during, 0, "an auth failure is never retried");
    h.check_counter(server_final);
    let db = &h.keeper.stats().databases[DB];
    assert_eq!(db.breaker_trips, 0, "auth failures do not trip: {db:?}");
    let last = db.last_error.clone().unwrap_or_default();
    assert!(
        !last.contains(RIGHT) && !last.contains(ROTATED),
        "secret in {last}"
    );
    let bound = u64::from(MAX_CONNECTIONS) * 2;
    assert!(
        connects <= bound,
        "{connects} connections after the recovery (bound {bound})"
    );
    h.close();
}

// ---------------------------------------------------------------------------------------------
// 7. The server gone for good: killed, its port kept closed. Every failure is typed, the breaker
// opens, and from then on every call fails fast (`CircuitOpen`, or a refused probe) instead of
// hanging; connect attempts stay few (the retry schedule, then one probe per open period).

fn f7_gone_for_good(api: Api) {
    let mut server = RedisServer::start(ServerOptions::new());
    let open_for = Duration::from_millis(500);
    let config = fault_config(&server).configure_all(|d| d.breaker_open_for(open_for));
    let mut h = Harness::new(api, config, &[]);
    h.start(CALL_LIMIT);
    h.warm_up();
    let connects = server.foreign_connections_received();
    h.tally.set_phase(FAULT);
    let t0 = Instant::now();
    server.stop_for_good();
    let k = h.keeper.clone();
    let opened_after = h.wait_for(Duration::from_secs(5), "the breaker opens", || {
        k.stats().databases[DB].breaker_trips >= 1
    });
    let from = Instant::now();
    *h.tally.fast_fail_from.lock().unwrap() = Some(from);
    let acked_then = h.tally.acked();
    // What an operator reads: the failure at hand, connecting to a closed port.
    h.wait_for(
        Duration::from_secs(3),
        "failed connects in last_error",
        || {
            k.stats().databases[DB]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("could not connect"))
        },
    );
    h.hold(Duration::from_millis(1500).saturating_sub(from.elapsed()));
    // The controller's own call, timed: refused at once.
    let t1 = Instant::now();
    let direct = h.get_once();
    let direct_took = t1.elapsed();
    let gone_for = t0.elapsed();
    h.stop();
    let slowest = Duration::from_micros(h.tally.slowest_fast_fail_us.load(Ordering::Relaxed));
    let circuit_open = h.tally.circuit_open_after.load(Ordering::Relaxed);
    h.report(
        "gone-for-good",
        None,
        &format!("{connects} before the kill"),
        &format!(
            "breaker open after {opened_after:?}; slowest failure after that {slowest:?}; {circuit_open} circuit-open"
        ),
    );
    assert!(
        matches!(direct, Err(Error::CircuitOpen { .. })),
        "{direct:?}"
    );
    assert!(
        direct_took < Duration::from_millis(500),
        "refused in {direct_took:?}"
    );
    assert!(circuit_open >= 1, "no call met the open breaker");
    assert!(
        slowest < Duration::from_millis(500),
        "a call took {slowest:?} with the breaker open"
    );
    assert!(
        h.tally.acked() <= acked_then,
        "INCRs acknowledged by a server that is gone"
    );
    let db = &h.keeper.stats().databases[DB];
    // Connect attempts: the retry schedule of each caller until the breaker opened, then one
    // probe per open period.
    let periods = (gone_for.as_millis() / open_for.as_millis()) as u64 + 1;
    let bound = 5 * WORKERS.len() as u64 + 2 * periods;
    assert!(
        db.connections_failed <= bound,
        "{} connect attempts against a closed port (bound {bound})",
        db.connections_failed
    );
    h.close();
}

// ---------------------------------------------------------------------------------------------

/// Each fault under tokio (multi-thread, 2 workers), smol and the blocking API.
macro_rules! on_every_api {
    ($($fault:ident),* $(,)?) => {
        $(
            mod $fault {
                use super::Api;

                #[test]
                fn tokio() {
                    super::$fault(Api::Tokio);
                }

                #[test]
                fn smol() {
                    super::$fault(Api::Smol);
                }

                #[test]
                fn blocking() {
                    super::$fault(Api::Blocking);
                }
            }
        )*
    };
}

on_every_api! {
    f1_restart,
    f2_loading,
    f3_client_kill,
    f4_sigstop,
    f5_maxclients,
    f6_wrong_password,
    f7_gone_for_good,
}
