//! The watcher of a Sentinel-backed database: one task holding a RESP3 subscription
//! (`PSUBSCRIBE *`) on every known sentinel, so a failover announced by any of them (the leader
//! announces the early stages only on its own connection) starts a hold at once, and a poll of
//! the master's address every `sentinel_poll_interval` as a backstop (a missed event, a
//! partitioned sentinel). Dead subscriptions are opened again at the next poll.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::channel::mpsc;
use futures::future::{abortable, AbortHandle, Either};
use futures::StreamExt;
use redis::{PushInfo, PushKind};

use super::lookup::{SentinelConn, SENTINEL_TIMEOUT};
use super::{bump, LookupError, SentinelBackend};
use crate::database::dial::OnPush;
use crate::policy::{FollowerAction, SentinelSignal};
use crate::seams::Endpoint;

/// Polls between two refreshes of the sentinel list (`SENTINEL sentinels`).
const POLLS_PER_PEER_REFRESH: u32 = 15;

/// One sentinel's subscription.
struct Subscription {
    node: Endpoint,
    conn: SentinelConn,
    /// Set by the push handler when the connection is lost.
    lost: Arc<AtomicBool>,
}

impl Subscription {
    fn is_alive(&self) -> bool {
        !self.lost.load(Ordering::Acquire) && !self.conn.driver.is_closed()
    }
}

/// Spawns the watcher of a Sentinel backend; abort the handle to stop it.
pub(crate) fn spawn_watcher(sentinel: Arc<SentinelBackend>) -> AbortHandle {
    let spawner = sentinel.runtime.spawner().clone();
    let (task, handle) = abortable(async move { watch(sentinel).await });
    spawner.spawn(Box::pin(async move {
        let _ = task.await;
    }));
    handle
}

/// The watcher's loop. Bounded by abort (the Keeper's close or drop): each round waits for a
/// message or sleeps to the follower's next deadline.
async fn watch(sentinel: Arc<SentinelBackend>) {
    let sentinel = &sentinel;
    // The push handlers apply the sentinels' events themselves (no I/O, a few short locks), so
    // an announcement never waits behind this loop's connects and polls; they only wake it.
    let (tx, mut rx) = mpsc::unbounded::<()>();
    let mut subs: Vec<Subscription> = Vec::new();
    let mut polls = 0u32;
    let clock = sentinel.runtime.clock().clone();
    loop {
        let next = sentinel.next_deadline();
        let message = {
            let timer = clock.sleep_until(next);
            futures::pin_mut!(timer);
            match futures::future::select(rx.next(), timer).await {
                Either::Left((message, _)) => message,
                Either::Right(_) => None,
            }
        };
        if message.is_some() {
            continue; // an event: the next deadline may have moved
        }
        match sentinel.tick(clock.now()) {
            FollowerAction::Poll => {
                subs.retain(Subscription::is_alive);
                subscribe_missing(sentinel, &mut subs, &tx).await;
                poll(sentinel, &subs).await;
                polls = polls.wrapping_add(1);
                if polls % POLLS_PER_PEER_REFRESH == 1 {
                    refresh_peers(sentinel, &subs).await;
                }
            }
            FollowerAction::Release => {
                sentinel_event!(
                    sentinel,
                    WARN,
                    "sentinel failover hold timed out; sending to the master as known"
                );
            }
            FollowerAction::None | FollowerAction::HoldUntil(_) => {}
        }
    }
}

/// A sentinel's event.
fn on_message(sentinel: &SentinelBackend, channel: &str, payload: &str, now: Instant) {
    let Some(signal) = SentinelSignal::parse(channel, payload, &sentinel.settings.master_name)
    else {
        return;
    };
    // A switch is learnt before the follower sees it: its release wakes the held commands,
    // which (on another thread) must find the new address and the old connections stale.
    if let SentinelSignal::Switched { host, port } = &signal {
        if !sentinel.reads_replicas() {
            sentinel.switched_to(Endpoint::tcp(host.clone(), *port), None, "+switch-master");
        }
    }
    let action = sentinel.signal(&signal, now);
    match &signal {
        SentinelSignal::FailoverStarted => {
            if matches!(action, FollowerAction::HoldUntil(_)) {
                sentinel_event!(sentinel, INFO, event = %channel, "sentinel failover announced; commands hold");
            }
        }
        SentinelSignal::FailoverAborted => {
            sentinel_event!(sentinel, WARN, event = %channel, "sentinel failover aborted; commands go on");
        }
        // Learnt above; a replica reader lists the replicas again at the poll it made due.
        SentinelSignal::Switched { .. } => {}
    }
}

/// The timeout of one sentinel step.
fn step_limit(sentinel: &SentinelBackend) -> std::time::Duration {
    sentinel.connect_timeout.min(SENTINEL_TIMEOUT)
}

