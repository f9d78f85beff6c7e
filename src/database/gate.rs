//! The policies' lock-free summary: one word, republished under the policies lock after every
//! change, that lets a command on a healthy database skip the lock entirely.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::policy::{BreakerState, CircuitBreaker, Permit, Readiness, ReadinessState};

/// The breaker is Closed (any failure count): [`CircuitBreaker::try_acquire`] would grant
/// `Permit::closed(generation)` and change nothing.
const CLOSED: u64 = 1;
/// The breaker is Closed with no failure counted: a success report changes nothing
/// ([`CircuitBreaker::success_is_noop`]).
const CLEAN: u64 = 1 << 1;
/// Readiness is `Ready`: no `LOADING` wait, and marking the database ready changes nothing.
const READY: u64 = 1 << 2;
/// The breaker generation sits above the flags.
const GENERATION_SHIFT: u32 = 3;

/// The published summary of a database's breaker and readiness.
///
/// Every answer is what the locked policies would have said at the instant the word was read:
/// the word is stored while the lock is still held, right after each change, so a reader that
/// sees an older word is ordered before that change.
#[derive(Debug)]
pub(super) struct Gate(AtomicU64);

/// One reading of the [`Gate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct View(u64);

impl Gate {
    /// The summary of a new database: breaker closed in generation 0, ready.
    pub(super) fn new() -> Self {
        Self(AtomicU64::new(CLOSED | CLEAN | READY))
    }

    /// Reads the summary.
    pub(super) fn view(&self) -> View {
        View(self.0.load(Ordering::Acquire))
    }

    /// Publishes the summary of `breaker` and `readiness` (call with the policies lock held).
    pub(super) fn publish(&self, breaker: &CircuitBreaker, readiness: &Readiness) {
        let view = View::of(breaker, readiness);
        // Most changes leave the summary as it was: skip the store (and its cache-line write).
        if self.0.load(Ordering::Relaxed) != view.0 {
            self.0.store(view.0, Ordering::Release);
        }
    }
}

impl View {
    /// The summary of a breaker and a readiness state.
    pub(super) fn of(breaker: &CircuitBreaker, readiness: &Readiness) -> Self {
        let mut word = breaker.generation() << GENERATION_SHIFT;
        if matches!(breaker.state(), BreakerState::Closed { .. }) {
            word |= CLOSED;
        }
        if breaker.success_is_noop() {
            word |= CLEAN;
        }
        if matches!(readiness.state(), ReadinessState::Ready) {
            word |= READY;
        }
        Self(word)
    }

    /// The permit the breaker would grant, when it is closed (then granting changes nothing).
    pub(super) fn closed_permit(self) -> Option<Permit> {
        (self.0 & CLOSED != 0).then(|| Permit::closed(self.0 >> GENERATION_SHIFT))
    }

    /// Whether the breaker is closed.
    pub(super) fn breaker_closed(self) -> bool {
        self.0 & CLOSED != 0
    }

    /// Whether a success report would change nothing, whatever its permit.
    pub(super) fn success_is_noop(self) -> bool {
        self.0 & CLEAN != 0
    }

    /// Whether readiness is `Ready` (no `LOADING` episode, running or timed out).
    pub(super) fn ready(self) -> bool {
        self.0 & READY != 0
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::policy::{BreakerConfig, ReadinessConfig};

    #[test]
    fn the_view_follows_the_breaker_and_readiness() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 2,
            open_for: Duration::from_secs(60),
        });
        let mut r = Readiness::new(ReadinessConfig::default());
        let gate = Gate::new();
        assert_eq!(
            gate.view(),
            View::of(&b, &r),
            "a new database is closed, clean, ready"
        );
        let check = |gate: &Gate, b: &mut CircuitBreaker, r: &Readiness| {
            gate.publish(b, r);
            let v = gate.view();
            assert_eq!(v.success_is_noop(), b.success_is_noop());
            assert_eq!(v.ready(), matches!(r.state(), ReadinessState::Ready));
            match b.state() {
                BreakerState::Closed { .. } => {
                    assert!(v.breaker_closed());
                    assert_eq!(v.closed_permit(), b.try_acquire(t0).ok());
                }
                _ => assert_eq!((v.breaker_closed(), v.closed_permit()), (false, None)),
            }
            v
        };
        assert!(check(&gate, &mut b, &r).success_is_noop());
        let p = b.try_acquire(t0).unwrap();
        b.on_failure(t0, p);
        let v = check(&gate, &mut b, &r);
        assert!(
            v.breaker_closed() && !v.success_is_noop(),
            "one failure: closed, not clean"
        );
        let p = b.try_acquire(t0).unwrap();
        b.on_failure(t0, p);
        assert!(!check(&gate, &mut b, &r).breaker_closed(), "open");
        let probe = b.try_acquire(t0 + Duration::from_secs(60)).unwrap();
        assert!(!check(&gate, &mut b, &r).breaker_closed(), "half-open");
        b.on_success(t0 + Duration::from_secs(61), probe);
        let v = check(&gate, &mut b, &r);
        assert!(v.success_is_noop());
        assert_ne!(
            v.closed_permit(),
            Some(p),
            "a new generation: old permits go stale"
        );
        r.on_loading(t0);
        assert!(!check(&gate, &mut b, &r).ready(), "loading");
        r.tick(t0 + Duration::from_secs(600));
        assert!(
            !check(&gate, &mut b, &r).ready(),
            "timed out is not ready either"
        );
        r.on_ready();
        assert!(check(&gate, &mut b, &r).ready());
    }
}
