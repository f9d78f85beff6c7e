//! Following a Sentinel-managed master: what a sentinel's event means for one master
//! ([`SentinelSignal::parse`]), and the [`FailoverFollower`]: when commands hold because a
//! failover was announced, when the hold ends, and when the master's address is polled.
//!
//! Why hold: after `SENTINEL FAILOVER` (or an objective failure) the leading sentinel announces
//! `+try-failover`, then `+selected-slave`, and only one timer tick later sends
//! `REPLICAOF NO ONE` to the replica it chose. The old master keeps accepting writes until it is
//! demoted (about 10 s later), and every write it takes after the promotion is lost when it
//! resynchronises. Commands that wait from the first announcement until `+switch-master` (or
//! until the hold times out, or the failover is aborted) never reach the old master after the
//! promotion.

use std::time::{Duration, Instant};

/// What one sentinel event says about the master being followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SentinelSignal {
    /// A failover of this master has started (`+try-failover`, `+selected-slave`,
    /// `+failover-state-*`, `+promoted-slave`, …): hold commands.
    FailoverStarted,
    /// A sentinel gave the failover up (`-failover-abort-*`); another may go on with it.
    FailoverAborted,
    /// The master is now at `host:port` (`+switch-master`).
    Switched {
        /// The new master's host (an address, as the sentinels announce it).
        host: String,
        /// Its port.
        port: u16,
    },
}

impl SentinelSignal {
    /// The signal of a sentinel's pub/sub message on `channel` with `payload`, if it concerns
    /// `master`. Instance details are `<type> <name> <ip> <port> [@ <master> <ip> <port>]`;
    /// `+switch-master` is `<master> <old ip> <old port> <new ip> <new port>`.
    ///
    /// ```
    /// use redis_keeper::policy::SentinelSignal;
    /// let s = SentinelSignal::parse("+switch-master", "mymaster 127.0.0.1 6379 127.0.0.1 6380", "mymaster");
    /// assert_eq!(s, Some(SentinelSignal::Switched { host: "127.0.0.1".into(), port: 6380 }));
    /// let other = SentinelSignal::parse("+try-failover", "master cache 10.0.0.1 6379", "mymaster");
    /// assert_eq!(other, None);
    /// ```
    pub fn parse(channel: &str, payload: &str, master: &str) -> Option<SentinelSignal> {
        let words: Vec<&str> = payload.split_ascii_whitespace().collect();
        if channel == "+switch-master" {
            return match words.as_slice() {
                [name, _, _, host, port] if *name == master => Some(Self::Switched {
                    host: (*host).to_owned(),
                    port: port.parse().ok()?,
                }),
                _ => None,
            };
        }
        let starts = matches!(
            channel,
            "+try-failover" | "+selected-slave" | "+promoted-slave" | "+elected-leader"
        ) || channel.starts_with("+failover-state-");
        let aborts = channel.starts_with("-failover-abort");
        if !(starts || aborts) || !concerns(&words, master) {
            return None;
        }
        Some(if starts {
            Self::FailoverStarted
        } else {
            Self::FailoverAborted
        })
    }
}

/// Whether instance details name `master`: a master instance by its name, any other instance
/// by the master after its `@`.
fn concerns(words: &[&str], master: &str) -> bool {
    match words {
        ["master", name, ..] => *name == master,
        _ => words
            .iter()
            .position(|w| *w == "@")
            .and_then(|at| words.get(at + 1))
            .is_some_and(|name| *name == master),
    }
}

/// The follower's timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverConfig {
    /// How often the master's address is asked for, as a backstop to the events.
    pub poll_interval: Duration,
    /// The longest hold after a failover was announced.
    pub hold: Duration,
}

/// What the follower's driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerAction {
    /// Nothing.
    None,
    /// Start holding commands (or keep holding) until this instant at the latest.
    HoldUntil(Instant),
    /// Stop holding: send commands to the master as it is known now.
    Release,
    /// Ask the sentinels where the master is.
    Poll,
}

