//! Readiness: ride out `-LOADING` by probing with PING until ready or the deadline (DESIGN §3).
//!
//! Redis accepts AUTH/HELLO/SELECT/INFO while loading, so the handshake succeeds and PING is the
//! signal. One probe at most is in flight; probes are spaced `poll_interval` from the end of the
//! previous one; none is sent at or after the deadline, `timeout` after the first `LOADING`.

use std::time::{Duration, Instant};

use super::time::add;

/// Parameters of [`Readiness`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessConfig {
    /// Pause between the end of one probe (or the `LOADING` reply) and the next probe.
    /// Default: 2 s.
    pub poll_interval: Duration,
    /// How long after the first `LOADING` reply callers are told the database is not ready.
    /// Default: 60 s.
    pub timeout: Duration,
    /// How long a probe may stay out without a result before it is abandoned (counted as ended
    /// at that instant). Default: 5 s.
    pub probe_timeout: Duration,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            timeout: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(5),
        }
    }
}

/// Identifies one probe; hand it back with the probe's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProbeToken(u64);

/// The result of one PING probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeOutcome {
    /// PING answered: the dataset is loaded.
    Ready,
    /// PING answered `-LOADING`.
    Loading,
    /// The probe failed in transport: not known ready; the next probe is scheduled as usual.
    Failed,
}

/// What the caller does next.
#[must_use = "the action says whether to proceed, probe, wait or give up"]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReadinessAction {
    /// The database is ready: go ahead with the command.
    Ready,
    /// Send one PING now and report it with [`Readiness::on_probe_result`].
    SendProbe(ProbeToken),
    /// Sleep until this instant (always after `now`), then poll again.
    WaitUntil(Instant),
    /// Stop waiting: fail with `NotReady`.
    GiveUp,
}

/// The readiness state, as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReadinessState {
    /// No `LOADING` seen since the last success.
    Ready,
    /// The server is loading its dataset.
    Loading {
        /// The first `LOADING` of this episode.
        since: Instant,
        /// `since + timeout`: callers get `NotReady` from here on.
        deadline: Instant,
        /// Whether a probe is out.
        probe_in_flight: bool,
    },
    /// The episode outlasted its timeout; polls give up until a success, a new `LOADING` or a
    /// reset.
    TimedOut {
        /// When the episode timed out (its deadline).
        since: Instant,
    },
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    since: Instant,
    deadline: Instant,
    next_probe_at: Instant,
    probe: Option<(ProbeToken, Instant)>,
}

#[derive(Debug, Clone, Copy)]
enum Inner {
    Ready,
    Loading(Episode),
    TimedOut(Instant),
}

/// Readiness of one database: a pure state machine driven by replies, probe results and `now`.
///
/// ```
/// use redis_keeper::policy::{ProbeOutcome, Readiness, ReadinessAction, ReadinessConfig};
/// use std::time::{Duration, Instant};
/// let t0 = Instant::now();
/// let mut r = Readiness::new(ReadinessConfig::default());
/// assert_eq!(r.poll(t0), ReadinessAction::Ready);
/// r.on_loading(t0);
/// assert_eq!(r.poll(t0), ReadinessAction::WaitUntil(t0 + Duration::from_secs(2)));
/// let ReadinessAction::SendProbe(token) = r.poll(t0 + Duration::from_secs(2)) else { panic!() };
/// r.on_probe_result(t0 + Duration::from_secs(3), token, ProbeOutcome::Ready);
/// assert_eq!(r.poll(t0 + Duration::from_secs(3)), ReadinessAction::Ready);
/// ```
#[derive(Debug, Clone)]
pub struct Readiness {
    config: ReadinessConfig,
    state: Inner,
    next_token: u64,
}

