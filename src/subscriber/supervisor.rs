//! A subscriber's supervisor task and its connection work: opening a RESP3 connection whose
//! pushes reach the inbox, (re)subscribing the whole set, the idle PING, and reconnecting
//! through the breaker and the retry schedule after a loss.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::{select, Either};
use redis::{PushInfo, PushKind};

use super::{Change, Current, Shared};
use crate::classify::classify;
use crate::database::{keeper_event, ping, Dial, OnPush};
use crate::error::Error;
use crate::policy::{HealthConfig, HealthSchedule};
use crate::seams::timeout_at;
use crate::stats::DbCounters;

/// The shortest wait between two reconnect attempts (a breaker about to half-open answers
/// "retry after 0").
const MIN_RECONNECT_WAIT: Duration = Duration::from_millis(100);

/// Opens a subscriber connection and subscribes the subscriber's whole set on it.
pub(super) async fn connect(shared: &Arc<Shared>) -> Result<Current, Error> {
    let lost = Arc::new(AtomicBool::new(false));
    let on_push: OnPush = {
        let weak = Arc::downgrade(shared);
        let lost = lost.clone();
        Arc::new(move |info| on_push(&weak, &lost, info))
    };
    let conn = shared
        .db
        .open_with(&Dial {
            push: Some(on_push),
        })
        .await?;
    let current = Current { conn, lost };
    if let Err(e) = subscribe_all(shared, &current).await {
        current.close();
        return Err(e);
    }
    Ok(current)
}

/// The push handler of a subscriber's connection: messages to the inbox, a disconnection to
/// the supervisor. Runs on the connection's driver: never waits.
fn on_push(shared: &Weak<Shared>, lost: &AtomicBool, info: PushInfo) {
    match info.kind {
        PushKind::Disconnection => {
            lost.store(true, Ordering::Release);
            if let Some(shared) = shared.upgrade() {
                shared.changed.notify(usize::MAX);
            }
        }
        PushKind::Message | PushKind::PMessage | PushKind::SMessage => {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let Some(msg) = redis::Msg::from_push_info(info) else {
                return;
            };
            let counters = shared.db.counters();
            if shared.inbox.push(msg) {
                DbCounters::bump(&counters.messages_delivered);
            } else {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                DbCounters::bump(&counters.messages_dropped);
            }
        }
        _ => {}
    }
}

/// Subscribes every channel and pattern of the set on `current`, again while the set changes
/// meanwhile (a concurrent `subscribe` may have sent on the connection being replaced).
async fn subscribe_all(shared: &Shared, current: &Current) -> Result<(), Error> {
    // Bounded: each round either sees the set unchanged or follows a user's change.
    for _ in 0..1_000 {
        let snapshot = shared.subscriptions().clone();
        let channels: Vec<Vec<u8>> = snapshot.channels.iter().cloned().collect();
        let patterns: Vec<Vec<u8>> = snapshot.patterns.iter().cloned().collect();
        if !channels.is_empty() {
            send_change(shared, current, Change::Subscribe, &channels).await?;
        }
        if !patterns.is_empty() {
            send_change(shared, current, Change::PSubscribe, &patterns).await?;
        }
        if shared.subscriptions().version == snapshot.version {
            return Ok(());
        }
    }
    Ok(())
}

/// Sends one (P)(UN)SUBSCRIBE for `names` on `current` and waits for the server's
/// confirmations, within the response timeout. A transport failure or a timeout closes the
/// connection, and the supervisor replaces it.
pub(super) async fn send_change(
    shared: &Shared,
    current: &Current,
    change: Change,
    names: &[Vec<u8>],
) -> Result<(), Error> {
    let db = &shared.db;
    let mut mc = current.conn.multiplexed().clone();
    let names = names.to_vec();
    let send = async move {
        match change {
            Change::Subscribe => mc.subscribe(names).await,
            Change::PSubscribe => mc.psubscribe(names).await,
            Change::Unsubscribe => mc.unsubscribe(names).await,
            Change::PUnsubscribe => mc.punsubscribe(names).await,
        }
    };
    let limit = db.settings().response_timeout;
    let deadline = db.now() + limit;
    let result = timeout_at(&**db.runtime().clock(), deadline, send)
        .await
        .unwrap_or_else(|_| Err(db.no_reply_within(limit)));
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            if classify(&e).poisons_connection() {
                current.close();
                shared.changed.notify(usize::MAX);
            }
            Err(Error::Redis(e))
        }
    }
}