/// When commands hold and when the address is polled. Switches themselves (a new address) are
/// the driver's: it compares the address it learns with the one it uses.
///
/// ```
/// use std::time::{Duration, Instant};
/// use redis_keeper::policy::{FailoverConfig, FailoverFollower, FollowerAction, SentinelSignal};
/// let t0 = Instant::now();
/// let config = FailoverConfig { poll_interval: Duration::from_secs(2), hold: Duration::from_secs(5) };
/// let mut f = FailoverFollower::new(config, t0);
/// assert_eq!(f.on_signal(&SentinelSignal::FailoverStarted, t0), FollowerAction::HoldUntil(t0 + config.hold));
/// assert!(f.holding(t0));
/// assert_eq!(f.tick(t0 + config.hold), FollowerAction::Release, "a hold never outlives its bound");
/// assert!(!f.holding(t0 + config.hold));
/// ```
#[derive(Debug, Clone)]
pub struct FailoverFollower {
    config: FailoverConfig,
    hold_until: Option<Instant>,
    next_poll: Instant,
}

impl FailoverFollower {
    /// A follower whose first poll is due at `now`.
    pub fn new(config: FailoverConfig, now: Instant) -> Self {
        Self {
            config,
            hold_until: None,
            next_poll: now,
        }
    }

    /// Whether commands hold at `now`.
    pub fn holding(&self, now: Instant) -> bool {
        self.hold_until.is_some_and(|until| now < until)
    }

    /// The hold's end, while one is on.
    pub fn hold_until(&self) -> Option<Instant> {
        self.hold_until
    }

    /// A sentinel's signal at `now`. A start holds (a later start does not extend the first
    /// hold: the bound is from the first announcement); a switch releases. An abort asks for a
    /// poll at once but does not release: one sentinel's abort (a candidate that lost the
    /// vote) says nothing of the leader's failover, which may go on; the hold ends at the
    /// switch or at its bound.
    pub fn on_signal(&mut self, signal: &SentinelSignal, now: Instant) -> FollowerAction {
        match signal {
            SentinelSignal::FailoverStarted => {
                let until = *self.hold_until.get_or_insert(now + self.config.hold);
                if now < until {
                    FollowerAction::HoldUntil(until)
                } else {
                    self.hold_until = None;
                    FollowerAction::Release
                }
            }
            SentinelSignal::FailoverAborted => {
                self.next_poll = now;
                FollowerAction::None
            }
            SentinelSignal::Switched { .. } => {
                self.next_poll = now;
                self.on_switch()
            }
        }
    }

    /// Ends a hold whose bound has passed at `now` (a waiter's check: polls stay the driver's).
    pub fn expire(&mut self, now: Instant) -> FollowerAction {
        if self.hold_until.is_some_and(|until| now >= until) {
            self.hold_until = None;
            self.next_poll = now;
            return FollowerAction::Release;
        }
        FollowerAction::None
    }

    /// The master's address changed (a poll or a connect saw it): the failover is over.
    pub fn on_switch(&mut self) -> FollowerAction {
        match self.hold_until.take() {
            Some(_) => FollowerAction::Release,
            None => FollowerAction::None,
        }
    }

    /// The next deadline passed (or not): an expired hold is released first, then a due poll
    /// is asked for (and the next one scheduled).
    pub fn tick(&mut self, now: Instant) -> FollowerAction {
        if self.expire(now) == FollowerAction::Release {
            return FollowerAction::Release;
        }
        if now >= self.next_poll {
            self.next_poll = now + self.config.poll_interval;
            return FollowerAction::Poll;
        }
        FollowerAction::None
    }

    /// When [`FailoverFollower::tick`] has something to do next.
    pub fn next_deadline(&self) -> Instant {
        self.hold_until
            .map_or(self.next_poll, |until| until.min(self.next_poll))
    }
}

#[cfg(test)]
mod tests;