/// Opens a subscription on every known sentinel that has none.
async fn subscribe_missing(
    sentinel: &Arc<SentinelBackend>,
    subs: &mut Vec<Subscription>,
    tx: &mpsc::UnboundedSender<()>,
) {
    let limit = step_limit(sentinel);
    let clock = sentinel.runtime.clock();
    for node in sentinel.nodes() {
        if subs.iter().any(|s| s.node == node) {
            continue;
        }
        let lost = Arc::new(AtomicBool::new(false));
        let on_push: OnPush = {
            let (tx, lost, weak) = (tx.clone(), lost.clone(), Arc::downgrade(sentinel));
            Arc::new(move |info| forward(&weak, &tx, &lost, info))
        };
        let opened = sentinel
            .connect(
                &sentinel.runtime,
                &node,
                &sentinel.tcp,
                limit,
                Some(on_push),
            )
            .await;
        let conn = match opened {
            Ok(conn) => conn,
            Err((_, e)) => {
                sentinel_event!(sentinel, DEBUG, sentinel = %node, error = %e, "sentinel unreachable; subscribing at the next poll");
                continue;
            }
        };
        let mut mc = conn.conn.clone();
        let subscribed =
            crate::seams::timeout_at(&**clock, clock.now() + limit, mc.psubscribe("*")).await;
        match subscribed {
            Ok(Ok(())) => subs.push(Subscription { node, conn, lost }),
            Ok(Err(e)) => {
                sentinel_event!(sentinel, DEBUG, sentinel = %node, error = %e, "sentinel refused the subscription");
            }
            Err(_) => {
                sentinel_event!(sentinel, DEBUG, sentinel = %node, "sentinel subscription timed out");
            }
        }
    }
}

/// A subscription's push: an event is applied at once and wakes the watcher; a disconnection
/// marks the subscription lost.
fn forward(
    sentinel: &std::sync::Weak<SentinelBackend>,
    tx: &mpsc::UnboundedSender<()>,
    lost: &AtomicBool,
    info: PushInfo,
) {
    match info.kind {
        PushKind::Disconnection => lost.store(true, Ordering::Release),
        PushKind::Message | PushKind::PMessage => {
            let (Some(sentinel), Some(msg)) =
                (sentinel.upgrade(), redis::Msg::from_push_info(info))
            else {
                return;
            };
            let payload: String = msg.get_payload().unwrap_or_default();
            let now = sentinel.runtime.clock().now();
            on_message(&sentinel, msg.get_channel_name(), &payload, now);
            let _ = tx.unbounded_send(());
        }
        _ => {}
    }
}

/// Asks for the master's address, on a live subscription if there is one (RESP3 connections
/// take commands while subscribed), else through a lookup of its own.
async fn poll(sentinel: &SentinelBackend, subs: &[Subscription]) {
    let limit = step_limit(sentinel);
    if sentinel.reads_replicas() {
        for sub in subs {
            let answer = sentinel
                .refresh_on(&sentinel.runtime, &sub.conn, limit, "poll")
                .await;
            if let Ok(Some(_)) = answer {
                bump(&sentinel.counters.lookups);
                return;
            }
        }
    } else {
        // Every live sentinel, the newest configuration wins: one that has not heard of a
        // failover yet (it learns of it by the others' hello messages, up to 2 s later) still
        // names the old master.
        let mut newest: Option<(Endpoint, Option<u64>)> = None;
        for sub in subs {
            if let Ok(Some((master, epoch))) =
                sentinel.ask(&sentinel.runtime, &sub.conn, limit).await
            {
                if newest.as_ref().is_none_or(|(_, best)| epoch > *best) {
                    newest = Some((master, epoch));
                }
            }
        }
        if let Some((master, epoch)) = newest {
            bump(&sentinel.counters.lookups);
            sentinel.switched_to(master, epoch, "poll");
            return;
        }
    }
    let lookup = sentinel
        .lookup(&sentinel.runtime, &sentinel.tcp, sentinel.connect_timeout)
        .await;
    match lookup {
        Ok(_) => {}
        Err(LookupError::Failed((_, e))) => {
            sentinel_event!(sentinel, WARN, error = %e, "no sentinel answered the poll");
        }
        Err(LookupError::Unknown(e)) => {
            sentinel_event!(sentinel, ERROR, error = %e, "the sentinels do not know the master");
        }
    }
}

/// Adds the sentinels a live subscription's sentinel knows of.
async fn refresh_peers(sentinel: &SentinelBackend, subs: &[Subscription]) {
    if let Some(sub) = subs.first() {
        let limit = step_limit(sentinel);
        if let Ok(added) = sentinel
            .refresh_peers(&sentinel.runtime, &sub.conn, limit)
            .await
        {
            if added > 0 {
                sentinel_event!(sentinel, INFO, added, "learnt more sentinels");
            }
        }
    }
}