impl Readiness {
    /// A ready database.
    pub fn new(config: ReadinessConfig) -> Self {
        Self {
            config,
            state: Inner::Ready,
            next_token: 0,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &ReadinessConfig {
        &self.config
    }

    /// Applies every expiry due at `now` (probe abandonment, time-out) and starts nothing.
    /// Every method that takes `now` does this first.
    pub fn tick(&mut self, now: Instant) {
        if let Inner::Loading(ep) = &mut self.state {
            if let Some((_, sent)) = ep.probe {
                let abandoned_at = add(sent, self.config.probe_timeout);
                if now >= abandoned_at {
                    ep.probe = None;
                    ep.next_probe_at = add(abandoned_at, self.config.poll_interval);
                }
            }
            if now >= ep.deadline {
                self.state = Inner::TimedOut(ep.deadline);
            }
        }
    }

    /// A command or handshake got `-LOADING` at `now`. Starts an episode (deadline `now +
    /// timeout`, first probe `poll_interval` later) unless one is running; a running episode
    /// keeps its deadline.
    pub fn on_loading(&mut self, now: Instant) {
        self.tick(now);
        if !matches!(self.state, Inner::Loading(_)) {
            self.state = Inner::Loading(Episode {
                since: now,
                deadline: add(now, self.config.timeout),
                next_probe_at: add(now, self.config.poll_interval),
                probe: None,
            });
        }
    }

    /// Asks what to do at `now` before using the database.
    pub fn poll(&mut self, now: Instant) -> ReadinessAction {
        self.tick(now);
        let ep = match &mut self.state {
            Inner::Ready => return ReadinessAction::Ready,
            Inner::TimedOut(_) => return ReadinessAction::GiveUp,
            Inner::Loading(ep) => ep,
        };
        let wake = match ep.probe {
            Some((_, sent)) => add(sent, self.config.probe_timeout),
            None if now >= ep.next_probe_at => {
                let token = ProbeToken(self.next_token);
                self.next_token += 1;
                ep.probe = Some((token, now));
                return ReadinessAction::SendProbe(token);
            }
            None => ep.next_probe_at,
        };
        ReadinessAction::WaitUntil(wake.min(ep.deadline))
    }

    /// Reports the outcome of the probe `token`, which ended at `now`. Returns whether it was
    /// applied: results of abandoned probes, of earlier episodes, or arriving after the time-out
    /// are stale and change nothing (a successful PING may still be reported with
    /// [`on_ready`](Self::on_ready)).
    pub fn on_probe_result(
        &mut self,
        now: Instant,
        token: ProbeToken,
        outcome: ProbeOutcome,
    ) -> bool {
        self.tick(now);
        let Inner::Loading(ep) = &mut self.state else {
            return false;
        };
        if ep.probe.map(|(t, _)| t) != Some(token) {
            return false;
        }
        match outcome {
            ProbeOutcome::Ready => self.state = Inner::Ready,
            ProbeOutcome::Loading | ProbeOutcome::Failed => {
                ep.probe = None;
                ep.next_probe_at = add(now, self.config.poll_interval);
            }
        }
        true
    }

    /// Any command succeeded: the database is ready.
    pub fn on_ready(&mut self) {
        self.state = Inner::Ready;
    }

    /// Forgets the episode (loading or timed out): the next poll says ready and the next
    /// `LOADING` starts a new episode.
    pub fn reset(&mut self) {
        self.state = Inner::Ready;
    }

    /// The current state (as last updated; call [`tick`](Self::tick) first for an up-to-date
    /// view).
    pub fn state(&self) -> ReadinessState {
        match self.state {
            Inner::Ready => ReadinessState::Ready,
            Inner::Loading(ep) => ReadinessState::Loading {
                since: ep.since,
                deadline: ep.deadline,
                probe_in_flight: ep.probe.is_some(),
            },
            Inner::TimedOut(since) => ReadinessState::TimedOut { since },
        }
    }

    /// While loading: the next probe time, the probe's abandonment or the deadline, whichever
    /// comes first. `None` when ready or timed out.
    pub fn next_deadline(&self) -> Option<Instant> {
        let Inner::Loading(ep) = &self.state else {
            return None;
        };
        let wake = match ep.probe {
            Some((_, sent)) => add(sent, self.config.probe_timeout),
            None => ep.next_probe_at,
        };
        Some(wake.min(ep.deadline))
    }
}

#[cfg(test)]
mod tests;
