//! [`Admission`]: the only holder of a database's policies lock and of its lock-free fast path.
//! It admits network calls through the breaker, takes their outcome reports, groups connection
//! losses, marks readiness (`LOADING`) and keeps the health-check schedule. Synchronous: it
//! never awaits, and holds its lock only for the length of one policy call.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::level_filters::LevelFilter;

use super::conn::Link;
use super::gate::Gate;
use super::settings::PolicySettings;
use crate::error::Error;
use crate::policy::{
    BreakerState, BreakerStateKind, CircuitBreaker, FailureKind, HealthSchedule, HealthState,
    LossGrouping, LossVerdict, Permit, ProbeOutcome, ProbeToken, Readiness, ReadinessAction,
    ReadinessState, Rejected, RetryDecision, RetrySchedule, Transition,
};
use crate::rng::Rng;
use crate::seams::Clock;
use crate::stats::{BreakerStats, DbCounters};

/// The policies of one database, behind one short-held lock.
struct Policies {
    breaker: CircuitBreaker,
    readiness: Readiness,
    health: HealthSchedule,
    rng: Rng,
    /// Groups connections lost together into one breaker failure.
    losses: LossGrouping,
}

/// A database's admission: breaker, readiness, loss grouping and health schedule.
pub(crate) struct Admission {
    name: Arc<str>,
    log_level: LevelFilter,
    clock: Arc<dyn Clock>,
    counters: Arc<DbCounters>,
    policies: Mutex<Policies>,
    /// The policies' lock-free summary, republished whenever the policies lock is released: a
    /// healthy database admits commands, takes their success reports and answers "not loading"
    /// without taking the lock.
    gate: Gate,
    /// Notified whenever a readiness probe finishes or readiness returns, so waiters re-check.
    ready_changed: event_listener::Event,
}

impl Admission {
    /// The admission of database `name`, its policies configured by `policy`.
    pub(super) fn new(
        name: Arc<str>,
        log_level: LevelFilter,
        clock: Arc<dyn Clock>,
        counters: Arc<DbCounters>,
        policy: &PolicySettings,
        rng: Rng,
    ) -> Self {
        let now = clock.now();
        Self {
            name,
            log_level,
            policies: Mutex::new(Policies {
                breaker: CircuitBreaker::new(policy.breaker.clone()),
                readiness: Readiness::new(policy.readiness.clone()),
                health: HealthSchedule::new(policy.health.clone(), now),
                rng,
                losses: LossGrouping::new(policy.loss),
            }),
            clock,
            counters,
            gate: Gate::new(),
            ready_changed: event_listener::Event::new(),
        }
    }

    /// For `keeper_event!`.
    fn name(&self) -> &str {
        &self.name
    }

    /// For `keeper_event!`.
    fn log_level(&self) -> LevelFilter {
        self.log_level
    }