/// Starts the supervisor of `shared` on the database's runtime.
pub(super) fn spawn(shared: Arc<Shared>) {
    let spawner = shared.db.runtime().spawner().clone();
    spawner.spawn(Box::pin(supervise(shared)));
}

/// Runs until the subscriber is dropped or the database closed: PINGs the connection on the
/// [`HealthSchedule`] of `health_check_interval` (fixed rate from the connection's start,
/// missed ticks skipped), sleeping until its `next_deadline`, and replaces a lost connection.
async fn supervise(shared: Arc<Shared>) {
    let db = shared.db.clone();
    let clock = db.runtime().clock().clone();
    let config = HealthConfig {
        interval: db.settings().health_check_interval,
        check_on_checkout_after: None,
    };
    let mut pings = HealthSchedule::new(config.clone(), clock.now());
    // Bounded by the subscriber's life: each round waits for a wake-up, pings, or reconnects.
    loop {
        let changed = shared.changed.listen();
        let closed = db.closed_listener();
        let moved = Box::pin(db.backend_moved());
        if shared.is_closed() {
            break;
        }
        let Some(current) = shared.current() else {
            break;
        };
        if current.is_lost() {
            match reconnect(&shared).await {
                Some(fresh) => {
                    install(&shared, fresh);
                    // A fresh connection: its first idle PING one interval from now.
                    pings = HealthSchedule::new(config.clone(), clock.now());
                    continue;
                }
                None => break,
            }
        }
        if pings.due(clock.now()) {
            pings.on_check_started(clock.now());
            ping_idle(&shared, &current).await;
            pings.on_check_finished(clock.now());
            continue;
        }
        let wake = select(select(changed, closed), moved);
        match pings.next_deadline() {
            Some(at) => {
                let _ = select(wake, clock.sleep_until(at)).await;
            }
            None => {
                let _ = wake.await;
            }
        }
    }
    if let Some(current) = shared.current() {
        current.conn.link().close();
    }
    shared.inbox.close();
}

/// Makes `fresh` the subscriber's connection and counts the resubscription.
fn install(shared: &Shared, fresh: Current) {
    *shared.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(fresh);
    shared.resubscriptions.fetch_add(1, Ordering::Relaxed);
    DbCounters::bump(&shared.db.counters().resubscriptions);
    let subs = shared.subscriptions();
    keeper_event!(
        shared.db,
        INFO,
        channels = subs.channels.len(),
        patterns = subs.patterns.len(),
        "subscriber reconnected and resubscribed; messages published meanwhile are missing"
    );
}

/// PINGs the connection; a transport failure or no reply within the response timeout closes
/// it (the next round replaces it). Any reply, `-LOADING` included, means it is alive.
async fn ping_idle(shared: &Shared, current: &Current) {
    let db = &shared.db;
    let deadline = db.now() + db.settings().response_timeout;
    let answer = timeout_at(
        &**db.runtime().clock(),
        deadline,
        ping(current.conn.multiplexed()),
    )
    .await;
    let alive = match answer {
        Ok(Ok(())) => true,
        Ok(Err((kind, _))) => !kind.poisons_connection(),
        Err(_) => false,
    };
    if !alive {
        keeper_event!(
            db,
            WARN,
            "subscriber connection did not answer PING; reconnecting"
        );
        current.close();
    }
}

/// Opens a replacement connection and subscribes the whole set on it, waiting between attempts
/// (the breaker's `retry_after`, or the retry schedule's longest wait after it gave up);
/// `None` once the subscriber is dropped or the database closed.
async fn reconnect(shared: &Arc<Shared>) -> Option<Current> {
    let db = shared.db.clone();
    let clock = db.runtime().clock().clone();
    // Bounded by the subscriber's life: each failed round sleeps at least MIN_RECONNECT_WAIT.
    loop {
        let changed = shared.changed.listen();
        let closed = db.closed_listener();
        if shared.is_closed() {
            return None;
        }
        let wait = match connect(shared).await {
            Ok(fresh) => return Some(fresh),
            Err(Error::Closed) => return None,
            Err(Error::CircuitOpen { retry_after, .. }) => retry_after,
            Err(e) => {
                keeper_event!(db, WARN, error = %e, "subscriber could not reconnect; retrying");
                db.settings().retry.max
            }
        };
        let until = clock.now() + wait.max(MIN_RECONNECT_WAIT);
        match select(select(changed, closed), clock.sleep_until(until)).await {
            Either::Left(_) | Either::Right(_) => {}
        }
    }
}
