//! Sentinel failover against real processes (a master, a replica, three sentinels; see
//! `support/sentinel.rs`): INCR traffic on a sentinel-backed `main` through an announced
//! failover (tokio, with redis-rs's own sentinel client as the anchor; smol; the blocking API)
//! and through a frozen master (tokio, smol, blocking), with exact accounting of the writes on
//! the new master.
//!
//! Measured by hand on the 2-core test machine, redis 7.0.15 (details in `support/sentinel.rs`):
//! the set starts in ≈ 1.1–1.2 s (sentinels agree ≈ 1.1 s after they start); after
//! `SENTINEL FAILOVER` the leader announces `+try-failover` at once, promotes the replica
//! ≈ 170 ms later and announces `+switch-master` ≈ 650 ms after the command; polled, all
//! sentinels name the new master ≈ 1.0–1.2 s after it; the old master goes on acknowledging
//! writes until it is demoted (its clients disconnected) ≈ 4.1 s after the switch (≈ 10 s with
//! the default sentinel timers); after a SIGSTOP of the master the sentinels name the replica
//! ≈ 2.2–3.1 s later. In these tests: the Keeper's first write on the new master ≈ 1.1–1.4 s
//! after `SENTINEL FAILOVER`, ≈ 2.6 s after the freeze; redis-rs's sentinel client (the anchor)
//! stays on the old master until it is demoted and lost ≈ 5 200 of ≈ 7 000 acknowledged INCRs.
//! Each test takes ≈ 8 s, the six ≈ 50 s.
//!
//! Needs `redis-server` (with Sentinel, 7.0+ for the shortened timers) on the PATH.
#![cfg(all(feature = "tokio", feature = "smol"))]

#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_keeper::seams::{timeout_at, Runtime};
use redis_keeper::{Error, Keeper, KeeperConfig};
use support::harness::{
    assert_typed_command_error, assert_typed_get_error, bounded, fast_policies, keeper, sleep,
    wait_until, CALL_LIMIT,
};
use support::sentinel::SentinelSet;

/// The key the Keeper's workers INCR.
const KEY: &str = "sentinel:counter";
/// The key the anchor's workers INCR.
const ANCHOR_KEY: &str = "anchor:counter";
/// Workers per client.
const WORKERS: usize = 4;
/// Traffic before the fault.
const WARM_UP: Duration = Duration::from_secs(1);
/// Pause after each acknowledged INCR (a few hundred per second per worker).
const PACE: Duration = Duration::from_millis(2);
/// Pause after a failed call, so an open breaker does not turn a worker into a busy loop.
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// How long the sentinels may take to agree on the new master (measured ≈ 1 s announced,
/// ≈ 3 s frozen).
const SWITCH_LIMIT: Duration = Duration::from_secs(10);
/// An announced failover: the Keeper writes to the new master within this long of the switch.
const ANNOUNCED_RECOVERY: Duration = Duration::from_secs(3);
/// A frozen master: the Keeper writes to the new master within this long of the freeze.
const FROZEN_RECOVERY: Duration = Duration::from_secs(10);
/// How long the old master may take to be demoted after the switch (measured ≈ 4.1 s).
const DEMOTION_LIMIT: Duration = Duration::from_secs(15);
/// How long the Keeper's stats may lag behind the switch.
const STATS_LIMIT: Duration = Duration::from_secs(3);
/// How long the workers may take to stop once told (a call is cut off after `CALL_LIMIT`).
const STOP_LIMIT: Duration = Duration::from_secs(15);
/// Errors kept for the typed-error check (the counts go on regardless).
const KEEP_ERRORS: usize = 20_000;
/// Distinct error messages kept for failure messages.
const KEEP_KINDS: usize = 30;

/// One failover test at a time: each runs five server processes and timing-sensitive waits.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Accounting.

/// What one client's workers saw: acknowledged INCRs, INCRs of unknown outcome (sent, then an
/// error or no answer: applied or not), and refusals before anything was sent (no connection).
#[derive(Default)]
struct Tally {
    acked: AtomicU64,
    unknown: AtomicU64,
    refused: AtomicU64,
    /// Each distinct error message and how often it came (the first [`KEEP_KINDS`]).
    kinds: Mutex<BTreeMap<String, u64>>,
    /// The failed commands' errors (the first [`KEEP_ERRORS`]), for the typed check.
    command_errors: Mutex<Vec<redis::RedisError>>,
    /// The failed checkouts' errors (the first [`KEEP_ERRORS`]), for the typed check.
    checkout_errors: Mutex<Vec<Error>>,
}

