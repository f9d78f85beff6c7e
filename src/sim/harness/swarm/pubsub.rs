//! The swarm's pub/sub part: a subscriber and a publisher on the first database through the
//! faults of phase one, then, healed, the checks: every message the server delivered to the
//! subscriber's connection arrives once and in order unless a reconnect followed (messages
//! published while it was away are gone, by design), and no reconnect happens without a loss.

use std::collections::BTreeSet;
use std::sync::MutexGuard;
use std::time::Duration;

use futures::StreamExt;

use super::spec::{ms, PubSubSpec};
use super::{Failure, World};
use crate::error::Error;
use crate::rng::Rng;
use crate::seams::Clock;

/// The channel the swarm publishes on.
const CHANNEL: &str = "swarm";
/// Sequence numbers of the markers published after the heal (above any of phase one).
const MARKERS: i64 = 1_000_000;

/// One PUBLISH and what the server said.
#[derive(Debug)]
struct Published {
    seq: i64,
    /// The server counted a receiver: it handed the message to the subscriber's connection.
    delivered: bool,
    /// The subscriber's resubscriptions just before it was sent.
    resubs_before: u64,
}

/// What the publisher sent and the subscriber received.
#[derive(Debug, Default)]
pub(super) struct PubSubModel {
    published: Vec<Published>,
    received: Vec<i64>,
}

impl World {
    fn pubsub(&self) -> MutexGuard<'_, PubSubModel> {
        self.pubsub.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn resubscriptions(&self) -> u64 {
        self.keeper
            .stats()
            .databases
            .get(self.db_name(0))
            .map_or(0, |s| s.resubscriptions)
    }

    async fn pause(&self, d: Duration) {
        self.clock.sleep_until(self.clock.now() + d).await;
    }

    /// Opens the subscriber (retrying while faults last), subscribes, and records every
    /// message until the Keeper is closed.
    pub(super) async fn run_subscriber(&self, _spec: PubSubSpec) {
        let name = self.db_name(0);
        let mut opened = None;
        // Bounded: phase two's checks fail if it never opens.
        for _ in 0..2_000 {
            match self.keeper.subscriber(name).await {
                Ok(sub) => {
                    opened = Some(sub);
                    break;
                }
                Err(Error::Closed) => return,
                Err(e) => {
                    self.check_typed("subscriber", &Failure::Keeper(e));
                    self.pause(ms(250)).await;
                }
            }
        }
        let Some(mut sub) = opened else { return };
        self.record("subscriber open");
        // The channel joins the subscriber's set at the first call; an error means the server
        // did not confirm yet (the set is subscribed again at every reconnect).
        for _ in 0..2_000 {
            match sub.subscribe(CHANNEL).await {
                Ok(()) => break,
                Err(Error::Closed) => return,
                Err(e) => {
                    self.check_typed("subscribe", &Failure::Keeper(e));
                    self.pause(ms(250)).await;
                }
            }
        }
        self.record("subscriber subscribed");
        while let Some(msg) = sub.next().await {
            let seq: i64 = msg.get_payload().unwrap_or(-1);
            self.record(format_args!("subscriber got {seq}"));
            self.pubsub().received.push(seq);
        }
    }

    fn check_typed(&self, what: &str, f: &Failure) {
        self.record(format_args!("{what} -> error: {f}"));
        let typed = match f {
            Failure::Cancelled => true,
            Failure::Keeper(e) => super::keeper_error_is_typed(e) || is_reconnecting(e),
            Failure::Redis(e) => super::redis_error_is_typed(e),
        };
        if !typed {
            self.violation(format!("{what}: untyped error: {f}"));
        }
    }