    /// Locks the policies; the lock-free summary is republished when the guard is dropped, so
    /// every change made through it is published before the lock is released.
    fn policies(&self) -> PoliciesGuard<'_> {
        PoliciesGuard {
            guard: self.policies.lock().unwrap_or_else(|e| e.into_inner()),
            gate: &self.gate,
        }
    }

    fn circuit_open(&self, retry_after: Duration) -> Error {
        DbCounters::bump(&self.counters.rejected);
        Error::CircuitOpen {
            db: self.name.to_string(),
            retry_after,
        }
    }

    /// Asks the breaker for permission to touch the network. While the breaker is closed this
    /// takes no lock: a closed breaker grants the permit of its generation and changes nothing.
    #[inline]
    pub(crate) fn permit(&self) -> Result<Permit, Error> {
        match self.gate.view().closed_permit() {
            Some(permit) => Ok(permit),
            None => self.permit_locked(),
        }
    }

    /// [`Admission::permit`] when the breaker is not known closed.
    #[inline(never)]
    fn permit_locked(&self) -> Result<Permit, Error> {
        let now = self.clock.now();
        let (from, result) = {
            let mut p = self.policies();
            let from = p.breaker.state().kind();
            (from, p.breaker.try_acquire(now))
        };
        if let Ok(permit) = &result {
            if permit.is_probe() {
                // From open, the open period ended; from half-open, the last probe was
                // abandoned (no outcome within the open period) and this one replaces it.
                let reason = if from == BreakerStateKind::Open {
                    DbCounters::bump(&self.counters.half_opens);
                    "open_period_elapsed"
                } else {
                    "probe_abandoned"
                };
                keeper_event!(
                    self,
                    WARN,
                    from = from.as_str(),
                    to = "half_open",
                    reason,
                    "circuit breaker half-open: sending one probe"
                );
            }
        }
        result.map_err(|Rejected { retry_after, .. }| self.circuit_open(retry_after))
    }

    /// Reports a network outcome to the breaker: `true` for any reply, `false` for a transport
    /// failure. A success on a closed breaker with no failure counted changes nothing, so it
    /// takes no lock.
    #[inline]
    pub(crate) fn report(&self, permit: Permit, transport_ok: bool) {
        if !(transport_ok && self.gate.view().success_is_noop()) {
            self.report_locked(permit, transport_ok);
        }
    }

    /// [`Admission::report`] when the report may change the breaker.
    #[inline(never)]
    fn report_locked(&self, permit: Permit, transport_ok: bool) {
        let now = self.clock.now();
        let transition = {
            let mut p = self.policies();
            if transport_ok {
                p.breaker.on_success(now, permit)
            } else {
                p.breaker.on_failure(now, permit)
            }
        };
        if let Some(t) = transition {
            self.log_breaker(t);
        }
    }

    fn log_breaker(&self, t: Transition) {
        let reason = match (t.from, t.to) {
            (BreakerStateKind::Closed, BreakerStateKind::Open) => {
                DbCounters::bump(&self.counters.trips);
                "failure_threshold"
            }
            (BreakerStateKind::HalfOpen, BreakerStateKind::Open) => {
                DbCounters::bump(&self.counters.reopens);
                "probe_failed"
            }
            (_, BreakerStateKind::Closed) => {
                DbCounters::bump(&self.counters.closes);
                "probe_succeeded"
            }
            _ => "other",
        };
        keeper_event!(
            self,
            WARN,
            from = t.from.as_str(),
            to = t.to.as_str(),
            reason,
            "circuit breaker transition"
        );
    }

    /// Reports the outcome of a call made on a connection opened at `opened_at`, whose loss
    /// this is the first of when `first_loss` (see [`super::conn::Link::mark_lost`]). A lost
    /// connection counts as one failure, and connections lost together as one (a probe's
    /// failure always counts): only the first transport failure on a connection counts (when a
    /// multiplexed connection dies, every command in flight on it fails at once), and a
    /// connection already open when another one's loss was counted, lost within
    /// `breaker_loss_window` of it, went down in the same event ([`LossGrouping`]). Else one
    /// reset of a pool with more connections than the breaker threshold would open the breaker
    /// while the server is fine. Failed connects, which follow a real outage, count each.
    pub(crate) fn report_on_connection(
        &self,
        permit: Permit,
        transport_ok: bool,
        opened_at: Instant,
        first_loss: impl FnOnce() -> bool,
    ) {
        if transport_ok || permit.is_probe() {
            self.report(permit, transport_ok);
        } else if !first_loss() {
            tracing::debug!(db = %self.name, "another failure on a connection already lost; not counted");
        } else if self.lost_together(opened_at) {
            tracing::debug!(db = %self.name, "connection lost together with another; not counted");
        } else {
            self.report(permit, false);
        }
    }

    /// [`Admission::report_on_connection`] for a call made on `link`'s connection.
    pub(crate) fn report_on(&self, link: &Link, permit: Permit, transport_ok: bool) {
        self.report_on_connection(permit, transport_ok, link.opened_at(), || link.mark_lost());
    }

    fn lost_together(&self, opened_at: Instant) -> bool {
        let now = self.clock.now();
        self.policies().losses.on_loss(now, opened_at) == LossVerdict::SameEvent
    }

    /// Whether the breaker was closed at its last change (then every call is admitted).
    #[inline]
    pub(crate) fn breaker_is_closed(&self) -> bool {
        self.gate.view().breaker_closed()
    }

    /// Fails with `CircuitOpen` when the breaker would reject a network call at `now`.
    pub(crate) fn ensure_admitted_at(&self, now: Instant) -> Result<(), Error> {
        if self.breaker_is_closed() {
            return Ok(());
        }
        let Some(retry_after) = self.policies().breaker.retry_after(now) else {
            return Ok(());
        };
        Err(self.circuit_open(retry_after))
    }

    /// The breaker's state, failure count, time to half-open at `now` and transition counts.
    pub(crate) fn breaker_stats(&self, now: Instant) -> BreakerStats {
        let p = self.policies();
        let state = p.breaker.state();
        BreakerStats {
            state: state.kind(),
            failure_count: match state {
                BreakerState::Closed {
                    consecutive_failures,
                } => consecutive_failures,
                _ => p.breaker.config().failure_threshold,
            },
            half_open_in: match state {
                BreakerState::Open { .. } => Some(p.breaker.retry_after(now).unwrap_or_default()),
                _ => None,
            },
            half_opens: DbCounters::read(&self.counters.half_opens),
            closes: DbCounters::read(&self.counters.closes),
        }
    }

    /// The database's health now.
    pub(crate) fn health(&self) -> HealthState {
        let p = self.policies();
        HealthState::assess(&p.breaker.state(), &p.readiness.state())
    }

    /// The retry schedule's decision after a failed connect attempt (its jitter drawn from the
    /// database's generator).
    pub(crate) fn retry_decision(
        &self,
        schedule: &mut RetrySchedule,
        now: Instant,
        kind: FailureKind,
    ) -> RetryDecision {
        let mut p = self.policies();
        let p = &mut *p;
        schedule.on_failure(now, kind, &mut p.rng)
    }

    /// Marks the start (or continuation) of a `LOADING` episode.
    pub(crate) fn enter_loading(&self) {
        let now = self.clock.now();
        let mut p = self.policies();
        let was_ready = matches!(p.readiness.state(), ReadinessState::Ready);
        p.readiness.on_loading(now);
        drop(p);
        if was_ready {
            DbCounters::bump(&self.counters.loading_episodes);
            keeper_event!(self, WARN, "server is loading its dataset; waiting");
        }
    }

    /// Whether a `LOADING` episode is under way (callers wait before sending). An episode whose
    /// deadline has passed is over (timed out), even if nobody polled it since: a caller arriving
    /// later sends its command rather than failing at once with `NotReady`.
    #[inline]
    pub(crate) fn is_loading(&self) -> bool {
        // Ready: ticking changes nothing, and no episode runs. No lock, no clock read.
        !self.gate.view().ready() && self.is_loading_locked()
    }

    /// [`Admission::is_loading`] when readiness is not known ready.
    #[inline(never)]
    fn is_loading_locked(&self) -> bool {
        let now = self.clock.now();
        let mut p = self.policies();
        p.readiness.tick(now);
        matches!(p.readiness.state(), ReadinessState::Loading { .. })
    }

    /// A reply that was not `-LOADING` arrived: the server has its dataset. Ends a loading
    /// episode or a timed-out one (so health leaves `Failed`) and wakes readiness waiters.
    #[inline]
    pub(crate) fn mark_ready(&self) {
        if !self.gate.view().ready() {
            self.mark_ready_locked();
        }
    }

    /// [`Admission::mark_ready`] when readiness is not known ready.
    #[inline(never)]
    fn mark_ready_locked(&self) {
        let mut p = self.policies();
        if matches!(p.readiness.state(), ReadinessState::Ready) {
            return;
        }
        p.readiness.on_ready();
        drop(p);
        keeper_event!(self, INFO, "server answered: ready");
        self.ready_changed.notify(usize::MAX);
    }

    /// A listener woken when a readiness probe finishes or readiness returns (create it before
    /// [`Admission::readiness_poll`], then await it).
    pub(crate) fn ready_listener(&self) -> event_listener::EventListener {
        self.ready_changed.listen()
    }

    /// What a caller waiting for readiness should do at `now`.
    pub(crate) fn readiness_poll(&self, now: Instant) -> ReadinessAction {
        self.policies().readiness.poll(now)
    }

    /// Hands in the outcome of the probe `token` and wakes every waiter.
    pub(crate) fn probe_finished(&self, now: Instant, token: ProbeToken, outcome: ProbeOutcome) {
        self.policies()
            .readiness
            .on_probe_result(now, token, outcome);
        self.ready_changed.notify(usize::MAX);
    }

    /// When the next health check is due, if one is scheduled.
    pub(crate) fn next_health_check(&self) -> Option<Instant> {
        self.policies().health.next_deadline()
    }

    /// Whether a health check is due at `now`.
    pub(crate) fn health_check_due(&self, now: Instant) -> bool {
        self.policies().health.due(now)
    }

    /// A health check started at `now`.
    pub(crate) fn health_check_started(&self, now: Instant) {
        self.policies().health.on_check_started(now);
    }

    /// A health check finished at `now`.
    pub(crate) fn health_check_finished(&self, now: Instant) {
        self.policies().health.on_check_finished(now);
    }
}

/// The locked policies; dropping it republishes the [`Gate`] before unlocking.
struct PoliciesGuard<'a> {
    guard: MutexGuard<'a, Policies>,
    gate: &'a Gate,
}

impl Deref for PoliciesGuard<'_> {
    type Target = Policies;

    fn deref(&self) -> &Policies {
        &self.guard
    }
}

impl DerefMut for PoliciesGuard<'_> {
    fn deref_mut(&mut self) -> &mut Policies {
        &mut self.guard
    }
}

impl Drop for PoliciesGuard<'_> {
    fn drop(&mut self) {
        // Runs before the field `guard` is dropped: the lock is still held.
        self.gate
            .publish(&self.guard.breaker, &self.guard.readiness);
    }
}