impl Tally {
    fn ack(&self) {
        self.acked.fetch_add(1, Ordering::Relaxed);
    }

    /// An INCR that was sent and failed (or got no answer): it may or may not have applied.
    fn unknown(&self, what: String) {
        self.unknown.fetch_add(1, Ordering::Relaxed);
        self.note(what);
    }

    /// A call that failed before the INCR was sent.
    fn refused(&self, what: String) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.note(what);
    }

    fn command_error(&self, e: redis::RedisError) {
        self.unknown(e.to_string());
        let mut kept = self
            .command_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if kept.len() < KEEP_ERRORS {
            kept.push(e);
        }
    }

    fn checkout_error(&self, e: Error) {
        self.refused(e.to_string());
        let mut kept = self
            .checkout_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if kept.len() < KEEP_ERRORS {
            kept.push(e);
        }
    }

    fn note(&self, what: String) {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        if kinds.len() < KEEP_KINDS || kinds.contains_key(&what) {
            *kinds.entry(what).or_default() += 1;
        }
    }

    /// `(acked, unknown, refused)`.
    fn counts(&self) -> (u64, u64, u64) {
        (
            self.acked.load(Ordering::Relaxed),
            self.unknown.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }

    /// The counts and the distinct errors, for failure messages.
    fn report(&self) -> String {
        let (acked, unknown, refused) = self.counts();
        let kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        let mut out =
            format!("acked {acked}, unknown outcome {unknown}, refused before sending {refused}");
        for (what, n) in kinds.iter() {
            out.push_str(&format!("\n  {n} × {what}"));
        }
        out
    }

    /// Fails the test on the first error that is not one of the typed ones.
    fn assert_all_typed(&self) {
        for e in self
            .command_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            assert_typed_command_error(e);
        }
        for e in self
            .checkout_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            assert_typed_get_error(e);
        }
    }
}

/// Raises the stop flag when dropped, so a failing test does not leave workers running into the
/// next one.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

// ---------------------------------------------------------------------------------------------
// Workers.

/// How a Keeper call failed.
enum Failure {
    /// `keeper.main()` failed: nothing was sent.
    Checkout(Error),
    /// The INCR failed: it may or may not have applied.
    Command(redis::RedisError),
}

/// INCRs [`KEY`] through `keeper.main()` until `stop`; each call is cut off after
/// [`CALL_LIMIT`] (counted as unknown outcome).
async fn keeper_worker(rt: Runtime, keeper: Keeper, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let clock = rt.clock();
    // Bounded: every call ends within CALL_LIMIT, and the test raises `stop` within seconds.
    while !stop.load(Ordering::Acquire) {
        let call = async {
            match keeper.main().await {
                Ok(mut conn) => conn
                    .incr::<_, _, i64>(KEY, 1)
                    .await
                    .map(drop)
                    .map_err(Failure::Command),
                Err(e) => Err(Failure::Checkout(e)),
            }
        };
        let outcome = timeout_at(&**clock, clock.now() + CALL_LIMIT, call).await;
        let failed = match outcome {
            Ok(Ok(())) => {
                tally.ack();
                false
            }
            Ok(Err(Failure::Command(e))) => {
                tally.command_error(e);
                true
            }
            Ok(Err(Failure::Checkout(e))) => {
                tally.checkout_error(e);
                true
            }
            Err(_) => {
                tally.unknown(format!("no answer within {CALL_LIMIT:?} (call dropped)"));
                true
            }
        };
        sleep(&rt, if failed { ERROR_PAUSE } else { PACE }).await;
    }
}

/// The blocking twin of [`keeper_worker`], through `keeper.get_blocking_shared("main")`.
fn blocking_worker(keeper: Keeper, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    // Bounded: every call ends within the Keeper's own timeouts; `stop` comes within seconds.
    while !stop.load(Ordering::Acquire) {
        let failed = match keeper.get_blocking_shared("main") {
            Ok(mut conn) => {
                let reply: redis::RedisResult<i64> = redis::cmd("INCR").arg(KEY).query(&mut conn);
                match reply {
                    Ok(_) => {
                        tally.ack();
                        false
                    }
                    Err(e) => {
                        tally.command_error(e);
                        true
                    }
                }
            }
            Err(e) => {
                tally.checkout_error(e);
                true
            }
        };
        std::thread::sleep(if failed { ERROR_PAUSE } else { PACE });
    }
}