    /// Publishes `seq` and records whether the server delivered it to a subscriber.
    async fn publish(&self, seq: i64) -> bool {
        let resubs_before = self.resubscriptions();
        let name = self.db_name(0);
        let r = async {
            let mut c = self.keeper.get(name).await?;
            let n: i64 = redis::cmd("PUBLISH")
                .arg(CHANNEL)
                .arg(seq)
                .query_async(&mut c)
                .await?;
            Ok::<_, Failure>(n)
        }
        .await;
        let delivered = matches!(r, Ok(n) if n >= 1);
        match &r {
            Ok(n) => self.record(format_args!("publish {seq} -> {n}")),
            Err(f) => self.check_typed(&format!("publish {seq}"), f),
        }
        self.pubsub().published.push(Published {
            seq,
            delivered,
            resubs_before,
        });
        delivered
    }

    /// Phase one's publisher: `spec.publishes` messages, with pauses.
    pub(super) async fn run_publisher(&self, spec: PubSubSpec) {
        let mut rng = Rng::new(self.spec.seed ^ 0x5055_4253);
        for seq in 0..i64::from(spec.publishes) {
            self.pause(ms(rng.below(spec.think_max.as_millis() as u64 + 1)))
                .await;
            self.publish(seq).await;
        }
    }

    /// Waits until the subscriber has received `seq` (true) or `limit` passed.
    async fn received_within(&self, seq: i64, limit: Duration) -> bool {
        let deadline = self.clock.now() + limit;
        while self.clock.now() < deadline {
            if self.pubsub().received.contains(&seq) {
                return true;
            }
            self.pause(ms(50)).await;
        }
        self.pubsub().received.contains(&seq)
    }

    /// Phase two: the subscriber comes back, stays without a loss, and everything it received
    /// is what was published, once and in order.
    pub(super) async fn check_pubsub(&self) {
        let bound = self.spec.dbs[0].heal_bound() * 2;
        let deadline = self.clock.now() + bound;
        let mut marker = MARKERS;
        let mut back = false;
        while self.clock.now() < deadline {
            marker += 1;
            if self.publish(marker).await && self.received_within(marker, ms(5_000)).await {
                back = true;
                break;
            }
            self.pause(ms(500)).await;
        }
        if !back {
            self.violation(format!(
                "after the heal the subscriber received no message within {bound:?}"
            ));
            return;
        }
        // Quiet for longer than the subscriber's PING interval: no fault, so no reconnect; three
        // more messages all arrive.
        let resubs = self.resubscriptions();
        self.pause(self.spec.dbs[0].health_interval + Duration::from_secs(5))
            .await;
        for i in 1..=3 {
            let seq = 2 * MARKERS + i;
            if !self.publish(seq).await || !self.received_within(seq, ms(5_000)).await {
                self.violation(format!("healed and quiet, message {seq} did not arrive"));
            }
        }
        let after = self.resubscriptions();
        if after != resubs {
            self.violation(format!(
                "{} resubscriptions while nothing failed",
                after - resubs
            ));
        }
        self.check_deliveries(after);
    }

    /// Once and in order; and a delivered message is missing only if a reconnect followed.
    fn check_deliveries(&self, final_resubs: u64) {
        let mut bad = Vec::new();
        {
            let m = self.pubsub();
            let published: BTreeSet<i64> = m.published.iter().map(|p| p.seq).collect();
            if let Some(w) = m.received.windows(2).find(|w| w[0] >= w[1]) {
                bad.push(format!(
                    "subscriber received {} after {}: out of order or twice",
                    w[1], w[0]
                ));
            }
            if let Some(r) = m.received.iter().find(|r| !published.contains(r)) {
                bad.push(format!(
                    "subscriber received {r}, which was never published"
                ));
            }
            let received: BTreeSet<i64> = m.received.iter().copied().collect();
            for p in m.published.iter().filter(|p| p.delivered) {
                if !received.contains(&p.seq) && final_resubs == p.resubs_before {
                    bad.push(format!(
                        "message {} reached the subscriber's connection but never arrived, and no \
                         reconnect followed",
                        p.seq
                    ));
                }
            }
        }
        for b in bad {
            self.violation(b);
        }
    }
}

/// The subscriber's own "reconnecting, the change applies when it is back" answer.
fn is_reconnecting(e: &Error) -> bool {
    matches!(e, Error::Redis(r) if r.kind() == redis::ErrorKind::Io)
}