/// The anchor: INCRs [`ANCHOR_KEY`] through redis-rs's own Sentinel client until `stop`, the way
/// a user of it would: one multiplexed connection to the master the sentinels name, and after
/// any error (counted as unknown outcome) a new one, asked of the sentinels again.
async fn anchor_worker(urls: Vec<String>, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    use redis::sentinel::{SentinelClient, SentinelServerType};
    let mut client = SentinelClient::build(
        urls,
        String::from(support::sentinel::MASTER_NAME),
        None,
        SentinelServerType::Master,
    )
    .expect("redis-rs sentinel client");
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    // Bounded: every call is cut off after CALL_LIMIT; `stop` comes within seconds.
    while !stop.load(Ordering::Acquire) {
        if conn.is_none() {
            match tokio::time::timeout(CALL_LIMIT, client.get_async_connection()).await {
                Ok(Ok(c)) => conn = Some(c),
                Ok(Err(e)) => {
                    tally.refused(format!("get_async_connection: {e}"));
                    tokio::time::sleep(ERROR_PAUSE).await;
                    continue;
                }
                Err(_) => {
                    tally.refused(format!("get_async_connection: none within {CALL_LIMIT:?}"));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let reply = tokio::time::timeout(CALL_LIMIT, c.incr::<_, _, i64>(ANCHOR_KEY, 1)).await;
        match reply {
            Ok(Ok(_)) => {
                tally.ack();
                tokio::time::sleep(PACE).await;
            }
            Ok(Err(e)) => {
                tally.unknown(e.to_string());
                conn = None;
                tokio::time::sleep(ERROR_PAUSE).await;
            }
            Err(_) => {
                tally.unknown(format!("no answer within {CALL_LIMIT:?}"));
                conn = None;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Tokio,
    Smol,
    Blocking,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `SENTINEL FAILOVER`: the replica is promoted ≈ 170 ms after `+try-failover`, the old
    /// master goes on accepting writes (all lost) until the sentinels demote it ≈ 4 s after
    /// `+switch-master`.
    Announced,
    /// SIGSTOP of the master: the sentinels see it down after 1 s and promote the replica.
    Frozen,
}

/// The harness's fast policies (no address of their own) with `main` on the set's master.
fn sentinel_config(set: &SentinelSet) -> KeeperConfig {
    let (name, nodes) = (set.master_name(), set.sentinel_nodes());
    fast_policies(KeeperConfig::default()).configure("main", |d| {
        d.sentinel_master_name(name).sentinel_nodes(nodes)
    })
}

/// Polls `check` every 20 ms until it holds or `deadline` passes (checked at least once).
fn holds_before(deadline: Instant, mut check: impl FnMut() -> bool) -> bool {
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until every thread has finished, then joins them (a worker's panic fails
/// the test here).
fn join_workers(threads: Vec<JoinHandle<()>>, what: &str) {
    wait_until(STOP_LIMIT, what, || {
        threads.iter().all(|t| t.is_finished()).then_some(())
    });
    for t in threads {
        if let Err(panic) = t.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Waits (bounded) until the Keeper's stats for `main` show a switch and name `new_port`.
fn wait_for_switch_in_stats(keeper: &Keeper, new_port: u16) {
    let want = format!("127.0.0.1:{new_port}");
    let deadline = Instant::now() + STATS_LIMIT;
    loop {
        let stats = keeper.stats();
        let sentinel = stats.databases["main"]
            .sentinel
            .as_ref()
            .expect("`main` is sentinel-backed: its stats have a `sentinel` part");
        if sentinel.switches >= 1 && sentinel.master.as_deref() == Some(want.as_str()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the Keeper's stats do not show the switch to {want} within {STATS_LIMIT:?}: \
             master {:?}, switches {}, lookups {}, lookup failures {}, role mismatches {}, \
             READONLY replies {}",
            sentinel.master,
            sentinel.switches,
            sentinel.lookups,
            sentinel.lookup_failures,
            sentinel.role_mismatches,
            sentinel.readonly_replies
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One failover under traffic, checked: every acknowledged INCR is on the new master and
/// nothing more than was sent (`acked ≤ counter ≤ acked + unknown`), the Keeper writes to the
/// new master soon after the switch (announced) or the freeze (frozen), its stats show the
/// switch; on a frozen master every error is a typed one. With `anchor` (tokio only), redis-rs's
/// sentinel client runs the same traffic beside it and its figures are printed.
fn failover_scenario(api: Api, fault: Fault, anchor: bool) {
    let _serial = serial();
    let label = format!("{api:?}, {fault:?}");
    let t_start = Instant::now();
    let mut set = SentinelSet::start();
    let started_in = t_start.elapsed();

    let tokio_rt = (api == Api::Tokio).then(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    });
    let (rt, keeper) = match &tokio_rt {
        Some(tokio_rt) => {
            let _inside = tokio_rt.enter();
            let rt = Runtime::tokio();
            let keeper = keeper(&rt, sentinel_config(&set));
            (rt, keeper)
        }
        None => {
            let rt = Runtime::smol();
            let keeper = keeper(&rt, sentinel_config(&set));
            (rt, keeper)
        }
    };

    // Traffic.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let anchor_tally = Arc::new(Tally::default());
    let mut threads: Vec<JoinHandle<()>> = (0..WORKERS)
        .map(|_| {
            let (rt, keeper, stop, tally) =
                (rt.clone(), keeper.clone(), stop.clone(), tally.clone());
            match &tokio_rt {
                Some(tokio_rt) => {
                    let task = tokio_rt.spawn(keeper_worker(rt, keeper, stop, tally));
                    let handle = tokio_rt.handle().clone();
                    // A thread waits for the task, so a panic in it reaches `join_workers`.
                    std::thread::spawn(move || {
                        if let Err(e) = handle.block_on(task) {
                            if e.is_panic() {
                                std::panic::resume_unwind(e.into_panic());
                            }
                        }
                    })
                }
                None if api == Api::Smol => std::thread::spawn(move || {
                    smol::block_on(keeper_worker(rt, keeper, stop, tally))
                }),
                None => std::thread::spawn(move || blocking_worker(keeper, stop, tally)),
            }
        })
        .collect();
    if anchor {
        let handle = tokio_rt
            .as_ref()
            .expect("the anchor runs on tokio")
            .handle()
            .clone();
        let (urls, stop, anchor_tally) = (set.sentinel_urls(), stop.clone(), anchor_tally.clone());
        // The anchor's four workers as concurrent futures on the test's tokio runtime (driven
        // from a thread of their own: no `Send` needed of redis-rs's futures).
        threads.push(std::thread::spawn(move || {
            let workers = (0..WORKERS)
                .map(|_| anchor_worker(urls.clone(), stop.clone(), anchor_tally.clone()));
            handle.block_on(futures::future::join_all(workers));
        }));
    }
    let stop_guard = StopOnDrop(stop.clone());

    // Sleeps here only let the traffic run; every assertion below waits on a condition.
    std::thread::sleep(WARM_UP);
    let (acked, unknown, refused) = tally.counts();
    assert!(
        acked > 0 && unknown == 0 && refused == 0,
        "{label}: traffic before the fault: {}",
        tally.report()
    );
    let old = set.master_port();

    let candidate = set.other_node(old);

    let fault_at = Instant::now();
    let promoted_with = match fault {
        Fault::Announced => {
            set.failover();
            // The replica's counter when it is first seen a master: what it took from the old
            // master (no client writes to it before `+switch-master`, ≈ 480 ms later).
            let promoted_with = wait_until(
                SWITCH_LIMIT,
                &format!("{label}: the replica {candidate} promoted"),
                // Fallible: the sentinel closes the promoted replica's clients.
                || {
                    (set.try_role(candidate).ok()? == "master")
                        .then(|| set.try_counter(candidate, KEY).ok())
                        .flatten()
                },
            );
            Some(promoted_with)
        }
        Fault::Frozen => {
            set.freeze(old);
            None
        }
    };
    let (new, switched_at) = set.wait_for_new_master(old, SWITCH_LIMIT);
    let switch_took = switched_at.saturating_duration_since(fault_at);

    // The new master's counter stopped growing when it was promoted: it grows again only by
    // writes made to it directly.
    let base = set.counter(new, KEY);
    let recovery_deadline = match fault {
        Fault::Announced => switched_at + ANNOUNCED_RECOVERY,
        Fault::Frozen => fault_at + FROZEN_RECOVERY,
    };
    let wrote = holds_before(recovery_deadline, || {
        set.try_counter(new, KEY).is_ok_and(|n| n > base)
    });
    let first_write = fault_at.elapsed();
    assert!(
        wrote,
        "{label}: the Keeper did not write to the new master {new} by {:?} after the {} \
         (its counter stayed at {base}; the switch was seen {switch_took:?} after the fault); \
         {}\n{}",
        recovery_deadline.saturating_duration_since(fault_at),
        if fault == Fault::Announced {
            "fault (3 s after the switch)"
        } else {
            "freeze"
        },
        tally.report(),
        set.diagnostics()
    );

    // Where writes went after the switch, for the failure messages: the old master's counter
    // when the switch was seen (announced) or right after the thaw (frozen), and when last seen
    // a master, until the sentinels demote it (a bounded wait on that condition).
    if fault == Fault::Frozen {
        set.thaw(old); // back, and still believing it is the master until it is demoted
    }
    let old_first = set.try_counter(old, KEY).unwrap_or(-1);
    let mut old_last = old_first;
    wait_until(
        DEMOTION_LIMIT,
        &format!("{label}: the old master {old} demoted by the sentinels"),
        || {
            // The counter before the role: once demoted, the node soon loads the new master's
            // data (answering -LOADING meanwhile).
            let n = set.try_counter(old, KEY);
            if set.try_role(old).is_ok_and(|r| r != "master") {
                return Some(());
            }
            if let Ok(n) = n {
                old_last = n;
            }
            None
        },
    );
    let old_note = match promoted_with {
        Some(promoted_with) => format!(
            "the replica was promoted with {promoted_with} INCRs; the old master {old} had \
             {old_first} when the switch was seen ({} taken after the promotion), {old_last} \
             when last seen a master ({} more after the switch)",
            old_first - promoted_with,
            old_last - old_first
        ),
        None => format!(
            "the old master {old} had {old_first} INCRs right after the thaw, {old_last} when \
             last seen a master ({} more)",
            old_last - old_first
        ),
    };
    drop(stop_guard);
    join_workers(threads, &format!("{label}: the workers stop"));

    assert_eq!(
        set.master_port(),
        new,
        "{label}: the sentinels moved the master again"
    );
    let on_new = u64::try_from(set.counter(new, KEY)).expect("a non-negative counter");
    let (acked, unknown, refused) = tally.counts();
    eprintln!(
        "keeper ({label}): acked {acked}, unknown {unknown}, refused {refused}, on the new master \
         {on_new}; set up in {started_in:?}, switch seen {switch_took:?} after the fault, a \
         write on the new master {first_write:?} after it at the latest; {old_note}"
    );
    if anchor {
        let z = u64::try_from(set.counter(new, ANCHOR_KEY)).expect("a non-negative counter");
        let (x, y, r) = anchor_tally.counts();
        eprintln!(
            "anchor (redis-rs sentinel): acked {x}, unknown {y}, on the new master {z}, lost {} \
             (refused before sending: {r})",
            x.saturating_sub(z)
        );
    }
    assert!(
        acked <= on_new,
        "{label}: {} acknowledged INCRs are not on the new master {new} (it has {on_new}); \
         {old_note}: {}",
        acked - on_new,
        tally.report()
    );
    assert!(
        on_new <= acked + unknown,
        "{label}: the new master {new} has {on_new} INCRs, more than the {acked} acknowledged \
         plus the {unknown} of unknown outcome (a write applied twice?): {}",
        tally.report()
    );
    if fault == Fault::Frozen {
        tally.assert_all_typed();
    }
    wait_for_switch_in_stats(&keeper, new);

    match &tokio_rt {
        Some(tokio_rt) => tokio_rt.block_on(bounded(&rt, "close", keeper.close())),
        None if api == Api::Smol => smol::block_on(bounded(&rt, "close", keeper.close())),
        None => keeper.close_blocking(),
    }
    if let Some(tokio_rt) = tokio_rt {
        tokio_rt.shutdown_timeout(Duration::from_secs(2));
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn announced_failover_tokio() {
    failover_scenario(Api::Tokio, Fault::Announced, true);
}

#[test]
fn announced_failover_smol() {
    failover_scenario(Api::Smol, Fault::Announced, false);
}

#[test]
fn announced_failover_blocking() {
    failover_scenario(Api::Blocking, Fault::Announced, false);
}

#[test]
fn frozen_master_tokio() {
    failover_scenario(Api::Tokio, Fault::Frozen, false);
}

#[test]
fn frozen_master_smol() {
    failover_scenario(Api::Smol, Fault::Frozen, false);
}

#[test]
fn frozen_master_blocking() {
    failover_scenario(Api::Blocking, Fault::Frozen, false);
}
